//! One limit at one quota: its algorithm, its table of keys, and how it takes and gives back units.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use fluxgate_core::policy::LimitAlgorithm;
use governor::middleware::StateInformationMiddleware;
use governor::{Quota as GovernorQuota, RateLimiter};

use super::Clock;
use crate::Quota;
use crate::quota::{Window, WindowDecision, decide_window};
use crate::store::Outcome;
use crate::store::table::{GcraState, Idle, Table};

type Gcra = RateLimiter<u64, GcraState, Clock, StateInformationMiddleware>;

/// A [`LocalStore`](super::LocalStore) limiter: one limit at one quota (cheap to clone; clones
/// share counters).
#[derive(Debug, Clone)]
pub struct LocalLimiter {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    kind: Kind,
    pub(super) table: Arc<Table>,
    quota: Quota,
}

#[derive(Debug)]
enum Kind {
    Gcra { limiter: Gcra, interval: u64 },
    Window { window: u64, limit: u32 },
}

impl Inner {
    /// A new limiter of `algorithm` at `quota`, holding at most `max_keys` keys.
    pub(super) fn new(
        algorithm: LimitAlgorithm,
        quota: Quota,
        max_keys: usize,
        clock: Clock,
        sweep_every: u64,
    ) -> Self {
        match algorithm {
            LimitAlgorithm::Gcra => {
                let interval = quota.emission_interval();
                let table = Arc::new(Table::new(max_keys, Idle::Gcra, clock, sweep_every));
                let burst = NonZeroU32::new(quota.burst_size()).unwrap_or(NonZeroU32::MIN);
                let governor_quota = GovernorQuota::with_period(interval)
                    .unwrap_or_else(|| GovernorQuota::per_second(NonZeroU32::MAX))
                    .allow_burst(burst);
                let limiter: Gcra =
                    RateLimiter::new(governor_quota, GcraState(Arc::clone(&table)), clock);
                // Governor measures from its start; idleness is judged from no earlier than it.
                table.reset_origin();
                Self {
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
                let table = Table::new(max_keys, Idle::Window(window), clock, sweep_every);
                Self {
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

    /// Takes one unit for `key` (a keyed hash), or says how long until one is free.
    pub(super) fn acquire(&self, key: u64, clock: &Clock) -> Outcome {
        match &self.kind {
            Kind::Gcra {
                limiter: gcra,
                interval,
            } => match gcra.check_key(&key) {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    let missing = u64::from(self.quota.burst_size().saturating_sub(remaining));
                    Outcome::Admitted {
                        remaining,
                        reset: Duration::from_nanos(missing.saturating_mul(*interval)),
                    }
                }
                Err(not_until) => Outcome::Refused {
                    retry_after: not_until.wait_time_from(clock.nanos()),
                },
            },
            Kind::Window { window, limit } => {
                let now = self.table.now();
                let decided = self.table.update(key, |state| {
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

    /// Makes `key` hold at least `used / capacity` of this limiter's quota as taken (a sliding
    /// window counts it in its current window).
    #[cfg(feature = "redis")]
    fn charge(&self, key: u64, used: u64, capacity: u64) {
        let part = |of: u128| (u128::from(used) * of).div_ceil(u128::from(capacity.max(1)));
        let now = self.table.now();
        match &self.kind {
            Kind::Gcra { interval, .. } => {
                let full = u128::from(*interval) * u128::from(self.quota.burst_size());
                let tat = now.saturating_add(u64::try_from(part(full)).unwrap_or(u64::MAX));
                let _ = self
                    .table
                    .update(key, |held| Ok::<_, ()>(((), held.unwrap_or(0).max(tat))));
            }
            Kind::Window { window, limit } => {
                let units = u32::try_from(part(u128::from(*limit)))
                    .unwrap_or(crate::quota::MAX_WINDOW_COUNT);
                let epoch = now / (*window).max(1);
                let _ = self.table.update(key, |bits| {
                    let mut w = Window::at(bits, epoch);
                    w.current = w.current.max(units.min(crate::quota::MAX_WINDOW_COUNT));
                    Ok::<_, ()>(((), w.pack()))
                });
            }
        }
    }

    /// Gives back the unit an admitted request took.
    pub(super) fn refund(&self, key: u64) {
        match &self.kind {
            Kind::Gcra { interval, .. } => {
                self.table.adjust(key, |tat| tat.saturating_sub(*interval));
            }
            Kind::Window { window, .. } => {
                let epoch = self.table.now() / (*window).max(1);
                self.table.adjust(key, |bits| {
                    let mut w = Window::at(Some(bits), epoch);
                    w.current = w.current.saturating_sub(1);
                    w.pack()
                });
            }
        }
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

    /// Makes `key` (a keyed hash, as given to
    /// [`LocalStore::check_hashed`](super::LocalStore::check_hashed)) hold at least `used /
    /// capacity` of the quota as taken: a Redis store's fallback catching up with what a key had
    /// used in Redis.
    #[cfg(feature = "redis")]
    pub(crate) fn charge(&self, key: u64, used: u64, capacity: u64) {
        if used > 0 {
            self.inner.charge(key, used, capacity);
        }
    }

    /// Whether `self` and `other` share their counters.
    #[must_use]
    pub fn shares_state_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
