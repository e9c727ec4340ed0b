//! The Redis store (feature `redis`); see [`RedisStore`].

mod batch;
mod conn;
#[cfg(feature = "drill")]
pub mod drill;
mod error;
mod fallback;
mod fleet;
mod future;
mod health;
mod invoke;
mod keys;
mod options;
mod params;
mod rtt;
mod share;
mod strict;
mod synced;
mod task;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, StoreFailure, SyncMode};

use super::{
    Checks, KeyRef, LimitSync, LimiterSpec, LocalStore, MAX_LIMITS, RateLimitStore, Verdict,
};
use crate::Quota;
use conn::Conn;
pub use error::RedisConnectError;
pub use future::RedisCheck;
use future::State;
pub use health::RedisStats;
pub use options::{RedisClock, RedisOptions};
pub(crate) use params::{Clock, Params};
use strict::{Item, OwnedKey};
use synced::Local;
pub use task::{SyncHandle, SyncTask};

/// Decodes a raw RESP reply of the rate-limit script as the store does: a list of integers, six
/// per check, into one outcome and counter state per check. `None` when Redis's reply is not
/// such a list. Not a stable API: it exists for the fuzz targets in `fuzz/`.
#[doc(hidden)]
#[must_use]
pub fn decode_script_reply(resp: &[u8]) -> Option<Vec<(super::Outcome, [u64; 3])>> {
    let value = redis::parse_redis_value(resp).ok()?;
    let reply: Vec<i64> = redis::FromRedisValue::from_redis_value(value).ok()?;
    if !reply.len().is_multiple_of(6) {
        return None;
    }
    Some(reply.chunks_exact(6).map(strict::decode_entry).collect())
}

static SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("script.lua")));

