//! Cumulative, lock-free counters of one endpoint since it was added: requests by outcome and a
//! fixed-bucket latency histogram, for Prometheus counters and histograms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fluxgate_core::outcome::Outcome;

/// Upper bounds of the latency histogram's buckets (Prometheus `le`), from 5ms to 10s; a last,
/// implicit bucket takes everything slower (`+Inf`).
pub(crate) const LATENCY_BUCKETS: [Duration; 12] = [
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2_500),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::MAX,
];

/// The counters as the request path updates them: relaxed atomic adds, no lock.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    failures: AtomicU64,
    overloads: AtomicU64,
    /// Non-cumulative count per bucket of [`LATENCY_BUCKETS`]; their sum is the request count.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    sum_nanos: AtomicU64,
}

impl Stats {
    /// Counts one finished request and its latency.
    pub(crate) fn record(&self, latency: Duration, outcome: Outcome) {
        match outcome {
            Outcome::Success => {}
            Outcome::Overload => {
                self.overloads.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        let at = LATENCY_BUCKETS.partition_point(|&bound| bound < latency);
        if let Some(bucket) = self.buckets.get(at) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counters now. Each one is exact; they are read one after the other, so a scrape
    /// racing with requests may see a request in one counter and not yet in another.
    pub(crate) fn totals(&self) -> EndpointTotals {
        let mut cumulative = [0; LATENCY_BUCKETS.len()];
        let mut running = 0;
        for (out, bucket) in cumulative.iter_mut().zip(&self.buckets) {
            running += bucket.load(Ordering::Relaxed);
            *out = running;
        }
        let failures = self.failures.load(Ordering::Relaxed);
        let overloads = self.overloads.load(Ordering::Relaxed);
        EndpointTotals {
            requests: running.max(failures + overloads),
            failures,
            overloads,
            latency: LatencyHistogram {
                cumulative,
                sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
            },
        }
    }
}

/// One endpoint's counts since it was added to the balancer (cumulative, never reset), as
/// [`EndpointSnapshot::totals`](crate::EndpointSnapshot::totals) reports them.
///
/// A request counts when its response (or error) arrives; a request cancelled before that, and
/// a failed `poll_ready` of the endpoint's service, do not count.
///
/// ```
/// use fluxgate_balance::{Balance, Weighted};
/// use fluxgate_core::policy::LoadBalancing;
/// use tower::{Service, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
///
/// let svc = Weighted::new(tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(503).body(()).unwrap())
/// }), 1);
/// let mut balance = Balance::new(LoadBalancing::default(), [("a", svc)]);
/// balance.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
/// let totals = balance.handle().snapshot()[0].totals;
/// assert_eq!((totals.requests, totals.overloads, totals.successes()), (1, 1, 0));
/// assert_eq!(totals.latency.count(), 1);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointTotals {
    /// Requests finished, whatever their outcome.
    pub requests: u64,
    /// Requests that failed: 5xx (but 503), timeouts, transport errors.
    pub failures: u64,
    /// Requests the endpoint shed: 429, 503, gRPC `UNAVAILABLE`/`RESOURCE_EXHAUSTED`.
    pub overloads: u64,
    /// Latency of every finished request.
    pub latency: LatencyHistogram,
}

impl EndpointTotals {
    /// Requests that neither failed nor were shed.
    #[must_use]
    pub fn successes(&self) -> u64 {
        self.requests
            .saturating_sub(self.failures)
            .saturating_sub(self.overloads)
    }
}

impl std::iter::Sum for EndpointTotals {
    /// The totals of several parts of one endpoint's traffic (its threads' counts).
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(
            Self {
                requests: 0,
                failures: 0,
                overloads: 0,
                latency: LatencyHistogram::default(),
            },
            |mut acc, t| {
                acc.requests += t.requests;
                acc.failures += t.failures;
                acc.overloads += t.overloads;
                for (a, b) in acc.latency.cumulative.iter_mut().zip(t.latency.cumulative) {
                    *a += b;
                }
                acc.latency.sum += t.latency.sum;
                acc
            },
        )
    }
}

/// A latency histogram in Prometheus' form: cumulative counts per upper bound, and the sum.
///
/// ```
/// use fluxgate_balance::LatencyHistogram;
///
/// let empty = LatencyHistogram::default();
/// assert_eq!(empty.count(), 0);
/// let (le, count) = empty.buckets().next().unwrap();
/// assert_eq!((le, count), (Some(std::time::Duration::from_millis(5)), 0));
/// assert_eq!(empty.buckets().last().unwrap().0, None, "the last bucket is +Inf");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    cumulative: [u64; LATENCY_BUCKETS.len()],
    sum: Duration,
}

impl LatencyHistogram {
    /// Each bucket's upper bound (`le`; `None` for `+Inf`) with the number of requests that took
    /// at most that long, in increasing order of bound.
    pub fn buckets(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        LATENCY_BUCKETS
            .iter()
            .map(|&bound| (bound != Duration::MAX).then_some(bound))
            .zip(self.cumulative.iter().copied())
    }

    /// The number of requests observed (the `+Inf` bucket).
    #[must_use]
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The total time of the requests observed.
    #[must_use]
    pub fn sum(&self) -> Duration {
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let stats = Stats::default();
        for ms in [1, 5, 6, 120, 20_000] {
            stats.record(Duration::from_millis(ms), Outcome::Success);
        }
        stats.record(Duration::from_millis(7), Outcome::Failure);
        stats.record(Duration::from_millis(7), Outcome::Overload);
        let totals = stats.totals();
        let counts: Vec<_> = totals.latency.buckets().map(|(_, n)| n).collect();
        assert_eq!(counts, [2, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 7]);
        assert_eq!(totals.latency.count(), 7);
        assert_eq!(totals.latency.sum(), Duration::from_millis(20_146));
        assert_eq!(
            (totals.requests, totals.failures, totals.overloads),
            (7, 1, 1)
        );
        assert_eq!(totals.successes(), 5);
    }
}
