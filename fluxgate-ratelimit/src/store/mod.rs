//! Where rate-limit state lives: the [`RateLimitStore`] trait, the in-process [`LocalStore`],
//! and [`AnyStore`], one type for either store (what a stack built over any store uses).
//!
//! The layer asks a store to decide all the limits of one request at once
//! ([`RateLimitStore::check`]), so that a remote store can do it in one round trip. A store's
//! answer is a [`Future`]: the local store answers with [`std::future::Ready`], which the layer
//! resolves inside `call` without ever yielding, so an in-process decision costs no allocation and
//! no task wake-up. A store that must wait (a Redis round trip) returns a real future; the layer
//! then keeps the request until it resolves.
//!
//! # Writing a store (the Redis store plugs in here)
//!
//! - [`RateLimitStore::limiter`] is called once per policy version and limit tier with a
//!   [`LimiterSpec`]; its [`identity`](LimiterSpec::identity) names the limit and quota, so a
//!   store keeps the counters of a limit whose identity did not change across policy versions
//!   (a Redis store uses it as the key prefix).
//! - [`RateLimitStore::check`] receives [`Checks`]: each a limiter, a [`KeyRef`] and whether the
//!   limit is in shadow mode. Limits are decided in order; the first refusing limit that is not in
//!   shadow mode refuses the request, later limits are [`Outcome::Skipped`], and units already
//!   taken from earlier limits are given back: a refused request consumes nothing.
//! - Algorithms must agree with [`Quota`]'s documented arithmetic so that replicas
//!   with different stores admit the same traffic; the sliding window works on integers only.
//! - A *synced* store (next issue) decides locally and merges counts in the background. The
//!   intended extension: it wraps a [`LocalStore`], whose sliding-window state per key is two
//!   integer counts per window number (see [`Quota`]); on each sync tick it pushes
//!   the local increments of the current window per (identity, key) to Redis (`INCRBY` on
//!   `identity:key:window`) and pulls the summed counts back into the local state (a `merge`
//!   taking the maximum of local and remote counts, to be added to `LocalStore`). The tick is
//!   returned as a future to spawn, never spawned by the store. A *strict* store returns a real
//!   future from [`check`](RateLimitStore::check): one Lua script deciding every check of the
//!   request atomically (so it needs no refunds), boxed so that it is `Unpin`.
//!
//! The conformance suite `fluxgate_ratelimit::conformance` (feature `test-support`) is what
//! every store must pass.
//!
//! # Example
//!
//! ```
//! use fluxgate_core::policy::LimitAlgorithm;
//! use fluxgate_ratelimit::store::{Checks, KeyRef, LimiterSpec, LocalStore, Outcome, RateLimitStore};
//! use fluxgate_ratelimit::Quota;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = LocalStore::new();
//! let limiter = store.limiter(&LimiterSpec::new("api", LimitAlgorithm::Gcra, Quota::new(1.0, 2)));
//! let mut checks = Checks::new();
//! checks.push(&limiter, KeyRef::Bytes(b"client-1"), false);
//! assert!(store.check(&checks).await.unwrap().admitted());
//! assert!(store.check(&checks).await.unwrap().admitted());
//! let third = store.check(&checks).await.unwrap();
//! assert!(matches!(third.outcome(0), Outcome::Refused { .. }));
//! # }
//! ```

mod any;
mod local;
mod table;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, StoreFailure, SyncMode};

use crate::Quota;
pub use any::{AnyCheck, AnyLimiter, AnyStore};
pub use local::{DEFAULT_MAX_KEYS, LocalLimiter, LocalStore, LocalStoreBuilder};

/// The most limits one request is checked against; limits past it in a policy are ignored
/// (with a warning when the policy is prepared).
pub const MAX_LIMITS: usize = 8;

/// A store of rate-limit state: local, or shared between replicas.
pub trait RateLimitStore: Clone + Send + Sync + 'static {
    /// A prepared limit (one limit at one quota), made once per policy version.
    type Limiter: Send + Sync + std::fmt::Debug + 'static;
    /// The answer to [`check`](Self::check); [`std::future::Ready`] for in-process stores.
    ///
    /// The layer polls it once inside `call`; only if it is pending is the inner service cloned
    /// and the request kept until it resolves. It must not borrow the checks (copy what a remote
    /// command needs).
    type Future: Future<Output = Result<Verdict, StoreError>> + Send + Unpin + 'static;

    /// Prepares a limiter; the same identity gives access to the same counters.
    fn limiter(&self, spec: &LimiterSpec) -> Self::Limiter;

    /// Decides a request against `checks`, in order (see the [module docs](self)).
    fn check(&self, checks: &Checks<'_, Self::Limiter>) -> Self::Future;

    /// Decides a request against one limit at once, if this store can without waiting: the
    /// layer's fast path for single-limit policies, which skips [`Checks`] and [`Verdict`].
    /// `None` (the default) means "use [`check`](Self::check)", and must not have taken a unit.
    ///
    /// ```
    /// use fluxgate_core::policy::LimitAlgorithm;
    /// use fluxgate_ratelimit::store::{KeyRef, LimiterSpec, LocalStore, Outcome, RateLimitStore};
    /// use fluxgate_ratelimit::Quota;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = LocalStore::new();
    /// let limiter = store.limiter(&LimiterSpec::new("api", LimitAlgorithm::Gcra, Quota::new(1.0, 1)));
    /// let first = store.check_now(&limiter, KeyRef::Shared, false);
    /// assert!(matches!(first, Some(Outcome::Admitted { .. })));
    /// # }
    /// ```
    fn check_now(&self, limiter: &Self::Limiter, key: KeyRef<'_>, shadow: bool) -> Option<Outcome> {
        let _ = (limiter, key, shadow);
        None
    }

    /// How a shared store fares (its failures, counted), for metrics and status; `None` (the
    /// default) for an in-process store, which cannot fail.
    ///
    /// ```
    /// use fluxgate_ratelimit::store::{LocalStore, RateLimitStore};
    ///
    /// assert!(LocalStore::new().health().is_none());
    /// ```
    fn health(&self) -> Option<StoreHealth> {
        None
    }
}

