//! The `/metrics` exposition: Prometheus text format 0.0.4, written by hand.

use std::fmt::Write;

use fluxgate_canary::{Phase, Snapshot};
use serde_json::Value;

use super::{EndpointView, Inner};

const PHASES: [Phase; 4] = [
    Phase::Progressing,
    Phase::Paused,
    Phase::Promoted,
    Phase::RolledBack,
];

/// Writes families: each `# HELP` and `# TYPE` once, then its samples.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"");
                escape_label(&mut self.out, text);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        if value.is_nan() {
            self.out.push_str("NaN");
        } else if value.is_infinite() {
            self.out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(self.out, "{value}");
        }
        self.out.push('\n');
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^53
fn f(n: u64) -> f64 {
    n as f64
}

pub(super) fn exposition(inner: &Inner) -> String {
    let mut x = Exposition { out: String::new() };
    store(&mut x, inner);
    let balancers: Vec<(&str, Vec<EndpointView>)> = inner
        .balancers
        .iter()
        .map(|(name, read)| (name.as_str(), read()))
        .collect();
    upstreams(&mut x, &balancers);
    let canaries: Vec<(&str, Snapshot)> = inner
        .canaries
        .iter()
        .map(|(name, handle)| (name.as_str(), handle.snapshot()))
        .collect();
    canary(&mut x, &canaries);
    rate_limits(&mut x, inner);
    x.out
}

fn store(x: &mut Exposition, inner: &Inner) {
    let Some(store) = &inner.store else { return };
    let status = store.status();
    let name = "fluxgate_policy_store_generation";
    x.family(name, "gauge", "Changes the policy store has taken.");
    x.sample(name, &[], f(status.generation));
    let name = "fluxgate_policy_applies_total";
    x.family(name, "counter", "Policy applies, by result.");
    x.sample(name, &[("result", "applied")], f(status.applied));
    x.sample(name, &[("result", "rejected")], f(status.rejected));
    let name = "fluxgate_policy_removals_total";
    x.family(
        name,
        "counter",
        "Removals (a delete, a policy file removed) that left a policy's traffic without a policy.",
    );
    x.sample(name, &[], f(status.removed));
    let name = "fluxgate_policy_generation";
    x.family(
        name,
        "gauge",
        "Store generation at which each policy in force was applied.",
    );
    for policy in &status.policies {
        let id = policy.id.to_string();
        x.sample(name, &[("policy", &id)], f(policy.generation));
    }
}

type EndpointGauge = fn(&EndpointView) -> Option<f64>;

fn upstreams(x: &mut Exposition, balancers: &[(&str, Vec<EndpointView>)]) {
    let gauges: [(&str, &str, EndpointGauge); 8] = [
        (
            "fluxgate_upstream_healthy",
            "1 when active health checks pass.",
            |e| Some(if e.healthy { 1.0 } else { 0.0 }),
        ),
        ("fluxgate_upstream_weight", "Configured weight.", |e| {
            Some(f64::from(e.weight))
        }),
        (
            "fluxgate_upstream_effective_weight",
            "Weight in effect (0 when drained).",
            |e| Some(e.effective_weight),
        ),
        ("fluxgate_upstream_in_flight", "Requests in flight.", |e| {
            Some(f64::from(e.in_flight))
        }),
        (
            "fluxgate_upstream_requests_last_second",
            "Requests finished over the last second.",
            |e| Some(f(e.requests)),
        ),
        (
            "fluxgate_upstream_error_ratio",
            "Failures and overloads per request over the last second.",
            |e| e.error_rate,
        ),
        (
            "fluxgate_upstream_latency_p95_seconds",
            "p95 latency over the last second.",
            |e| e.p95_ms.map(|ms| ms / 1e3),
        ),
        (
            "fluxgate_upstream_latency_ewma_seconds",
            "Peak-EWMA latency (with the failure penalty).",
            |e| e.latency_ewma_ms.map(|ms| ms / 1e3),
        ),
    ];
    if balancers.is_empty() {
        return;
    }
    for (name, help, read) in gauges {
        x.family(name, "gauge", help);
        for (balancer, endpoints) in balancers {
            for e in endpoints {
                if let Some(value) = read(e) {
                    x.sample(
                        name,
                        &[("balancer", balancer), ("endpoint", &e.endpoint)],
                        value,
                    );
                }
            }
        }
    }
    upstream_totals(x, balancers);
    let name = "fluxgate_upstream_drained";
    x.family(
        name,
        "gauge",
        "1 when the endpoint gets no new requests, with the reason.",
    );
    for (balancer, endpoints) in balancers {
        for e in endpoints {
            let labels = [
                ("balancer", *balancer),
                ("endpoint", e.endpoint.as_str()),
                ("reason", e.drained.as_deref().unwrap_or("none")),
            ];
            x.sample(name, &labels, if e.drained.is_some() { 1.0 } else { 0.0 });
        }
    }
}

