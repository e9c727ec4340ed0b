//! [`FleetOverview`]: what an operator reads about a canary's fleet from outside any replica
//! (`fluxctl status --redis`): the shared state, the live replicas, the lease holder and the
//! window it last judged.

use std::time::Duration;

use serde::Serialize;

use super::counts::{Counts, SideCounts};
use super::state::FleetState;

/// The merged window the lease holder judged at one tick, as it published it for operators.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_canary::fleet::{PublishedWindow, SideCounts};
///
/// let mut counts = SideCounts::default();
/// counts.canary.record(true, Duration::from_millis(30));
/// let window = PublishedWindow::new("gw-a", 1_000, counts);
/// assert_eq!(window.counts.canary.error_rate(), Some(1.0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishedWindow {
    /// The replica that judged it (the lease holder then).
    pub by: String,
    /// When (Unix milliseconds, the judging replica's clock).
    pub at_ms: u64,
    /// The fleet's counts over the sliding window, both sides.
    pub counts: SideCounts,
}

impl PublishedWindow {
    /// A window judged by `by` at `at_ms`.
    #[must_use]
    pub fn new(by: impl Into<String>, at_ms: u64, counts: SideCounts) -> Self {
        Self {
            by: by.into(),
            at_ms,
            counts,
        }
    }
}

/// A canary's fleet as the shared store holds it.
///
/// ```
/// use fluxgate_canary::fleet::FleetOverview;
///
/// let overview = FleetOverview::default();
/// assert!(overview.state.is_none() && overview.replicas.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FleetOverview {
    /// The shared state, if any replica has started the canary.
    pub state: Option<FleetState>,
    /// The replicas with a live heartbeat, sorted (a replica that stops beating leaves the list
    /// when its heartbeat expires, 5 seconds by default).
    pub replicas: Vec<String>,
    /// The replica holding the decision lease, if one does.
    pub leader: Option<String>,
    /// The window the lease holder last judged, while it is recent (it expires with the
    /// holder's heartbeat).
    pub window: Option<PublishedWindow>,
}

/// One side's figures over a window, for display: requests, errors, the error rate and the
/// p99 latency of the fleet's requests (from the merged histogram).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_canary::fleet::{Counts, SideFigures};
///
/// let mut counts = Counts::default();
/// counts.record(false, Duration::from_millis(10));
/// counts.record(true, Duration::from_millis(10));
/// let figures = SideFigures::of(&counts);
/// assert_eq!((figures.requests, figures.errors, figures.error_rate), (2, 1, Some(0.5)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SideFigures {
    /// Responses.
    pub requests: u64,
    /// Failures and overloads among them.
    pub errors: u64,
    /// `errors / requests`, when there were requests.
    pub error_rate: Option<f64>,
    /// The 99th percentile latency in milliseconds, when there were requests.
    pub p99_ms: Option<f64>,
}

impl SideFigures {
    /// The figures of `counts`.
    #[must_use]
    pub fn of(counts: &Counts) -> Self {
        Self {
            requests: counts.requests,
            errors: counts.errors,
            error_rate: counts.error_rate(),
            p99_ms: counts.quantile(0.99).map(millis),
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
