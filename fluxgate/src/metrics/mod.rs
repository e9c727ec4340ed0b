//! FluxGate's metrics in a [prometheus-client] [`Registry`]: yours, or the admin API's `/metrics`.
//!
//! The layers keep their own counts (the same snapshots `/api/status` reads); what this module
//! registers is a [`Collector`](prometheus_client::collector::Collector) that reads those
//! snapshots at scrape time, so nothing is counted twice and the layer crates need no change.
//! Register one [`Metrics`] holding every part you run (each family then appears once, with a
//! label per balancer, canary or policy), or one part with [`register_balance`],
//! [`register_canary`], [`register_rate_limit`] or [`register_store`].
//!
//! [prometheus-client]: prometheus_client
//!
//! # Families
//!
//! Counters end in `_total`, durations are in seconds, ratios run from 0 to 1. What is counted
//! since start is a counter or a histogram, so that replicas add up (`sum(rate(…))`,
//! `histogram_quantile`); the gauges are states (health, weights, phase). The canary's analysis
//! window is exported as the analysis saw it, since the decision is taken on those values and
//! the router keeps no per-side histogram; those three gauges describe one replica's decision
//! and are not meant to be aggregated.
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `fluxgate_policy_store_generation` | gauge | |
//! | `fluxgate_policy_applies_total` | counter | `result` (`applied`, `rejected`) |
//! | `fluxgate_policy_removals_total` | counter | |
//! | `fluxgate_policy_generation` | gauge | `policy` |
//! | `fluxgate_upstream_requests_total` | counter | `balancer`, `endpoint`, `outcome` (success, failure, overload) |
//! | `fluxgate_upstream_request_duration_seconds` | histogram (5ms to 10s) | `balancer`, `endpoint` |
//! | `fluxgate_upstream_healthy` | gauge (1/0) | `balancer`, `endpoint` |
//! | `fluxgate_upstream_drained` | gauge (1/0) | `balancer`, `endpoint`, `reason` |
//! | `fluxgate_upstream_weight`, `fluxgate_upstream_effective_weight` | gauge | `balancer`, `endpoint` |
//! | `fluxgate_upstream_in_flight_requests` | gauge | `balancer`, `endpoint` |
//! | `fluxgate_upstream_latency_ewma_seconds` | gauge (the balancer's peak-EWMA state) | `balancer`, `endpoint` |
//! | `fluxgate_canary_weight_ratio` | gauge | `canary` |
//! | `fluxgate_canary_phase` | gauge (1 for the current phase) | `canary`, `phase` |
//! | `fluxgate_canary_failed_checks` | gauge (failed analyses in a row) | `canary` |
//! | `fluxgate_canary_routed_total` | counter | `canary`, `side` |
//! | `fluxgate_canary_window_requests`, `fluxgate_canary_window_error_ratio`, `fluxgate_canary_window_latency_p99_seconds` | gauge (last analysis window) | `canary`, `side` |
//! | `fluxgate_canary_transitions_total` | counter | `canary`, `kind` |
//! | `fluxgate_ratelimit_requests_total` | counter | `policy`, `result` (`admitted`, `refused`, `rejected`) |
//! | `fluxgate_ratelimit_admitted_total`, `fluxgate_ratelimit_refused_total`, `fluxgate_ratelimit_shadow_refused_total` | counter | `policy`, `limit`, `key` |
//! | `fluxgate_ratelimit_no_client_address_total` | counter (keyed on `ip` with no client address: one shared bucket) | `policy` |
//! | `fluxgate_ratelimit_store_up` | gauge (1/0; 0 while decisions fall back); samples for a shared store only | `policy` |
//! | `fluxgate_ratelimit_store_replicas` | gauge (replicas sharing the limits), shared store only | `policy` |
//! | `fluxgate_ratelimit_store_outages_total`, `fluxgate_ratelimit_store_fallback_decisions_total`, `fluxgate_ratelimit_store_timeouts_total`, `fluxgate_ratelimit_store_sync_failures_total` | counter, shared store only | `policy` |
//!
//! The failures a service must not miss are counters here and fields of `/api/status`, so that
//! they are seen without a tracing subscriber: rejected policy saves
//! (`fluxgate_policy_applies_total{result="rejected"}`, status `store.rejected` and
//! `store.lastRejection`), a shared store down or slow (`fluxgate_ratelimit_store_*`, status
//! `rateLimits.store`), and requests without a client address
//! (`fluxgate_ratelimit_no_client_address_total`, status `rateLimits.noClientAddress`). Alert on
//! `increase(…[5m]) > 0` of the counters and on `fluxgate_ratelimit_store_up == 0`.
//!
//! # Example
//!
//! ```
//! use fluxgate::store::PolicyStore;
//! use fluxgate::metrics::{Format, Metrics};
//! use prometheus_client::registry::Registry;
//!
//! let mut registry = Registry::default(); // your application's registry
//! Metrics::new().store(PolicyStore::new()).register(&mut registry);
//! let text = fluxgate::metrics::encode(&registry, Format::OpenMetrics);
//! assert!(text.contains("# TYPE fluxgate_policy_applies counter"));
//! assert!(text.contains("fluxgate_policy_applies_total{result=\"applied\"} 0"));
//! assert!(text.ends_with("# EOF\n"));
//! ```

