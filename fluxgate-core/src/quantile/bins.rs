//! The log-linear bins of [`LatencyQuantiles`](super::LatencyQuantiles), in whole microseconds.
//!
//! Values below 64µs get one bin per microsecond. Above, each power of two `[2^k, 2^(k+1))` is
//! cut into 32 equal bins of width `2^(k-5)`, so a bin is never wider than 1/32 of its lower
//! bound, and its midpoint is within 1/64 of any value in it.

use std::time::Duration;

/// Bins below this value are one microsecond wide.
const LINEAR: u64 = 64;
/// Bins per power of two above [`LINEAR`].
const PER_OCTAVE: u64 = 32;
/// The largest tracked value, in microseconds; larger ones are clamped to it.
pub(super) const MAX_MICROS: u64 = (1 << 32) - 1;
/// Number of bins: 64 linear ones, then 26 octaves (2^6 .. 2^32) of 32.
pub(super) const BINS: usize = 896;

/// The bin of a latency.
pub(super) fn index(latency: Duration) -> usize {
    let micros = u64::try_from(latency.as_micros()).map_or(MAX_MICROS, |m| m.min(MAX_MICROS));
    if micros < LINEAR {
        return micros as usize;
    }
    let shift = u64::from(63 - micros.leading_zeros()) - 5;
    let mantissa = micros >> shift;
    (LINEAR + (shift - 1) * PER_OCTAVE + (mantissa - PER_OCTAVE)) as usize
}

/// The midpoint of a bin, the value a quantile in it is reported as.
pub(super) fn midpoint(index: usize) -> Duration {
    let index = index as u64;
    let (low, width) = if index < LINEAR {
        (index, 1)
    } else {
        let above = index - LINEAR;
        let shift = above / PER_OCTAVE + 1;
        ((PER_OCTAVE + above % PER_OCTAVE) << shift, 1 << shift)
    };
    Duration::from_nanos(low * 1_000 + width * 500)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn covers_the_range_without_gaps() {
        assert_eq!(index(Duration::ZERO), 0);
        assert_eq!(index(Duration::from_nanos(999)), 0);
        assert_eq!(index(Duration::from_micros(63)), 63);
        assert_eq!(index(Duration::from_micros(64)), 64);
        assert_eq!(index(Duration::from_micros(MAX_MICROS)), BINS - 1);
        assert_eq!(index(Duration::from_secs(86_400)), BINS - 1);
        for bin in 0..BINS {
            assert_eq!(
                index(midpoint(bin)),
                bin,
                "bin {bin} is not where its midpoint falls"
            );
        }
        let mut previous = 0;
        for micros in 0..1 << 16 {
            let bin = index(Duration::from_micros(micros));
            assert!(bin == previous || bin == previous + 1, "gap at {micros}µs");
            previous = bin;
        }
    }

    proptest! {
        #[test]
        fn midpoint_is_within_the_bound(nanos in 0u64..MAX_MICROS * 1_000) {
            let value = Duration::from_nanos(nanos);
            let mid = midpoint(index(value));
            let error = mid.abs_diff(value).as_secs_f64();
            let bound = (value.as_secs_f64() / 64.0).max(0.5e-6);
            prop_assert!(error <= bound * (1.0 + 1e-9), "{value:?} -> {mid:?}");
        }
    }
}
