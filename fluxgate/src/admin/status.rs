//! The `/api/status` document ([`fluxgate_core::api::Status`], the types `fluxctl` reads) and
//! the per-endpoint view it shares with `/metrics`.

use std::fmt::Display;
use std::ops::Deref;
use std::time::Duration;

use fluxgate_balance::{DrainReason, EndpointSnapshot, Health, LatencyHistogram};
use fluxgate_canary::Snapshot;
use fluxgate_core::api::{
    CanaryStatus, EndpointStatus, LastDecision, LimitStatus, RateLimitStatus, SharedStoreStatus,
    SideStatus, Status, StoreStatus,
};
use fluxgate_ratelimit::MetricsSnapshot;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Inner;

/// One endpoint of a balancer as the admin API reports it: its [`EndpointStatus`] (the JSON of
/// `/api/status`, which the view dereferences to) and its latency histogram (`/metrics` only).
///
/// ```
/// use fluxgate::admin::EndpointView;
/// use fluxgate::balance::BalanceHandle;
///
/// # fn show(handle: BalanceHandle<String>) {
/// for endpoint in handle.snapshot().iter().map(EndpointView::from_snapshot) {
///     println!("{} healthy={}", endpoint.endpoint, endpoint.healthy);
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointView {
    /// What `/api/status` shows of the endpoint.
    pub status: EndpointStatus,
    /// Latency of every finished request (cumulative).
    pub latency: LatencyHistogram,
}

impl Deref for EndpointView {
    type Target = EndpointStatus;

    fn deref(&self) -> &EndpointStatus {
        &self.status
    }
}

impl EndpointView {
    /// The view of one endpoint snapshot.
    #[must_use]
    pub fn from_snapshot<K: Display>(snapshot: &EndpointSnapshot<K>) -> Self {
        let (drained, drained_detail) = match snapshot.drained {
            None => (None, None),
            Some(DrainReason::HealthCheck) => (Some("healthCheck"), None),
            Some(DrainReason::ErrorRate(rate)) => (Some("errorRate"), Some(format!("{rate:.3}"))),
            Some(DrainReason::Latency(p95)) => (Some("latency"), Some(format!("{p95:?}"))),
            Some(DrainReason::ConsecutiveFailures(n)) => {
                (Some("consecutiveFailures"), Some(n.to_string()))
            }
            Some(_) => (Some("other"), None),
        };
        let mut status = EndpointStatus::default();
        status.endpoint = snapshot.key.to_string();
        status.healthy = matches!(snapshot.health, Health::Healthy);
        status.weight = snapshot.weight;
        status.effective_weight = snapshot.effective_weight;
        status.drained = drained.map(str::to_owned);
        status.drained_detail = drained_detail;
        status.probing = snapshot.probing;
        status.in_flight = snapshot.in_flight;
        status.requests = snapshot.requests;
        status.error_rate = snapshot.error_rate;
        status.p95_ms = snapshot.p95.map(millis);
        status.latency_ewma_ms = snapshot.latency_ewma.map(millis);
        status.timed_one_in = snapshot.timed_one_in;
        status.ejections = snapshot.ejections;
        status.requests_total = snapshot.totals.requests;
        status.failures_total = snapshot.totals.failures;
        status.overloads_total = snapshot.totals.overloads;
        Self {
            status,
            latency: snapshot.totals.latency,
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The whole status document, typed.
pub(super) fn typed(inner: &Inner) -> Status {
    let mut status = Status::default();
    status.store = inner
        .store
        .as_ref()
        .map(|store| StoreStatus::from(&store.status()));
    let balancers = inner.balancers.iter().map(|(name, read)| {
        let endpoints = read().into_iter().map(|view| view.status).collect();
        (name.clone(), endpoints)
    });
    status.balancers = Some(balancers.collect());
    let canaries = inner
        .canaries
        .iter()
        .map(|(name, handle)| (name.clone(), canary(&handle.snapshot())));
    status.canaries = Some(canaries.collect());
    status.rate_limits = Some(
        inner
            .rate_limits
            .iter()
            .map(|read| limits(&read()))
            .collect(),
    );
    for (name, read) in &inner.sections {
        status.extra.insert(name.clone(), read());
    }
    status
}

/// The whole status document, as JSON.
pub(super) fn document(inner: &Inner) -> Value {
    to_value(typed(inner))
}

/// A canary's snapshot as the admin API shows it, its last decision in words included.
pub(super) fn canary(snapshot: &Snapshot) -> CanaryStatus {
    let side = |stats: &fluxgate_canary::SideStats| {
        let mut side = SideStatus::default();
        side.routed = stats.routed;
        side.window_requests = stats.window_requests;
        side.error_rate = stats.error_rate;
        side.p99_ms = stats.p99.map(millis);
        side.timed_one_in = stats.timed_one_in;
        side
    };
    let mut status = CanaryStatus::default();
    status.phase = to_value(snapshot.phase)
        .as_str()
        .unwrap_or_default()
        .to_owned();
    status.enabled = snapshot.enabled;
    status.weight = snapshot.weight;
    status.step = snapshot.step;
    status.steps.clone_from(&snapshot.steps);
    status.failed_checks = snapshot.failed_checks;
    status.last_decision = snapshot.last_decision.map(|(decision, ago)| {
        let mut last: LastDecision = convert(decision);
        last.summary = Some(decision.to_string());
        last.ago_ms = millis(ago);
        last
    });
    status.stable = side(&snapshot.stable);
    status.canary = side(&snapshot.canary);
    status.transitions = convert(snapshot.transitions);
    status.generation = snapshot.generation;
    // How this replica stands with its fleet (shared canary state), when it has one.
    status.view = match &snapshot.fleet {
        None => "local",
        Some(f) if f.connected && f.joined => "fleet",
        Some(_) => "localOnly",
    }
    .to_owned();
    status.fleet.clone_from(&snapshot.fleet);
    status
}

/// The counts of one rate-limit layer.
fn limits(m: &MetricsSnapshot) -> RateLimitStatus {
    let limit = |l: &fluxgate_ratelimit::LimitSnapshot| {
        let mut limit = LimitStatus::default();
        limit.name.clone_from(&l.name);
        limit.key.clone_from(&l.key);
        limit.admitted = l.admitted;
        limit.refused = l.refused;
        limit.shadow_refused = l.shadow_refused;
        limit
    };
    let mut status = RateLimitStatus::default();
    status.policy.clone_from(&m.policy);
    status.generation = m.generation;
    status.admitted = m.admitted;
    status.refused = m.refused;
    status.rejected = m.rejected;
    status.limits = m.limits.iter().map(limit).collect();
    status.no_client_address = m.no_client_address;
    status.store = m.store.map(|h| {
        let mut store = SharedStoreStatus::default();
        store.down = h.down;
        store.outages = h.outages;
        store.fallback_decisions = h.fallback_decisions;
        store.timeouts = h.timeouts;
        store.sync_failures = h.sync_failures;
        store.replicas = h.replicas;
        store
    });
    status
}

/// `value` as JSON (`null` if it cannot be, which the types here never cause).
pub(super) fn to_value<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `value` read as another type through its JSON (the default if it does not fit, which the
/// canary's types, tagged and camelCase like the API's, never cause).
fn convert<T: Serialize, U: DeserializeOwned + Default>(value: T) -> U {
    serde_json::from_value(to_value(value)).unwrap_or_default()
}
