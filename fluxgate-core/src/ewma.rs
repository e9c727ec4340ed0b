//! An exponentially weighted moving average that decays with time and is read with one load.
//!
//! Use an [`Ewma`] for a smoothed signal read on the hot path: an endpoint's latency for P2C
//! selection ([`Ewma::update_peak`]), a smoothed error rate for adaptive weights.
//!
//! # Semantics
//!
//! - Before the first sample, [`Ewma::get`] is `None`. The first sample becomes the value as is.
//! - Each later sample `x` at `now` moves the value `v` to `v·w + x·(1 − w)` with
//!   `w = exp(−Δt/τ)`, where `Δt` is the time since the newest update so far and
//!   `τ = half_life / ln 2`: after one half-life without samples, a new sample carries half the
//!   weight. The value is thus a time-weighted average in which each sample stands for the
//!   interval since the sample before it; a sample with `Δt = 0` (the same instant as the
//!   previous update, or an instant before it) carries no weight.
//! - Reads do not decay: the value stays where the last update left it, however long ago.
//! - Non-finite samples (NaN, ±∞) are ignored.
//!
//! # Concurrency
//!
//! The value is an `f64` in an `AtomicU64`, the time of the newest update another one. An update
//! first claims the interval since the newest update with one `fetch_max` on the time, then folds
//! its sample in with a compare-and-swap loop. Concurrent updates claim disjoint intervals, so the
//! total decay applied is exact; only the order in which their samples are folded in is decided by
//! the race. [`Ewma::get`] is one atomic load.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::ewma::Ewma;
//! use tokio::time::Instant;
//!
//! let ewma = Ewma::new(Duration::from_secs(1)).unwrap();
//! assert_eq!(ewma.get(), None);
//! let start = Instant::now();
//! ewma.update(start, 100.0);
//! assert_eq!(ewma.get(), Some(100.0));
//! // One half-life later, a sample of 0 takes half the weight.
//! ewma.update(start + Duration::from_secs(1), 0.0);
//! assert!((ewma.get().unwrap() - 50.0).abs() < 1e-9);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Stamp;

/// The bit pattern of "no sample yet": a NaN that no arithmetic here produces.
const EMPTY: u64 = f64::NAN.to_bits();

/// Why an [`Ewma`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EwmaError {
    /// The half-life is zero: every sample would replace the value outright.
    #[error("the half-life of a moving average must be longer than zero")]
    ZeroHalfLife,
}

/// A lock-free, time-decayed exponentially weighted moving average.
///
/// See the [module docs](self) for its exact semantics.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::ewma::Ewma;
///
/// let ewma = Ewma::new(Duration::from_millis(500)).unwrap();
/// assert_eq!(ewma.half_life(), Duration::from_millis(500));
/// assert!(Ewma::new(Duration::ZERO).is_err());
/// ```
#[derive(Debug)]
pub struct Ewma {
    value: AtomicU64,
    /// Nanoseconds from `origin` to the newest update.
    last: AtomicU64,
    origin: Stamp,
    half_life: Duration,
    /// `ln 2 / half_life`, per nanosecond.
    rate: f64,
}

impl Ewma {
    /// An empty average whose samples lose half their weight every `half_life`, starting now
    /// (tokio's clock).
    ///
    /// # Errors
    ///
    /// [`EwmaError::ZeroHalfLife`] for a zero half-life.
    pub fn new(half_life: Duration) -> Result<Self, EwmaError> {
        if half_life.is_zero() {
            return Err(EwmaError::ZeroHalfLife);
        }
        Ok(Self {
            value: AtomicU64::new(EMPTY),
            last: AtomicU64::new(0),
            origin: Stamp::now(),
            half_life,
            rate: std::f64::consts::LN_2 / half_life.as_nanos() as f64,
        })
    }

    /// Folds a sample taken at `now` into the average.
    pub fn update(&self, now: impl Into<Stamp>, sample: f64) {
        self.fold(now, sample, false);
    }

    /// Like [`update`](Self::update), except that a sample above the value replaces it at once:
    /// the "peak EWMA" of latency-aware balancing, quick to see a slowdown and slow to forget it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::ewma::Ewma;
    /// use tokio::time::Instant;
    ///
    /// let ewma = Ewma::new(Duration::from_secs(10)).unwrap();
    /// let now = Instant::now();
    /// ewma.update_peak(now, 5.0);
    /// ewma.update_peak(now + Duration::from_millis(1), 80.0);
    /// assert_eq!(ewma.get(), Some(80.0));
    /// ```
    pub fn update_peak(&self, now: impl Into<Stamp>, sample: f64) {
        self.fold(now, sample, true);
    }

