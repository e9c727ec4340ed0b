//! The in-process store: GCRA through governor's keyed limiter, and sliding-window counters,
//! over bounded tables of keys.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use fluxgate_core::policy::LimitAlgorithm;
use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;

use governor::nanos::Nanos;
use governor::{Quota as GovernorQuota, RateLimiter};

use super::table::{GcraState, Idle, Table};
use super::{Checks, KeyRef, LimiterSpec, Outcome, RateLimitStore, StoreError, Verdict};
use crate::Quota;
use crate::quota::{WindowDecision, decide_window};

/// The default most keys one limiter holds.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Tokio's clock (so that tests on a paused clock are exact), as nanoseconds since a base.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            base: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn nanos(&self) -> Nanos {
        Nanos::from(self.base.elapsed())
    }
}

impl GovernorClock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        self.nanos()
    }
}

/// A limiter's identity, algorithm and quota bits.
type LimiterId = (String, LimitAlgorithm, (u64, u32));

type Gcra = RateLimiter<u64, GcraState, Clock, StateInformationMiddleware>;

/// A [`LocalStore`] limiter: one limit at one quota (cheap to clone; clones share counters).
#[derive(Debug, Clone)]
pub struct LocalLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: Kind,
    table: Arc<Table>,
    quota: Quota,
}

#[derive(Debug)]
enum Kind {
    Gcra { limiter: Gcra, interval: u64 },
    Window { window: u64, limit: u32 },
}

/// Rate-limit state in this process.
///
/// Each limiter (a limit at one quota) holds at most [`max_keys`](LocalStoreBuilder::max_keys)
/// keys ([`DEFAULT_MAX_KEYS`] by default). Keys are hashed with a per-store random key (SipHash),
/// so clients cannot aim at each other's buckets. Idle keys (whose state equals a new key's, so
/// removing them changes no decision) are swept out of a full shard of the table, at most once per
/// [`sweep_interval`](LocalStoreBuilder::sweep_interval), and by [`evict_idle`](Self::evict_idle).
/// **At the maximum**, a new key that finds no idle key to replace shares one overflow bucket
/// (at the limit's quota) with every other such key until room is made: known clients keep their
/// own buckets and speed, and a flood of new keys is limited as one client.
///
/// Limiters are shared by identity and quota: a new policy version whose limit keeps its identity
/// and quota keeps its counters. Cloning the store is cheap and shares the state.
///
/// ```
/// use fluxgate_ratelimit::store::LocalStore;
///
/// let store = LocalStore::builder().max_keys(10_000).build();
/// assert_eq!(store.key_count(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct LocalStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    hasher: RandomState,
    clock: Clock,
    max_keys: usize,
    sweep_every: u64,
    limiters: Mutex<HashMap<LimiterId, Weak<Inner>>>,
    tables: Mutex<Vec<Weak<Inner>>>,
}

/// Builds a [`LocalStore`].
///
/// ```
/// use std::time::Duration;
/// use fluxgate_ratelimit::store::LocalStore;
///
/// let store = LocalStore::builder()
///     .max_keys(50_000)
///     .sweep_interval(Duration::from_millis(100))
///     .build();
/// # drop(store);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LocalStoreBuilder {
    max_keys: usize,
    sweep_every: Duration,
}

impl LocalStoreBuilder {
    /// The most keys one limiter holds (at least 64).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(64);
        self
    }

    /// How often a full shard may be swept for idle keys (100ms by default).
    pub fn sweep_interval(mut self, every: Duration) -> Self {
        self.sweep_every = every;
        self
    }

    /// The store.
    pub fn build(self) -> LocalStore {
        LocalStore {
            shared: Arc::new(Shared {
                hasher: RandomState::new(),
                clock: Clock::new(),
                max_keys: self.max_keys,
                sweep_every: u64::try_from(self.sweep_every.as_nanos()).unwrap_or(u64::MAX),
                limiters: Mutex::default(),
                tables: Mutex::default(),
            }),
        }
    }
}

impl Default for LocalStore {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalStore {
    /// A store with the defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a store.
    pub fn builder() -> LocalStoreBuilder {
        LocalStoreBuilder {
            max_keys: DEFAULT_MAX_KEYS,
            sweep_every: Duration::from_millis(100),
        }
    }

    /// Keys held now over all limiters in use.
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.live_tables().iter().map(|t| t.table.len()).sum()
    }

    /// Keys evicted so far over all limiters in use.
    #[must_use]
    pub fn evicted_count(&self) -> usize {
        self.live_tables().iter().map(|t| t.table.evicted()).sum()
    }

    /// Removes every idle key now; returns how many. Call it periodically (for example from a
    /// task spawned with [`maintain`](Self::maintain)) to return memory after a burst of clients.
    pub fn evict_idle(&self) -> usize {
        self.live_tables()
            .iter()
            .map(|t| t.table.evict_idle())
            .sum()
    }

