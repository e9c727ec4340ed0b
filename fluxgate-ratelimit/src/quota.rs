//! What `requestsPerSecond` and `burstSize` mean under each algorithm, and the sliding-window
//! arithmetic that the local store (and, with the same integers, the Redis store) applies.

use std::time::Duration;

use fluxgate_core::policy::LimitAlgorithm;

/// The largest count a sliding window holds; larger `burstSize`s are clamped to it.
pub const MAX_WINDOW_COUNT: u32 = (1 << 20) - 1;

/// A limit's rate and burst, with what each algorithm derives from them.
///
/// - **GCRA** (`gcra`): one request is allowed every `1 / requestsPerSecond` seconds (the
///   *emission interval*), and up to `burstSize` requests may arrive at once after an idle period.
///   An idle key regains one request of burst every emission interval.
/// - **Sliding window** (`sliding-window`, the default): a window of
///   `burstSize / requestsPerSecond` seconds (rounded to the nanosecond, at least 1µs) admits
///   `burstSize` requests (clamped to [`MAX_WINDOW_COUNT`]). The count of the previous window is
///   weighted by how much of it still overlaps the sliding window ending now, so a request is
///   admitted when `previous × (W − elapsed) / W + current < burstSize` (in integers:
///   `previous × (W − elapsed) + current × W < burstSize × W`, nanoseconds on the store's clock;
///   windows are numbered from the clock's origin). The long-run rate is
///   `requestsPerSecond` and a quiet key may send `burstSize` at once, as under GCRA; the two differ
///   in how quickly they forgive (GCRA refills continuously, the window forgets a window later).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::policy::LimitAlgorithm;
/// use fluxgate_ratelimit::Quota;
///
/// let quota = Quota::new(1200.0, 150);
/// assert_eq!(quota.emission_interval(), Duration::from_nanos(833_333));
/// assert_eq!(quota.window(), Duration::from_millis(125));
/// assert_eq!(quota.window_limit(), 150);
/// assert_eq!(quota.policy_window_secs(LimitAlgorithm::SlidingWindow), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    rps: f64,
    burst: u32,
}

impl Quota {
    /// `requests_per_second` (more than zero) and `burst_size` (at least 1); out-of-range values
    /// are raised to the smallest valid ones (policies are validated before they get here).
    #[must_use]
    pub fn new(requests_per_second: f64, burst_size: u32) -> Self {
        let rps = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second
        } else {
            f64::MIN_POSITIVE
        };
        Self {
            rps,
            burst: burst_size.max(1),
        }
    }

    /// The sustained rate per key.
    #[must_use]
    pub fn requests_per_second(&self) -> f64 {
        self.rps
    }

    /// The burst per key.
    #[must_use]
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// GCRA's time between two requests at the sustained rate (at least 1ns).
    #[must_use]
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(nanos_f64(1e9 / self.rps).max(1))
    }

    /// The sliding window's limit per window: `burstSize`, at most [`MAX_WINDOW_COUNT`].
    #[must_use]
    pub fn window_limit(&self) -> u32 {
        self.burst.min(MAX_WINDOW_COUNT)
    }

    /// The sliding window's length: `window_limit / requestsPerSecond`, at least 1µs.
    #[must_use]
    pub fn window(&self) -> Duration {
        let nanos = nanos_f64(f64::from(self.window_limit()) * 1e9 / self.rps);
        Duration::from_nanos(nanos.max(1_000))
    }

    /// The `w` parameter of `RateLimit-Policy`: the time to regain the whole burst (GCRA) or the
    /// window length (sliding window), in whole seconds rounded up, at least 1.
    #[must_use]
    pub fn policy_window_secs(&self, algorithm: LimitAlgorithm) -> u64 {
        let span = match algorithm {
            LimitAlgorithm::Gcra => self.emission_interval() * self.burst,
            _ => self.window(),
        };
        ceil_secs(span)
    }

    /// The bits that identify this quota (for keying limiter state by quota).
    pub(crate) fn identity(&self) -> (u64, u32) {
        (self.rps.to_bits(), self.burst)
    }
}

fn nanos_f64(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 {
        // Saturating float-to-int conversion is the intent here.
        n.round().min(u64::MAX as f64) as u64
    } else {
        u64::MAX
    }
}

/// Whole seconds, rounded up, at least 1 (for `Retry-After` and the RateLimit fields).
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

// === sliding window state ===

/// A sliding-window key's state packed in 64 bits: window number (24 bits, wrapping),
/// previous window's count (20 bits), current window's count (20 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) epoch: u32,
    pub(crate) previous: u32,
    pub(crate) current: u32,
}

const EPOCH_MASK: u64 = (1 << 24) - 1;
const COUNT_MASK: u64 = (1 << 20) - 1;

/// What a sliding window decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowDecision {
    /// Admitted: the new state, the requests left, and the time to the end of the window.
    Admit(u64, u32, Duration),
    /// Refused: how long until a request would be admitted.
    Refuse(Duration),
}

