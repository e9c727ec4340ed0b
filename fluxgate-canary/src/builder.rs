//! [`CanaryBuilder`]: a canary router with options and, for replicas, a shared store.

use crate::error::CanaryError;
use crate::fleet::Fleet;
use crate::judge::Judge;
use crate::service::{Canary, build};
use crate::settings::{CanaryOptions, CanarySource};

/// Builds a [`Canary`] router and its [`Judge`]: options, and the [`Fleet`] it belongs to.
///
/// With a fleet, the canary's state (phase, weight, step, failed checks, last decision) is the
/// one in the shared store, judged on the whole fleet's traffic; see [`fleet`](crate::fleet).
///
/// ```
/// use fluxgate_canary::{Canary, CanaryOptions, InsufficientSamples};
/// use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
/// use tower::service_fn;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut policy = TrafficPolicy::new(None, "web");
/// policy.spec.canary = Some(CanarySpec::default());
/// let compiled = CompiledPolicy::compile(&policy)?;
/// let svc = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
/// let (router, _judge) = Canary::builder(svc, svc, compiled.canary().unwrap())
///     .options(CanaryOptions::default().insufficient_samples(InsufficientSamples::Pass))
///     .build()?;
/// assert!(router.handle().snapshot().fleet.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct CanaryBuilder<S, C> {
    stable: S,
    canary: C,
    source: CanarySource,
    options: CanaryOptions,
    fleet: Option<Fleet>,
}

impl<S, C> CanaryBuilder<S, C> {
    pub(crate) fn new(stable: S, canary: C, source: CanarySource) -> Self {
        Self {
            stable,
            canary,
            source,
            options: CanaryOptions::default(),
            fleet: None,
        }
    }

    /// Sets the [`CanaryOptions`].
    pub fn options(mut self, options: CanaryOptions) -> Self {
        self.options = options;
        self
    }

    /// Makes this router one replica of a fleet sharing `fleet`'s store.
    pub fn fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Makes it a fleet replica when `fleet` is given.
    pub fn fleet_opt(mut self, fleet: Option<Fleet>) -> Self {
        self.fleet = fleet;
        self
    }

    /// The router and its judge (which the caller spawns).
    ///
    /// # Errors
    ///
    /// [`CanaryError::Window`] if the analysis windows cannot be built for the interval.
    pub fn build(self) -> Result<(Canary<S, C>, Judge), CanaryError> {
        let (shared, alive, judge) = build(self.source, self.options, self.fleet)?;
        Ok((
            Canary::from_parts(self.stable, self.canary, shared, alive),
            judge,
        ))
    }
}