    /// A future that evicts idle keys every `period`, for the caller to spawn; it ends when every
    /// other handle to the store is dropped.
    pub fn maintain(&self, period: Duration) -> impl Future<Output = ()> + Send + 'static {
        let weak = Arc::downgrade(&self.shared);
        async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                LocalStore { shared }.evict_idle();
            }
        }
    }

    fn live_tables(&self) -> Vec<Arc<Inner>> {
        let mut tables = self
            .shared
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tables.retain(|t| t.strong_count() > 0);
        tables.iter().filter_map(Weak::upgrade).collect()
    }

    /// The limiter of `spec`, shared with every other user of the same identity and quota.
    fn shared_limiter(&self, spec: &LimiterSpec) -> LocalLimiter {
        let id = (spec.identity.clone(), spec.algorithm, spec.quota.identity());
        let mut limiters = self
            .shared
            .limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        limiters.retain(|_, t| t.strong_count() > 0);
        if let Some(inner) = limiters.get(&id).and_then(Weak::upgrade) {
            return LocalLimiter { inner };
        }
        let inner = Arc::new(self.make(spec));
        limiters.insert(id, Arc::downgrade(&inner));
        let mut tables = self
            .shared
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tables.push(Arc::downgrade(&inner));
        LocalLimiter { inner }
    }

    fn make(&self, spec: &LimiterSpec) -> Inner {
        let (s, quota) = (&self.shared, spec.quota);
        match spec.algorithm {
            LimitAlgorithm::Gcra => {
                let interval = quota.emission_interval();
                let table = Arc::new(Table::new(s.max_keys, Idle::Gcra, s.clock, s.sweep_every));
                let burst = NonZeroU32::new(quota.burst_size()).unwrap_or(NonZeroU32::MIN);
                let governor_quota = GovernorQuota::with_period(interval)
                    .unwrap_or_else(|| GovernorQuota::per_second(NonZeroU32::MAX))
                    .allow_burst(burst);
                let limiter: Gcra =
                    RateLimiter::new(governor_quota, GcraState(Arc::clone(&table)), s.clock);
                // Governor measures from its start; idleness is judged from no earlier than it.
                table.reset_origin();
                Inner {
                    kind: Kind::Gcra {
                        limiter,
                        interval: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
                    },
                    table,
                    quota,
                }
            }
            _ => {
                let window = u64::try_from(quota.window().as_nanos()).unwrap_or(u64::MAX);
                let table = Table::new(s.max_keys, Idle::Window(window), s.clock, s.sweep_every);
                Inner {
                    kind: Kind::Window {
                        window,
                        limit: quota.window_limit(),
                    },
                    table: Arc::new(table),
                    quota,
                }
            }
        }
    }

    fn hash(&self, key: KeyRef<'_>) -> u64 {
        let mut h = self.shared.hasher.build_hasher();
        match key {
            KeyRef::Bytes(bytes) => {
                h.write_u8(0);
                bytes.hash(&mut h);
            }
            KeyRef::Ip(IpAddr::V4(v4)) => {
                h.write_u8(1);
                h.write(&v4.octets());
            }
            KeyRef::Ip(IpAddr::V6(v6)) => {
                h.write_u8(2);
                h.write(&v6.octets());
            }
            KeyRef::Shared => h.write_u8(3),
        }
        h.finish()
    }

    fn acquire(&self, limiter: &LocalLimiter, key: u64) -> Outcome {
        let limiter = &*limiter.inner;
        match &limiter.kind {
            Kind::Gcra {
                limiter: gcra,
                interval,
            } => match gcra.check_key(&key) {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    let missing = u64::from(limiter.quota.burst_size().saturating_sub(remaining));
                    Outcome::Admitted {
                        remaining,
                        reset: Duration::from_nanos(missing.saturating_mul(*interval)),
                    }
                }
                Err(not_until) => Outcome::Refused {
                    retry_after: not_until.wait_time_from(self.shared.clock.nanos()),
                },
            },
            Kind::Window { window, limit } => {
                let now = limiter.table.now();
                let decided = limiter.table.update(key, |state| {
                    match decide_window(state, now, *window, *limit) {
                        WindowDecision::Admit(next, remaining, reset) => {
                            Ok(((remaining, reset), next))
                        }
                        WindowDecision::Refuse(wait) => Err(wait),
                    }
                });
                match decided {
                    Ok((remaining, reset)) => Outcome::Admitted { remaining, reset },
                    Err(retry_after) => Outcome::Refused { retry_after },
                }
            }
        }
    }

    /// Gives back the unit an admitted request took.
    fn refund(limiter: &LocalLimiter, key: u64) {
        let limiter = &*limiter.inner;
        match &limiter.kind {
            Kind::Gcra { interval, .. } => limiter
                .table
                .adjust(key, |tat| tat.saturating_sub(*interval)),
            Kind::Window { window, .. } => {
                let epoch = limiter.table.now() / (*window).max(1);
                limiter.table.adjust(key, |bits| {
                    let mut w = crate::quota::Window::at(Some(bits), epoch);
                    w.current = w.current.saturating_sub(1);
                    w.pack()
                });
            }
        }
    }
}

impl RateLimitStore for LocalStore {
    type Limiter = LocalLimiter;
    type Future = Ready<Result<Verdict, StoreError>>;

    fn limiter(&self, spec: &LimiterSpec) -> LocalLimiter {
        self.shared_limiter(spec)
    }

    fn check(&self, checks: &Checks<'_, LocalLimiter>) -> Self::Future {
        let mut verdict = Verdict::default();
        let mut hashes = [0u64; super::MAX_LIMITS];
        for (i, check) in checks.iter().enumerate() {
            let key = self.hash(check.key);
            hashes[i] = key;
            match self.acquire(check.limiter, key) {
                Outcome::Refused { retry_after } if check.shadow => {
                    verdict.set(i, Outcome::ShadowRefused { retry_after });
                }
                refused @ Outcome::Refused { .. } => {
                    verdict.set(i, refused);
                    for (j, earlier) in checks.iter().enumerate().take(i) {
                        if matches!(verdict.outcome(j), Outcome::Admitted { .. }) {
                            Self::refund(earlier.limiter, hashes[j]);
                        }
                    }
                    break;
                }
                outcome => verdict.set(i, outcome),
            }
        }
        ready(Ok(verdict))
    }
}

impl LocalLimiter {
    /// The quota this limiter applies.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.inner.quota
    }

    /// Keys held now.
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.inner.table.len()
    }

    /// Whether `self` and `other` share their counters.
    #[must_use]
    pub fn shares_state_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
