//! Time slots and epoch-tagged counters shared by [`TimeWindow`](super::TimeWindow) and
//! [`LatencyQuantiles`](crate::quantile::LatencyQuantiles).
//!
//! Time is cut into epochs of one bucket width since an origin. A ring of `buckets + 1` slots holds
//! the current epoch and the `buckets` completed ones; epoch `e` lives in slot `e % (buckets + 1)`.
//! Every counter carries the epoch it counts for in its high 32 bits and the count in its low 32
//! bits, so a slot is never reset eagerly: a write for a newer epoch replaces the whole word in one
//! compare-and-swap, and a read ignores words tagged with another epoch. There is no reset race to
//! lose counts in: an increment and a reset are the same atomic operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead (in epochs) a tag may be before it counts as a stale, wrapped-around value.
const AHEAD_LIMIT: u32 = 1 << 16;

/// Turns instants into epoch numbers: whole bucket widths since an origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticker {
    origin: Instant,
    width_nanos: u64,
}

impl Ticker {
    /// A ticker whose epoch 0 starts at `origin`; `width` must be at least one nanosecond.
    pub(crate) fn new(origin: Instant, width: Duration) -> Self {
        let width_nanos = u64::try_from(width.as_nanos()).unwrap_or(u64::MAX).max(1);
        Self {
            origin,
            width_nanos,
        }
    }

    /// The epoch that `now` falls in; instants before the origin fall in epoch 0.
    pub(crate) fn epoch(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        let nanos = since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()));
        nanos / self.width_nanos
    }

    /// The instant epoch 0 starts at.
    #[cfg(test)]
    pub(crate) fn origin_for_tests(&self) -> Instant {
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
    pub(crate) fn add(&self, epoch: u64, n: u32) -> bool {
        let tag = epoch as u32;
        let mut current = self.0.load(Ordering::Relaxed);
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

    /// The count of `epoch`, or 0 when the counter holds another epoch.
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
    fn counts_saturate() {
        let counter = TaggedCounter::default();
        assert!(counter.add(1, u32::MAX));
        assert!(counter.add(1, 5));
        assert_eq!(counter.get(1), u32::MAX);
    }
}
