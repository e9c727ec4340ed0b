//! [`TrafficWindow`]: outcome counts and latency quantiles of one stream of responses, recorded
//! together.

use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Stamp;

use super::{TimeWindow, WindowError, WindowTotals};
use crate::outcome::Outcome;
use crate::quantile::LatencyQuantiles;

/// A [`TimeWindow`] of outcomes and a [`LatencyQuantiles`] of latencies over the same span,
/// sharing one origin, so that recording a response converts its instant once for both.
///
/// This is what a layer that judges a stream of responses keeps per stream (a canary side, an
/// endpoint): counts in fine buckets, for a sliding budget, and latencies in coarser ones (a
/// histogram bucket is 7 KiB). Both cover `span`, so both windows end where the current bucket
/// of each begins.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::outcome::Outcome;
/// use fluxgate_core::window::TrafficWindow;
/// use tokio::time::Instant;
///
/// let traffic = TrafficWindow::new(Duration::from_secs(10), 50, 10).unwrap();
/// let start = Instant::now();
/// traffic.record(start, Outcome::Success, Duration::from_millis(20));
/// traffic.record(start, Outcome::Failure, Duration::from_millis(40));
/// let later = start + Duration::from_secs(1);
/// assert_eq!(traffic.counts().totals(later).failures, 1);
/// assert_eq!(traffic.latencies().count(later), 2);
/// assert_eq!(traffic.counts().window(), traffic.latencies().window());
/// ```
#[derive(Debug)]
pub struct TrafficWindow {
    counts: TimeWindow,
    latencies: LatencyQuantiles,
}

impl TrafficWindow {
    /// Windows over `span`, starting now (tokio's clock): counts in `count_buckets` buckets,
    /// latencies in `latency_buckets`.
    ///
    /// # Errors
    ///
    /// [`WindowError`] when either bucket count is 0 or above
    /// [`MAX_BUCKETS`](super::MAX_BUCKETS), or either bucket width is below
    /// [`MIN_BUCKET_WIDTH`](super::MIN_BUCKET_WIDTH).
    pub fn new(
        span: Duration,
        count_buckets: u32,
        latency_buckets: u32,
    ) -> Result<Self, WindowError> {
        let origin = Instant::now();
        let width = |buckets: u32| span / buckets.max(1);
        Ok(Self {
            counts: TimeWindow::starting(origin, width(count_buckets), count_buckets)?,
            latencies: LatencyQuantiles::starting(origin, width(latency_buckets), latency_buckets)?,
        })
    }

    /// Records one response: its outcome and its latency, at `now`.
    pub fn record(&self, now: impl Into<Stamp>, outcome: Outcome, latency: Duration) {
        self.record_weighted(now, outcome, latency, 1);
    }

    /// Records one response of a latency sample that times one response in `weight`: its
    /// outcome once, and its latency `weight` times, so that the quantiles (and
    /// [`LatencyQuantiles::count`]) estimate those of every response. The responses that were
    /// not timed are recorded with [`record_outcome`](Self::record_outcome). A `weight` of 0
    /// records the outcome only.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::outcome::Outcome;
    /// use fluxgate_core::window::TrafficWindow;
    /// use tokio::time::Instant;
    ///
    /// let traffic = TrafficWindow::new(Duration::from_secs(10), 50, 10).unwrap();
    /// let start = Instant::now();
    /// // One response in four timed.
    /// traffic.record_weighted(start, Outcome::Success, Duration::from_millis(20), 4);
    /// for _ in 0..3 {
    ///     traffic.record_outcome(start, Outcome::Success);
    /// }
    /// let later = start + Duration::from_secs(1);
    /// assert_eq!(traffic.counts().totals(later).requests, 4);
    /// assert_eq!(traffic.latencies().count(later), 4);
    /// ```
    pub fn record_weighted(
        &self,
        now: impl Into<Stamp>,
        outcome: Outcome,
        latency: Duration,
        weight: u32,
    ) {
        let nanos = self.counts.ticker.since(now);
        self.counts.record_at(nanos, outcome);
        if weight > 0 {
            self.latencies.record_at(nanos, latency, weight);
        }
    }

    /// Records one response's outcome without a latency (one that a latency sample left out).
    pub fn record_outcome(&self, now: impl Into<Stamp>, outcome: Outcome) {
        self.counts.record(now, outcome);
    }

    /// The outcome counts.
    #[must_use]
    pub fn counts(&self) -> &TimeWindow {
        &self.counts
    }

    /// The latencies.
    #[must_use]
    pub fn latencies(&self) -> &LatencyQuantiles {
        &self.latencies
    }

    /// The counts of the last full window ([`TimeWindow::totals`]).
    #[must_use]
    pub fn totals(&self, now: impl Into<Stamp>) -> WindowTotals {
        self.counts.totals(now)
    }
}