impl Window {
    pub(crate) fn unpack(bits: u64) -> Self {
        Self {
            epoch: ((bits >> 40) & EPOCH_MASK) as u32,
            previous: ((bits >> 20) & COUNT_MASK) as u32,
            current: (bits & COUNT_MASK) as u32,
        }
    }

    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.epoch) & EPOCH_MASK) << 40
            | (u64::from(self.previous) & COUNT_MASK) << 20
            | (u64::from(self.current) & COUNT_MASK)
    }

    /// The state as seen in window `epoch` (rolled forward; counts older than one window dropped).
    pub(crate) fn at(state: Option<u64>, epoch: u64) -> Self {
        let epoch24 = (epoch & EPOCH_MASK) as u32;
        let zero = Self {
            epoch: epoch24,
            previous: 0,
            current: 0,
        };
        let Some(old) = state.map(Self::unpack) else {
            return zero;
        };
        if old.epoch == epoch24 {
            old
        } else if (old.epoch + 1) & EPOCH_MASK as u32 == epoch24 {
            Self {
                previous: old.current,
                ..zero
            }
        } else {
            zero
        }
    }

    /// Whether a key in this state is indistinguishable from a new one in window `epoch`.
    pub(crate) fn idle(bits: u64, epoch: u64) -> bool {
        let w = Self::at(Some(bits), epoch);
        w.previous == 0 && w.current == 0
    }
}

/// Decides one request at `now` (nanoseconds on the store's clock) for a window of `window`
/// nanoseconds admitting `limit` requests.
pub(crate) fn decide_window(
    state: Option<u64>,
    now: u64,
    window: u64,
    limit: u32,
) -> WindowDecision {
    let window = window.max(1);
    let epoch = now / window;
    let elapsed = now % window;
    let w = Window::at(state, epoch);
    let (prev, cur, lim) = (
        u128::from(w.previous),
        u128::from(w.current),
        u128::from(limit),
    );
    let (win, el) = (u128::from(window), u128::from(elapsed));
    // previous × (W − elapsed) / W + current < limit, multiplied through by W.
    if prev * (win - el) + cur * win < lim * win {
        let used = (prev * (win - el)).div_ceil(win) + cur + 1;
        let remaining = u32::try_from(lim.saturating_sub(used)).unwrap_or(0);
        let next = Window {
            current: w.current + 1,
            ..w
        };
        return WindowDecision::Admit(
            next.pack(),
            remaining,
            Duration::from_nanos(window - elapsed),
        );
    }
    WindowDecision::Refuse(Duration::from_nanos(wait_window(prev, cur, lim, win, el)))
}

/// The nanoseconds until `previous × (W − t) / W + current < limit` holds again.
fn wait_window(prev: u128, cur: u128, lim: u128, win: u128, el: u128) -> u64 {
    // Later in this window: the previous window's weight shrinks as time passes.
    if cur < lim && prev > 0 {
        // Smallest t with prev × (W − t) < (lim − cur) × W.
        let t = (win + 1).saturating_sub(((lim - cur) * win).div_ceil(prev));
        if t < win {
            return u64::try_from(t.saturating_sub(el).max(1)).unwrap_or(u64::MAX);
        }
    }
    // In the next window, this window's count becomes the weighted one.
    let t = if cur == 0 {
        0
    } else {
        (win + 1).saturating_sub((lim * win).div_ceil(cur))
    };
    u64::try_from(win - el + t).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_rolls() {
        let w = Window {
            epoch: 7,
            previous: 3,
            current: 5,
        };
        assert_eq!(Window::unpack(w.pack()), w);
        let next = Window::at(Some(w.pack()), 8);
        assert_eq!((next.previous, next.current), (5, 0));
        assert_eq!(Window::at(Some(w.pack()), 9).previous, 0);
        assert!(Window::idle(w.pack(), 9));
        assert!(!Window::idle(w.pack(), 8));
    }

    #[test]
    fn weights_the_previous_window() {
        // Limit 10 per 1000ns; 10 in window 0, then halfway through window 1 only 5 fit.
        let mut state = None;
        for _ in 0..10 {
            match decide_window(state, 0, 1000, 10) {
                WindowDecision::Admit(s, ..) => state = Some(s),
                WindowDecision::Refuse(_) => panic!("refused"),
            }
        }
        assert!(matches!(
            decide_window(state, 999, 1000, 10),
            WindowDecision::Refuse(_)
        ));
        let mut admitted = 0;
        while let WindowDecision::Admit(s, ..) = decide_window(state, 1500, 1000, 10) {
            state = Some(s);
            admitted += 1;
        }
        assert_eq!(admitted, 5);
    }

    #[test]
    fn retry_after_is_when_it_fits() {
        let mut state = None;
        for _ in 0..4 {
            if let WindowDecision::Admit(s, ..) = decide_window(state, 100, 1000, 4) {
                state = Some(s);
            }
        }
        let WindowDecision::Refuse(wait) = decide_window(state, 100, 1000, 4) else {
            panic!("admitted");
        };
        let at = 100 + u64::try_from(wait.as_nanos()).unwrap();
        assert!(matches!(
            decide_window(state, at, 1000, 4),
            WindowDecision::Admit(..)
        ));
        assert!(matches!(
            decide_window(state, at - 1, 1000, 4),
            WindowDecision::Refuse(_)
        ));
    }
}
