//! Counts of requests, failures and overloads over a sliding window of time.
//!
//! Use a [`TimeWindow`] wherever a layer judges recent traffic: outlier detection (5xx rate of an
//! endpoint), canary analysis (error rate of each side), adaptive weights. It is a ring of
//! buckets, each `bucket_width` long; [`TimeWindow::totals`] sums the last `buckets` completed
//! buckets, a full window that ends where the current bucket begins.
//!
//! Recording is lock-free: each counter is one atomic word that carries the epoch (bucket number)
//! it counts for, so an old bucket is replaced lazily by the first write of a new epoch, in the
//! same compare-and-swap as the increment; later writes to the bucket are one `fetch_add`. No
//! count is lost to a reset race and no stale count is kept (a writer that stalls for a whole ring
//! between reading a counter and adding to it takes its units back at once). The three counters of a bucket are separate words, so a reader racing a writer may
//! see a request whose failure is not counted yet; rates are clamped to `[0, 1]`.
//!
//! Time comes from the caller as a [`tokio::time::Instant`], so tests run on a paused clock.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::outcome::Outcome;
//! use fluxgate_core::window::TimeWindow;
//! use tokio::time::Instant;
//!
//! let window = TimeWindow::new(Duration::from_secs(1), 10).unwrap();
//! let start = Instant::now();
//! window.record(start, Outcome::Success);
//! window.record(start, Outcome::Failure);
//! window.record(start, Outcome::Overload);
//! // The bucket in progress is not part of the window yet...
//! assert_eq!(window.totals(start).requests, 0);
//! assert_eq!(window.current(start).requests, 3);
//! // ...and counts once it completes.
//! let totals = window.totals(start + Duration::from_secs(1));
//! assert_eq!((totals.requests, totals.failures, totals.overloads), (3, 1, 1));
//! assert_eq!(totals.failure_rate(), Some(1.0 / 3.0));
//! // Ten seconds later it has slid out.
//! assert_eq!(window.totals(start + Duration::from_secs(12)).requests, 0);
//! ```

mod striped;
mod traffic;

use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Stamp;

use crate::outcome::Outcome;
pub(crate) use crate::ring::check_shape;
use crate::ring::{Divisor, TaggedCounter, Ticker};
pub use crate::ring::{MAX_BUCKETS, MIN_BUCKET_WIDTH, WindowError};
pub use striped::StripedTraffic;
pub use traffic::TrafficWindow;

/// What a [`TimeWindow`] counted over a span of time.
///
/// ```
/// use fluxgate_core::window::WindowTotals;
///
/// let totals = WindowTotals { requests: 200, failures: 5, overloads: 1 };
/// assert_eq!(totals.failure_rate(), Some(0.025));
/// assert_eq!(totals.overload_rate(), Some(0.005));
/// assert_eq!(totals.success_rate(), Some(0.97));
/// assert_eq!(WindowTotals::default().failure_rate(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowTotals {
    /// Every recorded outcome.
    pub requests: u64,
    /// Outcomes that were [`Outcome::Failure`].
    pub failures: u64,
    /// Outcomes that were [`Outcome::Overload`] (counted apart from failures).
    pub overloads: u64,
}

/// Totals of several windows or buckets, added up.
impl std::iter::Sum for WindowTotals {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |sum, part| Self {
            requests: sum.requests + part.requests,
            failures: sum.failures + part.failures,
            overloads: sum.overloads + part.overloads,
        })
    }
}

impl WindowTotals {
    /// Failures per request, or `None` when there were no requests.
    #[must_use]
    pub fn failure_rate(&self) -> Option<f64> {
        self.rate(self.failures)
    }

    /// Overloads per request, or `None` when there were no requests.
    #[must_use]
    pub fn overload_rate(&self) -> Option<f64> {
        self.rate(self.overloads)
    }

    /// Requests that were neither failures nor overloads, per request (the availability), or
    /// `None` when there were no requests.
    #[must_use]
    pub fn success_rate(&self) -> Option<f64> {
        let bad = self.failures.saturating_add(self.overloads);
        self.rate(self.requests.saturating_sub(bad))
    }

    fn rate(&self, part: u64) -> Option<f64> {
        (self.requests > 0).then(|| (part as f64 / self.requests as f64).clamp(0.0, 1.0))
    }
}

/// Counters of one bucket.
#[derive(Debug, Default)]
struct Bucket {
    requests: TaggedCounter,
    failures: TaggedCounter,
    overloads: TaggedCounter,
}

/// A lock-free ring of time buckets counting requests, failures and overloads.
///
/// Memory: 24 bytes per bucket, `buckets + 1` buckets. Counts per bucket saturate at `u32::MAX`.
/// A record with a `now` more than a whole window older than a record already made is dropped.
/// Epochs are tagged modulo 2³², so a bucket last written exactly 2³² bucket widths ago (49 days
/// at 1ms buckets) could be misread; no realistic traffic pattern meets this.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::outcome::Outcome;
/// use fluxgate_core::window::TimeWindow;
///
/// let window = TimeWindow::new(Duration::from_millis(50), 20).unwrap();
/// assert_eq!(window.window(), Duration::from_secs(1));
/// window.record(tokio::time::Instant::now(), Outcome::Success);
/// ```
#[derive(Debug)]
pub struct TimeWindow {
    ticker: Ticker,
    bucket_width: Duration,
    buckets: u32,
    ring: Box<[Bucket]>,
    /// Divides epochs by the ring's length.
    slots: Divisor,
}