/// The failures of a shared store, counted since it started: what
/// [`RateLimitStore::health`] reports, in [`MetricsSnapshot::store`](crate::MetricsSnapshot)
/// and the admin API's status. Nothing here needs a tracing subscriber to be seen.
///
/// ```
/// let health = fluxgate_ratelimit::store::StoreHealth::default();
/// assert!(!health.down && health.fallback_decisions == 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreHealth {
    /// Whether the store is known to be unreachable now (decisions fall back).
    pub down: bool,
    /// Outages (each counted once, however many requests it touched).
    pub outages: u64,
    /// Decisions made by the fallback (`onStoreFailure`) instead of the store.
    pub fallback_decisions: u64,
    /// Decisions that waited their whole timeout on the store.
    pub timeouts: u64,
    /// Sync rounds (pushes, heartbeats) that failed.
    pub sync_failures: u64,
    /// Replicas counted as sharing the limits (their live count, at least the configured
    /// floor; 1 for a store alone).
    pub replicas: u32,
}

/// What a store needs to prepare a limiter.
///
/// ```
/// use fluxgate_core::policy::LimitAlgorithm;
/// use fluxgate_ratelimit::{Quota, store::LimiterSpec};
///
/// let spec = LimiterSpec::new("edge/0/ip", LimitAlgorithm::SlidingWindow, Quota::new(10.0, 5));
/// assert_eq!(spec.identity(), "edge/0/ip");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterSpec {
    identity: String,
    algorithm: LimitAlgorithm,
    quota: Quota,
    sync: Option<LimitSync>,
}

/// How a shared store treats one limit: the policy's `spec.rateLimit[].sync` and
/// `onStoreFailure`. A store's own options apply to limits without one.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::policy::{LimitAlgorithm, StoreFailure, SyncMode};
/// use fluxgate_ratelimit::{Quota, store::{LimitSync, LimiterSpec}};
///
/// let sync = LimitSync::new(SyncMode::Strict, Duration::from_millis(50), Duration::from_millis(5))
///     .on_failure(StoreFailure::Closed);
/// let spec = LimiterSpec::new("edge/0/ip", LimitAlgorithm::Gcra, Quota::new(10.0, 5)).sync(sync);
/// assert_eq!(spec.limit_sync().unwrap().mode, SyncMode::Strict);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LimitSync {
    /// `strict` (every decision in the store) or `synced` (local decisions, merged on `interval`).
    pub mode: SyncMode,
    /// How often synced counts are merged.
    pub interval: Duration,
    /// The longest a decision waits on the store.
    pub timeout: Duration,
    /// What decisions do while the store is unreachable.
    pub on_failure: StoreFailure,
}

impl LimitSync {
    /// `mode` with `interval` and `timeout`, falling back locally (`onStoreFailure: local`).
    #[must_use]
    pub fn new(mode: SyncMode, interval: Duration, timeout: Duration) -> Self {
        Self {
            mode,
            interval,
            timeout,
            on_failure: StoreFailure::Local,
        }
    }

    /// What decisions do while the store is unreachable.
    #[must_use]
    pub fn on_failure(mut self, on_failure: StoreFailure) -> Self {
        self.on_failure = on_failure;
        self
    }
}

impl LimiterSpec {
    /// A limiter named `identity` (the limit, without the quota) using `algorithm` at `quota`.
    #[must_use]
    pub fn new(identity: impl Into<String>, algorithm: LimitAlgorithm, quota: Quota) -> Self {
        Self {
            identity: identity.into(),
            algorithm,
            quota,
            sync: None,
        }
    }

    /// The limit's own sync settings (a policy's); without them a store uses its defaults.
    #[must_use]
    pub fn sync(mut self, sync: LimitSync) -> Self {
        self.sync = Some(sync);
        self
    }

    /// The limit's own sync settings, if any.
    #[must_use]
    pub fn limit_sync(&self) -> Option<LimitSync> {
        self.sync
    }

    /// The limit's identity: stable across policy versions while the limit is the same.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The counting algorithm.
    #[must_use]
    pub fn algorithm(&self) -> LimitAlgorithm {
        self.algorithm
    }

