//! [`Stamp`]: a point on tokio's clock as a number, taken once per request and shared by every
//! window, average and latency the request is counted in.
//!
//! Turning a [`tokio::time::Instant`] into an offset is a subtraction of two `timespec`s with
//! a carry (about 50 instructions); a request that is counted in five windows and two averages
//! paid it seven times. A `Stamp` pays it once: after that, offsets and latencies are integer
//! subtractions. Every function of this crate that takes a time accepts either (`impl
//! Into<Stamp>`), so tests keep passing `Instant`s, and tokio's paused clock is honoured (a
//! stamp is read from tokio's clock).
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

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(LEAD)
            .or_else(|| now.checked_sub(Duration::from_secs(24 * 3600)))
            .unwrap_or(now)
    })
}

impl Stamp {
    /// Now, on tokio's clock (paused in tests that pause it).
    ///
    /// ```
    /// use fluxgate_core::clock::Stamp;
    ///
    /// let a = Stamp::now();
    /// assert!(Stamp::now() >= a);
    /// ```
    #[must_use]
    pub fn now() -> Self {
        Self::from(Instant::now())
    }

    /// Nanoseconds since the process-wide origin.
    ///
    /// ```
    /// use fluxgate_core::clock::Stamp;
    ///
    /// assert!(Stamp::now().nanos() > 0);
    /// ```
    #[must_use]
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
    pub fn saturating_since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.nanos_since(earlier))
    }
}

impl From<Instant> for Stamp {
    fn from(instant: Instant) -> Self {
        let since = instant.saturating_duration_since(origin());
        Self(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Add<Duration> for Stamp {
    type Output = Stamp;

    fn add(self, rhs: Duration) -> Stamp {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Stamp(self.0.saturating_add(nanos))
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
