//! FluxGate's load balancer: weighted and latency/error-adaptive selection over a changing set of
//! endpoints, with active health checks and passive draining.
//!
//! Use [`Balance`] in front of a set of upstreams (a hyper client per upstream, a tonic
//! `Channel` per endpoint) when tower's `p2c` is not enough: it has weights, health checks,
//! outlier ejection with backoff, slow start, and never evicts an endpoint for failing.
//!
//! # Algorithms (`spec.loadBalancing.algorithm`) and their cost per request
//!
//! | algorithm | how it picks | cost |
//! |---|---|---|
//! | `weighted-round-robin` | nginx's smooth WRR: each pick adds every weight to a running value and takes the largest (5,1,1 → a a b a c a a) | O(n) integer adds |
//! | `round-robin` | a cursor over eligible endpoints; ignores weights | O(1) |
//! | `least-request` | power of two choices over `(in-flight + 1) / weight` | 2 random draws, 2 atomic loads |
//! | `peak-ewma` | power of two choices over `peak-EWMA latency × (in-flight + 1) / weight` | as above, plus 2 loads |
//! | `adaptive` | two candidates drawn in proportion to adaptive weights, the cheaper by `latency × (in-flight + 1) / weight` wins | 2 binary searches over n, 4 loads |
//!
//! ## Which algorithm
//!
//! For a heterogeneous cluster (endpoints of different speeds, or whose speed changes), choose
//! `adaptive`; `peak-ewma` is next. `weighted-round-robin` (the default) and `round-robin`
//! follow the configured weights only: they still drain slow and failing endpoints (outlier
//! detection), but they keep sending an even share to an endpoint that is merely slower. In
//! `benches/src/bin/balance_queues.rs` (real clock; 8 endpoints of 4 workers each with mean
//! service times 2ms ×4, 4ms ×2, 8ms, 20ms; 24 requests in flight) one run measured:
//!
//! | algorithm | p50 | p99 | p99.9 | share of the two slowest |
//! |---|---|---|---|---|
//! | `round-robin` | 4.3ms | 109ms | 118ms | 25% |
//! | `least-request` | 3.4ms | 28ms | 37ms | 12% |
//! | `peak-ewma` | 3.4ms | 15ms | 30ms | 6.7% |
//! | `adaptive` | 3.5ms | 9.3ms | 14.5ms | 1.8% |
//! | tower p2c `PeakEwma` (for comparison) | 3.4ms | 15ms | 31ms | 6.5% |
//!
//! Weights in effect are recomputed every 200ms (or `outlierDetection.interval`) inside
//! `poll_ready`, not per request: configured weight × slow-start ramp × error factor (1 at no
//! errors, 0.01 at 10% errors and more); `adaptive` also multiplies by
//! `(fastest latency / latency)²` and by `1 − utilisation` when the endpoint sends an ORCA
//! `endpoint-load-metrics` header (`TEXT` or `JSON`; the largest of cpu, mem and application
//! utilisation). A failure or overload updates the latency average as at least twice the
//! endpoint's latency, so an endpoint that fails fast does not look fast.
//!
//! Every finished request records its outcome (lock-free time window), its latency (peak EWMA for
//! `peak-ewma`/`adaptive`, a p95 histogram when outlier detection is on) and gives back its
//! in-flight count. Nothing on the request path locks or allocates.
//!
//! # Across threads
//!
//! Clones of one balancer on several threads (a gateway's workers) share the endpoints, not
//! their cache lines: each thread adds to counts of its own per endpoint (in flight, outcomes,
//! slow samples, totals; see [`fluxgate_core::stripe`]), walks the round-robin cycle from a
//! position of its own, and the evaluation and [`BalanceHandle::snapshot`] sum the threads'
//! counts. `least-request`, `peak-ewma` and `adaptive` compare the picking thread's in-flight
//! counts, as each worker of nginx or Envoy balances by its own. A busy endpoint (over 2,560
//! responses a second) feeds its latency average and p95 histogram, the only latency state
//! its threads share, with one response in 2 to 16 drawn at random, each counted for the
//! responses it stands for ([`fluxgate_core::quantile::sample_shift`]); its outcomes, totals
//! and slow samples count every response. A clone keeps its copies of the endpoints' services
//! from one request to the next, and each request's future holds its clone's reference count,
//! not the endpoint's. Shared by two threads in front of one endpoint, a request costs about
//! what it costs on one thread (`BENCH_SHARED` in `benches/benches/balance_overhead.rs`).
//!
//! # Health, draining and caps
//!
//! - Active checks: [`Balance::health_task`] (see [`health`]).
//! - Outlier detection (`outlierDetection`, on by default: a policy without the block drains at
//!   p95 > 450ms or errors > 2.5%; `enabled: false` turns it off): every interval, an endpoint
//!   is drained when its 5xx/429/transport-error rate is above `maxErrorRate` or its p95 above
//!   `maxP95Latency`, judged by volume (at least `minRequests` in the last second) or on
//!   evidence at any volume (a one-sided binomial test over the last 1s and 5s at a 1e-4
//!   false-positive rate, at least 5 bad samples; requests in flight older than the limit
//!   count as slow, so a hanging endpoint is drained before its requests time out); 5
//!   failures in a row ([`Balance::with_consecutive_failures`]) or a refused connection drain
//!   it at once. Latency is relative: when the other endpoints' median p95 is over the limit
//!   too (a whole cluster slowing down), only an endpoint over twice that median is drained.
//!   A drain lasts `baseEjectionTime × ejections` (capped at `maxEjectionTime`, ±10% jitter);
//!   then a single trial request of real traffic brings the endpoint back, or ejects it again
//!   for longer. A passing health check does not return an endpoint drained for errors or
//!   latency (passive ejection wins, unlike Envoy's default
//!   `successful_active_health_check_uneject_host`); it returns one drained for refused
//!   connections. At most `maxEjectionPercent` of the endpoints are drained at once. Every
//!   algorithm picks among the endpoints not drained.
//! - Retries ([`Retry`], around a shared balancer): a request that never left (refused
//!   connection) is sent again on another endpoint; an idempotent one that failed after it was
//!   sent, within a retry budget (`loadBalancing.retries`).
//! - Drained and unhealthy endpoints only leave the rotation; only discovery removes endpoints.
//!   With none eligible, calls fail at once with [`BalanceError::NoHealthyEndpoints`]
//!   ([`RespondUnavailable`] answers 503 instead).
//! - Slow start (`slowStart.window`): an endpoint added to a running set, or back from a drain,
//!   gets from 10% to 100% of its weight over the window.
//! - [`BalanceHandle`]: per-endpoint [`EndpointSnapshot`]s (last-second gauges and cumulative
//!   [`EndpointTotals`] with a latency histogram), [`BalanceHandle::set_policy`], and
//!   [`BalanceHandle::follow`], a [`PolicyFollower`] to spawn that keeps the balancer on a policy
//!   in a `PolicyStore`.
//! - [`BalanceLayer`] builds a `Balance` from a connector ([`MakeEndpoint`], or any
//!   `FnMut(&key) -> service`) in a `ServiceBuilder` stack.
//!
//! # Example
//!
//! ```
//! use fluxgate_balance::{Balance, RespondUnavailable, Weighted};
//! use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing, OutlierDetection};
//! use tower::{Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let upstream = |name: &'static str| tower::service_fn(move |_: http::Request<()>| async move {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(name))
//! });
//! let mut policy = LoadBalancing::default();
//! policy.algorithm = BalanceAlgorithm::Adaptive;
//! policy.outlier_detection = Some(OutlierDetection::default());
//! let balance = Balance::new(policy, [
//!     ("http://10.0.0.1:8080", Weighted::new(upstream("one"), 2)),
//!     ("http://10.0.0.2:8080", Weighted::new(upstream("two"), 1)),
//! ]);
//! let handle = balance.handle();
//! let mut svc = RespondUnavailable::new(balance);
//! let response = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
//! assert_eq!(response.status(), 200);
//! assert_eq!(handle.snapshot().len(), 2);
//! # }
//! ```
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod call;
mod control;
mod endpoint;
pub mod error;
mod eval;
mod evidence;
mod follow;
pub mod future;
mod handle;
pub mod health;
mod hot;
mod layer;
mod orca;
pub mod retry;
mod select;
mod service;
mod shared;
mod stats;
#[cfg(test)]
mod tests;
mod unavailable;

pub use endpoint::Weighted;
pub use error::{BalanceError, is_no_healthy_endpoints};
pub use follow::PolicyFollower;
pub use handle::{BalanceHandle, DrainReason, EndpointSnapshot, Health};
pub use health::HealthTask;
pub use layer::{BalanceLayer, MakeEndpoint};
pub use retry::{Retry, RetryFuture, RetryableRequest};
pub use service::{Balance, FixedEndpoints};
pub use stats::{EndpointTotals, LatencyHistogram};
pub use unavailable::{RespondUnavailable, RespondUnavailableFuture, RespondUnavailableLayer};

/// The largest utilisation an ORCA `endpoint-load-metrics` header value reports, if any.
///
/// Not a stable API: it exists for the fuzz targets in `fuzz/`.
#[doc(hidden)]
#[must_use]
pub fn parse_orca_load_report(value: &str) -> Option<f64> {
    orca::parse(value)
}
