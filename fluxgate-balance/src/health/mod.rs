//! Active health checks: a task that probes every endpoint each `healthCheck.interval`.
//!
//! Use it when endpoints can fail without traffic showing it (or before traffic reaches them).
//! [`Balance::health_task`] returns a [`HealthTask`], a future the caller spawns (or
//! [`HealthTask::spawn`] on tokio); it ends by itself once the balancer is dropped. The probe is
//! supplied by the caller: [`HttpProbe`] (a GET of `healthCheck.path` through the caller's HTTP
//! client), [`GrpcProbe`] (`grpc.health.v1.Health/Check` through the caller's HTTP/2 client), or
//! any closure with [`probe_fn`].
//!
//! Each round probes every endpoint at once, each probe bounded by `healthCheck.timeout` (a
//! timeout is a failure). `unhealthyThreshold` failures in a row take an endpoint out of the
//! rotation, `healthyThreshold` passes in a row bring it back (with slow start when configured).
//! Passive ejection wins over a passing check for failures seen on real traffic: an endpoint
//! drained for 5xx, errors or latency comes back only after its ejection time and a successful
//! trial request of real traffic, never because its check passes (unlike Envoy's default
//! `successful_active_health_check_uneject_host: true`, which returns it on the first passing
//! check). An endpoint drained because it refused connections (a process restarting) comes back
//! as soon as `healthyThreshold` checks pass in a row, as with Envoy's default. Rounds are `interval` apart less up to 10% of jitter, so checks of many gateways
//! spread out and an endpoint that fails is out within `interval × unhealthyThreshold`.
//!
//! # Example
//!
//! ```
//! use fluxgate_balance::{Balance, Weighted, health::probe_fn};
//! use fluxgate_core::policy::{HealthCheck, LoadBalancing};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let svc = || Weighted::new(tower::service_fn(|_: http::Request<()>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! # }), 1);
//!
//! let mut policy = LoadBalancing::default();
//! policy.health_check = Some(HealthCheck::default());
//! let balance = Balance::<_, http::Request<()>>::new(policy, [("up", svc()), ("down", svc())]);
//! let task = balance.health_task(probe_fn(|key: &&str, _check: &HealthCheck| {
//!     let up = *key == "up";
//!     async move { up }
//! }));
//! let running = task.spawn();
//! drop(balance); // the task ends on its own
//! running.await.unwrap();
//! # }
//! ```

mod probe;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use fluxgate_core::policy::{HealthCheck, OutlierDetection};
use fluxgate_core::task::TaskHandle;
use tower::discover::Discover;

use crate::endpoint::{
    self, ACTIVE, EJECTED, EndpointState, PROBE_READY, REASON_CONNECT, Weighted,
};
use crate::select::Rng;
use crate::service::Balance;
use crate::shared::Shared;

pub use probe::{GrpcProbe, HttpProbe};

/// The future of one probe: `true` when the endpoint is healthy.
pub type ProbeFuture = Pin<Box<dyn Future<Output = bool> + Send + 'static>>;

/// Checks the health of one endpoint, named by its key.
///
/// ```
/// use fluxgate_balance::health::{Probe, ProbeFuture};
/// use fluxgate_core::policy::HealthCheck;
///
/// struct AlwaysUp;
/// impl Probe<String> for AlwaysUp {
///     fn probe(&self, _key: &String, _check: &HealthCheck) -> ProbeFuture {
///         Box::pin(async { true })
///     }
/// }
/// ```
pub trait Probe<K>: Send + Sync + 'static {
    /// Probes the endpoint `key` as `check` says (path, expected statuses); the timeout is
    /// applied around the returned future.
    fn probe(&self, key: &K, check: &HealthCheck) -> ProbeFuture;
}

/// A [`Probe`] made of a closure; see [`probe_fn`].
#[derive(Clone)]
pub struct ProbeFn<F>(F);

impl<F> fmt::Debug for ProbeFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProbeFn")
    }
}

/// A [`Probe`] from a closure returning a future of `bool` (`true`: healthy).
///
/// ```
/// use fluxgate_balance::health::probe_fn;
/// use fluxgate_core::policy::HealthCheck;
///
/// let _probe = probe_fn(|key: &String, check: &HealthCheck| {
///     let url = format!("{key}{}", check.path);
///     async move { !url.is_empty() }
/// });
/// ```
pub fn probe_fn<K, F, Fut>(f: F) -> ProbeFn<F>
where
    F: Fn(&K, &HealthCheck) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    ProbeFn(f)
}

impl<K, F, Fut> Probe<K> for ProbeFn<F>
where
    F: Fn(&K, &HealthCheck) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    fn probe(&self, key: &K, check: &HealthCheck) -> ProbeFuture {
        Box::pin((self.0)(key, check))
    }
}

/// The active health checks of one balancer, as a future to spawn; see the [module docs](self).
///
/// It completes once the balancer is dropped. Dropping it stops the checks (endpoints keep the
/// health they had).
#[must_use = "a health task does nothing unless spawned or polled"]
pub struct HealthTask {
    inner: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
}

