//! The part of an endpoint's state that the request path writes, kept per thread.
//!
//! Every request adds to its endpoint's counts: in flight, outcomes, slow samples, the start
//! times of requests in flight, the cumulative totals. When a gateway's workers (a thread per
//! core) share one balancer, those adds would all land on the same cache lines, and each one
//! would first take them from the core that added last: shared by two threads in front of one
//! endpoint, the balancer cost 840-1,010 ns per request against 200-250 ns on one thread.
//! So each thread adds to a [`Hot`] of its own (one per [stripe](fluxgate_core::stripe) of the
//! endpoint, made at the thread's first request to it), and the readers (the evaluation, the
//! snapshot) sum them.
//!
//! The in-flight count a thread's picks compare is its own (as each worker of Envoy or nginx
//! balances by its own connections): with the threads' picks spread the same way, the sums
//! are spread too.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use fluxgate_core::outcome::Outcome;
use fluxgate_core::stripe::Striped;
use fluxgate_core::window::{TimeWindow, WindowTotals};

use crate::evidence::{self, Outcomes, Samples};
use crate::stats::{EndpointTotals, Stats};

/// One thread's counts of one endpoint.
#[derive(Debug)]
pub(crate) struct Hot {
    pub(crate) in_flight: AtomicU32,
    /// Outcomes over the evidence's long horizon (5s of 100ms buckets); the rules of the last
    /// second read its last buckets.
    pub(crate) outcomes: TimeWindow,
    /// Slow samples and the ages of requests in flight.
    pub(crate) samples: Samples,
    /// Cumulative counts and latency histogram.
    pub(crate) stats: Stats,
}

impl Hot {
    /// Windows whose buckets start at `origin` (the endpoint's, so that every thread's
    /// buckets line up); `None` only if the core primitives refuse the constant shapes.
    fn new(origin: Stamp) -> Option<Self> {
        let window = || TimeWindow::starting(origin, evidence::BUCKET, evidence::LONG_BUCKETS);
        Some(Self {
            in_flight: AtomicU32::new(0),
            outcomes: window().ok()?,
            samples: Samples::new(window().ok()?),
            stats: Stats::default(),
        })
    }

    /// Records one finished request's outcome, and its latency unless it has none (a failed
    /// `poll_ready`).
    pub(crate) fn record(
        &self,
        now: Stamp,
        latency: Option<Duration>,
        outcome: Outcome,
        slow_limit: Option<Duration>,
    ) {
        self.outcomes.record(now, outcome);
        if let Some(latency) = latency {
            self.stats.record(latency, outcome);
            if let Some(limit) = slow_limit {
                self.samples.record(now, latency, limit);
            }
        }
    }
}

/// An endpoint's [`Hot`]s, one per stripe, each made at its stripe's first use.
#[derive(Debug)]
pub(crate) struct Stripes {
    origin: Stamp,
    hot: Striped<OnceLock<Option<Box<Hot>>>>,
}

impl Stripes {
    /// No counts yet; their windows' buckets will start at `origin`.
    pub(crate) fn new(origin: Stamp) -> Self {
        Self {
            origin,
            hot: Striped::default(),
        }
    }

    /// The counts of `stripe` (made now if it has none yet); `None` only if the core
    /// primitives refuse the constant window shapes.
    #[inline]
    pub(crate) fn at(&self, stripe: usize) -> Option<&Hot> {
        self.hot
            .at(stripe)
            .get_or_init(|| Hot::new(self.origin).map(Box::new))
            .as_deref()
    }

    /// The in-flight count of `stripe`'s thread (0 if it never sent here).
    #[inline]
    pub(crate) fn in_flight_at(&self, stripe: usize) -> u32 {
        self.hot
            .at(stripe)
            .get()
            .and_then(Option::as_deref)
            .map_or(0, |hot| hot.in_flight.load(Ordering::Relaxed))
    }

    /// Every stripe made so far.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Hot> + Clone {
        self.hot.iter().filter_map(|cell| cell.get()?.as_deref())
    }

    /// The slow samples of every thread.
    pub(crate) fn samples(&self) -> impl Iterator<Item = &Samples> + Clone {
        self.iter().map(|hot| &hot.samples)
    }

    /// Requests in flight, over every thread.
    pub(crate) fn in_flight(&self) -> u32 {
        self.iter()
            .map(|hot| hot.in_flight.load(Ordering::Relaxed))
            .fold(0, u32::wrapping_add)
    }

    /// Outcomes of the last `buckets` buckets, over every thread.
    pub(crate) fn recent(&self, now: Stamp, buckets: u32) -> WindowTotals {
        self.iter()
            .map(|hot| hot.outcomes.recent(now, buckets))
            .sum()
    }

    /// Outcomes over the evidence's two horizons, over every thread.
    pub(crate) fn horizons(&self, now: Stamp) -> Outcomes {
        Outcomes {
            short: self.recent(now, evidence::SHORT_BUCKETS),
            long: self.recent(now, evidence::LONG_BUCKETS),
        }
    }

    /// Cumulative totals, over every thread.
    pub(crate) fn totals(&self) -> EndpointTotals {
        self.iter().map(|hot| hot.stats.totals()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_count_apart_and_readers_sum() {
        let now = Stamp::now();
        let stripes = Stripes::new(now);
        assert_eq!(stripes.iter().count(), 0, "made at first use");
        std::thread::scope(|s| {
            for stripe in [1, 2] {
                let stripes = &stripes;
                s.spawn(move || {
                    let hot = stripes.at(stripe).unwrap();
                    hot.in_flight.fetch_add(stripe as u32, Ordering::Relaxed);
                    hot.record(now, Some(Duration::from_millis(1)), Outcome::Failure, None);
                });
            }
        });
        assert_eq!(stripes.iter().count(), 2);
        assert_eq!((stripes.in_flight_at(1), stripes.in_flight_at(2)), (1, 2));
        assert_eq!(stripes.in_flight_at(3), 0);
        assert_eq!(stripes.in_flight(), 3);
        let totals = stripes.totals();
        assert_eq!((totals.requests, totals.failures), (2, 2));
        let later = now + evidence::BUCKET;
        assert_eq!(stripes.recent(later, 1).failures, 2);
        assert_eq!(stripes.horizons(later).long.requests, 2);
    }
}
