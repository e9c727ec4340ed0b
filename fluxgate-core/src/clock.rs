//! [`Stamp`]: a point on tokio's clock as a number, taken once per request and shared by every
//! window, average and latency the request is counted in.
//!
//! Turning a [`tokio::time::Instant`] into an offset is a subtraction of two `timespec`s with
//! a carry and the checks around it (about 130 instructions with the read); a request that is
//! counted in five windows and two averages paid it seven times. A `Stamp` pays it once: after that, offsets and latencies are integer
//! subtractions. Every function of this crate that takes a time accepts either (`impl
//! Into<Stamp>`), so tests keep passing `Instant`s.
//!
//! # Which clock
//!
//! Stamps are on the timeline of [`tokio::time::Instant`] (`CLOCK_MONOTONIC` on Linux), so they
//! mix with the `Instant`s of timers and windows. [`Stamp::now`] reads it in one of two ways:
//!
//! - on Linux, without this crate's `test-util` feature: `CLOCK_MONOTONIC` directly (glibc's
//!   `clock_gettime`, through the vDSO), as integer nanoseconds, without that conversion: the
//!   request path reads the clock several times per request;
//! - with the `test-util` feature, or off Linux: [`tokio::time::Instant::now`], which follows
//!   tokio's paused clock. **Tests that pause time around FluxGate's layers need this feature**
//!   (it turns on `tokio/test-util` too); without it the layers would keep reading the real
//!   clock while the test's timers run on the paused one.
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::clock::Stamp;
//! use tokio::time::Instant;
//!
//! let start = Instant::now();
//! let a = Stamp::from(start);
//! let b = Stamp::from(start + Duration::from_millis(3));
//! assert_eq!(b.saturating_since(a), Duration::from_millis(3));
//! assert_eq!(a.saturating_since(b), Duration::ZERO);
//! assert_eq!(a + Duration::from_millis(3), b);
//! ```

use std::ops::Add;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// How far before the first stamp the origin lies, so that instants computed a little in the
/// past (a test's `start - 1s`) still have distinct stamps.
const LEAD: Duration = Duration::from_secs(400 * 24 * 3600);

/// Nanoseconds on tokio's clock since a process-wide origin (more than a year before the first
/// stamp was taken). Copy, ordered, 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp(u64);

/// The process-wide origin, as an `Instant` and (on Linux) as what to add to a
/// `CLOCK_MONOTONIC` reading in nanoseconds to make it a stamp: the origin lies before the
/// machine booted, so that is `lead − reading at the origin's read`, modulo 2⁶⁴. The clock and
/// the `Instant` are read one after the other, so they may disagree by the time between the
/// reads (well under a microsecond): a stamp read directly and one converted from an `Instant`
/// of the same moment differ by that much at most.
#[derive(Debug)]
struct Origin {
    instant: Instant,
    #[cfg(target_os = "linux")]
    #[cfg_attr(feature = "test-util", allow(dead_code))]
    offset: u64,
}

#[inline]
fn origin() -> &'static Origin {
    static ORIGIN: OnceLock<Origin> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        #[cfg(target_os = "linux")]
        let raw = monotonic_nanos();
        // The real clock even when tokio's is paused (a paused clock starts from the real one):
        // the origin pairs it with `raw`, whichever test takes the first stamp.
        #[allow(clippy::disallowed_types)]
        let now = Instant::from_std(std::time::Instant::now());
        let instant = now
            .checked_sub(LEAD)
            .or_else(|| now.checked_sub(Duration::from_secs(24 * 3600)))
            .unwrap_or(now);
        Origin {
            instant,
            #[cfg(target_os = "linux")]
            offset: nanos_of(now.saturating_duration_since(instant)).wrapping_sub(raw),
        }
    })
}