/// Rate-limit state in Redis: one quota enforced together by every replica (feature `redis`).
///
/// Use it when several gateway replicas must share limits. Two modes, chosen per limit by the
/// policy's `spec.rateLimit[].sync.mode` (a [`LimiterSpec`]'s [`LimitSync`]), or by
/// [`RedisOptions::mode`] for limits that carry none; the sync interval, the timeout and
/// `onStoreFailure` are per limit the same way, so one store serves strict and synced limits
/// side by side:
///
/// - **synced** (default): decisions are local, with no network on the request path. The
///   [`SyncTask`] (the caller spawns it) pushes each key's new units every interval (50ms) in
///   batches and reads the global counts back. Between two reads of a key, a replica admits
///   locally at most its share of what it saw left: `N × (unseen + 1) ≤ left`, `unseen` being
///   the units it admitted that Redis has not counted yet and `N` the live replicas (see
///   **Replicas**); past its share, and when what is left falls under what other replicas took
///   in the last interval (doubled), a key is decided in Redis, which takes this replica's
///   unseen units in with the decision. A key beyond [`RedisOptions::max_keys`] is decided in
///   Redis too. So small quotas (a few requests per window) are decided in Redis near their
///   limit, whatever the rate.
///   **Bound:** the replicas' local admissions between reads add up to at most what was left at
///   the read; what is left can be overstated only by what other replicas admitted in Redis
///   since this replica's last read (at most one interval's worth of their shares). Per key and
///   window, that is at most about `(N − 1) / N × min(left, rate × interval)` over the limit:
///   measured (benches' `ratelimit_accuracy`), at most one request per window over one gateway
///   alone at 5/s burst 5 with 2 and 4 replicas.
/// - **strict**: every decision is one Lua script call (`EVALSHA`, loading the script on
///   `NOSCRIPT`) deciding every limit of the request atomically on Redis' clock (`TIME`), over
///   one multiplexed connection that pipelines concurrent requests. A request that finds no
///   call on the wire makes its own; requests arriving meanwhile share the next call. It costs
///   one round trip plus the script's run in Redis (about 9µs, far more than a plain command:
///   see the crate docs' "What a strict decision costs").
///   **Bound:** exact (the limit, on Redis' clock), but for decisions that time out: each is
///   decided by the fallback, then reconciled with Redis' late answer (a unit charged when the
///   fallback admitted what Redis refused, given back in the opposite case), so over-admission
///   in a window is at most the timed-out decisions the fallback admitted in it, and is paid
///   back in the next. The wait adapts so that ordinary jitter does not time out (below).
///
/// Both modes apply the same arithmetic as the [`LocalStore`] (see
/// [`Quota`](crate::Quota)), in microseconds. Keys are laid out as
/// `fluxgate:rl:{IDENTITY|KEY}:PARAMS` (a Redis Cluster hash tag per limit and client key), each
/// one string (sliding window: the window number and both windows' counts, three little-endian
/// doubles; GCRA: the theoretical arrival time in µs, in decimal) that expires two windows (or
/// one burst) after its last use. The script reads it with one `GET` and writes it with one
/// `SET … PX`: Redis runs Lua slowly next to a plain command, so it makes as few calls as it can.
///
/// **Replicas.** Replicas count each other: the sync task renews this replica's heartbeat in
/// Redis (`PREFIX:{replicas}`, a sorted set of replicas scored by their expiry on Redis' clock,
/// see [`RedisOptions::heartbeat_ttl`]) and reads the live count back; a replica that stops is
/// no longer counted after the TTL (2s). `N` is the larger of that count (the last one seen
/// while Redis is down) and [`RedisOptions::replicas`] (a floor): [`RedisStore::replicas`].
///
/// **Faults.** A decision waits [`RedisOptions::timeout`] (5ms), or 4 × the recent peak round
/// trip when that is longer (at most 250ms), so that scheduling jitter on a busy machine does
/// not make decisions fall back. A decision that still times out is decided by the fallback
/// and reconciled later (above); its call opens the circuit breaker only if unanswered after
/// 250ms. A failed call opens it at once: decisions then fall back without waiting, while one
/// probe per backoff (50ms doubling to 250ms) tries Redis again, so shared limits resume
/// within about 250ms of Redis answering. The fallback follows [`RedisOptions::on_failure`]:
/// `local` limits at this replica's share of each quota (`1/N`), `open` admits, `closed`
/// refuses. Outages, timeouts, fallback decisions and failed syncs are counted
/// ([`RedisStats`], and [`RateLimitStore::health`] for the layer's
/// [`MetricsSnapshot`](crate::MetricsSnapshot) and the admin API's status): none of it needs
/// a tracing subscriber to be seen. An outage is also logged once. No request fails because
/// Redis failed. Connections reconnect by themselves and syncing resumes when a probe
/// succeeds.
///
/// **At the switch, and back.** The `local` fallback of a synced key never starts from a full
/// bucket: before deciding, it is brought up to what the key had used as this replica knows it
/// (the counts last read from Redis plus its own units Redis had not counted yet), as the same
/// part of this replica's share (a key that had used 2 of a burst of 4, with `N = 2`, starts its
/// share of 2 with 1 used; a sliding window counts them in the fallback's current window, so
/// they are held up to one window longer than in Redis). Each unit the fallback admits in an
/// outage is counted in synced mode's state too, and pushed to Redis when it answers: the
/// recovery gives no second burst either, nor does a Redis that answers reads but refuses
/// writes (out of memory). This costs the fallback path two short locks per synced limit; the
/// local fast path is unchanged.
/// **Bound:** one replica admits across the switch no more than Redis would have. A fleet can
/// exceed the limit by what the other replicas had admitted since this replica's last read, at
/// most about `(N − 1) / N` of what was left then, as in synced mode, and by the rounding of
/// shares (each at least one request: with `burst < N`, `N` over the fleet). Strict limits keep
/// no local copy of Redis' state: their keys start the fallback at a full share, up to
/// `burst / N` per replica more at the switch. On a Redis Cluster, the breaker is the store's,
/// not a node's: while a failed master's slots have no master, every key falls back, until a
/// replica takes over.
///
/// # Example
///
/// ```no_run
/// use fluxgate_core::policy::RateLimitSpec;
/// use fluxgate_ratelimit::RateLimitLayer;
/// use fluxgate_ratelimit::store::{RedisOptions, RedisStore};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6380", RedisOptions::new()).await?;
/// let _sync = store.spawn_sync(); // stops when dropped
/// let layer = RateLimitLayer::builder()
///     .limit(RateLimitSpec::new(100.0, 20))
///     .store(store.clone())
///     .build()?;
/// # drop(layer); Ok(()) }
/// ```
///
/// Cloning is cheap and shares the connection and state.
#[derive(Debug, Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

