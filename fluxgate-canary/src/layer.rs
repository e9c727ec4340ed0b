//! [`CanaryLayer`]: wraps a stable service into a [`Canary`] router.

use std::sync::Arc;

use tower_layer::Layer;

use crate::error::CanaryError;
use crate::fleet::Fleet;
use crate::handle::CanaryHandle;
use crate::judge::Judge;
use crate::service::{Canary, build};
use crate::settings::{CanaryOptions, CanarySource};
use crate::shared::Shared;

/// Wraps a stable service into a [`Canary`] router to a clone of `canary`.
///
/// Every router the layer makes shares one canary state (weight, phase, windows) and one judge;
/// the judge keeps running while the layer or any router lives.
///
/// ```
/// use fluxgate_canary::CanaryLayer;
/// use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let mut policy = TrafficPolicy::new(None, "web");
/// let mut spec = CanarySpec::default();
/// spec.weight = 100;
/// policy.spec.canary = Some(spec);
/// let compiled = CompiledPolicy::compile(&policy)?;
/// let canary = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new("canary")) });
/// let stable = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new("stable")) });
/// let (layer, judge) = CanaryLayer::new(canary, compiled.canary().unwrap(), Default::default())?;
/// let _judge = judge.spawn();
/// let router = ServiceBuilder::new().layer(layer).service(stable);
/// assert_eq!(*router.oneshot(http::Request::new(())).await?.body().get_ref(), "canary");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CanaryLayer<C> {
    canary: C,
    shared: Arc<Shared>,
    alive: Arc<()>,
}

impl<C> CanaryLayer<C> {
    /// A layer routing to `canary` as `source` says, and the judge to run.
    ///
    /// # Errors
    ///
    /// [`CanaryError::Window`] if the analysis windows cannot be built for the interval.
    pub fn new(
        canary: C,
        source: impl Into<CanarySource>,
        options: CanaryOptions,
    ) -> Result<(Self, Judge), CanaryError> {
        Self::with_fleet(canary, source, options, None)
    }

    /// A layer like [`new`](Self::new) whose routers are one replica of a fleet when `fleet`
    /// is given (see [`fleet`](crate::fleet)).
    ///
    /// # Errors
    ///
    /// [`CanaryError::Window`] if the analysis windows cannot be built for the interval.
    pub fn with_fleet(
        canary: C,
        source: impl Into<CanarySource>,
        options: CanaryOptions,
        fleet: Option<Fleet>,
    ) -> Result<(Self, Judge), CanaryError> {
        let (shared, alive, judge) = build(source.into(), options, fleet)?;
        Ok((
            Self {
                canary,
                shared,
                alive,
            },
            judge,
        ))
    }

    /// A handle on the shared canary state.
    #[must_use]
    pub fn handle(&self) -> CanaryHandle {
        CanaryHandle::new(self.shared.clone())
    }
}

impl<S, C: Clone> Layer<S> for CanaryLayer<C> {
    type Service = Canary<S, C>;

    fn layer(&self, stable: S) -> Self::Service {
        Canary::from_parts(
            stable,
            self.canary.clone(),
            self.shared.clone(),
            self.alive.clone(),
        )
    }
}

impl<S, C> Canary<S, C> {
    /// A layer that wraps a stable service into a router to `canary`, and its judge.
    ///
    /// # Errors
    ///
    /// [`CanaryError::Window`] if the analysis windows cannot be built for the interval.
    pub fn layer(
        canary: C,
        source: impl Into<CanarySource>,
    ) -> Result<(CanaryLayer<C>, Judge), CanaryError> {
        CanaryLayer::new(canary, source, CanaryOptions::default())
    }
}
