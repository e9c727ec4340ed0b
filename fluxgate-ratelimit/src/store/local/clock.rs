//! The store's clock: tokio's timeline as a [`Stamp`], so that tests on a paused clock are exact
//! (with `fluxgate-core`'s `test-util` feature) and the request path reads `CLOCK_MONOTONIC`
//! directly otherwise.

use fluxgate_core::clock::Stamp;
use governor::clock::Clock as GovernorClock;
use governor::nanos::Nanos;

/// Tokio's clock as nanoseconds since a base.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Stamp,
}

impl Clock {
    pub(super) fn new() -> Self {
        Self { base: Stamp::now() }
    }

    /// Nanoseconds since the base (0 before it); one clock read.
    pub(crate) fn nanos(&self) -> Nanos {
        Nanos::from(Stamp::now().nanos_since(self.base))
    }
}

impl GovernorClock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        self.nanos()
    }
}
