//! [`StripedTraffic`]: a [`TrafficWindow`](super::TrafficWindow) whose outcome counts are
//! striped per thread, for a stream that every worker records into on every request.

use std::time::Duration;

use tokio::time::Instant;

use super::{TimeWindow, WindowError, WindowTotals};
use crate::clock::Stamp;
use crate::outcome::Outcome;
use crate::quantile::LatencyQuantiles;
use crate::stripe::STRIPES;

/// Outcome counts in [`STRIPES`] [`TimeWindow`]s, one per stripe of threads
/// ([`crate::stripe`]), and one [`LatencyQuantiles`], over the same span from one origin.
///
/// Each worker thread adds to the count buckets of its own stripe, so the adds of two cores do
/// not take one cache line from each other on every request; readers sum the stripes. The
/// latencies are not striped (a bucket of them is 7 KiB): a stream busy enough for the counts
/// to matter records a sample of its latencies, one add in many requests.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::outcome::Outcome;
/// use fluxgate_core::stripe::current;
/// use fluxgate_core::window::StripedTraffic;
/// use tokio::time::Instant;
///
/// let traffic = StripedTraffic::new(Duration::from_secs(10), 50, 10).unwrap();
/// let start = Instant::now();
/// traffic.record(current(), start, Outcome::Success, Duration::from_millis(20), 1);
/// std::thread::scope(|s| {
///     s.spawn(|| traffic.record(current(), start, Outcome::Failure, Duration::ZERO, 0));
/// });
/// let later = start + Duration::from_secs(1);
/// assert_eq!(traffic.totals(later).requests, 2);
/// assert_eq!(traffic.totals(later).failures, 1);
/// assert_eq!(traffic.latencies().count(later), 1);
/// ```
#[derive(Debug)]
pub struct StripedTraffic {
    counts: Box<[TimeWindow]>,
    latencies: LatencyQuantiles,
}

impl StripedTraffic {
    /// Windows over `span`, starting now (tokio's clock): counts in `counts` buckets per
    /// stripe, latencies in `latencies` buckets.
    ///
    /// # Errors
    ///
    /// As [`TrafficWindow::new`](super::TrafficWindow::new).
    pub fn new(span: Duration, counts: u32, latencies: u32) -> Result<Self, WindowError> {
        let (origin, count_buckets, latency_buckets) = (Instant::now(), counts, latencies);
        let width = |buckets: u32| span / buckets.max(1);
        let counts = (0..STRIPES)
            .map(|_| TimeWindow::starting(origin, width(count_buckets), count_buckets))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            counts,
            latencies: LatencyQuantiles::starting(origin, width(latency_buckets), latency_buckets)?,
        })
    }

    /// Records one response in stripe `stripe` (see [`crate::stripe::current`]; taken modulo
    /// [`STRIPES`]): its outcome, and its latency `weight` times (0: not timed; see
    /// [`TrafficWindow::record_weighted`](super::TrafficWindow::record_weighted)).
    pub fn record(
        &self,
        stripe: usize,
        now: impl Into<Stamp>,
        outcome: Outcome,
        latency: Duration,
        weight: u32,
    ) {
        let counts = &self.counts[stripe & (STRIPES - 1)];
        let nanos = counts.ticker.since(now);
        counts.record_at(nanos, outcome);
        if weight > 0 {
            self.latencies.record_at(nanos, latency, weight);
        }
    }

    /// The counts of the last full window, summed over the stripes ([`TimeWindow::totals`]).
    #[must_use]
    pub fn totals(&self, now: impl Into<Stamp>) -> WindowTotals {
        let now = now.into();
        self.counts.iter().map(|c| c.totals(now)).sum()
    }

    /// The counts of the last `buckets` full buckets, summed over the stripes
    /// ([`TimeWindow::recent`]).
    #[must_use]
    pub fn recent(&self, now: impl Into<Stamp>, buckets: u32) -> WindowTotals {
        let now = now.into();
        self.counts.iter().map(|c| c.recent(now, buckets)).sum()
    }

    /// The width of a count bucket.
    #[must_use]
    pub fn bucket_width(&self) -> Duration {
        self.counts
            .first()
            .map_or(Duration::ZERO, TimeWindow::bucket_width)
    }

    /// The latencies.
    #[must_use]
    pub fn latencies(&self) -> &LatencyQuantiles {
        &self.latencies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stripe's counts are summed, in the same buckets (one origin for all).
    #[test]
    fn stripes_sum_in_the_same_buckets() {
        let traffic = StripedTraffic::new(Duration::from_secs(1), 10, 5).unwrap();
        let start = Instant::now();
        for stripe in 0..STRIPES * 2 {
            traffic.record(stripe, start, Outcome::Success, Duration::from_millis(1), 1);
        }
        traffic.record(
            3,
            start + Duration::from_millis(150),
            Outcome::Overload,
            Duration::ZERO,
            0,
        );
        let later = start + Duration::from_millis(200);
        let recent = traffic.recent(later, 1);
        assert_eq!((recent.requests, recent.overloads), (1, 1));
        let totals = traffic.totals(start + Duration::from_secs(1));
        assert_eq!(totals.requests, STRIPES as u64 * 2 + 1);
        assert_eq!(traffic.latencies().count(later), STRIPES as u64 * 2);
        assert_eq!(traffic.bucket_width(), Duration::from_millis(100));
    }
}
