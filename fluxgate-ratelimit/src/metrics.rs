//! Admitted and refused counts per policy and limit, for an admin endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use fluxgate_core::stripe::Striped;

/// A counter spread over cache lines (one stripe per group of threads,
/// [`fluxgate_core::stripe`]) so that threads do not fight over one.
#[derive(Debug, Default)]
pub(crate) struct Counter(Striped<AtomicU64>);

/// This thread's stripe (look it up once for several increments).
pub(crate) fn stripe() -> usize {
    fluxgate_core::stripe::current()
}

impl Counter {
    pub(crate) fn incr(&self) {
        self.0.local().fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one on `stripe` (from [`stripe`]).
    pub(crate) fn incr_at(&self, stripe: usize) {
        self.0.at(stripe).fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The live counts of one limit (kept across policy versions while its identity stays).
#[derive(Debug, Default)]
pub(crate) struct LimitCounters {
    pub(crate) admitted: Counter,
    pub(crate) refused: Counter,
    pub(crate) shadow_refused: Counter,
}

/// The layer's counts (no per-key labels).
#[derive(Debug, Default)]
pub(crate) struct LayerCounters {
    pub(crate) admitted: Counter,
    pub(crate) refused: Counter,
    pub(crate) rejected: Counter,
    pub(crate) no_client_address: Counter,
}

/// A snapshot of a layer's counts, as [`RateLimitLayer::metrics`](crate::RateLimitLayer::metrics)
/// returns it.
///
/// ```
/// use fluxgate_core::policy::RateLimitSpec;
/// use fluxgate_ratelimit::RateLimitLayer;
///
/// let layer = RateLimitLayer::builder().limit(RateLimitSpec::new(10.0, 5)).build().unwrap();
/// let snapshot = layer.metrics();
/// assert_eq!(snapshot.admitted, 0);
/// assert_eq!(snapshot.limits.len(), 1);
/// assert_eq!(snapshot.limits[0].name, "limit-0");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// The policy's `namespace/name` (`inline` for a layer built in code), if one is in force.
    pub policy: Option<String>,
    /// The policy generation the limits below belong to.
    pub generation: u64,
    /// Requests every limit admitted.
    pub admitted: u64,
    /// Requests refused with 429 / `RESOURCE_EXHAUSTED` / [`RateLimitError::Limited`](crate::RateLimitError::Limited).
    pub refused: u64,
    /// Requests rejected for a missing or oversized key.
    pub rejected: u64,
    /// Requests whose `ip` key (or `missingKey: ip` fallback) found no client address: the
    /// server put none in the request (no [`PeerAddr`](fluxgate_core::key::PeerAddr), no axum
    /// `ConnectInfo`, no tonic `TcpConnectInfo`). They share one bucket; anything but `0` means a
    /// server to fix (the first such request also logs a warning).
    pub no_client_address: u64,
    /// Per limit of the policy in force, in policy order.
    pub limits: Vec<LimitSnapshot>,
    /// The failures of a shared store (Redis), counted; `None` for the in-process store.
    pub store: Option<crate::store::StoreHealth>,
}

/// The counts of one limit.
///
/// ```
/// let limit = fluxgate_ratelimit::LimitSnapshot::default();
/// assert_eq!(limit.refused + limit.shadow_refused, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitSnapshot {
    /// The limit's name, or `limit-N` for the unnamed limit at position N.
    pub name: String,
    /// Its key source (`ip`, `header.x-api-key`, ...).
    pub key: String,
    /// Requests it admitted.
    pub admitted: u64,
    /// Requests it refused.
    pub refused: u64,
    /// Requests it would have refused in shadow mode.
    pub shadow_refused: u64,
}

impl LimitCounters {
    pub(crate) fn snapshot(&self, name: &str, key: &str) -> LimitSnapshot {
        LimitSnapshot {
            name: name.to_owned(),
            key: key.to_owned(),
            admitted: self.admitted.get(),
            refused: self.refused.get(),
            shadow_refused: self.shadow_refused.get(),
        }
    }
}
