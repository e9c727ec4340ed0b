//! The `/api/status` document and the per-endpoint view it shares with `/metrics`.

use std::fmt::Display;
use std::time::{Duration, UNIX_EPOCH};

use fluxgate_balance::{DrainReason, EndpointSnapshot, Health, LatencyHistogram};
use serde::Serialize;
use serde_json::{Value, json};

use super::Inner;

/// One endpoint of a balancer as the admin API reports it (camelCase in JSON, durations in ms).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EndpointView {
    /// The endpoint's key, as text (the upstream URL in the gateway).
    pub endpoint: String,
    /// Whether active health checks pass.
    pub healthy: bool,
    /// The configured weight.
    pub weight: u32,
    /// The weight in effect; 0 when drained.
    pub effective_weight: f64,
    /// Why it gets no new requests (`healthCheck`, `errorRate`, `latency`,
    /// `consecutiveFailures`), if it gets none.
    pub drained: Option<&'static str>,
    /// The measure behind `drained`, as text (`0.31`, `512ms`, `5`).
    pub drained_detail: Option<String>,
    /// Whether it is being given its single probe request after an ejection.
    pub probing: bool,
    /// Requests in flight.
    pub in_flight: u32,
    /// Requests finished over the last second.
    pub requests: u64,
    /// Failures and overloads per request over the last second.
    pub error_rate: Option<f64>,
    /// p95 latency over the last second, in milliseconds.
    pub p95_ms: Option<f64>,
    /// Peak-EWMA latency, in milliseconds.
    pub latency_ewma_ms: Option<f64>,
    /// Times outlier detection ejected it recently.
    pub ejections: u32,
    /// Requests finished since the endpoint was added (cumulative).
    pub requests_total: u64,
    /// Of those, failures (5xx but 503, timeouts, transport errors).
    pub failures_total: u64,
    /// Of those, overloads (429, 503, gRPC `UNAVAILABLE`/`RESOURCE_EXHAUSTED`).
    pub overloads_total: u64,
    /// Latency of every finished request (cumulative; `/metrics` only, not in the JSON).
    #[serde(skip)]
    pub latency: LatencyHistogram,
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
        Self {
            endpoint: snapshot.key.to_string(),
            healthy: matches!(snapshot.health, Health::Healthy),
            weight: snapshot.weight,
            effective_weight: snapshot.effective_weight,
            drained,
            drained_detail,
            probing: snapshot.probing,
            in_flight: snapshot.in_flight,
            requests: snapshot.requests,
            error_rate: snapshot.error_rate,
            p95_ms: snapshot.p95.map(millis),
            latency_ewma_ms: snapshot.latency_ewma.map(millis),
            ejections: snapshot.ejections,
            requests_total: snapshot.totals.requests,
            failures_total: snapshot.totals.failures,
            overloads_total: snapshot.totals.overloads,
            latency: snapshot.totals.latency,
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The whole status document.
pub(super) fn document(inner: &Inner) -> Value {
    let store = inner.store.as_ref().map(|store| {
        let status = store.status();
        let policies: Vec<Value> = status
            .policies
            .iter()
            .map(|p| json!({ "id": p.id.to_string(), "generation": p.generation }))
            .collect();
        let unix =
            |at: std::time::SystemTime| at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last_rejection = status
            .last_rejection
            .map(|r| json!({ "message": r.message, "atUnixSeconds": unix(r.at) }));
        let last_removal = status.last_removal.map(
            |r| json!({ "id": r.id.to_string(), "reason": r.reason, "atUnixSeconds": unix(r.at) }),
        );
        let renamed: Vec<Value> = status
            .renamed
            .iter()
            .map(|r| json!({ "from": r.from.to_string(), "to": r.to.to_string() }))
            .collect();
        let retained: Vec<String> = status.retained.iter().map(ToString::to_string).collect();
        json!({
            "generation": status.generation,
            "applied": status.applied,
            "rejected": status.rejected,
            "lastRejection": last_rejection,
            "policies": policies,
            "removed": status.removed,
            "lastRemoval": last_removal,
            "renamed": renamed,
            "retained": retained,
        })
    });
    let balancers: serde_json::Map<String, Value> = inner
        .balancers
        .iter()
        .map(|(name, read)| (name.clone(), to_value(read())))
        .collect();
    let canaries: serde_json::Map<String, Value> = inner
        .canaries
        .iter()
        .map(|(name, handle)| (name.clone(), to_value(handle.snapshot())))
        .collect();
    let rate_limits: Vec<Value> = inner
        .rate_limits
        .iter()
        .map(|read| {
            let m = read();
            let limits: Vec<Value> = m
                .limits
                .iter()
                .map(|l| {
                    json!({
                        "name": l.name, "key": l.key, "admitted": l.admitted,
                        "refused": l.refused, "shadowRefused": l.shadow_refused,
                    })
                })
                .collect();
            json!({
                "policy": m.policy, "generation": m.generation, "admitted": m.admitted,
                "refused": m.refused, "rejected": m.rejected,
                "noClientAddress": m.no_client_address, "limits": limits,
            })
        })
        .collect();
    let mut document = json!({
        "store": store,
        "balancers": balancers,
        "canaries": canaries,
        "rateLimits": rate_limits,
    });
    if let Value::Object(map) = &mut document {
        for (name, read) in &inner.sections {
            map.insert(name.clone(), read());
        }
    }
    document
}

/// `value` as JSON (`null` if it cannot be, which the types here never cause).
pub(super) fn to_value<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
