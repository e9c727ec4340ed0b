//! FluxGate's canary router: sends a share of traffic to a new version, judges it in-process,
//! advances it step by step and rolls it back on its own.
//!
//! Use [`Canary`] (or [`CanaryLayer`]) between two services, typically two `Balance`s over the
//! stable and the canary endpoints, driven by a policy's `spec.canary` ([`CanarySource`]: a
//! compiled canary, or a [`PolicySlot`](fluxgate_core::store::PolicySlot) that follows the
//! store). Building one returns the router and its [`Judge`], the background task the caller
//! spawns; [`Canary::handle`] gives the [`CanaryHandle`] an admin endpoint uses.
//!
//! # Routing
//!
//! - **Match**: a request matching `match` goes to the canary whatever the weight (entries are
//!   OR-ed, the conditions of one entry AND-ed; `header`, `cookie` parsed from `Cookie`,
//!   `query` percent-decoded; `exact`, `prefix`, or `regex` searched anywhere in the value).
//! - **Split**: other requests go to the canary with probability `weight`%. Without a sticky key,
//!   each router clone walks a Weyl sequence (`seq += 2⁶⁴/φ`, canary when `⌊seq·100/2⁶⁴⌋ <
//!   weight`) from its own seed, so the share is exact within a request or two per clone.
//! - **Stickiness**: with `stickyKey`, the side is a function of the key and the weight only:
//!   canary when `⌊fmix64(fnv1a(key))·100/2⁶⁴⌋ < weight`. Replicas agree, and raising the weight
//!   only moves clients from stable to canary. A request without the key is split as above.
//!
//! # Judging
//!
//! - **Steps**: with `steps`, the canary starts at the first step (else at `weight`); each
//!   passing analysis moves one step up, and a passing analysis at the last step promotes it.
//! - **Analysis**, every `interval` (10s): over the interval just ended, the canary's error rate
//!   (failures and overloads per response) against `metrics.targetErrorRate` and its p99 against
//!   `metrics.targetP99Latency`. Fewer than `minRequests` (20) canary responses is neither a pass
//!   nor a failure: the weight holds ([`InsufficientSamples`] changes that). A failed check holds
//!   the weight; `failureThreshold` (3) failed checks in a row roll back; a pass resets the count.
//! - **Error budget**, every 200ms over a sliding window as long as the interval: once it holds
//!   at least `minRequests` canary responses and availability is below `errorBudget` (0.985),
//!   the canary is rolled back at once (also when paused).
//! - **Rollback** is complete: weight 0, no sticky client kept (stickiness is stateless, so no
//!   assignment survives), matched requests to stable too unless `rollbackMatched: false`, and
//!   the reason ([`RollbackReason`]: metric, value, target, sample size) is in the [`Snapshot`].
//! - **Policy versions** (from a slot): targets, thresholds, budget, match rules and the sticky
//!   key change at once; the phase, failed checks and weight stay, except that changed `steps`
//!   put the canary on the highest step at or below its weight (the weight never rises with a
//!   policy change); a changed `interval` rebuilds the windows (their samples are dropped).
//!   Promotion and rollback stay until [`CanaryHandle::restart`].
//!
//! Every transition is a tracing event (target `fluxgate_canary`) and counted in
//! [`Snapshot::transitions`].
//!
//! # Latency sampling
//!
//! Every response's outcome is counted. Its latency (call to response head) takes two reads of
//! the fine clock, a third of the router's cost per request, so a busy side times a random
//! sample: at every budget tick the judge looks at each side's rate over the tick just ended,
//! and a side above 2,560 responses a second times one response in 2, 4, 8 or at most 16 (about
//! 1,280 a second, over 12,000 per 10s interval). A timed latency is counted as many times as
//! the responses it stands for, so the quantiles, the window's latency count and the fleet's
//! merged histograms estimate every response's. A quiet side, and any side before the judge
//! first runs, times every response. [`SideStats::timed_one_in`] shows the stride. Untimed
//! responses are placed in their count bucket with the kernel's coarse clock (at most one
//! kernel tick, 1-10 ms, early, in buckets a budget tick wide).
//!
//! # Fleets
//!
//! Replicas of a gateway that share a store act as one canary: give each router a
//! [`fleet::Fleet`] ([`Canary::builder`]`(…).fleet(…)`, with a `RedisFleet` across processes or
//! a [`fleet::LocalFleet`] in one). Then the phase, weight and step are the fleet's (one record
//! in the store, written by compare-and-set), the judge is the replica holding a lease and it
//! judges the fleet's merged counts, manual actions through any replica's handle reach every
//! replica, and a replica that starts mid-rollout joins where the fleet stands. See
//! [`fleet`] for the design, the keys, the command budget and what each fault does.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_canary::{Canary, Phase};
//! use fluxgate_core::policy::{parse_policies, CompiledPolicy};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let yaml = br#"
//! apiVersion: fluxgate.io/v1beta1
//! kind: TrafficPolicy
//! metadata: {name: checkout}
//! spec:
//!   canary: {steps: [10, 50], interval: 1s, minRequests: 5, metrics: {targetErrorRate: 0.01}}
//! "#;
//! let compiled = CompiledPolicy::compile(&parse_policies(yaml)?[0])?;
//! let ok = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
//! let (router, judge) = Canary::new(ok, ok, compiled.canary().unwrap())?;
//! let handle = router.handle();
//! let _judge = judge.spawn();
//! tokio::time::sleep(Duration::from_millis(1)).await; // just past the window's start
//! for _ in 0..2 {
//!     for _ in 0..100 {
//!         router.clone().oneshot(http::Request::new(())).await?;
//!     }
//!     tokio::time::sleep(Duration::from_secs(1)).await;
//! }
//! assert_eq!(handle.snapshot().phase, Phase::Promoted);
//! # Ok(()) }
//! ```
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod builder;
mod decision;
mod error;
pub mod fleet;
pub mod future;
mod handle;
mod judge;
mod layer;
mod machine;
mod millis;
mod route;
mod service;
mod settings;
mod shared;
mod snapshot;

pub use builder::CanaryBuilder;
pub use decision::{Action, Check, Decision, Finding, Phase, RollbackReason};
pub use error::CanaryError;
pub use handle::CanaryHandle;
pub use judge::Judge;
pub use layer::CanaryLayer;
pub use route::Side;
pub use service::Canary;
pub use settings::{CanaryOptions, CanarySource, InsufficientSamples, MIN_INTERVAL};
pub use snapshot::{SideStats, Snapshot, Transitions};

/// The boxed error type, [`fluxgate_core::BoxError`] (the same type as `tower::BoxError`).
pub use fluxgate_core::BoxError;
