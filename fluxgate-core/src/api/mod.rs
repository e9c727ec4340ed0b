//! The JSON documents of a gateway's admin API, shared by the server (`fluxgate::admin`) and its
//! clients (`fluxctl status`, `fluxctl canary`): [`Status`] is `GET /api/status`, and
//! [`CanaryStatus`] is one canary in it and the answer of `POST /api/canary/{action}`.
//!
//! Field names are camelCase, durations are milliseconds (fields named `...Ms`) and times are
//! Unix seconds (`atUnixSeconds`). Reading is tolerant: a missing field takes its default, a
//! missing section is `None`, and fields or sections this version does not know are kept in
//! `extra` (so a newer gateway's document still reads, and writes back unchanged).
//!
//! ```
//! use fluxgate_core::api::Status;
//!
//! let json = r#"{"store": null, "canaries": {}, "redis": {"joined": true}}"#;
//! let status: Status = serde_json::from_str(json)?;
//! assert!(status.store.is_none() && status.balancers.is_none());
//! assert_eq!(status.canaries.map(|c| c.len()), Some(0));
//! assert_eq!(status.extra["redis"]["joined"], true);
//! # Ok::<(), serde_json::Error>(())
//! ```

mod canary;
mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use canary::{CanaryStatus, FleetMember, LastDecision, SideStatus};
pub use store::{PolicyVersion, Rejection, Removal, Rename, StoreStatus};

/// Fields and sections a document has beyond those its type names, kept as they were.
pub type Extra = Map<String, Value>;

/// The whole `GET /api/status` document.
///
/// ```
/// use fluxgate_core::api::{RateLimitStatus, Status};
///
/// let mut status = Status::default();
/// let mut limits = RateLimitStatus::default();
/// limits.admitted = 12;
/// status.rate_limits = Some(vec![limits]);
/// let json = serde_json::to_value(&status)?;
/// assert_eq!(json["rateLimits"][0]["admitted"], 12);
/// assert_eq!(serde_json::from_value::<Status>(json)?, status);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Status {
    /// The policy store (`null` when the admin API has none).
    pub store: Option<StoreStatus>,
    /// Every balancer's endpoints, by balancer name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balancers: Option<BTreeMap<String, Vec<EndpointStatus>>>,
    /// Every canary, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canaries: Option<BTreeMap<String, CanaryStatus>>,
    /// The counts of every rate-limit layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<RateLimitStatus>>,
    /// Other sections (such as the gateway's `redis` link), by name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One endpoint of a balancer.
///
/// ```
/// use fluxgate_core::api::EndpointStatus;
///
/// let json = r#"{"endpoint": "http://10.0.0.2:8080", "healthy": true, "weight": 100,
///                "effectiveWeight": 0.0, "drained": "errorRate", "drainedDetail": "0.310"}"#;
/// let endpoint: EndpointStatus = serde_json::from_str(json)?;
/// assert_eq!(endpoint.drained.as_deref(), Some("errorRate"));
/// assert_eq!(endpoint.p95_ms, None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct EndpointStatus {
    /// The endpoint's key, as text (the upstream URL in the gateway).
    pub endpoint: String,
    /// Whether active health checks pass.
    pub healthy: bool,
    /// The configured weight.
    pub weight: u32,
    /// The weight in effect; 0 when drained.
    pub effective_weight: f64,
    /// Why it gets no new requests (`healthCheck`, `errorRate`, `latency`,
    /// `consecutiveFailures`), if it gets none.
    pub drained: Option<String>,
    /// The measure behind `drained`, as text (`0.310`, `512ms`, `5`).
    pub drained_detail: Option<String>,
    /// Whether it is being given its single probe request after an ejection.
    pub probing: bool,
    /// Requests in flight.
    pub in_flight: u32,
    /// Requests finished over the last second.
    pub requests: u64,
    /// Failures and overloads per request over the last second.
    pub error_rate: Option<f64>,
    /// p95 latency over the last second, in milliseconds.
    pub p95_ms: Option<f64>,
    /// Peak-EWMA latency, in milliseconds.
    pub latency_ewma_ms: Option<f64>,
    /// One response in this many feeds `p95Ms` and `latencyEwmaMs` (a busy endpoint's latency
    /// is sampled; 0 from a sender that does not say).
    pub timed_one_in: u32,
    /// Times outlier detection ejected it recently.
    pub ejections: u32,
    /// Requests finished since the endpoint was added.
    pub requests_total: u64,
    /// Of those, failures (5xx but 503, timeouts, transport errors).
    pub failures_total: u64,
    /// Of those, overloads (429, 503, gRPC `UNAVAILABLE`/`RESOURCE_EXHAUSTED`).
    pub overloads_total: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The counts of one rate-limit layer: the whole policy, and each of its limits.
///
/// ```
/// use fluxgate_core::api::RateLimitStatus;
///
/// let json = r#"{"policy": "shop/edge", "admitted": 5, "limits": [{"name": "perClient"}]}"#;
/// let counts: RateLimitStatus = serde_json::from_str(json)?;
/// assert_eq!((counts.admitted, counts.refused, counts.limits[0].name.as_str()), (5, 0, "perClient"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct RateLimitStatus {
    /// The policy (`namespace/name`) the layer follows, if any.
    pub policy: Option<String>,
    /// The store generation of the policy in force.
    pub generation: u64,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused (429).
    pub refused: u64,
    /// Requests refused because the policy could not be used.
    pub rejected: u64,
    /// Requests keyed on the client address when the server gave none: they share one
    /// bucket, so anything but 0 means a server to fix.
    pub no_client_address: u64,
    /// Each limit of the policy.
    pub limits: Vec<LimitStatus>,
    /// The shared store's failures; absent for the in-process store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<SharedStoreStatus>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How a shared rate-limit store (Redis) fares, counted since the layer started.
///
/// ```
/// use fluxgate_core::api::SharedStoreStatus;
///
/// let json = r#"{"down": true, "outages": 1, "fallbackDecisions": 40, "replicas": 3}"#;
/// let store: SharedStoreStatus = serde_json::from_str(json)?;
/// assert_eq!((store.down, store.fallback_decisions, store.timeouts), (true, 40, 0));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct SharedStoreStatus {
    /// Whether the store is unreachable now (decisions fall back to `onStoreFailure`).
    pub down: bool,
    /// Outages, each counted once.
    pub outages: u64,
    /// Decisions made by the fallback instead of the store.
    pub fallback_decisions: u64,
    /// Decisions that waited their whole timeout on the store.
    pub timeouts: u64,
    /// Sync rounds (pushes, heartbeats) that failed.
    pub sync_failures: u64,
    /// Replicas counted as sharing the limits.
    pub replicas: u32,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The counts of one limit of a rate-limit policy.
///
/// ```
/// use fluxgate_core::api::LimitStatus;
///
/// let limit: LimitStatus = serde_json::from_str(r#"{"name": "burst", "shadowRefused": 3}"#)?;
/// assert_eq!(limit.shadow_refused, 3);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct LimitStatus {
    /// The limit's name.
    pub name: String,
    /// What it keys on (`ip`, `header:x-client-id`, ...).
    pub key: String,
    /// Requests it admitted.
    pub admitted: u64,
    /// Requests it refused.
    pub refused: u64,
    /// Requests it would have refused in shadow mode.
    pub shadow_refused: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}
