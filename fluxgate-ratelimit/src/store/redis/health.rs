//! The circuit breaker in front of Redis, and the store's counts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The counts of a [`RedisStore`](super::RedisStore), for an admin endpoint or a metrics sink.
///
/// ```
/// let stats = fluxgate_ratelimit::store::RedisStats::default();
/// assert!(!stats.down && stats.faults == 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Whether Redis is known to be down now (decisions fall back without waiting).
    pub down: bool,
    /// Times Redis was found down (each outage counts once, however many requests it touched).
    pub faults: u64,
    /// Redis calls that failed or timed out.
    pub failed_calls: u64,
    /// Decisions made by the fallback (`onStoreFailure`) instead of Redis.
    pub fallback_decisions: u64,
    /// Decisions made in Redis (strict mode, and synced keys near their limit).
    pub strict_decisions: u64,
    /// Script calls that made strict decisions on one server (a call decides a batch).
    pub strict_calls: u64,
    /// Decisions made locally by synced mode.
    pub local_decisions: u64,
    /// Sync rounds that completed.
    pub syncs: u64,
    /// Keys pushed by sync rounds.
    pub synced_keys: u64,
    /// Decisions that waited their whole timeout on Redis (then decided by the fallback, and
    /// reconciled with Redis' late answer).
    pub timeouts: u64,
    /// Late answers reconciled: a unit charged to Redis (the fallback admitted what Redis
    /// refused) or given back (Redis admitted what the fallback refused).
    pub reconciled: u64,
    /// Sync rounds (pushes, heartbeats) that failed or timed out.
    pub sync_failures: u64,
    /// Live replicas sharing the limits, from their heartbeats in Redis (0 until known; the
    /// last count seen while Redis is down).
    pub replicas: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) failed_calls: AtomicU64,
    pub(crate) fallback: AtomicU64,
    pub(crate) strict: AtomicU64,
    pub(crate) strict_calls: AtomicU64,
    pub(crate) local: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) synced_keys: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) reconciled: AtomicU64,
    pub(crate) sync_failures: AtomicU64,
}

/// Up, or down with the time of the next probe; a failure opens it at once, a success closes it.
#[derive(Debug)]
pub(crate) struct Breaker {
    down: AtomicBool,
    next_probe: AtomicU64,
    backoff: AtomicU64,
    faults: AtomicU64,
    min: u64,
    max: u64,
    pub(crate) counts: Counts,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Breaker {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            down: AtomicBool::new(false),
            next_probe: AtomicU64::new(0),
            backoff: AtomicU64::new(micros(min)),
            faults: AtomicU64::new(0),
            min: micros(min).max(1),
            max: micros(max).max(1),
            counts: Counts::default(),
        }
    }

    /// Whether a call to Redis may be made at `now` (µs): always while up; while down, only by
    /// the one caller that claims the due probe.
    pub(crate) fn allow(&self, now: u64) -> bool {
        if !self.down.load(Ordering::Acquire) {
            return true;
        }
        let due = self.next_probe.load(Ordering::Acquire);
        let backoff = self.backoff.load(Ordering::Relaxed);
        now >= due
            && self
                .next_probe
                .compare_exchange(due, now + backoff, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Records a failed call at `now`; logs and counts the outage when it starts.
    pub(crate) fn failure(&self, now: u64, error: &dyn std::fmt::Display) {
        self.counts.failed_calls.fetch_add(1, Ordering::Relaxed);
        if self.down.swap(true, Ordering::AcqRel) {
            let next = (self.backoff.load(Ordering::Relaxed) * 2).min(self.max);
            self.backoff.store(next, Ordering::Relaxed);
            self.next_probe.store(now + next, Ordering::Release);
        } else {
            self.faults.fetch_add(1, Ordering::Relaxed);
            self.backoff.store(self.min, Ordering::Relaxed);
            self.next_probe.store(now + self.min, Ordering::Release);
            tracing::warn!(%error, "Redis rate-limit store unavailable; falling back until it answers");
        }
    }

    /// Records a successful call; logs the recovery once.
    pub(crate) fn success(&self) {
        if self.down.load(Ordering::Acquire) && self.down.swap(false, Ordering::AcqRel) {
            self.backoff.store(self.min, Ordering::Relaxed);
            tracing::info!("Redis rate-limit store answers again; shared limits resume");
        }
    }

    pub(crate) fn stats(&self) -> RedisStats {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedisStats {
            down: self.is_down(),
            faults: get(&self.faults),
            failed_calls: get(&c.failed_calls),
            fallback_decisions: get(&c.fallback),
            strict_decisions: get(&c.strict),
            strict_calls: get(&c.strict_calls),
            local_decisions: get(&c.local),
            syncs: get(&c.syncs),
            synced_keys: get(&c.synced_keys),
            timeouts: get(&c.timeouts),
            reconciled: get(&c.reconciled),
            sync_failures: get(&c.sync_failures),
            replicas: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_at_once_and_probes_with_backoff() {
        let b = Breaker::new(Duration::from_micros(10), Duration::from_micros(40));
        assert!(b.allow(0));
        b.failure(100, &"down");
        assert!(!b.allow(105));
        assert!(b.allow(110));
        assert!(!b.allow(110), "one probe at a time");
        b.failure(110, &"still down");
        assert!(!b.allow(125));
        assert!(b.allow(130));
        b.success();
        assert!(b.allow(131));
        assert_eq!(b.stats().faults, 1);
    }
}