/// The balancers' cumulative counts: requests by outcome, and the latency histogram.
fn upstream_totals(x: &mut Exposition, balancers: &[(&str, Vec<EndpointView>)]) {
    let name = "fluxgate_upstream_requests_total";
    x.family(
        name,
        "counter",
        "Requests finished by each endpoint, by outcome (failure: 5xx, timeout, transport error; overload: 429, 503).",
    );
    for (balancer, endpoints) in balancers {
        for e in endpoints {
            let successes = e
                .requests_total
                .saturating_sub(e.failures_total)
                .saturating_sub(e.overloads_total);
            for (outcome, count) in [
                ("success", successes),
                ("failure", e.failures_total),
                ("overload", e.overloads_total),
            ] {
                let labels = [
                    ("balancer", *balancer),
                    ("endpoint", e.endpoint.as_str()),
                    ("outcome", outcome),
                ];
                x.sample(name, &labels, f(count));
            }
        }
    }
    let name = "fluxgate_upstream_request_duration_seconds";
    x.family(
        name,
        "histogram",
        "Time from sending a request to an endpoint to its response or error.",
    );
    let (bucket, sum, count) = (
        format!("{name}_bucket"),
        format!("{name}_sum"),
        format!("{name}_count"),
    );
    for (balancer, endpoints) in balancers {
        for e in endpoints {
            for (le, n) in e.latency.buckets() {
                let le = le.map_or_else(|| "+Inf".to_owned(), |d| d.as_secs_f64().to_string());
                let labels = [
                    ("balancer", *balancer),
                    ("endpoint", e.endpoint.as_str()),
                    ("le", le.as_str()),
                ];
                x.sample(&bucket, &labels, f(n));
            }
            let labels = [("balancer", *balancer), ("endpoint", e.endpoint.as_str())];
            x.sample(&sum, &labels, e.latency.sum().as_secs_f64());
            x.sample(&count, &labels, f(e.latency.count()));
        }
    }
}

type SideGauge = fn(&fluxgate_canary::SideStats) -> Option<f64>;

fn canary(x: &mut Exposition, canaries: &[(&str, Snapshot)]) {
    if canaries.is_empty() {
        return;
    }
    let name = "fluxgate_canary_weight_percent";
    x.family(name, "gauge", "Weight of the canary, in percent.");
    for (canary, s) in canaries {
        x.sample(name, &[("canary", canary)], f64::from(s.weight));
    }
    let name = "fluxgate_canary_phase";
    x.family(
        name,
        "gauge",
        "1 for the canary's current phase, 0 for the others.",
    );
    for (canary, s) in canaries {
        for phase in PHASES {
            let value = if phase == s.phase { 1.0 } else { 0.0 };
            x.sample(
                name,
                &[("canary", canary), ("phase", &phase.to_string())],
                value,
            );
        }
    }
    let name = "fluxgate_canary_failed_checks";
    x.family(name, "gauge", "Failed analyses in a row.");
    for (canary, s) in canaries {
        x.sample(name, &[("canary", canary)], f64::from(s.failed_checks));
    }
    let name = "fluxgate_canary_routed_total";
    x.family(name, "counter", "Requests routed to each side.");
    for (canary, s) in canaries {
        x.sample(
            name,
            &[("canary", canary), ("side", "stable")],
            f(s.stable.routed),
        );
        x.sample(
            name,
            &[("canary", canary), ("side", "canary")],
            f(s.canary.routed),
        );
    }
    let sides: [(&str, &str, SideGauge); 3] = [
        (
            "fluxgate_canary_window_requests",
            "Responses in the last full analysis window.",
            |s| Some(f(s.window_requests)),
        ),
        (
            "fluxgate_canary_error_ratio",
            "Failures and overloads per response in the last analysis window.",
            |s| s.error_rate,
        ),
        (
            "fluxgate_canary_latency_p99_seconds",
            "p99 latency in the last analysis window.",
            |s| s.p99.map(|d| d.as_secs_f64()),
        ),
    ];
    for (name, help, read) in sides {
        x.family(name, "gauge", help);
        for (canary, s) in canaries {
            for (side, stats) in [("stable", &s.stable), ("canary", &s.canary)] {
                if let Some(value) = read(stats) {
                    x.sample(name, &[("canary", canary), ("side", side)], value);
                }
            }
        }
    }
    let name = "fluxgate_canary_transitions_total";
    x.family(name, "counter", "Decisions taken, by kind.");
    for (canary, s) in canaries {
        if let Value::Object(kinds) = super::status::to_value(s.transitions) {
            for (kind, count) in kinds {
                let count = count.as_u64().unwrap_or(0);
                x.sample(name, &[("canary", canary), ("kind", &kind)], f(count));
            }
        }
    }
}

