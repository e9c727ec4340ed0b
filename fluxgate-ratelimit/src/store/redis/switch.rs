//! The switch to the fallback when Redis goes away: each synced key's fallback starts from what
//! the key had used as this replica last knew it, not from a full bucket.
//!
//! The fallback ([`LocalStore`](crate::store::LocalStore) limiters at this replica's share of
//! each quota, `1 / N`) is keyed by the Redis store's own hashes, so that when an outage starts,
//! every key that synced mode holds is charged in its limit's fallback with the part of the
//! quota it had used: the counts last read from Redis plus this replica's units that Redis had
//! not counted yet (pushed, in flight, or not sent), as a fraction of the quota, applied to the
//! share. A key's fallback state from an earlier outage is added to, not replaced: those units
//! were never counted in Redis. Strict limits keep no local copy of Redis' state: their keys
//! start the fallback at a full share.

use fluxgate_core::policy::{StoreFailure, SyncMode};

use super::Shared;

impl Shared {
    /// Records a failed call (see [`Breaker::failure`](super::health::Breaker::failure)); when
    /// it starts an outage, seeds the fallback from synced mode's state.
    pub(crate) fn failure(&self, error: &dyn std::fmt::Display) {
        let now = self.clock.now();
        if self.breaker.failure(now, error) {
            self.seed_fallback(now);
        }
    }

    /// Charges each synced key's fallback (at this replica's share) with the part of the quota
    /// the key had used at `now` as this replica knows it.
    fn seed_fallback(&self, now: u64) {
        let replicas = self.replicas();
        for limiter in self.live() {
            if limiter.mode != SyncMode::Synced || limiter.on_failure != StoreFailure::Local {
                continue;
            }
            let share = limiter.fallback.limiter(&self.fallback, replicas);
            limiter
                .table
                .each_used(limiter.params, now, |hash, used, capacity| {
                    share.charge(hash, used, capacity);
                });
        }
    }
}