/// A [`RedisStore`] limiter: one limit at one quota.
#[derive(Debug, Clone)]
pub struct RedisLimiter {
    inner: Arc<LimiterInner>,
}

/// A limiter's identity, algorithm, quota bits and sync settings.
type LimiterId = (String, LimitAlgorithm, (u64, u32), Option<LimitSync>);

#[derive(Debug)]
pub(crate) struct Shared {
    conn: Conn,
    batcher: batch::Batcher,
    options: RedisOptions,
    script: &'static redis::Script,
    clock: Clock,
    breaker: health::Breaker,
    fallback: LocalStore,
    fleet: fleet::Fleet,
    rtt: rtt::Rtt,
    hasher: RandomState,
    limiters: Mutex<HashMap<LimiterId, Weak<LimiterInner>>>,
    secret: Option<String>,
}

#[derive(Debug)]
pub(crate) struct LimiterInner {
    quota: Quota,
    mode: SyncMode,
    interval: Duration,
    timeout: Option<Duration>,
    on_failure: StoreFailure,
    /// When the sync task pushes this limiter's keys next (µs, the store's clock).
    next_sync: AtomicU64,
    params: Params,
    prefix: String,
    suffix: String,
    fallback: share::Share,
    table: synced::Table,
}

impl LimiterInner {
    fn name(&self, key: KeyRef<'_>) -> String {
        keys::key_name(&self.prefix, key, &self.suffix)
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://`
    /// for TLS: see [`RedisOptions::tls_root_certificate`]) and checks that it answers.
    ///
    /// # Errors
    ///
    /// [`RedisConnectError`]: a bad URL, refused credentials, or no answer within
    /// [`RedisOptions::connect_timeout`]. Messages never contain the password.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, RedisConnectError> {
        let conn = Conn::single(url, &options).await?;
        Ok(Self::new(conn, options, conn::password_of(url)))
    }

    /// A store for the Redis at `url` that connects on first use, so that it can be made while
    /// Redis is down: until Redis answers, decisions fall back to local limits as in any outage
    /// ([`RedisOptions::on_failure`], [`stats`](Self::stats)), and the connection is tried again
    /// on later commands.
    ///
    /// # Errors
    ///
    /// [`RedisConnectError::InvalidUrl`] only.
    pub fn connect_lazy(url: &str, options: RedisOptions) -> Result<Self, RedisConnectError> {
        let conn = Conn::single_lazy(url, &options)?;
        Ok(Self::new(conn, options, conn::password_of(url)))
    }