mod families;
mod format;

use std::fmt;

use fluxgate_balance::BalanceHandle;
use fluxgate_canary::CanaryHandle;
use fluxgate_core::store::PolicyStore;
use fluxgate_ratelimit::{MetricsSnapshot, RateLimitLayer, store::RateLimitStore};
use prometheus_client::registry::Registry;

pub use format::{Format, encode};

use families::Upstream;

type UpstreamsFn = Box<dyn Fn() -> Vec<Upstream> + Send + Sync>;
type LimitsFn = Box<dyn Fn() -> MetricsSnapshot + Send + Sync>;

/// The parts whose metrics to export; [`register`](Self::register) puts them in a [`Registry`].
///
/// ```
/// use fluxgate::metrics::Metrics;
/// use prometheus_client::registry::Registry;
///
/// let mut registry = Registry::default();
/// Metrics::new().register(&mut registry); // no parts: no families
/// assert_eq!(fluxgate::metrics::encode(&registry, Default::default()), "");
/// ```
#[must_use]
#[derive(Default)]
pub struct Metrics {
    store: Option<PolicyStore>,
    balancers: Vec<(String, UpstreamsFn)>,
    canaries: Vec<(String, CanaryHandle)>,
    rate_limits: Vec<LimitsFn>,
}

impl Metrics {
    /// No parts yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The policy store: its generation, applies and refusals, and each policy's generation.
    pub fn store(mut self, store: PolicyStore) -> Self {
        self.store = Some(store);
        self
    }

    /// A balancer, under `name` (the `balancer` label); endpoints are named by their keys' `Display`.
    pub fn balancer<K>(mut self, name: impl Into<String>, handle: BalanceHandle<K>) -> Self
    where
        K: Clone + fmt::Display + Send + Sync + 'static,
    {
        let read = move || handle.snapshot().iter().map(Upstream::new).collect();
        self.balancers.push((name.into(), Box::new(read)));
        self
    }

    /// A canary, under `name` (the `canary` label).
    pub fn canary(mut self, name: impl Into<String>, handle: CanaryHandle) -> Self {
        self.canaries.push((name.into(), handle));
        self
    }

    /// A rate limit layer (the `policy` label is the id of the policy it enforces).
    pub fn rate_limits<St: RateLimitStore>(mut self, layer: &RateLimitLayer<St>) -> Self {
        let layer = layer.clone();
        self.rate_limits.push(Box::new(move || layer.metrics()));
        self
    }

    /// Registers one collector that reads every part at each scrape.
    pub fn register(self, registry: &mut Registry) {
        registry.register_collector(Box::new(self));
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let balancers: Vec<&str> = self.balancers.iter().map(|(n, _)| n.as_str()).collect();
        let canaries: Vec<&str> = self.canaries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Metrics")
            .field("store", &self.store.is_some())
            .field("balancers", &balancers)
            .field("canaries", &canaries)
            .field("rate_limits", &self.rate_limits.len())
            .finish()
    }
}

/// Registers a balancer's metrics (`fluxgate_upstream_*`); see [`Metrics`] for several parts.
///
/// ```
/// use fluxgate::balance::{Balance, Weighted};
/// use fluxgate::policy::LoadBalancing;
/// use prometheus_client::registry::Registry;
///
/// let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
/// let balance: Balance<_, http::Request<()>> =
///     Balance::new(LoadBalancing::default(), [("a", Weighted::new(ok, 1))]);
/// let mut registry = Registry::default();
/// fluxgate::metrics::register_balance(&mut registry, "web", balance.handle());
/// let text = fluxgate::metrics::encode(&registry, Default::default());
/// assert!(text.contains("fluxgate_upstream_healthy{balancer=\"web\",endpoint=\"a\"} 1"));
/// ```
pub fn register_balance<K>(
    registry: &mut Registry,
    name: impl Into<String>,
    handle: BalanceHandle<K>,
) where
    K: Clone + fmt::Display + Send + Sync + 'static,
{
    Metrics::new().balancer(name, handle).register(registry);
}

/// Registers a canary's metrics (`fluxgate_canary_*`); see [`Metrics`] for several parts.
pub fn register_canary(registry: &mut Registry, name: impl Into<String>, handle: CanaryHandle) {
    Metrics::new().canary(name, handle).register(registry);
}

/// Registers a rate limit layer's metrics (`fluxgate_ratelimit_*`); see [`Metrics`] for several.
pub fn register_rate_limit<St: RateLimitStore>(
    registry: &mut Registry,
    layer: &RateLimitLayer<St>,
) {
    Metrics::new().rate_limits(layer).register(registry);
}

/// Registers the policy store's metrics (`fluxgate_policy_*`).
///
/// ```
/// use fluxgate::store::PolicyStore;
/// use prometheus_client::registry::Registry;
///
/// let mut registry = Registry::default();
/// fluxgate::metrics::register_store(&mut registry, PolicyStore::new());
/// let text = fluxgate::metrics::encode(&registry, Default::default());
/// assert!(text.contains("# TYPE fluxgate_policy_applies_total counter"));
/// ```
pub fn register_store(registry: &mut Registry, store: PolicyStore) {
    Metrics::new().store(store).register(registry);
}
