//! The `spec.loadBalancing` section: [`LoadBalancing`] and its parts.

use serde::{Deserialize, Serialize};

use super::Duration;

/// How requests are spread over a workload's endpoints.
///
/// Every field has a default, so `loadBalancing: {}` is valid.
///
/// ```
/// use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing, OutlierDetection};
///
/// let lb = LoadBalancing::default();
/// assert_eq!(lb.algorithm, BalanceAlgorithm::WeightedRoundRobin);
/// assert!(lb.health_check.is_none());
/// // No `outlierDetection` block: the seed's draining (p95 > 450ms, 5xx > 2.5%) is in force.
/// assert_eq!(lb.outlier_detection_in_force(), Some(OutlierDetection::default()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LoadBalancing {
    /// The selection algorithm; `weighted-round-robin` by default.
    pub algorithm: BalanceAlgorithm,
    /// Active health checks; none (off) by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Passive outlier detection (draining). Without this block the defaults are in force
    /// (p95 > 450ms or 5xx > 2.5% drains an endpoint); `outlierDetection: {enabled: false}`
    /// turns it off. See [`LoadBalancing::outlier_detection_in_force`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Retries of requests that failed on one endpoint; see [`Retries`]. Without this block
    /// the defaults are in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Slow start of new endpoints; none (off) by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStart>,
}

impl LoadBalancing {
    /// The outlier detection in force: the `outlierDetection` block, the defaults when there
    /// is none (the seed's promise: drain at p95 > 450ms or 5xx > 2.5%), `None` when the block
    /// says `enabled: false`.
    ///
    /// ```
    /// use fluxgate_core::policy::{LoadBalancing, OutlierDetection};
    ///
    /// let mut lb = LoadBalancing::default();
    /// assert!(lb.outlier_detection_in_force().is_some());
    /// let mut off = OutlierDetection::default();
    /// off.enabled = false;
    /// lb.outlier_detection = Some(off);
    /// assert!(lb.outlier_detection_in_force().is_none());
    /// ```
    #[must_use]
    pub fn outlier_detection_in_force(&self) -> Option<OutlierDetection> {
        match &self.outlier_detection {
            None => Some(OutlierDetection::default()),
            Some(od) if od.enabled => Some(od.clone()),
            Some(_) => None,
        }
    }

    /// The retry settings in force: the `retries` block, or the defaults.
    ///
    /// ```
    /// use fluxgate_core::policy::LoadBalancing;
    ///
    /// let retries = LoadBalancing::default().retries_in_force();
    /// assert!(retries.idempotent);
    /// assert_eq!(retries.budget_percent, 20);
    /// ```
    #[must_use]
    pub fn retries_in_force(&self) -> Retries {
        self.retries.clone().unwrap_or_default()
    }
}

/// The endpoint selection algorithm, written in kebab-case.
///
/// ```
/// use fluxgate_core::policy::BalanceAlgorithm;
///
/// assert_eq!(BalanceAlgorithm::default(), BalanceAlgorithm::WeightedRoundRobin);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BalanceAlgorithm {
    /// `weighted-round-robin` (the default).
    #[default]
    WeightedRoundRobin,
    /// `round-robin`.
    RoundRobin,
    /// `least-request`: the fewer requests in flight, the likelier.
    LeastRequest,
    /// `peak-ewma`: power of two choices over peak EWMA latency.
    PeakEwma,
    /// `adaptive`: weights that follow latency and errors.
    Adaptive,
}

/// Active health checks of each endpoint.
///
/// ```
/// use fluxgate_core::policy::HealthCheck;
///
/// let hc = HealthCheck::default();
/// assert_eq!(hc.interval.to_string(), "200ms");
/// assert_eq!(hc.expected_statuses.len(), 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HealthCheck {
    /// Time between checks; `200ms` by default, at least `10ms`.
    pub interval: Duration,
    /// Time a check may take; `1s` by default, more than zero.
    pub timeout: Duration,
    /// Consecutive failures that make an endpoint unhealthy; 3 by default, at least 1.
    pub unhealthy_threshold: u32,
    /// Consecutive successes that make it healthy again; 2 by default, at least 1.
    pub healthy_threshold: u32,
    /// The HTTP path probed; `/healthz` by default, starts with `/`.
    pub path: String,
    /// Statuses that count as healthy; 200 to 299 by default, each in 100..=599.
    pub expected_statuses: Vec<u16>,
    /// `http` (the default) or `grpc` (the gRPC health protocol).
    pub protocol: HealthProtocol,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            path: "/healthz".to_owned(),
            expected_statuses: (200..=299).collect(),
            protocol: HealthProtocol::Http,
        }
    }
}