    /// Connects to a Redis Cluster through its seed `urls`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_cluster(
        urls: &[String],
        options: RedisOptions,
    ) -> Result<Self, RedisConnectError> {
        let conn = Conn::cluster(urls, &options).await?;
        let secret = urls.first().and_then(|u| conn::password_of(u));
        Ok(Self::new(conn, options, secret))
    }

    fn new(conn: Conn, options: RedisOptions, secret: Option<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                conn,
                batcher: batch::Batcher::default(),
                breaker: health::Breaker::new(options.probe_min, options.probe_max),
                fallback: LocalStore::builder().max_keys(options.max_keys).build(),
                fleet: fleet::Fleet::new(&options.prefix, options.heartbeat),
                rtt: rtt::Rtt::default(),
                options,
                script: &SCRIPT,
                clock: Clock::new(),
                hasher: RandomState::new(),
                limiters: Mutex::default(),
                secret,
            }),
        }
    }

    /// A store on the same connection with its own key prefix and local state (another tenant,
    /// or a fresh store per test).
    ///
    /// ```no_run
    /// # use fluxgate_ratelimit::store::{RedisOptions, RedisStore};
    /// # async fn f(store: RedisStore) {
    /// let tenant = store.scoped("tenant-a:rl");
    /// assert_eq!(tenant.local_keys(), 0);
    /// # }
    /// ```
    #[must_use]
    pub fn scoped(&self, prefix: &str) -> Self {
        let s = &self.shared;
        let options = s.options.clone().prefix(prefix);
        Self::new(s.conn.clone(), options, s.secret.clone())
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        &self.shared.options
    }

    /// The store's counts: outages, fallback and strict decisions, syncs.
    #[must_use]
    pub fn stats(&self) -> RedisStats {
        let mut stats = self.shared.breaker.stats();
        stats.replicas = self.shared.fleet.live();
        stats
    }

    /// How many replicas this one counts as sharing the limits: the live count from the
    /// heartbeats (the last one seen while Redis is down), at least [`RedisOptions::replicas`].
    #[must_use]
    pub fn replicas(&self) -> u32 {
        self.shared.replicas()
    }

    /// Keys tracked locally by synced mode over all limiters in use.
    #[must_use]
    pub fn local_keys(&self) -> usize {
        self.shared.live().iter().map(|l| l.table.len()).sum()
    }

    fn hash(&self, key: KeyRef<'_>) -> u64 {
        let mut h = self.shared.hasher.build_hasher();
        match key {
            KeyRef::Bytes(bytes) => {
                h.write_u8(0);
                bytes.hash(&mut h);
            }
            KeyRef::Ip(IpAddr::V4(ip)) => {
                h.write_u8(1);
                h.write(&ip.octets());
            }
            KeyRef::Ip(IpAddr::V6(ip)) => {
                h.write_u8(2);
                h.write(&ip.octets());
            }
            _ => h.write_u8(3),
        }
        h.finish()
    }

    /// Decides locally (synced mode); `None` when Redis must decide.
    fn decide_local(&self, checks: &Checks<'_, RedisLimiter>, hashes: &[u64]) -> Option<Verdict> {
        let now = self.shared.clock.now();
        let replicas = self.shared.replicas();
        let mut verdict = Verdict::default();
        for (i, check) in checks.iter().enumerate() {
            let limiter = &*check.limiter.inner;
            let decided = limiter
                .table
                .decide(hashes[i], limiter.params, now, replicas, || {
                    limiter.name(check.key)
                });
            let outcome = match decided {
                Local::Decided(outcome) => outcome,
                Local::Strict => {
                    self.refund(checks, hashes, &verdict, i);
                    return None;
                }
            };
            match outcome {
                super::Outcome::Refused { retry_after } if check.shadow => {
                    verdict.set(i, super::Outcome::ShadowRefused { retry_after });
                }
                refused @ super::Outcome::Refused { .. } => {
                    verdict.set(i, refused);
                    self.refund(checks, hashes, &verdict, i);
                    break;
                }
                outcome => verdict.set(i, outcome),
            }
        }
        self.shared
            .breaker
            .counts
            .local
            .fetch_add(1, Ordering::Relaxed);
        Some(verdict)
    }

    fn refund(
        &self,
        checks: &Checks<'_, RedisLimiter>,
        hashes: &[u64],
        verdict: &Verdict,
        upto: usize,
    ) {
        for (j, earlier) in checks.iter().enumerate().take(upto) {
            if matches!(verdict.outcome(j), super::Outcome::Admitted { .. }) {
                let limiter = &earlier.limiter.inner;
                limiter.table.refund(hashes[j], limiter.params);
            }
        }
    }

    fn items(&self, checks: &Checks<'_, RedisLimiter>, hashes: &[u64]) -> Vec<Item> {
        checks
            .iter()
            .enumerate()
            .map(|(i, check)| {
                let limiter = &check.limiter.inner;
                Item {
                    limiter: Arc::clone(limiter),
                    key: OwnedKey::new(check.key),
                    hash: hashes[i],
                    name: limiter.name(check.key),
                    shadow: check.shadow,
                    deltas: if limiter.mode == SyncMode::Synced {
                        limiter.table.take(hashes[i])
                    } else {
                        None
                    },
                }
            })
            .collect()
    }
}

