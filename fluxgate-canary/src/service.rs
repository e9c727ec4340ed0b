//! [`Canary`]: the router between a stable and a canary service.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use fluxgate_core::outcome::ObservedBody;
use fluxgate_core::quantile::sample_weight;
use http::{Request, Response};
use tower_service::Service;

use crate::BoxError;
use crate::builder::CanaryBuilder;
use crate::error::CanaryError;
use crate::fleet::Fleet;
use crate::future::{FutureOf, Observation, ResponseFuture};
use crate::handle::CanaryHandle;
use crate::judge::Judge;
use crate::route::{Route, Side, mix, sequence_side, sticky_side};
use crate::settings::{CanaryOptions, CanarySource, RouteRules};
use crate::shared::{Lane, Shared, Windows};

/// Routes each request to a stable or a canary service, as the crate docs describe.
///
/// # Readiness
///
/// Like tower's `Steer`, `poll_ready` is `Ready` only when **both** services are ready, since
/// the side is chosen in `call`; a side that is not ready holds every request back, the canary
/// included after a rollback. After a call, the side that took the request must be polled
/// ready again. It is backpressure-sensitive: in axum, put it around the router or use a
/// `Buffer`/load-shed in front. Calling without readiness fails that call with
/// [`CanaryError::NotReady`] (no panic).
///
/// Errors of both sides are boxed ([`BoxError`]) and passed through unchanged.
///
/// # Response
///
/// The response is the side's, with its body wrapped in an [`ObservedBody`] (with an
/// [`Observation`]): a pass-through body when the head decides the outcome (plain HTTP, or a
/// trailers-only gRPC response), else one that records the outcome from the gRPC trailers
/// when the body ends; [`ObservedBody::get_ref`] reaches the side's body. See
/// [`ResponseFuture`] for what is recorded, and when.
///
/// ```
/// use fluxgate_canary::Canary;
/// use fluxgate_core::policy::{CanarySpec, CompiledPolicy, MatchCondition, CanaryMatch, TrafficPolicy};
/// use tower::{service_fn, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let mut policy = TrafficPolicy::new(None, "web");
/// let header = MatchCondition::exact("x-canary", "true");
/// let mut spec = CanarySpec::default();
/// spec.matches = vec![CanaryMatch { header: Some(header), ..Default::default() }];
/// policy.spec.canary = Some(spec);
/// let compiled = CompiledPolicy::compile(&policy)?;
/// let stable = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new("stable")) });
/// let canary = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new("canary")) });
/// let (router, judge) = Canary::new(stable, canary, compiled.canary().unwrap())?;
/// let _judge = judge.spawn();
///
/// let tester = http::Request::get("/").header("x-canary", "true").body(())?;
/// assert_eq!(*router.clone().oneshot(tester).await?.body().get_ref(), "canary");
/// assert_eq!(*router.oneshot(http::Request::new(())).await?.body().get_ref(), "stable");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Canary<S, C> {
    stable: S,
    canary: C,
    shared: Arc<Shared>,
    alive: Arc<()>,
    /// The shared windows and routing rules as of `version`: one atomic load per request, not
    /// `ArcSwap` loads.
    windows: Arc<Windows>,
    rules: Arc<RouteRules>,
    version: u64,
    seq: u64,
    /// The state of this clone's latency sample (xorshift64, never 0).
    sample: u64,
    /// The windows and the stripe this clone records into, made at its first call (on the
    /// thread that serves it) and after the windows change; a clone shares its original's.
    lane: Option<Arc<Lane>>,
    ready: [bool; 2],
}

impl<S: Clone, C: Clone> Clone for Canary<S, C> {
    /// A clone shares the canary's state, starts unready and gets its own split sequence. It
    /// takes this router's view of the windows and rules (refreshed on its first call if the
    /// policy changed since): clones are made per connection or per request.
    fn clone(&self) -> Self {
        let seq = self.shared.seed();
        Self {
            stable: self.stable.clone(),
            canary: self.canary.clone(),
            shared: Arc::clone(&self.shared),
            alive: Arc::clone(&self.alive),
            windows: Arc::clone(&self.windows),
            rules: Arc::clone(&self.rules),
            version: self.version,
            seq,
            sample: sample_seed(seq),
            lane: self.lane.clone(),
            ready: [false; 2],
        }
    }
}

impl<S, C> Canary<S, C> {
    /// A router between `stable` and `canary` with default [`CanaryOptions`], and its judge.
    ///
    /// # Errors
    ///
    /// [`CanaryError::Window`] if the analysis windows cannot be built for the interval.
    pub fn new(
        stable: S,
        canary: C,
        source: impl Into<CanarySource>,
    ) -> Result<(Self, Judge), CanaryError> {
        Self::with_options(stable, canary, source, CanaryOptions::default())
    }

    /// A router with options, and its judge.
    ///
    /// # Errors
    ///
    /// [`CanaryError::Window`] if the analysis windows cannot be built for the interval.
    pub fn with_options(
        stable: S,
        canary: C,
        source: impl Into<CanarySource>,
        options: CanaryOptions,
    ) -> Result<(Self, Judge), CanaryError> {
        let (shared, alive, judge) = build(source.into(), options, None)?;
        Ok((Self::from_parts(stable, canary, shared, alive), judge))
    }