/// The protocol of a health check.
///
/// ```
/// # use fluxgate_core::policy::HealthProtocol;
/// assert_eq!(HealthProtocol::default(), HealthProtocol::Http);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum HealthProtocol {
    /// `http`: a GET of `path` (the default).
    #[default]
    Http,
    /// `grpc`: `grpc.health.v1.Health/Check`.
    Grpc,
}

/// Passive outlier detection: endpoints that fail or slow down are ejected for a while.
///
/// On by default: a policy without this block gets these defaults; `enabled: false` turns it
/// off. Every `interval`, an endpoint is drained (at most `maxEjectionPercent` of them at once)
/// when one of these holds:
/// - volume: at least `minRequests` in the last second, and an error rate (5xx, 429, transport
///   errors) above `maxErrorRate` or a p95 above `maxP95Latency`;
/// - evidence, at any volume: over the last second or the last 5 seconds, the samples make the
///   verdict clear: a one-sided binomial test rejects "at most 5% of requests slower than
///   `maxP95Latency`" (or "an error rate of at most `maxErrorRate`") at a false-positive rate of
///   1e-4, with at least 5 bad samples (13 of 13 slow requests drain, 1 of 3 does not).
///   Requests still in flight and already older than `maxP95Latency` count as slow samples, so
///   an endpoint that hangs is drained before its requests time out;
/// - 5 failures in a row, or a refused connection.
///
/// Latency is judged relative to the others: when more than half of the judged endpoints are
/// slow, only those slower than twice the median p95 are drained (a whole cluster slowing down
/// together is not). An endpoint drained for errors or latency comes back after its ejection
/// time and one successful trial request of real traffic, never because its health check
/// passes; one drained for refused connections also comes back on a passing health check.
///
/// ```
/// use fluxgate_core::policy::OutlierDetection;
///
/// let od = OutlierDetection::default();
/// assert_eq!(od.max_error_rate, 0.025);
/// assert_eq!(od.max_p95_latency.to_string(), "450ms");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OutlierDetection {
    /// Whether endpoints are drained at all; `true` by default (also without this block).
    pub enabled: bool,
    /// Time between evaluations; `200ms` by default, at least `10ms`.
    pub interval: Duration,
    /// Error rate above which an endpoint is ejected; `0.025` by default, in [0, 1].
    pub max_error_rate: f64,
    /// p95 latency above which an endpoint is ejected; `450ms` by default, more than zero.
    #[serde(rename = "maxP95Latency")]
    pub max_p95_latency: Duration,
    /// Requests in the last second before an endpoint is judged by its error rate and p95
    /// alone; 20 by default. Endpoints with fewer requests are still judged on evidence
    /// (see above).
    pub min_requests: u32,
    /// First ejection time (doubling on repeats); `30s` by default, more than zero.
    pub base_ejection_time: Duration,
    /// Longest ejection time; `300s` by default, not below `baseEjectionTime`.
    pub max_ejection_time: Duration,
    /// Most endpoints ejected at once, in percent; 50 by default, 0..=100.
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_millis(200),
            max_error_rate: 0.025,
            max_p95_latency: Duration::from_millis(450),
            min_requests: 20,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// Slow start: a new endpoint's weight ramps up over a window.
///
/// ```
/// # use fluxgate_core::policy::SlowStart;
/// assert_eq!(SlowStart::default().window.to_string(), "30s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SlowStart {
    /// The ramp-up window; `30s` by default, `0s` turns slow start off.
    pub window: Duration,
}

impl Default for SlowStart {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30),
        }
    }
}

/// Retries of a request on another endpoint, with a budget so that retries cannot multiply load
/// (as linkerd's and Envoy's retry budgets).
///
/// A request that never reached its endpoint (the connection was refused) is always retried,
/// once, on another endpoint, whatever its method, outside the budget. A request with an empty
/// body and an idempotent method (`GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`) whose
/// connection failed after it was sent is retried once when `idempotent` is on and the budget
/// allows: retries at most `budgetPercent` of the requests of the last 10 seconds, plus
/// `minRetriesPerSecond`.
///
/// ```
/// # use fluxgate_core::policy::Retries;
/// let r = Retries::default();
/// assert_eq!((r.idempotent, r.budget_percent, r.min_retries_per_second), (true, 20, 10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Retries {
    /// Whether idempotent requests are retried after a failed connection; `true` by default.
    pub idempotent: bool,
    /// Retries allowed, in percent of requests; 20 by default, 0..=100.
    pub budget_percent: u32,
    /// Retries always allowed per second, on top of the percentage; 10 by default.
    pub min_retries_per_second: u32,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            idempotent: true,
            budget_percent: 20,
            min_retries_per_second: 10,
        }
    }
}
