//! Latency quantiles (p50, p95, p99, any q) over a sliding window of time.
//!
//! Use a [`LatencyQuantiles`] where a layer judges latency: draining an endpoint at p95 above a
//! limit, a canary's p99 against the stable side. It is a ring of log-linear histograms (HDR
//! style), one per bucket of time, rotated like a [`TimeWindow`](crate::window::TimeWindow):
//! [`LatencyQuantiles::quantile`] reads the last `buckets` completed buckets.
//!
//! # Accuracy
//!
//! Latencies are kept in whole microseconds from 0 to [`MAX_TRACKED`] (2³² µs, about 71.6
//! minutes); longer ones are counted as [`MAX_TRACKED`]. A quantile is the midpoint of the bin
//! holding the sample of rank `⌈q·n⌉` (the nearest-rank definition; rank 1 for `q = 0`), and is
//! within [`RELATIVE_ERROR`] (1/64, about 1.6%) of that sample, or within 0.5µs of it for
//! samples under 64µs.
//!
//! # Memory and cost
//!
//! 896 bins of 8 bytes per bucket, for `buckets + 1` buckets: 7 KiB per bucket, so 77 KiB for a
//! window of 10 buckets ([`LatencyQuantiles::memory_bytes`]). Recording is one atomic
//! `fetch_add` (a compare-and-swap for the first sample of a bin in a bucket) and never blocks;
//! reading merges every bin of the window (a few µs), which suits periodic evaluation rather than
//! per-request reads.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::quantile::LatencyQuantiles;
//! use tokio::time::Instant;
//!
//! let latencies = LatencyQuantiles::new(Duration::from_secs(1), 10).unwrap();
//! let start = Instant::now();
//! for ms in 1..=100 {
//!     latencies.record(start, Duration::from_millis(ms));
//! }
//! let later = start + Duration::from_secs(1);
//! assert_eq!(latencies.count(later), 100);
//! let p95 = latencies.quantile(later, 0.95).unwrap();
//! assert!(p95.abs_diff(Duration::from_millis(95)) <= Duration::from_millis(95) / 64);
//! assert_eq!(latencies.quantile(start + Duration::from_secs(30), 0.5), None);
//! ```

mod bins;
mod sample;

use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Stamp;

use crate::ring::{Divisor, TaggedCounter, Ticker, WindowError, check_shape};

pub use self::sample::{MAX_SAMPLE_SHIFT, TIMED_PER_SECOND, sample_shift, sample_weight};

/// The largest latency told apart from others; longer ones are counted as this.
pub const MAX_TRACKED: Duration = Duration::from_micros(bins::MAX_MICROS);

/// The bound on a quantile's relative error (for samples of 64µs and more).
pub const RELATIVE_ERROR: f64 = 1.0 / 64.0;

/// A lock-free sliding-window latency histogram answering quantile queries.
///
/// See the [module docs](self) for accuracy, memory and the window's semantics.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::quantile::LatencyQuantiles;
///
/// let latencies = LatencyQuantiles::new(Duration::from_millis(500), 20).unwrap();
/// assert_eq!(latencies.window(), Duration::from_secs(10));
/// assert_eq!(latencies.memory_bytes(), 21 * 896 * 8);
/// ```
#[derive(Debug)]
pub struct LatencyQuantiles {
    ticker: Ticker,
    bucket_width: Duration,
    buckets: u32,
    /// `bins::BINS` counters per bucket, bucket after bucket.
    bins: Box<[TaggedCounter]>,
    /// Divides epochs by the number of slots.
    slots: Divisor,
}

impl LatencyQuantiles {
    /// A window of `buckets` buckets of `bucket_width` each, starting now (tokio's clock).
    ///
    /// # Errors
    ///
    /// [`WindowError`] when `buckets` is 0 or above [`MAX_BUCKETS`](crate::window::MAX_BUCKETS),
    /// or `bucket_width` is below [`MIN_BUCKET_WIDTH`](crate::window::MIN_BUCKET_WIDTH).
    pub fn new(bucket_width: Duration, buckets: u32) -> Result<Self, WindowError> {
        Self::starting(Instant::now(), bucket_width, buckets)
    }

    /// A window whose first bucket starts at `origin`.
    pub(crate) fn starting(
        origin: Instant,
        bucket_width: Duration,
        buckets: u32,
    ) -> Result<Self, WindowError> {
        check_shape(bucket_width, buckets)?;
        let slots = buckets as usize + 1;
        Ok(Self {
            ticker: Ticker::new(origin, bucket_width),
            bucket_width,
            buckets,
            bins: (0..slots * bins::BINS)
                .map(|_| TaggedCounter::default())
                .collect(),
            slots: Divisor::new(slots as u64),
        })
    }

    /// Records one latency at `now`.
    ///
    /// A record whose `now` is a whole window older than one already made is dropped.
    pub fn record(&self, now: impl Into<Stamp>, latency: Duration) {
        self.record_at(self.ticker.since(now), latency, 1);
    }