    /// A builder for a router with options or a [`Fleet`](crate::fleet::Fleet).
    pub fn builder(stable: S, canary: C, source: impl Into<CanarySource>) -> CanaryBuilder<S, C> {
        CanaryBuilder::new(stable, canary, source.into())
    }

    pub(crate) fn from_parts(stable: S, canary: C, shared: Arc<Shared>, alive: Arc<()>) -> Self {
        let seq = shared.seed();
        let version = shared.version.load(Ordering::Acquire);
        Self {
            stable,
            canary,
            windows: shared.windows.load_full(),
            rules: shared.rules.load_full(),
            version,
            shared,
            alive,
            seq,
            sample: sample_seed(seq),
            lane: None,
            ready: [false; 2],
        }
    }

    /// A handle to read and steer the canary's state.
    #[must_use]
    pub fn handle(&self) -> CanaryHandle {
        CanaryHandle::new(self.shared.clone())
    }

    /// The stable and canary services.
    #[must_use]
    pub fn get_ref(&self) -> (&S, &C) {
        (&self.stable, &self.canary)
    }

    /// The services, mutably.
    pub fn get_mut(&mut self) -> (&mut S, &mut C) {
        (&mut self.stable, &mut self.canary)
    }

    /// Takes the stable and canary services back.
    pub fn into_inner(self) -> (S, C) {
        (self.stable, self.canary)
    }

    /// The side `request` goes to under `route`; advances this clone's split sequence.
    fn pick<B>(&mut self, request: &Request<B>, route: Route) -> Side {
        if route.weight >= 100 {
            return Side::Canary;
        }
        if route.rules && (route.matched || route.weight > 0) {
            let rules = &self.rules;
            if route.matched && rules.matcher.matches(request.headers(), request.uri()) {
                return Side::Canary;
            }
            if route.weight > 0
                && let Some(hash) = rules
                    .sticky
                    .as_ref()
                    .and_then(|k| k.extract(request).hash64())
            {
                return sticky_side(hash, route.weight);
            }
        }
        if route.weight == 0 {
            return Side::Stable;
        }
        sequence_side(&mut self.seq, route.weight)
    }

    /// How many responses this one's latency stands for: 1 on a side that times every
    /// response, else the stride for one response in the stride (at random), 0 for the others.
    fn timing(&mut self, side: Side) -> u32 {
        let shift = self.shared.sampling.shift(side);
        if shift == 0 {
            return 1;
        }
        // xorshift64: cheap, and uncorrelated with the split sequence and with any period in
        // the traffic.
        let mut x = self.sample;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.sample = x;
        sample_weight(shift, x)
    }
}

/// The latency sample's xorshift state for a clone whose split sequence starts at `seq`: a
/// different walk from the same seed, never 0.
fn sample_seed(seq: u64) -> u64 {
    mix(seq ^ 0x5851_f42d_4c95_7f2d) | 1
}

pub(crate) fn build(
    source: CanarySource,
    options: CanaryOptions,
    fleet: Option<Fleet>,
) -> Result<(Arc<Shared>, Arc<()>, Judge), CanaryError> {
    let shared = Arc::new(match source {
        CanarySource::Fixed(canary) => Shared::new(None, Some(&canary), options, fleet)?,
        CanarySource::Slot(slot) => Shared::new(Some(slot), None, options, fleet)?,
    });
    let alive = Arc::new(());
    let judge = Judge::new(shared.clone(), Arc::downgrade(&alive));
    Ok((shared, alive, judge))
}

impl<S, C, B, RB> Service<Request<B>> for Canary<S, C>
where
    S: Service<Request<B>, Response = Response<RB>>,
    C: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    C::Error: Into<BoxError>,
{
    type Response = Response<ObservedBody<RB, Observation>>;
    type Error = BoxError;
    type Future = FutureOf<S, C, Request<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.ready[0] {
            match self.stable.poll_ready(cx) {
                Poll::Ready(Ok(())) => self.ready[0] = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {}
            }
        }
        if !self.ready[1] {
            match self.canary.poll_ready(cx) {
                Poll::Ready(Ok(())) => self.ready[1] = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {}
            }
        }
        if self.ready == [true; 2] {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.ready != [true; 2] {
            return ResponseFuture::not_ready();
        }
        let route = self.shared.refresh();
        let version = self.shared.version.load(Ordering::Acquire);
        if version != self.version {
            self.windows = self.shared.windows.load_full();
            self.rules = self.shared.rules.load_full();
            self.version = version;
            self.lane = None;
        }
        let side = self.pick(&request, route);
        let lane = self.lane.get_or_insert_with(|| {
            Arc::new(Lane {
                windows: Arc::clone(&self.windows),
                stripe: fluxgate_core::stripe::current(),
            })
        });
        self.shared.routed(side, lane.stripe);
        let lane = Arc::clone(lane);
        self.ready[side as usize] = false;
        let weight = self.timing(side);
        match side {
            Side::Stable => ResponseFuture::stable(self.stable.call(request), lane, weight),
            Side::Canary => ResponseFuture::canary(self.canary.call(request), lane, weight),
        }
    }
}