impl TimeWindow {
    /// A window of `buckets` buckets of `bucket_width` each, starting now (tokio's clock).
    ///
    /// # Errors
    ///
    /// [`WindowError`] when `buckets` is 0 or above [`MAX_BUCKETS`], or `bucket_width` is below
    /// [`MIN_BUCKET_WIDTH`].
    pub fn new(bucket_width: Duration, buckets: u32) -> Result<Self, WindowError> {
        Self::starting(Instant::now(), bucket_width, buckets)
    }

    /// A window whose first bucket starts at `origin`: windows made at different times with
    /// one origin have their buckets aligned, so that their counts add up bucket by bucket.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::clock::Stamp;
    /// use fluxgate_core::outcome::Outcome;
    /// use fluxgate_core::window::TimeWindow;
    ///
    /// let origin = Stamp::now();
    /// let width = Duration::from_millis(100);
    /// let (a, b) = (TimeWindow::starting(origin, width, 10)?, TimeWindow::starting(origin, width, 10)?);
    /// a.record(origin, Outcome::Success);
    /// b.record(origin, Outcome::Failure);
    /// let later = origin + width;
    /// assert_eq!(a.recent(later, 1).requests + b.recent(later, 1).requests, 2);
    /// # Ok::<(), fluxgate_core::window::WindowError>(())
    /// ```
    pub fn starting(
        origin: impl Into<Stamp>,
        bucket_width: Duration,
        buckets: u32,
    ) -> Result<Self, WindowError> {
        check_shape(bucket_width, buckets)?;
        let ring: Box<[Bucket]> = (0..=buckets).map(|_| Bucket::default()).collect();
        Ok(Self {
            ticker: Ticker::new(origin, bucket_width),
            bucket_width,
            buckets,
            slots: Divisor::new(ring.len() as u64),
            ring,
        })
    }

    /// Counts one request with its outcome at `now`.
    pub fn record(&self, now: impl Into<Stamp>, outcome: Outcome) {
        self.record_at(self.ticker.since(now), outcome);
    }

    /// Counts one request with its outcome, `nanos` after the origin.
    #[inline]
    pub(crate) fn record_at(&self, nanos: u64, outcome: Outcome) {
        let epoch = self.ticker.epoch_at(nanos);
        let bucket = self.bucket(epoch);
        if !bucket.requests.add(epoch, 1) {
            return;
        }
        match outcome {
            Outcome::Failure => {
                bucket.failures.add(epoch, 1);
            }
            Outcome::Overload => {
                bucket.overloads.add(epoch, 1);
            }
            Outcome::Success => {}
        }
    }

    /// The totals of the last full window: the `buckets` completed buckets before `now`'s.
    #[must_use]
    pub fn totals(&self, now: impl Into<Stamp>) -> WindowTotals {
        self.recent(now, self.buckets)
    }

    /// The totals of the last `buckets` completed buckets before `now`'s (all of them when
    /// `buckets` is more): a shorter window ending where [`totals`](Self::totals)' ends, so
    /// that one ring serves a short and a long horizon with one write per request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::outcome::Outcome;
    /// use fluxgate_core::window::TimeWindow;
    /// use tokio::time::Instant;
    ///
    /// // 5 seconds in 100ms buckets: the last second is its last 10 buckets.
    /// let window = TimeWindow::new(Duration::from_millis(100), 50).unwrap();
    /// let start = Instant::now();
    /// window.record(start, Outcome::Failure);
    /// window.record(start + Duration::from_secs(3), Outcome::Success);
    /// let now = start + Duration::from_millis(3_100);
    /// assert_eq!(window.recent(now, 10).requests, 1);
    /// assert_eq!(window.recent(now, 10).failures, 0);
    /// assert_eq!(window.totals(now).requests, 2);
    /// assert_eq!(window.recent(now, 1_000), window.totals(now));
    /// ```
    #[must_use]
    pub fn recent(&self, now: impl Into<Stamp>, buckets: u32) -> WindowTotals {
        let current = self.ticker.epoch(now);
        let first = current.saturating_sub(u64::from(buckets.min(self.buckets)));
        (first..current).map(|epoch| self.at(epoch)).sum()
    }

    /// The counts of the bucket in progress at `now` (not yet part of [`totals`](Self::totals)).
    #[must_use]
    pub fn current(&self, now: impl Into<Stamp>) -> WindowTotals {
        self.at(self.ticker.epoch(now))
    }

    /// The span [`totals`](Self::totals) covers: `bucket_width × buckets`.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.bucket_width * self.buckets
    }

    /// The width of one bucket.
    #[must_use]
    pub fn bucket_width(&self) -> Duration {
        self.bucket_width
    }

    #[inline]
    fn bucket(&self, epoch: u64) -> &Bucket {
        // The ring is never empty (at least 2 slots), so the index is always in range.
        &self.ring[self.slots.div_rem(epoch).1 as usize]
    }

    fn at(&self, epoch: u64) -> WindowTotals {
        let bucket = self.bucket(epoch);
        WindowTotals {
            requests: u64::from(bucket.requests.get(epoch)),
            failures: u64::from(bucket.failures.get(epoch)),
            overloads: u64::from(bucket.overloads.get(epoch)),
        }
    }
}

#[cfg(test)]
mod tests;