impl fmt::Debug for HealthTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthTask").finish_non_exhaustive()
    }
}

impl Future for HealthTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

impl HealthTask {
    /// Spawns the task on the current tokio runtime. Dropping the returned handle stops it
    /// ([`TaskHandle`]); the task also ends on its own when the balancer is gone.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn(self) -> TaskHandle {
        TaskHandle::spawn(self)
    }
}

impl<D, K, S, Req> Balance<D, Req>
where
    D: Discover<Key = K, Service = Weighted<S>>,
    K: Eq + Clone + Send + Sync + 'static,
{
    /// The active health checks of this balancer, probing each endpoint with `probe` as the
    /// policy's `healthCheck` says (no checks while the policy has none). Spawns nothing.
    pub fn health_task<P: Probe<K>>(&self, probe: P) -> HealthTask {
        HealthTask {
            inner: Box::pin(run(Arc::clone(&self.core.shared), probe)),
        }
    }
}

async fn run<K, P>(shared: Arc<Shared<K>>, probe: P)
where
    K: Send + Sync + 'static,
    P: Probe<K>,
{
    let mut rng = Rng::new(endpoint::nanos_since(shared.origin, Stamp::now()) ^ 0x9E37_79B9);
    loop {
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.is_closed() {
            return;
        }
        let policy = shared.policy.load_full();
        let od = policy.outlier_detection_in_force();
        if policy.health_check.is_none() && od.is_none() {
            notified.await;
            continue;
        }
        let mut pause = od
            .as_ref()
            .map_or(Duration::from_secs(3600), |od| od.interval.as_std());
        if let Some(check) = policy.health_check.as_ref() {
            let endpoints = shared.endpoints.load_full();
            let timeout = check.timeout.as_std();
            let rounds = endpoints
                .iter()
                .map(|e| tokio::time::timeout(timeout, probe.probe(&e.key, check)));
            let results = futures::future::join_all(rounds).await;
            let now = Stamp::now();
            for (state, result) in endpoints.iter().zip(results) {
                apply(state, matches!(result, Ok(true)), check, now);
            }
            pause = check.interval.as_std();
        }
        if let Some(od) = od.as_ref() {
            sweep(&shared, od, &mut rng);
        }
        let pause = pause.mul_f64(1.0 - 0.1 * rng.unit());
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = &mut notified => {}
        }
    }
}

/// Judges the endpoints when the balancer has not for two intervals: with every client stuck
/// on a hanging endpoint no request comes to run the balancer's own evaluation, yet the
/// requests in flight are the evidence that drains it.
fn sweep<K>(shared: &Shared<K>, od: &OutlierDetection, rng: &mut Rng) {
    let now = Stamp::now();
    let last = shared.last_detect.load(Ordering::Relaxed);
    let idle = endpoint::nanos_since(shared.origin, now).saturating_sub(last);
    if Duration::from_nanos(idle) < od.interval.as_std() * 2 {
        return;
    }
    let endpoints = shared.endpoints.load_full();
    let states: Vec<&EndpointState<K>> = endpoints.iter().map(|e| &**e).collect();
    crate::eval::detect(shared, &states, now, od, rng);
}

/// Applies one probe result with the thresholds' hysteresis.
fn apply<K>(state: &EndpointState<K>, ok: bool, check: &HealthCheck, now: Stamp) {
    if ok {
        state.check_failures.store(0, Ordering::Relaxed);
        let passes = state.check_passes.fetch_add(1, Ordering::Relaxed) + 1;
        if !state.healthy.load(Ordering::Relaxed) && passes >= check.healthy_threshold {
            state.restart_ramp(now);
            state.healthy.store(true, Ordering::Release);
            state.dirty.store(true, Ordering::Release);
            tracing::debug!("endpoint healthy again");
        }
        // Passive ejection wins over a passing check for failures seen on real traffic (5xx,
        // latency): those endpoints return only through a trial request. An endpoint drained
        // because it refused connections returns on passing checks, its ejection time or not.
        let passive = state.passive.load(Ordering::Acquire);
        if matches!(passive, EJECTED | PROBE_READY)
            && state.reason.load(Ordering::Relaxed) == REASON_CONNECT
            && passes >= check.healthy_threshold
            && state
                .passive
                .compare_exchange(passive, ACTIVE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            state.returned(now);
            state.dirty.store(true, Ordering::Release);
            tracing::debug!("endpoint drained for refused connections is back on passing checks");
        }
    } else {
        state.check_passes.store(0, Ordering::Relaxed);
        let failures = state.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if state.healthy.load(Ordering::Relaxed) && failures >= check.unhealthy_threshold {
            state.healthy.store(false, Ordering::Release);
            state.dirty.store(true, Ordering::Release);
            tracing::debug!("endpoint unhealthy");
        }
    }
}
