//! The store's clock and a limiter's arithmetic, in microseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fluxgate_core::policy::LimitAlgorithm;

use crate::Quota;

/// Microseconds since the Unix epoch, advancing with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: tokio::time::Instant,
    unix: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0));
        Self {
            base: tokio::time::Instant::now(),
            unix,
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.unix + u64::try_from(self.base.elapsed().as_micros()).unwrap_or(0)
    }
}

/// A limiter's arithmetic, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Params {
    Window { w: u64, limit: u32 },
    Gcra { t: u64, tau: u64 },
}

impl Params {
    pub(crate) fn new(algorithm: LimitAlgorithm, quota: Quota) -> Self {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        match algorithm {
            LimitAlgorithm::Gcra => {
                let t = us(quota.emission_interval());
                Self::Gcra {
                    t,
                    tau: t.saturating_mul(u64::from(quota.burst_size())),
                }
            }
            _ => Self::Window {
                w: us(quota.window()),
                limit: quota.window_limit(),
            },
        }
    }

    pub(crate) fn script_args(self) -> (&'static str, u64, u64) {
        match self {
            Self::Window { w, limit } => ("w", w, u64::from(limit)),
            Self::Gcra { t, tau } => ("g", t, tau),
        }
    }

    pub(crate) fn suffix(self) -> String {
        match self {
            Self::Window { w, limit } => format!("w{w}:{limit}"),
            Self::Gcra { t, tau } => format!("g{t}:{}", tau / t),
        }
    }
}