fn rate_limits(x: &mut Exposition, inner: &Inner) {
    if inner.rate_limits.is_empty() {
        return;
    }
    let snapshots: Vec<_> = inner.rate_limits.iter().map(|read| read()).collect();
    let name = "fluxgate_ratelimit_requests_total";
    x.family(
        name,
        "counter",
        "Requests decided by the rate limiter, by result.",
    );
    for m in &snapshots {
        let policy = m.policy.as_deref().unwrap_or("");
        for (result, count) in [
            ("admitted", m.admitted),
            ("refused", m.refused),
            ("rejected", m.rejected),
        ] {
            x.sample(name, &[("policy", policy), ("result", result)], f(count));
        }
    }
    type LimitCount = fn(&fluxgate_ratelimit::LimitSnapshot) -> u64;
    let per_limit: [(&str, &str, LimitCount); 3] = [
        (
            "fluxgate_ratelimit_admitted_total",
            "Requests a limit admitted.",
            |l| l.admitted,
        ),
        (
            "fluxgate_ratelimit_refused_total",
            "Requests a limit refused.",
            |l| l.refused,
        ),
        (
            "fluxgate_ratelimit_shadow_refused_total",
            "Requests a shadow limit would have refused.",
            |l| l.shadow_refused,
        ),
    ];
    for (name, help, read) in per_limit {
        x.family(name, "counter", help);
        for m in &snapshots {
            let policy = m.policy.as_deref().unwrap_or("");
            for l in &m.limits {
                let labels = [
                    ("policy", policy),
                    ("limit", l.name.as_str()),
                    ("key", l.key.as_str()),
                ];
                x.sample(name, &labels, f(read(l)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels_and_help() {
        let mut x = Exposition { out: String::new() };
        x.family("m", "gauge", "a\\b\nc");
        x.sample("m", &[("l", "q\"\\\nz")], 1.5);
        x.sample("m", &[], f64::INFINITY);
        assert_eq!(
            x.out,
            "# HELP m a\\\\b\\nc\n# TYPE m gauge\nm{l=\"q\\\"\\\\\\nz\"} 1.5\nm +Inf\n"
        );
    }

    #[tokio::test]
    async fn upstream_counters_and_latency_histogram() {
        use fluxgate_balance::{Balance, Weighted};
        use fluxgate_core::policy::LoadBalancing;
        use tower::{Service, ServiceExt};

        let status = |code: u16| {
            Weighted::new(
                tower::service_fn(move |_: http::Request<()>| async move {
                    http::Response::builder().status(code).body(())
                }),
                1,
            )
        };
        let mut balance = Balance::new(
            LoadBalancing::default(),
            [("ok", status(200)), ("bad", status(500))],
        );
        for _ in 0..4 {
            let svc = balance.ready().await.unwrap();
            svc.call(http::Request::new(())).await.unwrap();
        }
        let admin = super::super::Admin::builder()
            .balancer("web", balance.handle())
            .build();
        let text = admin.metrics();
        for line in [
            "# TYPE fluxgate_upstream_requests_total counter",
            r#"fluxgate_upstream_requests_total{balancer="web",endpoint="ok",outcome="success"} 2"#,
            r#"fluxgate_upstream_requests_total{balancer="web",endpoint="bad",outcome="failure"} 2"#,
            r#"fluxgate_upstream_requests_total{balancer="web",endpoint="bad",outcome="overload"} 0"#,
            "# TYPE fluxgate_upstream_request_duration_seconds histogram",
            r#"fluxgate_upstream_request_duration_seconds_bucket{balancer="web",endpoint="ok",le="0.005"} 2"#,
            r#"fluxgate_upstream_request_duration_seconds_bucket{balancer="web",endpoint="ok",le="10"} 2"#,
            r#"fluxgate_upstream_request_duration_seconds_bucket{balancer="web",endpoint="ok",le="+Inf"} 2"#,
            r#"fluxgate_upstream_request_duration_seconds_count{balancer="web",endpoint="bad"} 2"#,
            "# TYPE fluxgate_upstream_in_flight gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let sum =
            r#"fluxgate_upstream_request_duration_seconds_sum{balancer="web",endpoint="ok"} "#;
        assert!(text.contains(sum));
    }
}
