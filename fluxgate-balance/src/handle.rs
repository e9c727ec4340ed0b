//! [`BalanceHandle`]: the balancer's state for an admin endpoint, and policy changes at runtime.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use fluxgate_core::policy::LoadBalancing;

use crate::endpoint::{
    self, ACTIVE, EJECTED, EndpointState, NO_UTIL, PROBE_IN_FLIGHT, PROBE_READY,
};
use crate::shared::Shared;
use crate::stats::EndpointTotals;

/// A cheap, cloneable handle on a [`Balance`](crate::Balance): reads every endpoint's state and
/// applies a new policy while traffic flows.
///
/// Holding a handle does not keep the balancer's health task running once the balancer itself
/// is dropped.
///
/// ```
/// use fluxgate_balance::{Balance, Weighted};
/// use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let svc = || Weighted::new(tower::service_fn(|_: http::Request<()>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// # }), 1);
///
/// let balance = Balance::<_, http::Request<()>>::new(LoadBalancing::default(), [("a", svc()), ("b", svc())]);
/// let handle = balance.handle();
/// assert_eq!(handle.snapshot().len(), 2);
/// let mut policy = LoadBalancing::default();
/// policy.algorithm = BalanceAlgorithm::PeakEwma;
/// handle.set_policy(policy);
/// assert_eq!(handle.policy().algorithm, BalanceAlgorithm::PeakEwma);
/// # }
/// ```
#[derive(Debug)]
pub struct BalanceHandle<K> {
    pub(crate) shared: Arc<Shared<K>>,
}

impl<K> Clone for BalanceHandle<K> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K: Clone> BalanceHandle<K> {
    /// The state of every endpoint now. Reads a few µs of histograms per endpoint: meant for an
    /// admin endpoint or a metrics scrape, not per request.
    #[must_use]
    pub fn snapshot(&self) -> Vec<EndpointSnapshot<K>> {
        let now = Stamp::now();
        self.shared
            .endpoints
            .load()
            .iter()
            .map(|e| snapshot_of(e, now))
            .collect()
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> Arc<LoadBalancing> {
        self.shared.policy.load_full()
    }

    /// Puts `policy` in force; the balancer sees it on its next request and the health task on
    /// its next round. Endpoint health, drains and latency history are kept.
    pub fn set_policy(&self, policy: LoadBalancing) {
        self.shared.set_policy(policy);
    }

    /// Whether the balancer has been dropped.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

/// Whether active health checks pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Passing (or not checked).
    Healthy,
    /// Failed `unhealthyThreshold` checks in a row and has not passed `healthyThreshold` since.
    Unhealthy,
}

/// Why an endpoint gets no new requests.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum DrainReason {
    /// Active health checks fail.
    HealthCheck,
    /// Its error rate (5xx, 429, transport errors) over the window was above `maxErrorRate`.
    ErrorRate(f64),
    /// Its p95 latency over the window was above the limit.
    Latency(Duration),
    /// This many failures in a row.
    ConsecutiveFailures(u32),
}

/// One endpoint's state, as [`BalanceHandle::snapshot`] reads it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointSnapshot<K> {
    /// The endpoint's key.
    pub key: K,
    /// Health from active checks.
    pub health: Health,
    /// The configured weight.
    pub weight: u32,
    /// The weight in effect (after slow start, error and latency adjustments), in the units of
    /// `weight`; 0 when drained.
    pub effective_weight: f64,
    /// Why the endpoint gets no new requests, if it gets none.
    pub drained: Option<DrainReason>,
    /// Whether it is being given a single probe request after an ejection.
    pub probing: bool,
    /// Time left of its ejection.
    pub ejected_for: Option<Duration>,
    /// How many times outlier detection ejected it (reset after a quiet spell).
    pub ejections: u32,
    /// Requests in flight.
    pub in_flight: u32,
    /// Peak-EWMA latency (with the failure penalty), when it is tracked.
    pub latency_ewma: Option<Duration>,
    /// p95 latency over the last second, when it is tracked.
    pub p95: Option<Duration>,
    /// One response in this many has its latency fed to `latency_ewma` and `p95` (1, or up to
    /// 16 for an endpoint busy enough: see the [crate docs](crate#across-threads)).
    pub timed_one_in: u32,
    /// Requests finished over the last second.
    pub requests: u64,
    /// Failures and overloads per request over the last second.
    pub error_rate: Option<f64>,
    /// Backend-reported utilisation (ORCA `endpoint-load-metrics`), if any.
    pub utilization: Option<f64>,
    /// Cumulative counts and latency histogram since the endpoint was added (for Prometheus
    /// counters, where `requests` and `error_rate` above cover only the last second).
    pub totals: EndpointTotals,
}

fn snapshot_of<K: Clone>(e: &EndpointState<K>, now: Stamp) -> EndpointSnapshot<K> {
    let healthy = e.healthy.load(Ordering::Relaxed);
    let passive = e.passive.load(Ordering::Relaxed);
    let totals = e.outcomes(now);
    let until = e.ejected_until.load(Ordering::Relaxed);
    let elapsed = endpoint::nanos_since(e.origin, now);
    let drained = if passive == ACTIVE {
        (!healthy).then_some(DrainReason::HealthCheck)
    } else {
        Some(reason_of(e))
    };
    let util = e.utilization.load(Ordering::Relaxed);
    EndpointSnapshot {
        key: e.key.clone(),
        health: if healthy {
            Health::Healthy
        } else {
            Health::Unhealthy
        },
        weight: e.weight,
        effective_weight: if drained.is_some() {
            0.0
        } else {
            f64::from_bits(e.effective_weight.load(Ordering::Relaxed))
        },
        drained,
        probing: matches!(passive, PROBE_READY | PROBE_IN_FLIGHT),
        ejected_for: (passive == EJECTED && until > elapsed)
            .then(|| Duration::from_nanos(until - elapsed)),
        ejections: e.ejections.load(Ordering::Relaxed),
        in_flight: e.in_flight(),
        latency_ewma: e
            .latency
            .get()
            .map(|us| Duration::from_secs_f64(us.max(0.0) / 1e6)),
        p95: e.latencies.quantile(now, 0.95),
        timed_one_in: 1 << e.sample_shift.load(Ordering::Relaxed),
        requests: totals.requests,
        error_rate: totals
            .failure_rate()
            .zip(totals.overload_rate())
            .map(|(f, o)| f + o),
        utilization: (util != NO_UTIL).then(|| f64::from(util) / 1000.0),
        totals: e.totals(),
    }
}

fn reason_of<K>(e: &EndpointState<K>) -> DrainReason {
    let value = e.reason_value.load(Ordering::Relaxed);
    match e.reason.load(Ordering::Relaxed) {
        endpoint::REASON_ERRORS => DrainReason::ErrorRate(value as f64 / 1e6),
        endpoint::REASON_LATENCY => DrainReason::Latency(Duration::from_micros(value)),
        _ => DrainReason::ConsecutiveFailures(u32::try_from(value).unwrap_or(u32::MAX)),
    }
}
