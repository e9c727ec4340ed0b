//! The in-process store: GCRA through governor's keyed limiter, and sliding-window counters,
//! over bounded tables of keys.

mod clock;
mod limiter;

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use fluxgate_core::policy::LimitAlgorithm;

pub(crate) use clock::Clock;
use limiter::Inner;
pub use limiter::LocalLimiter;

use super::{Checks, KeyRef, LimiterSpec, Outcome, RateLimitStore, StoreError, Verdict};

/// The default most keys one limiter holds.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// A limiter's identity, algorithm and quota bits.
type LimiterId = (String, LimitAlgorithm, (u64, u32));

/// Rate-limit state in this process.
///
/// Each limiter (a limit at one quota) holds at most [`max_keys`](LocalStoreBuilder::max_keys)
/// keys ([`DEFAULT_MAX_KEYS`] by default). Keys are hashed with a per-store random key (SipHash),
/// so clients cannot aim at each other's buckets. Idle keys (whose state equals a new key's, so
/// removing them changes no decision) are swept out of a full shard of the table, at most once per
/// [`sweep_interval`](LocalStoreBuilder::sweep_interval), and by [`evict_idle`](Self::evict_idle).
/// A table splits into as many shards (up to 64) as leave each room for at least 64 keys, so a
/// small table is one shard that holds exactly `max_keys`, and a large one fills evenly enough
/// that its shards fill near the maximum together.
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
        let s = &self.shared;
        Inner::new(
            spec.algorithm,
            spec.quota,
            s.max_keys,
            s.clock,
            s.sweep_every,
        )
    }

    /// Decides `checks`, each key hashed here unless `given` holds its hash already.
    #[inline]
    fn decide(&self, checks: &Checks<'_, LocalLimiter>, given: &[u64]) -> Verdict {
        let mut verdict = Verdict::default();
        let mut hashes = [0u64; super::MAX_LIMITS];
        for (i, check) in checks.iter().enumerate() {
            let key = given
                .get(i)
                .copied()
                .unwrap_or_else(|| self.hash(check.key));
            hashes[i] = key;
            match check.limiter.inner.acquire(key, &self.shared.clock) {
                Outcome::Refused { retry_after } if check.shadow => {
                    verdict.set(i, Outcome::ShadowRefused { retry_after });
                }
                refused @ Outcome::Refused { .. } => {
                    verdict.set(i, refused);
                    for (j, earlier) in checks.iter().enumerate().take(i) {
                        if matches!(verdict.outcome(j), Outcome::Admitted { .. }) {
                            earlier.limiter.inner.refund(hashes[j]);
                        }
                    }
                    break;
                }
                outcome => verdict.set(i, outcome),
            }
        }
        verdict
    }

    /// Decides `checks` whose keys another store hashed already (`hashes`, one per check, from
    /// one keyed hasher): the Redis store's fallback, so that it addresses its keys as synced
    /// mode does (to bring them up to what they had used in Redis).
    #[cfg(feature = "redis")]
    pub(crate) fn check_hashed(
        &self,
        checks: &Checks<'_, LocalLimiter>,
        hashes: &[u64],
    ) -> Verdict {
        self.decide(checks, hashes)
    }

    /// The key's keyed hash: its bytes, then a one-byte kind tag, in one SipHash message ending
    /// in a kind tag, so that no two keys make the same message (SipHash mixes in the length).
    fn hash(&self, key: KeyRef<'_>) -> u64 {
        let mut h = self.shared.hasher.build_hasher();
        let tag = match key {
            KeyRef::Bytes(bytes) => {
                h.write(bytes);
                0
            }
            KeyRef::Ip(IpAddr::V4(v4)) => {
                h.write(&v4.octets());
                1
            }
            KeyRef::Ip(IpAddr::V6(v6)) => {
                h.write(&v6.octets());
                2
            }
            KeyRef::Shared => 3,
        };
        h.write_u8(tag);
        h.finish()
    }
}

impl RateLimitStore for LocalStore {
    type Limiter = LocalLimiter;
    type Future = Ready<Result<Verdict, StoreError>>;

    fn limiter(&self, spec: &LimiterSpec) -> LocalLimiter {
        self.shared_limiter(spec)
    }

    fn check(&self, checks: &Checks<'_, LocalLimiter>) -> Self::Future {
        ready(Ok(self.decide(checks, &[])))
    }

    fn check_now(&self, limiter: &LocalLimiter, key: KeyRef<'_>, shadow: bool) -> Option<Outcome> {
        let outcome = limiter.inner.acquire(self.hash(key), &self.shared.clock);
        Some(match outcome {
            Outcome::Refused { retry_after } if shadow => Outcome::ShadowRefused { retry_after },
            outcome => outcome,
        })
    }
}
