//! The `spec.loadBalancing` section: [`LoadBalancing`] and its parts.

use serde::{Deserialize, Serialize};

use super::Duration;

/// How requests are spread over a workload's endpoints.
///
/// Every field has a default, so `loadBalancing: {}` is valid.
///
/// ```
/// use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing};
///
/// let lb = LoadBalancing::default();
/// assert_eq!(lb.algorithm, BalanceAlgorithm::WeightedRoundRobin);
/// assert!(lb.health_check.is_none());
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
    /// Passive outlier detection; none (off) by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Slow start of new endpoints; none (off) by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStart>,
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
    /// Time between evaluations; `200ms` by default, at least `10ms`.
    pub interval: Duration,
    /// Error rate above which an endpoint is ejected; `0.025` by default, in [0, 1].
    pub max_error_rate: f64,
    /// p95 latency above which an endpoint is ejected; `450ms` by default, more than zero.
    #[serde(rename = "maxP95Latency")]
    pub max_p95_latency: Duration,
    /// Requests in a window before an endpoint is judged; 20 by default.
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