    /// Records `n` latencies of the same value at `now`: one timed response standing for `n`
    /// (see [`sample_shift`]). `n = 0` records nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::quantile::LatencyQuantiles;
    /// use tokio::time::Instant;
    ///
    /// let latencies = LatencyQuantiles::new(Duration::from_secs(1), 1).unwrap();
    /// let start = Instant::now();
    /// latencies.record_weighted(start, Duration::from_millis(3), 8);
    /// assert_eq!(latencies.count(start + Duration::from_secs(1)), 8);
    /// ```
    pub fn record_weighted(&self, now: impl Into<Stamp>, latency: Duration, n: u32) {
        if n > 0 {
            self.record_at(self.ticker.since(now), latency, n);
        }
    }

    /// Records `n` latencies of the same value `nanos` after the origin.
    pub(crate) fn record_at(&self, nanos: u64, latency: Duration, n: u32) {
        let epoch = self.ticker.epoch_at(nanos);
        let slot = self.slot(epoch);
        // Each bin carries its own epoch tag: no per-bucket total to keep in step.
        self.bins[slot * bins::BINS + bins::index(latency)].add(epoch, n);
    }

    /// The number of latencies in the last full window.
    #[must_use]
    pub fn count(&self, now: impl Into<Stamp>) -> u64 {
        self.epochs(now)
            .map(|epoch| {
                let bins = self.bucket(epoch).iter();
                bins.map(|c| u64::from(c.get(epoch))).sum::<u64>()
            })
            .sum()
    }

    /// The `q` quantile (`0.0..=1.0`; `0.5` is the median) of the last full window, or `None`
    /// when it holds no sample or `q` is NaN. `q` outside `0..=1` is clamped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::quantile::LatencyQuantiles;
    /// use tokio::time::Instant;
    ///
    /// let latencies = LatencyQuantiles::new(Duration::from_secs(1), 5).unwrap();
    /// let now = Instant::now();
    /// latencies.record(now, Duration::from_micros(10));
    /// let later = now + Duration::from_secs(1);
    /// assert_eq!(latencies.quantile(later, 1.0), Some(Duration::from_nanos(10_500)));
    /// assert_eq!(latencies.quantile(later, f64::NAN), None);
    /// ```
    #[must_use]
    pub fn quantile(&self, now: impl Into<Stamp>, q: f64) -> Option<Duration> {
        let [value] = self.quantiles(now, [q]);
        value
    }

    /// Several quantiles from one pass over the window, in the order asked.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::quantile::LatencyQuantiles;
    /// use tokio::time::Instant;
    ///
    /// let latencies = LatencyQuantiles::new(Duration::from_secs(1), 5).unwrap();
    /// let now = Instant::now();
    /// latencies.record(now, Duration::from_millis(2));
    /// let [p50, p99] = latencies.quantiles(now + Duration::from_secs(1), [0.5, 0.99]);
    /// assert_eq!(p50, p99);
    /// ```
    #[must_use]
    pub fn quantiles<const N: usize>(
        &self,
        now: impl Into<Stamp>,
        qs: [f64; N],
    ) -> [Option<Duration>; N] {
        self.counted_quantiles(now, qs).1
    }

    /// The number of samples in the last full window ([`count`](Self::count)) and several
    /// quantiles ([`quantiles`](Self::quantiles)), from the same single pass over the window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::quantile::LatencyQuantiles;
    /// use tokio::time::Instant;
    ///
    /// let latencies = LatencyQuantiles::new(Duration::from_secs(1), 5).unwrap();
    /// let now = Instant::now();
    /// latencies.record(now, Duration::from_millis(2));
    /// latencies.record(now, Duration::from_millis(2));
    /// let later = now + Duration::from_secs(1);
    /// let (count, [p95]) = latencies.counted_quantiles(later, [0.95]);
    /// assert_eq!(count, latencies.count(later));
    /// assert_eq!(count, 2);
    /// assert_eq!(p95, latencies.quantile(later, 0.95));
    /// ```
    #[must_use]
    pub fn counted_quantiles<const N: usize>(
        &self,
        now: impl Into<Stamp>,
        qs: [f64; N],
    ) -> (u64, [Option<Duration>; N]) {
        let mut merged = [0u64; bins::BINS];
        for epoch in self.epochs(now) {
            for (sum, counter) in merged.iter_mut().zip(self.bucket(epoch)) {
                *sum += u64::from(counter.get(epoch));
            }
        }
        let total: u64 = merged.iter().sum();
        let values = qs.map(|q| {
            if total == 0 || q.is_nan() {
                return None;
            }
            let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            merged
                .iter()
                .position(|count| {
                    seen += count;
                    seen >= rank
                })
                .map(bins::midpoint)
        });
        (total, values)
    }

    /// The span the quantiles cover: `bucket_width × buckets`.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.bucket_width * self.buckets
    }

    /// The heap memory of this estimator, in bytes.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.bins.len() * size_of::<TaggedCounter>()
    }

    fn epochs(&self, now: impl Into<Stamp>) -> std::ops::Range<u64> {
        let current = self.ticker.epoch(now);
        current.saturating_sub(u64::from(self.buckets))..current
    }

    fn slot(&self, epoch: u64) -> usize {
        self.slots.div_rem(epoch).1 as usize
    }

    /// The bins of `epoch`'s slot (holding `epoch` or another one: readers check the tags).
    fn bucket(&self, epoch: u64) -> &[TaggedCounter] {
        let slot = self.slot(epoch);
        &self.bins[slot * bins::BINS..(slot + 1) * bins::BINS]
    }
}

#[cfg(test)]
mod tests;
