//! The collector: each family's `# HELP`/`# TYPE` once, then a sample per part, read at scrape time.

use std::fmt::{self, Display, Write};
use std::time::Duration;

use fluxgate_balance::{DrainReason, EndpointSnapshot, Health, LatencyHistogram};
use fluxgate_canary::{Phase, SideStats, Snapshot};
use fluxgate_ratelimit::MetricsSnapshot;
use fluxgate_ratelimit::store::StoreHealth;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Metrics;

/// What the collector reads of one endpoint.
pub(super) struct Upstream {
    endpoint: String,
    healthy: bool,
    weight: u32,
    effective_weight: f64,
    drained: Option<&'static str>,
    in_flight: u32,
    latency_ewma: Option<Duration>,
    requests: u64,
    failures: u64,
    overloads: u64,
    latency: LatencyHistogram,
}

impl Upstream {
    pub(super) fn new<K: Display>(s: &EndpointSnapshot<K>) -> Self {
        Self {
            endpoint: s.key.to_string(),
            healthy: matches!(s.health, Health::Healthy),
            weight: s.weight,
            effective_weight: s.effective_weight,
            drained: s.drained.map(|reason| match reason {
                DrainReason::HealthCheck => "healthCheck",
                DrainReason::ErrorRate(_) => "errorRate",
                DrainReason::Latency(_) => "latency",
                DrainReason::ConsecutiveFailures(_) => "consecutiveFailures",
                _ => "other",
            }),
            in_flight: s.in_flight,
            latency_ewma: s.latency_ewma,
            requests: s.totals.requests,
            failures: s.totals.failures,
            overloads: s.totals.overloads,
            latency: s.totals.latency,
        }
    }
}

/// A label value, escaped as the text formats require (prometheus-client writes values as given).
#[derive(Clone, Copy)]
struct Value<'a>(&'a str);

impl EncodeLabelValue for Value<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

type Labels<'a, const N: usize> = [(&'static str, Value<'a>); N];

fn gauge(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, v: f64) -> fmt::Result {
    ConstGauge::new(v).encode(m.encode_family(labels)?)
}

fn counter(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, v: u64) -> fmt::Result {
    ConstCounter::new(v).encode(m.encode_family(labels)?)
}

/// One counter per `(value, count)` of `counts`, labelled `first` and `label="value"`.
fn counters(
    m: &mut MetricEncoder<'_>,
    first: (&'static str, Value<'_>),
    label: &'static str,
    counts: &[(&str, u64)],
) -> fmt::Result {
    counts
        .iter()
        .try_for_each(|(value, n)| counter(m, &[first, (label, Value(value))], *n))
}