    /// The rate and burst.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }
}

/// The key a limit is applied to, borrowed from the request.
///
/// ```
/// use fluxgate_ratelimit::store::KeyRef;
///
/// assert_ne!(KeyRef::Bytes(b"10.0.0.1"), KeyRef::Ip("10.0.0.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyRef<'a> {
    /// A header, cookie or query value (any bytes).
    Bytes(&'a [u8]),
    /// A client address (IPv4-mapped IPv6 addresses arrive as IPv4).
    Ip(IpAddr),
    /// The one bucket shared by every request without a key (`missingKey: shared`).
    Shared,
}

/// One limit to check a request against.
#[derive(Debug)]
pub struct Check<'a, L> {
    /// The prepared limiter.
    pub limiter: &'a L,
    /// The request's key for it.
    pub key: KeyRef<'a>,
    /// Count without refusing.
    pub shadow: bool,
}

/// The limits of one request, on the stack (at most [`MAX_LIMITS`]).
///
/// ```
/// use fluxgate_ratelimit::store::{Checks, KeyRef};
///
/// let limiter = ();
/// let mut checks = Checks::new();
/// assert!(checks.push(&limiter, KeyRef::Shared, false));
/// assert_eq!(checks.len(), 1);
/// ```
#[derive(Debug)]
pub struct Checks<'a, L> {
    items: [Option<Check<'a, L>>; MAX_LIMITS],
    len: usize,
}

impl<L> Default for Checks<'_, L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, L> Checks<'a, L> {
    /// No checks.
    #[must_use]
    pub fn new() -> Self {
        Self {
            items: std::array::from_fn(|_| None),
            len: 0,
        }
    }

    /// Adds a check; `false` (and nothing added) when [`MAX_LIMITS`] are there already.
    pub fn push(&mut self, limiter: &'a L, key: KeyRef<'a>, shadow: bool) -> bool {
        let Some(slot) = self.items.get_mut(self.len) else {
            return false;
        };
        *slot = Some(Check {
            limiter,
            key,
            shadow,
        });
        self.len += 1;
        true
    }

    /// How many checks there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The checks in order.
    pub fn iter(&self) -> impl Iterator<Item = &Check<'a, L>> {
        self.items.iter().take(self.len).flatten()
    }
}

/// What one limit decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Outcome {
    /// Not checked (an earlier limit refused the request).
    #[default]
    Skipped,
    /// Admitted; `remaining` requests are left now, and the limit is fully reset after `reset`.
    Admitted {
        /// Requests left now.
        remaining: u32,
        /// Time until the limit is back to its full burst.
        reset: Duration,
    },
    /// Refused; a request would be admitted after `retry_after`.
    Refused {
        /// Earliest time a request would be admitted.
        retry_after: Duration,
    },
    /// A shadow limit that would have refused; the request went on (and was not counted in it).
    ShadowRefused {
        /// Earliest time a request would be admitted.
        retry_after: Duration,
    },
}

/// A store's decision for a request: one [`Outcome`] per check.
///
/// ```
/// use fluxgate_ratelimit::store::{Outcome, Verdict};
///
/// let mut verdict = Verdict::default();
/// verdict.set(0, Outcome::Admitted { remaining: 3, reset: std::time::Duration::from_secs(1) });
/// assert!(verdict.admitted());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    outcomes: [Outcome; MAX_LIMITS],
}

impl Verdict {
    /// Records what check `index` decided (ignored past [`MAX_LIMITS`]).
    pub fn set(&mut self, index: usize, outcome: Outcome) {
        if let Some(slot) = self.outcomes.get_mut(index) {
            *slot = outcome;
        }
    }

    /// What check `index` decided.
    #[must_use]
    pub fn outcome(&self, index: usize) -> Outcome {
        self.outcomes.get(index).copied().unwrap_or_default()
    }

    /// Whether no limit refused the request (shadow refusals do not count).
    #[must_use]
    pub fn admitted(&self) -> bool {
        self.refused().is_none()
    }

    /// The refusing check's index and its retry delay, if any.
    #[must_use]
    pub fn refused(&self) -> Option<(usize, Duration)> {
        self.outcomes.iter().enumerate().find_map(|(i, o)| match o {
            Outcome::Refused { retry_after } => Some((i, *retry_after)),
            _ => None,
        })
    }
}

/// A store could not decide (a remote store's failure; the local store never fails).
///
/// ```
/// let error = fluxgate_ratelimit::store::StoreError::Unavailable("connection refused".into());
/// assert!(error.to_string().contains("connection refused"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer, or answered with an error.
    #[error("rate-limit store unavailable: {0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// The store took longer than its timeout.
    #[error("rate-limit store timed out after {0:?}")]
    Timeout(Duration),
}

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
#[doc(hidden)]
pub use redis::decode_script_reply;
#[cfg(all(feature = "redis", feature = "drill"))]
pub use redis::drill;
#[cfg(feature = "redis")]
pub use redis::{
    RedisCheck, RedisClock, RedisConnectError, RedisLimiter, RedisOptions, RedisStats, RedisStore,
    SyncHandle, SyncTask,
};