    /// The current value, `None` before the first sample. One atomic load; no decay.
    #[must_use]
    pub fn get(&self) -> Option<f64> {
        let value = f64::from_bits(self.value.load(Ordering::Acquire));
        (!value.is_nan()).then_some(value)
    }

    /// The half-life the average was built with.
    #[must_use]
    pub fn half_life(&self) -> Duration {
        self.half_life
    }

    fn fold(&self, now: impl Into<Stamp>, sample: f64, peak: bool) {
        if !sample.is_finite() {
            return;
        }
        let at = now.into().nanos_since(self.origin);
        let previous = self.last.fetch_max(at, Ordering::AcqRel);
        let elapsed = at.saturating_sub(previous);
        let keep = decay(elapsed as f64 * self.rate);
        let mut current = self.value.load(Ordering::Acquire);
        loop {
            let value = f64::from_bits(current);
            let next = if value.is_nan() || (peak && sample > value) {
                sample
            } else {
                value * keep + sample * (1.0 - keep)
            };
            match self.value.compare_exchange_weak(
                current,
                next.to_bits(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

/// `exp(−x)` for `x ≥ 0`. Below 2⁻¹⁰ (a sample less than a thousandth of `τ` after the one
/// before it: every sample of a busy endpoint) the Taylor polynomial of degree 4, whose error
/// `x⁵/120` is below 2⁻⁵⁶, under the rounding of an `f64` near 1; `exp` from the C library (a
/// call of 10-20 ns) only for longer gaps.
fn decay(x: f64) -> f64 {
    if x < 1.0 / 1024.0 {
        1.0 - x * (1.0 - x * (0.5 - x * (1.0 / 6.0 - x * (1.0 / 24.0))))
    } else {
        (-x).exp()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn decay_is_exp() {
        let mut x = 0.0f64;
        while x < 40.0 {
            let exact = (-x).exp();
            assert!(
                (decay(x) - exact).abs() <= exact * 1e-15,
                "{x}: {} vs {exact}",
                decay(x)
            );
            x = x * 1.01 + 1e-9;
        }
        assert_eq!(decay(0.0), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn decays_by_half_life() {
        let ewma = Ewma::new(Duration::from_millis(100)).unwrap();
        ewma.update(Instant::now(), 0.0);
        tokio::time::advance(Duration::from_millis(200)).await;
        ewma.update(Instant::now(), 100.0);
        assert!((ewma.get().unwrap() - 75.0).abs() < 1e-9);
        // Same instant: no weight. Reads never decay.
        ewma.update(Instant::now(), 1_000.0);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!((ewma.get().unwrap() - 75.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn ignores_non_finite_samples_and_late_ones() {
        let ewma = Ewma::new(Duration::from_secs(1)).unwrap();
        ewma.update(Instant::now(), f64::NAN);
        assert_eq!(ewma.get(), None);
        let earlier = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        ewma.update(Instant::now(), 8.0);
        ewma.update(earlier, 1_000.0);
        ewma.update(Instant::now(), f64::INFINITY);
        assert_eq!(ewma.get(), Some(8.0));
    }

    #[test]
    fn concurrent_updates_stay_within_the_samples() {
        let ewma = Arc::new(Ewma::new(Duration::from_millis(1)).unwrap());
        let start = Instant::now();
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let ewma = Arc::clone(&ewma);
                std::thread::spawn(move || {
                    for i in 0..5_000u32 {
                        let at = start + Duration::from_micros(u64::from(i * 4 + t));
                        ewma.update(at, f64::from(10 + t));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let value = ewma.get().unwrap();
        assert!((10.0..=13.0).contains(&value), "{value}");
    }

    proptest! {
        /// With samples in time order, the average matches the closed form and stays within the
        /// range of the samples.
        #[test]
        fn matches_the_closed_form(samples in prop::collection::vec((0u64..5_000, 0.0f64..1e6), 1..50)) {
            let ewma = Ewma::new(Duration::from_millis(250)).unwrap();
            let tau = 250e6 / std::f64::consts::LN_2;
            let mut at = 0;
            let mut expected: Option<f64> = None;
            for &(step, x) in &samples {
                at += step * 1_000_000;
                ewma.update(ewma.origin + Duration::from_nanos(at), x);
                let keep = (-((step * 1_000_000) as f64) / tau).exp();
                expected = Some(expected.map_or(x, |v| v * keep + x * (1.0 - keep)));
            }
            let got = ewma.get().unwrap();
            let expected = expected.unwrap();
            prop_assert!((got - expected).abs() <= 1e-6 * expected.abs().max(1.0));
            let (lo, hi) = samples.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(s.1), hi.max(s.1)));
            prop_assert!(got >= lo - 1e-6 && got <= hi + 1e-6);
        }
    }
}
