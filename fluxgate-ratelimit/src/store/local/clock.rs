//! The store's clock: tokio's, so that tests on a paused clock are exact.

use governor::clock::Clock as GovernorClock;
use governor::nanos::Nanos;

/// Tokio's clock as nanoseconds since a base.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: tokio::time::Instant,
}

impl Clock {
    pub(super) fn new() -> Self {
        Self {
            base: tokio::time::Instant::now(),
        }
    }

    /// Nanoseconds since the base (0 before it); one clock read.
    pub(crate) fn nanos(&self) -> Nanos {
        let since = tokio::time::Instant::now().saturating_duration_since(self.base);
        // Whole seconds times 10⁹ plus the fraction: cheaper than `as_nanos` (a u128 product),
        // and exact until 584 years after the base.
        Nanos::from(
            since
                .as_secs()
                .wrapping_mul(1_000_000_000)
                .wrapping_add(u64::from(since.subsec_nanos())),
        )
    }
}

impl GovernorClock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        self.nanos()
    }
}