fn bit(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^53
fn float(n: u64) -> f64 {
    n as f64
}

impl Collector for Metrics {
    fn encode(&self, mut out: DescriptorEncoder<'_>) -> fmt::Result {
        store(self, &mut out)?;
        let balancers: Vec<(&str, Vec<Upstream>)> = self
            .balancers
            .iter()
            .map(|(n, read)| (n.as_str(), read()))
            .collect();
        if !balancers.is_empty() {
            upstreams(&balancers, &mut out)?;
        }
        let canaries: Vec<(&str, Snapshot)> = self
            .canaries
            .iter()
            .map(|(n, h)| (n.as_str(), h.snapshot()))
            .collect();
        if !canaries.is_empty() {
            canary(&canaries, &mut out)?;
        }
        rate_limits(self, &mut out)
    }
}

fn store(metrics: &Metrics, out: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let Some(store) = &metrics.store else {
        return Ok(());
    };
    let status = store.status();
    let help = "Changes the policy store has taken.";
    let m = out.encode_descriptor(
        "fluxgate_policy_store_generation",
        help,
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(float(status.generation)).encode(m)?;
    let help = "Policy applies, by result.";
    let mut m =
        out.encode_descriptor("fluxgate_policy_applies", help, None, MetricType::Counter)?;
    counter(&mut m, &[("result", Value("applied"))], status.applied)?;
    counter(&mut m, &[("result", Value("rejected"))], status.rejected)?;
    let help =
        "Removals that left a policy's traffic without any policy (a delete, a file removed).";
    let m = out.encode_descriptor("fluxgate_policy_removals", help, None, MetricType::Counter)?;
    ConstCounter::new(status.removed).encode(m)?;
    let help = "Store generation at which each policy in force was applied.";
    let mut m =
        out.encode_descriptor("fluxgate_policy_generation", help, None, MetricType::Gauge)?;
    for policy in &status.policies {
        let id = policy.id.to_string();
        gauge(&mut m, &[("policy", Value(&id))], float(policy.generation))?;
    }
    Ok(())
}

type UpstreamGauge = fn(&Upstream) -> Option<f64>;

fn upstreams(balancers: &[(&str, Vec<Upstream>)], out: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let each = |f: &mut dyn FnMut(Labels<'_, 2>, &Upstream) -> fmt::Result| {
        balancers.iter().try_for_each(|(balancer, endpoints)| {
            endpoints.iter().try_for_each(|e| {
                f(
                    [
                        ("balancer", Value(balancer)),
                        ("endpoint", Value(&e.endpoint)),
                    ],
                    e,
                )
            })
        })
    };
    let help = "Requests finished by each endpoint, by outcome (failure: 5xx, timeout, transport error; overload: 429, 503).";
    let mut m = out.encode_descriptor(
        "fluxgate_upstream_requests",
        help,
        None,
        MetricType::Counter,
    )?;
    each(&mut |[b, e], u| {
        let successes = u
            .requests
            .saturating_sub(u.failures)
            .saturating_sub(u.overloads);
        counter(&mut m, &[b, e, ("outcome", Value("success"))], successes)?;
        counter(&mut m, &[b, e, ("outcome", Value("failure"))], u.failures)?;
        counter(&mut m, &[b, e, ("outcome", Value("overload"))], u.overloads)
    })?;
    let help = "Time from sending a request to an endpoint to its response or error.";
    let name = "fluxgate_upstream_request_duration_seconds";
    let mut m = out.encode_descriptor(name, help, None, MetricType::Histogram)?;
    each(&mut |labels, u| {
        // prometheus-client takes each bucket's own count; the balancer keeps cumulative ones.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = u
            .latency
            .buckets()
            .map(|(le, cumulative)| {
                let own = cumulative.saturating_sub(below);
                below = cumulative;
                (le.map_or(f64::MAX, |d| d.as_secs_f64()), own)
            })
            .collect();
        let sum = u.latency.sum().as_secs_f64();
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
            sum,
            u.latency.count(),
            &buckets,
            None,
        )
    })?;
    let gauges: [(&str, &str, UpstreamGauge); 5] = [
        (
            "fluxgate_upstream_healthy",
            "1 when active health checks pass.",
            |u| Some(bit(u.healthy)),
        ),
        ("fluxgate_upstream_weight", "Configured weight.", |u| {
            Some(f64::from(u.weight))
        }),
        (
            "fluxgate_upstream_effective_weight",
            "Weight in effect (0 when drained).",
            |u| Some(u.effective_weight),
        ),
        (
            "fluxgate_upstream_in_flight_requests",
            "Requests in flight.",
            |u| Some(f64::from(u.in_flight)),
        ),
        (
            "fluxgate_upstream_latency_ewma_seconds",
            "Peak-EWMA latency the balancer picks by (with the failure penalty).",
            |u| u.latency_ewma.map(|d| d.as_secs_f64()),
        ),
    ];
    for (name, help, read) in gauges {
        let mut m = out.encode_descriptor(name, help, None, MetricType::Gauge)?;
        each(&mut |labels, u| read(u).map_or(Ok(()), |v| gauge(&mut m, &labels, v)))?;
    }
    let help = "1 when the endpoint gets no new requests, with the reason.";
    let mut m =
        out.encode_descriptor("fluxgate_upstream_drained", help, None, MetricType::Gauge)?;
    each(&mut |[b, e], u| {
        let reason = ("reason", Value(u.drained.unwrap_or("none")));
        gauge(&mut m, &[b, e, reason], bit(u.drained.is_some()))
    })
}

const PHASES: [Phase; 4] = [
    Phase::Progressing,
    Phase::Paused,
    Phase::Promoted,
    Phase::RolledBack,
];

type SideGauge = fn(&SideStats) -> Option<f64>;
type CanaryGauge = fn(&Snapshot) -> f64;

fn canary(canaries: &[(&str, Snapshot)], out: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let gauges: [(&str, &str, CanaryGauge); 2] = [
        (
            "fluxgate_canary_weight_ratio",
            "Share of requests routed to the canary (0 to 1).",
            |s| f64::from(s.weight) / 100.0,
        ),
        (
            "fluxgate_canary_failed_checks",
            "Failed analyses in a row.",
            |s| f64::from(s.failed_checks),
        ),
    ];
    for (family, help, read) in gauges {
        let mut m = out.encode_descriptor(family, help, None, MetricType::Gauge)?;
        for (name, s) in canaries {
            gauge(&mut m, &[("canary", Value(name))], read(s))?;
        }
    }
    let help = "1 for the canary's current phase, 0 for the others.";
    let mut m = out.encode_descriptor("fluxgate_canary_phase", help, None, MetricType::Gauge)?;
    for (name, s) in canaries {
        for phase in PHASES {
            let phase_name = phase.to_string();
            let labels = [("canary", Value(name)), ("phase", Value(&phase_name))];
            gauge(&mut m, &labels, bit(phase == s.phase))?;
        }
    }
    let help = "Requests routed to each side.";
    let mut m = out.encode_descriptor("fluxgate_canary_routed", help, None, MetricType::Counter)?;
    for (name, s) in canaries {
        for (side, stats) in [("stable", &s.stable), ("canary", &s.canary)] {
            counter(
                &mut m,
                &[("canary", Value(name)), ("side", Value(side))],
                stats.routed,
            )?;
        }
    }
    let sides: [(&str, &str, SideGauge); 3] = [
        (
            "fluxgate_canary_window_requests",
            "Responses in the last full analysis window.",
            |s| Some(float(s.window_requests)),
        ),
        (
            "fluxgate_canary_window_error_ratio",
            "Failures and overloads per response in the last analysis window.",
            |s| s.error_rate,
        ),
        (
            "fluxgate_canary_window_latency_p99_seconds",
            "p99 latency in the last analysis window.",
            |s| s.p99.map(|d| d.as_secs_f64()),
        ),
    ];
    for (family, help, read) in sides {
        let mut m = out.encode_descriptor(family, help, None, MetricType::Gauge)?;
        for (name, s) in canaries {
            for (side, stats) in [("stable", &s.stable), ("canary", &s.canary)] {
                if let Some(v) = read(stats) {
                    gauge(&mut m, &[("canary", Value(name)), ("side", Value(side))], v)?;
                }
            }
        }
    }
    let help = "Decisions taken, by kind.";
    let mut m = out.encode_descriptor(
        "fluxgate_canary_transitions",
        help,
        None,
        MetricType::Counter,
    )?;
    for (name, s) in canaries {
        let t = &s.transitions;
        let kinds = [
            ("started", t.started),
            ("advanced", t.advanced),
            ("passed", t.passed),
            ("held", t.held),
            ("failed", t.failed),
            ("promoted", t.promoted),
            ("rolledBack", t.rolled_back),
            ("paused", t.paused),
            ("resumed", t.resumed),
            ("policyUpdates", t.policy_updates),
        ];
        counters(&mut m, ("canary", Value(name)), "kind", &kinds)?;
    }
    Ok(())
}

type LimitCount = fn(&fluxgate_ratelimit::LimitSnapshot) -> u64;

fn rate_limits(metrics: &Metrics, out: &mut DescriptorEncoder<'_>) -> fmt::Result {
    if metrics.rate_limits.is_empty() {
        return Ok(());
    }
    let snapshots: Vec<_> = metrics.rate_limits.iter().map(|read| read()).collect();
    let help = "Requests decided by the rate limiter, by result.";
    let mut m = out.encode_descriptor(
        "fluxgate_ratelimit_requests",
        help,
        None,
        MetricType::Counter,
    )?;
    for s in &snapshots {
        let policy = s.policy.as_deref().unwrap_or("");
        let results = [
            ("admitted", s.admitted),
            ("refused", s.refused),
            ("rejected", s.rejected),
        ];
        counters(&mut m, ("policy", Value(policy)), "result", &results)?;
    }
    let help =
        "Requests keyed on the client address when the server gave none (they share a bucket).";
    let mut m = out.encode_descriptor(
        "fluxgate_ratelimit_no_client_address",
        help,
        None,
        MetricType::Counter,
    )?;
    for s in &snapshots {
        let policy = s.policy.as_deref().unwrap_or("");
        counter(&mut m, &[("policy", Value(policy))], s.no_client_address)?;
    }
    store_health(&snapshots, out)?;
    let per_limit: [(&str, &str, LimitCount); 3] = [
        (
            "fluxgate_ratelimit_admitted",
            "Requests a limit admitted.",
            |l| l.admitted,
        ),
        (
            "fluxgate_ratelimit_refused",
            "Requests a limit refused.",
            |l| l.refused,
        ),
        (
            "fluxgate_ratelimit_shadow_refused",
            "Requests a shadow limit would have refused.",
            |l| l.shadow_refused,
        ),
    ];
    for (family, help, read) in per_limit {
        let mut m = out.encode_descriptor(family, help, None, MetricType::Counter)?;
        for s in &snapshots {
            let policy = s.policy.as_deref().unwrap_or("");
            for l in &s.limits {
                let labels = [
                    ("policy", Value(policy)),
                    ("limit", Value(&l.name)),
                    ("key", Value(&l.key)),
                ];
                counter(&mut m, &labels, read(l))?;
            }
        }
    }
    Ok(())
}

type HealthCount = fn(&StoreHealth) -> u64;

/// The shared store's failures (`fluxgate_ratelimit_store_*`): a sample per layer that has
/// one; the families are declared either way, so that dashboards and alerts find them.
fn store_health(snapshots: &[MetricsSnapshot], out: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let shared: Vec<(&str, StoreHealth)> = snapshots
        .iter()
        .filter_map(|s| Some((s.policy.as_deref().unwrap_or(""), s.store?)))
        .collect();
    let help = "Whether the shared rate-limit store answers (0 while decisions fall back).";
    let mut m =
        out.encode_descriptor("fluxgate_ratelimit_store_up", help, None, MetricType::Gauge)?;
    for (policy, health) in &shared {
        gauge(&mut m, &[("policy", Value(policy))], bit(!health.down))?;
    }
    let help = "Replicas counted as sharing the rate limits.";
    let mut m = out.encode_descriptor(
        "fluxgate_ratelimit_store_replicas",
        help,
        None,
        MetricType::Gauge,
    )?;
    for (policy, health) in &shared {
        gauge(
            &mut m,
            &[("policy", Value(policy))],
            f64::from(health.replicas),
        )?;
    }
    let counts: [(&str, &str, HealthCount); 4] = [
        (
            "fluxgate_ratelimit_store_outages",
            "Outages of the shared rate-limit store (each counted once).",
            |h| h.outages,
        ),
        (
            "fluxgate_ratelimit_store_fallback_decisions",
            "Decisions made by the onStoreFailure fallback instead of the shared store.",
            |h| h.fallback_decisions,
        ),
        (
            "fluxgate_ratelimit_store_timeouts",
            "Decisions that waited their whole timeout on the shared store.",
            |h| h.timeouts,
        ),
        (
            "fluxgate_ratelimit_store_sync_failures",
            "Sync rounds (pushes, heartbeats) with the shared store that failed.",
            |h| h.sync_failures,
        ),
    ];
    for (family, help, read) in counts {
        let mut m = out.encode_descriptor(family, help, None, MetricType::Counter)?;
        for (policy, health) in &shared {
            counter(&mut m, &[("policy", Value(policy))], read(health))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use fluxgate_balance::{Balance, Weighted};
    use fluxgate_core::policy::LoadBalancing;
    use prometheus_client::registry::Registry;

    use crate::metrics::{Format, Metrics, encode};

    #[test]
    fn label_values_are_escaped() {
        let ok = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::io::Error>(http::Response::new(()))
        });
        let balance: Balance<_, http::Request<()>> = Balance::new(
            LoadBalancing::default(),
            [("a\"b\\c\nd", Weighted::new(ok, 1))],
        );
        let mut registry = Registry::default();
        Metrics::new()
            .balancer("web", balance.handle())
            .register(&mut registry);
        let text = encode(&registry, Format::Text);
        let line = r#"fluxgate_upstream_healthy{balancer="web",endpoint="a\"b\\c\nd"} 1.0"#;
        assert!(text.lines().any(|l| l == line), "{text}");
    }
}
