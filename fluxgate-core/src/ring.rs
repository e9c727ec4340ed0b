//! Time slots and epoch-tagged counters shared by [`TimeWindow`](crate::window::TimeWindow) and
//! [`LatencyQuantiles`](crate::quantile::LatencyQuantiles).
//!
//! Time is cut into epochs of one bucket width since an origin. A ring of `buckets + 1` slots holds
//! the current epoch and the `buckets` completed ones; epoch `e` lives in slot `e % (buckets + 1)`.
//! Every counter carries the epoch it counts for in its high 32 bits and the count in its low 32
//! bits, so a slot is never reset eagerly: a write for a newer epoch replaces the whole word in one
//! compare-and-swap, and a read ignores words tagged with another epoch. There is no reset race to
//! lose counts in: an increment and a reset are the same atomic operation. A write to a word that
//! already holds its epoch is a single `fetch_add`; only the first write of an epoch (and a
//! count near saturation) takes the compare-and-swap loop.
//!
//! The divisions of the write path (instant to epoch, epoch to slot) are by constants fixed at
//! construction, so they are done as a multiplication by a precomputed reciprocal ([`Divisor`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Stamp;

/// The most buckets a window may have.
pub const MAX_BUCKETS: u32 = 3_600;

/// The shortest bucket width.
pub const MIN_BUCKET_WIDTH: Duration = Duration::from_millis(1);

/// Why a window cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// A window needs at least one bucket.
    #[error("a window needs at least one bucket")]
    NoBuckets,
    /// More than [`MAX_BUCKETS`] buckets.
    #[error("{0} buckets is more than the maximum of {MAX_BUCKETS}")]
    TooManyBuckets(u32),
    /// A bucket shorter than [`MIN_BUCKET_WIDTH`].
    #[error("a bucket width of {0:?} is shorter than the minimum of 1ms")]
    BucketTooShort(Duration),
}

/// Checks a window's shape; shared by [`TimeWindow`](crate::window::TimeWindow) and
/// [`LatencyQuantiles`](crate::quantile::LatencyQuantiles).
pub(crate) fn check_shape(bucket_width: Duration, buckets: u32) -> Result<(), WindowError> {
    if buckets == 0 {
        return Err(WindowError::NoBuckets);
    }
    if buckets > MAX_BUCKETS {
        return Err(WindowError::TooManyBuckets(buckets));
    }
    if bucket_width < MIN_BUCKET_WIDTH {
        return Err(WindowError::BucketTooShort(bucket_width));
    }
    Ok(())
}

/// How far ahead (in epochs) a tag may be before it counts as a stale, wrapped-around value.
const AHEAD_LIMIT: u32 = 1 << 16;

/// Counts at or above this take the compare-and-swap path, so that a `fetch_add` can never carry
/// into the tag (that would take 2³¹ concurrent units between two instructions of one thread).
const FAST_LIMIT: u32 = 1 << 31;

/// Division by a constant `d ≥ 1` as a multiplication: `m = ⌊(2⁶⁴ − 1) / d⌋` gives a quotient
/// estimate `⌊n·m / 2⁶⁴⌋` that is exact or one short, fixed with one compare.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Divisor {
    d: u64,
    m: u64,
}

impl Divisor {
    pub(crate) fn new(d: u64) -> Self {
        let d = d.max(1);
        Self { d, m: u64::MAX / d }
    }

    /// `(n / d, n % d)`.
    #[inline]
    pub(crate) fn div_rem(self, n: u64) -> (u64, u64) {
        let q = ((u128::from(n) * u128::from(self.m)) >> 64) as u64;
        // n·m/2⁶⁴ > n/d − 1, so q is the quotient or one below it.
        let r = n - q * self.d;
        if r >= self.d {
            (q + 1, r - self.d)
        } else {
            (q, r)
        }
    }
}

/// Turns instants into epoch numbers: whole bucket widths since an origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticker {
    origin: Stamp,
    width: Divisor,
}

impl Ticker {
    /// A ticker whose epoch 0 starts at `origin`; `width` must be at least one nanosecond.
    pub(crate) fn new(origin: impl Into<Stamp>, width: Duration) -> Self {
        let width_nanos = u64::try_from(width.as_nanos()).unwrap_or(u64::MAX);
        Self {
            origin: origin.into(),
            width: Divisor::new(width_nanos),
        }
    }

    /// The epoch that `now` falls in; instants before the origin fall in epoch 0.
    pub(crate) fn epoch(&self, now: impl Into<Stamp>) -> u64 {
        self.epoch_at(self.since(now))
    }

    /// Nanoseconds from the origin to `now` (0 before it), saturating.
    #[inline]
    pub(crate) fn since(&self, now: impl Into<Stamp>) -> u64 {
        now.into().nanos_since(self.origin)
    }

