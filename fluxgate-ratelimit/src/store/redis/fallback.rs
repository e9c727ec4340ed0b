//! The decision while Redis does not answer, and how the `local` fallback of a synced key stays
//! in step with what synced mode knows of it.
//!
//! The fallback ([`LocalStore`](crate::store::LocalStore) limiters at this replica's share of
//! each quota, `1 / N`) is keyed by the Redis store's own hashes. Before it decides for a synced
//! key, the key's fallback is brought up to the part of the quota the key had used as this
//! replica knows it (the counts last read from Redis plus its own units Redis had not counted:
//! pending, in flight, or admitted by the fallback), applied to the share: so the fallback never
//! starts a key from a full bucket, whether Redis just went away or a decision timed out. It
//! does so when the key enters the fallback (its first fallback decision since synced mode last
//! decided it or read it from Redis); then the fallback counts on its own. Each
//! unit the fallback admits during an outage is counted in synced mode's state too, as a unit
//! Redis has not seen: it is pushed when Redis answers, so that neither the recovery nor a
//! Redis that answers reads but refuses writes gives a key a second burst. Strict limits keep
//! no local copy of Redis' state: their keys start the fallback at a full share.

use std::time::Duration;

use fluxgate_core::policy::{StoreFailure, SyncMode};

use super::{LimiterInner, Shared};
use crate::store::{Checks, KeyRef, LocalLimiter, MAX_LIMITS, Outcome, Verdict};

/// The decision while Redis is unreachable, per each limit's `onStoreFailure`: `open` admits,
/// `closed` refuses (a refusing `closed` limit refuses the request without taking units from
/// `local` limits), `local` decides on this replica's share of the quota. `record`: count the
/// units admitted in synced mode's state (not when a late answer from Redis reconciles them).
pub(crate) fn fallback<'a>(
    shared: &Shared,
    checks: impl Iterator<Item = (&'a LimiterInner, KeyRef<'a>, bool, u64)>,
    record: bool,
) -> Verdict {
    shared
        .breaker
        .counts
        .fallback
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let checks: Vec<_> = checks.collect();
    let replicas = shared.replicas();
    let now = shared.clock.now();
    let limiters: Vec<LocalLimiter> = checks
        .iter()
        .map(|(l, ..)| l.fallback.limiter(&shared.fallback, replicas))
        .collect();
    let mut verdict = Verdict::default();
    let retry_after = shared.options.probe_max;
    let closed = checks
        .iter()
        .position(|(l, _, shadow, _)| l.on_failure == StoreFailure::Closed && !shadow);
    let mut local = Checks::new();
    let mut hashes = [0u64; MAX_LIMITS];
    if closed.is_none() {
        for ((limiter, key, shadow, hash), share) in checks.iter().zip(&limiters) {
            if limiter.on_failure == StoreFailure::Local && local.push(share, *key, *shadow) {
                hashes[local.len() - 1] = *hash;
                catch_up(limiter, share, *hash, now);
            }
        }
    }
    let decided = shared.fallback.check_hashed(&local, &hashes[..local.len()]);
    let mut next_local = 0;
    for (i, ((limiter, _, shadow, _), share)) in checks.iter().zip(&limiters).enumerate() {
        let outcome = match limiter.on_failure {
            StoreFailure::Closed if *shadow => Outcome::ShadowRefused { retry_after },
            StoreFailure::Closed => Outcome::Refused { retry_after },
            StoreFailure::Open => Outcome::Admitted {
                remaining: share.quota().burst_size(),
                reset: Duration::ZERO,
            },
            _ if closed.is_some() => Outcome::Skipped,
            _ => {
                next_local += 1;
                decided.outcome(next_local - 1)
            }
        };
        verdict.set(i, outcome);
        if matches!(outcome, Outcome::Refused { .. }) {
            break;
        }
    }
    if record && verdict.admitted() {
        for (i, (limiter, key, _, hash)) in checks.iter().enumerate() {
            let local = limiter.on_failure == StoreFailure::Local;
            if local && matches!(verdict.outcome(i), Outcome::Admitted { .. }) {
                limiter
                    .table
                    .admitted(*hash, limiter.params, now, || limiter.name(*key));
            }
        }
    }
    verdict
}

/// Brings a synced key's fallback `share` up to the part of the quota the key had used at `now`
/// as this replica knows it, when it enters the fallback (the fallback's own windows are not
/// synced mode's: catching up at every decision would count units twice across them).
fn catch_up(limiter: &LimiterInner, share: &LocalLimiter, hash: u64, now: u64) {
    if limiter.mode == SyncMode::Synced
        && let Some((used, capacity)) = limiter.table.used_once(hash, limiter.params, now)
    {
        share.charge(hash, used, capacity);
    }
}