fn nanos_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A stamp read from `CLOCK_MONOTONIC` directly (the clock is read after the origin, so the
/// wrapping sum is the true, positive offset from the origin).
#[cfg(target_os = "linux")]
#[cfg_attr(feature = "test-util", allow(dead_code))]
#[inline]
fn direct() -> u64 {
    let origin = origin();
    monotonic_nanos().wrapping_add(origin.offset)
}

/// `CLOCK_MONOTONIC` (the clock of std's and tokio's `Instant` on Linux) in nanoseconds.
#[cfg(target_os = "linux")]
#[inline]
fn monotonic_nanos() -> u64 {
    nanos_on(rustix::time::ClockId::Monotonic)
}

/// A reading of `clock` in nanoseconds.
#[cfg(target_os = "linux")]
#[inline]
fn nanos_on(clock: rustix::time::ClockId) -> u64 {
    let now = rustix::time::clock_gettime(clock);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

impl Stamp {
    /// Now, on tokio's clock: read directly on Linux, or from tokio's (paused) clock with the
    /// `test-util` feature (see [the module docs](self)).
    ///
    /// ```
    /// use fluxgate_core::clock::Stamp;
    ///
    /// let a = Stamp::now();
    /// assert!(Stamp::now() >= a);
    /// ```
    #[must_use]
    #[inline]
    pub fn now() -> Self {
        #[cfg(all(target_os = "linux", not(feature = "test-util")))]
        let now = Self(direct());
        #[cfg(not(all(target_os = "linux", not(feature = "test-util"))))]
        let now = Self::from(Instant::now());
        now
    }

    /// Now, at the resolution of the kernel's tick: on Linux (without the `test-util`
    /// feature) `CLOCK_MONOTONIC_COARSE`, the same timeline as [`Stamp::now`] but updated once
    /// per tick (1 to 10 ms, 4 ms on most kernels), so it lags `now` by up to one tick; it
    /// costs a quarter of a `now` read (5 ns against 22 on a 2-core EPYC VM). Elsewhere, and
    /// with `test-util`, the same as `now`.
    ///
    /// For placing a count in a bucket tens of milliseconds wide or more, **not** for
    /// latencies: the difference of two coarse stamps is a multiple of the tick.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::clock::Stamp;
    ///
    /// let fine = Stamp::now();
    /// let coarse = Stamp::coarse();
    /// // A tick behind at most (10 ms on the slowest kernels).
    /// assert!(coarse + Duration::from_millis(10) >= fine);
    /// ```
    #[must_use]
    #[inline]
    pub fn coarse() -> Self {
        #[cfg(all(target_os = "linux", not(feature = "test-util")))]
        let now =
            Self(nanos_on(rustix::time::ClockId::MonotonicCoarse).wrapping_add(origin().offset));
        #[cfg(not(all(target_os = "linux", not(feature = "test-util"))))]
        let now = Self::now();
        now
    }

    /// Nanoseconds since the process-wide origin.
    ///
    /// ```
    /// use fluxgate_core::clock::Stamp;
    ///
    /// assert!(Stamp::now().nanos() > 0);
    /// ```
    #[must_use]
    #[inline]
    pub fn nanos(self) -> u64 {
        self.0
    }

    /// Nanoseconds from `earlier` to `self`, 0 when `earlier` is later.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::clock::Stamp;
    ///
    /// let a = Stamp::now();
    /// assert_eq!((a + Duration::from_nanos(7)).nanos_since(a), 7);
    /// ```
    #[must_use]
    #[inline]
    pub fn nanos_since(self, earlier: Stamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The time from `earlier` to `self`, zero when `earlier` is later.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::clock::Stamp;
    ///
    /// let a = Stamp::now();
    /// assert_eq!((a + Duration::from_secs(2)).saturating_since(a), Duration::from_secs(2));
    /// ```
    #[must_use]
    #[inline]
    pub fn saturating_since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.nanos_since(earlier))
    }
}

impl From<Instant> for Stamp {
    fn from(instant: Instant) -> Self {
        Self(nanos_of(
            instant.saturating_duration_since(origin().instant),
        ))
    }
}

impl Add<Duration> for Stamp {
    type Output = Stamp;

    fn add(self, rhs: Duration) -> Stamp {
        Stamp(self.0.saturating_add(nanos_of(rhs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let a = Stamp::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(Stamp::now().saturating_since(a), Duration::from_secs(5));
    }

    /// The direct read is on the timeline of `Instant`: between the stamps of two instants read
    /// around it (give or take the origin's two reads, well under a millisecond).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_direct_read_is_on_the_instants_timeline() {
        const SLACK: u64 = 1_000_000;
        for _ in 0..1_000 {
            let before = Stamp::from(Instant::now());
            let direct = direct();
            let after = Stamp::from(Instant::now());
            assert!(before.nanos() <= direct + SLACK, "{before:?} {direct}");
            assert!(direct <= after.nanos() + SLACK, "{direct} {after:?}");
        }
        let a = monotonic_nanos();
        assert!(monotonic_nanos() >= a, "monotonic");
    }

    /// The coarse read is on the same timeline, at most a tick (10 ms at the slowest) behind.
    #[test]
    fn the_coarse_read_is_at_most_a_tick_behind() {
        const TICK: u64 = 10_000_000;
        for _ in 0..1_000 {
            let before = Stamp::now();
            let coarse = Stamp::coarse();
            let after = Stamp::now();
            assert!(
                coarse.nanos() <= after.nanos(),
                "{coarse:?} after {after:?}"
            );
            assert!(
                coarse.nanos() + TICK >= before.nanos(),
                "{coarse:?} {before:?}"
            );
        }
    }

    #[test]
    fn instants_before_the_first_stamp_are_distinct() {
        let now = Instant::now();
        let _ = Stamp::from(now);
        let past = Stamp::from(now - Duration::from_secs(3600));
        assert_eq!(
            Stamp::from(now).saturating_since(past),
            Duration::from_secs(3600)
        );
    }
}
