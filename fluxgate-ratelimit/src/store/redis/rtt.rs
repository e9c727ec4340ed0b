//! The round trips to Redis as measured, and the decision timeout they give.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The wait grows to this multiple of the recent peak round trip.
const FACTOR: u64 = 4;
/// The longest the wait grows to.
pub(crate) const CEILING: Duration = Duration::from_millis(250);
/// The peak forgets 1/DECAY of itself per sample, so one slow call counts for a few hundred.
const DECAY: u64 = 256;

/// A decaying peak of the round trips of successful calls (µs).
#[derive(Debug, Default)]
pub(crate) struct Rtt {
    peak: AtomicU64,
}

impl Rtt {
    /// Records a successful call that took `took`.
    pub(crate) fn record(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .peak
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |peak| {
                Some(sample.max(peak - peak.div_ceil(DECAY)))
            });
    }

    /// The recent peak round trip.
    pub(crate) fn peak(&self) -> Duration {
        Duration::from_micros(self.peak.load(Ordering::Relaxed))
    }

    /// How long a decision whose limit allows `floor` waits: `floor`, or more when recent round
    /// trips were long (at most [`CEILING`], and never less than `floor`).
    pub(crate) fn timeout(&self, floor: Duration) -> Duration {
        let grown = self
            .peak()
            .saturating_mul(u32::try_from(FACTOR).unwrap_or(4));
        grown.min(CEILING).max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_the_peak_and_decays() {
        let rtt = Rtt::default();
        let floor = Duration::from_millis(5);
        assert_eq!(rtt.timeout(floor), floor);
        rtt.record(Duration::from_millis(10));
        assert_eq!(rtt.timeout(floor), Duration::from_millis(40));
        rtt.record(Duration::from_secs(1));
        assert_eq!(rtt.timeout(floor), CEILING);
        for _ in 0..5000 {
            rtt.record(Duration::from_micros(100));
        }
        assert_eq!(rtt.timeout(floor), floor);
    }
}