    /// The epoch of the instant `nanos` after the origin.
    #[inline]
    pub(crate) fn epoch_at(&self, nanos: u64) -> u64 {
        self.width.div_rem(nanos).0
    }

    /// The instant epoch 0 starts at.
    #[cfg(test)]
    pub(crate) fn origin_for_tests(&self) -> Stamp {
        self.origin
    }
}

/// A count for one epoch, packed with that epoch's low 32 bits into one atomic word.
#[derive(Debug, Default)]
pub(crate) struct TaggedCounter(AtomicU64);

impl TaggedCounter {
    /// Adds `n` to the count of `epoch`, replacing a count of an older epoch.
    ///
    /// Returns `false`, and counts nothing, when the counter already holds a newer epoch: the
    /// caller's `now` is a full ring older than another caller's, and its sample is dropped rather
    /// than allowed to erase newer counts. Counts saturate at `u32::MAX`.
    #[inline]
    pub(crate) fn add(&self, epoch: u64, n: u32) -> bool {
        let tag = epoch as u32;
        let current = self.0.load(Ordering::Relaxed);
        let (held, count) = unpack(current);
        if held == tag && count < FAST_LIMIT && n < FAST_LIMIT {
            let before = self.0.fetch_add(u64::from(n), Ordering::Relaxed);
            let (held_before, _) = unpack(before);
            if held_before == tag {
                return true;
            }
            // Another epoch took the word between the load and the add (this thread stalled for
            // a whole ring): take the units back from it, then decide as if they were never added.
            self.take_back(held_before, n);
            return self.add_slow(tag, n, self.0.load(Ordering::Relaxed));
        }
        self.add_slow(tag, n, current)
    }

    fn add_slow(&self, tag: u32, n: u32, mut current: u64) -> bool {
        loop {
            let (held, count) = unpack(current);
            let next = if held == tag {
                pack(tag, count.saturating_add(n))
            } else if count != 0 && held.wrapping_sub(tag).wrapping_sub(1) < AHEAD_LIMIT {
                return false;
            } else {
                pack(tag, n)
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Removes `n` units wrongly added to the count of `tag`, unless the word has moved on to
    /// another epoch since (which erased them already).
    fn take_back(&self, tag: u32, n: u32) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let (held, count) = unpack(word);
                (held == tag).then(|| pack(tag, count.saturating_sub(n)))
            });
    }

    /// The count of `epoch`, or 0 when the counter holds another epoch.
    #[inline]
    pub(crate) fn get(&self, epoch: u64) -> u32 {
        let (held, count) = unpack(self.0.load(Ordering::Relaxed));
        if held == epoch as u32 { count } else { 0 }
    }
}

fn pack(tag: u32, count: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(count)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_replace_older_epochs_and_refuse_newer() {
        let counter = TaggedCounter::default();
        assert!(counter.add(7, 2));
        assert!(counter.add(7, 1));
        assert_eq!(counter.get(7), 3);
        assert_eq!(counter.get(8), 0);
        assert!(counter.add(10, 1));
        assert_eq!((counter.get(7), counter.get(10)), (0, 1));
        assert!(
            !counter.add(7, 1),
            "an older epoch must not erase a newer one"
        );
        assert_eq!(counter.get(10), 1);
    }

    #[test]
    fn epochs_wrap_without_refusing_writes() {
        let counter = TaggedCounter::default();
        assert!(counter.add(u64::from(u32::MAX), 1));
        assert!(counter.add(1 << 32, 4));
        assert_eq!(counter.get(1 << 32), 4);
        assert!(
            counter.add((1 << 31) + 5, 1),
            "a tag far ahead is a stale, wrapped one"
        );
    }

    #[test]
    fn divisor_matches_division() {
        let ds = [
            1,
            2,
            3,
            7,
            10,
            1_000,
            999_999_937,
            1 << 32,
            u64::MAX / 3,
            u64::MAX,
        ];
        let ns = [0, 1, 2, 6, 7, 1 << 40, u64::MAX / 2, u64::MAX - 1, u64::MAX];
        for d in ds {
            for n in ns
                .into_iter()
                .chain([d - 1, d, d.saturating_add(1), d.saturating_mul(2)])
            {
                assert_eq!(Divisor::new(d).div_rem(n), (n / d, n % d), "{n} / {d}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn divisor_matches_division_everywhere(n: u64, d in 1u64..) {
            proptest::prop_assert_eq!(Divisor::new(d).div_rem(n), (n / d, n % d));
        }
    }

    #[test]
    fn counts_saturate() {
        let counter = TaggedCounter::default();
        assert!(counter.add(1, u32::MAX));
        assert!(counter.add(1, 5));
        assert_eq!(counter.get(1), u32::MAX);
    }
}