impl Shared {
    fn now_arg(&self, now: u64) -> i64 {
        match self.options.clock {
            RedisClock::Local => i64::try_from(now).unwrap_or(i64::MAX),
            _ => -1,
        }
    }

    /// The fleet's size as this replica knows it (at least the configured floor, at least 1).
    fn replicas(&self) -> u32 {
        let floor = self.options.replicas.map_or(1, std::num::NonZeroU32::get);
        self.fleet.live().max(floor)
    }

    fn live(&self) -> Vec<Arc<LimiterInner>> {
        let mut map = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, l| l.strong_count() > 0);
        map.values().filter_map(Weak::upgrade).collect()
    }
}

impl RateLimitStore for RedisStore {
    type Limiter = RedisLimiter;
    type Future = RedisCheck;

    fn limiter(&self, spec: &LimiterSpec) -> RedisLimiter {
        let s = &self.shared;
        let id = (
            spec.identity().to_owned(),
            spec.algorithm(),
            spec.quota().identity(),
            spec.limit_sync(),
        );
        let mut map = s.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(inner) = map.get(&id).and_then(Weak::upgrade) {
            return RedisLimiter { inner };
        }
        let quota = spec.quota();
        let params = Params::new(spec.algorithm(), quota);
        let o = &s.options;
        let (mode, interval, timeout, on_failure) = match spec.limit_sync() {
            Some(sync) => (
                sync.mode,
                sync.interval.max(options::MIN_INTERVAL),
                Some(sync.timeout).filter(|_| o.timeout.is_some()),
                sync.on_failure,
            ),
            None => (o.mode, o.interval, o.timeout, o.on_failure),
        };
        let inner = Arc::new(LimiterInner {
            quota,
            mode,
            interval,
            timeout,
            on_failure,
            next_sync: AtomicU64::new(0),
            params,
            prefix: keys::limiter_prefix(&s.options.prefix, spec.identity()),
            suffix: params.suffix(),
            fallback: share::Share::new(LimiterSpec::new(spec.identity(), spec.algorithm(), quota)),
            table: synced::Table::new(s.options.max_keys),
        });
        map.insert(id, Arc::downgrade(&inner));
        RedisLimiter { inner }
    }

    fn check(&self, checks: &Checks<'_, RedisLimiter>) -> RedisCheck {
        let s = &self.shared;
        let mut hashes = [0u64; MAX_LIMITS];
        for (i, check) in checks.iter().enumerate() {
            hashes[i] = self.hash(check.key);
        }
        let hashes = &hashes[..checks.len()];
        let now = s.clock.now();
        if s.breaker.is_down() && !s.breaker.allow(now) {
            let iter = (checks.iter().zip(hashes))
                .map(|(c, &hash)| (&*c.limiter.inner, c.key, c.shadow, hash));
            return RedisCheck::ready(fallback::fallback(s, iter, true));
        }
        let synced = checks
            .iter()
            .all(|c| c.limiter.inner.mode == SyncMode::Synced);
        if synced
            && !s.breaker.is_down()
            && let Some(verdict) = self.decide_local(checks, hashes)
        {
            return RedisCheck::ready(verdict);
        }
        let items = self.items(checks, hashes);
        RedisCheck {
            state: State::Remote(Box::pin(strict::decide(Arc::clone(s), items, now))),
        }
    }

    fn health(&self) -> Option<super::StoreHealth> {
        Some(self.health_now())
    }
}

impl RedisStore {
    fn health_now(&self) -> super::StoreHealth {
        let stats = self.stats();
        super::StoreHealth {
            down: stats.down,
            outages: stats.faults,
            fallback_decisions: stats.fallback_decisions,
            timeouts: stats.timeouts,
            sync_failures: stats.sync_failures,
            replicas: self.shared.replicas(),
        }
    }
}

impl RedisLimiter {
    /// The quota this limiter applies.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.inner.quota
    }

    /// Keys tracked locally (synced mode).
    #[must_use]
    pub fn local_keys(&self) -> usize {
        self.inner.table.len()
    }
}
