//! The stride of a latency sample: how many responses of a busy stream one timed latency
//! stands for.
//!
//! Recording a latency into shared quantiles is an atomic add on a bin that every worker
//! thread writes (a steady latency lands in the same bin), and timing a response reads the fine
//! clock twice. A stream of more than [`TIMED_PER_SECOND`]` · 2` responses a second does not
//! need every latency for its quantiles: it times one response in 2, 4, 8 or at most 16
//! ([`MAX_SAMPLE_SHIFT`]), chosen at random, and records each timed latency as many times as
//! the responses it stands for ([`LatencyQuantiles::record_weighted`]), so that the quantiles
//! still estimate every response's.
//!
//! [`LatencyQuantiles::record_weighted`]: super::LatencyQuantiles::record_weighted

use std::time::Duration;

/// Timed responses a second that a busy stream keeps (at least; up to twice as many).
pub const TIMED_PER_SECOND: u64 = 1_280;

/// The largest stride is `1 << MAX_SAMPLE_SHIFT` (16).
pub const MAX_SAMPLE_SHIFT: u8 = 4;

/// `log2` of the largest power-of-two stride (at most `1 << MAX_SAMPLE_SHIFT`) that still times
/// [`TIMED_PER_SECOND`] responses a second at the rate of `requests` in `tick`.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::quantile::sample_shift;
///
/// let second = Duration::from_secs(1);
/// assert_eq!(sample_shift(2_000, second), 0, "every response is timed");
/// assert_eq!(sample_shift(5_120, second), 2, "one in 4");
/// assert_eq!(sample_shift(u64::MAX, second), 4, "one in 16 at most");
/// ```
#[must_use]
pub fn sample_shift(requests: u64, tick: Duration) -> u8 {
    let per_second = u128::from(requests) * 1_000_000_000 / tick.as_nanos().max(1);
    let stride = per_second / u128::from(TIMED_PER_SECOND);
    if stride < 2 {
        return 0;
    }
    // `stride` ≥ 2, so its highest bit is at 1 or above.
    let shift = 127 - stride.leading_zeros();
    u8::try_from(shift.min(u32::from(MAX_SAMPLE_SHIFT))).unwrap_or(0)
}

/// How many responses one response stands for at stride `1 << shift`, given a `random` draw:
/// 1 when every response is timed (`shift` 0), the stride for the one response in the stride
/// whose draw's low bits are all zero, 0 for the others (not timed).
///
/// ```
/// use fluxgate_core::quantile::sample_weight;
///
/// assert_eq!(sample_weight(0, 7), 1);
/// assert_eq!(sample_weight(2, 8), 4, "low two bits zero: timed, for four");
/// assert_eq!(sample_weight(2, 9), 0);
/// ```
#[inline]
#[must_use]
pub fn sample_weight(shift: u8, random: u64) -> u32 {
    if shift == 0 {
        return 1;
    }
    let stride = 1u32 << shift.min(MAX_SAMPLE_SHIFT);
    if random & u64::from(stride - 1) == 0 {
        stride
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_stream_times_about_1280_responses_a_second() {
        let tick = Duration::from_millis(200);
        // Responses in a 200ms tick → stride.
        for (requests, stride) in [
            (0, 1),
            (511, 1),
            (512, 2),
            (1_023, 2),
            (1_024, 4),
            (2_048, 8),
            (4_096, 16),
            (u64::MAX, 16),
        ] {
            assert_eq!(1u32 << sample_shift(requests, tick), stride, "{requests}");
        }
        // The same rate over another tick width gives the same stride.
        assert_eq!(sample_shift(5_120, Duration::from_secs(1)), 2);
        assert_eq!(sample_shift(0, Duration::ZERO), 0);
    }
}
