//! Replicas count each other: each store renews a heartbeat in Redis and reads the live count
//! back, so that local shares (fallback, synced mode) follow the fleet instead of a flag.
//!
//! The heartbeats of the replicas sharing a key prefix are the members of one sorted set,
//! `PREFIX:{replicas}`, each scored with its expiry on Redis' clock (`TIME`): a renewal is one
//! script call that adds this replica, drops the expired ones, and returns the count. The set
//! itself expires one TTL after the last renewal, so nothing outlives the fleet.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::conn::Conn;

static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])",
    )
});

/// This replica's heartbeat and the fleet's last known size.
#[derive(Debug)]
pub(crate) struct Fleet {
    id: String,
    key: String,
    ttl: Duration,
    /// Live replicas at the last renewal (0: not known yet).
    live: AtomicU32,
    /// When the next renewal is due (µs, the store's clock).
    next: AtomicU64,
}

impl Fleet {
    pub(crate) fn new(prefix: &str, ttl: Duration) -> Self {
        let id = format!(
            "{}-{:016x}",
            std::process::id(),
            RandomState::new().hash_one(0u8)
        );
        Self {
            id,
            key: format!("{prefix}:{{replicas}}"),
            ttl,
            live: AtomicU32::new(0),
            next: AtomicU64::new(0),
        }
    }

    /// The live count last read (0 while unknown).
    pub(crate) fn live(&self) -> u32 {
        self.live.load(Ordering::Relaxed)
    }

    /// Whether a renewal is due at `now` (µs); claims it.
    pub(crate) fn due(&self, now: u64) -> bool {
        let due = self.next.load(Ordering::Relaxed);
        let every = u64::try_from(self.ttl.as_micros() / 4).unwrap_or(u64::MAX);
        now >= due
            && self
                .next
                .compare_exchange(due, now + every, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Renews this replica's heartbeat and reads the live count.
    pub(crate) async fn beat(&self, conn: &Conn) -> redis::RedisResult<u32> {
        let mut conn = conn.clone();
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let live: u32 = SCRIPT
            .key(&self.key)
            .arg(&self.id)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await?;
        self.live.store(live, Ordering::Relaxed);
        Ok(live)
    }
}
