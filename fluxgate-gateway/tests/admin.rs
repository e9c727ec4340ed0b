//! The admin API (`fluxgate::admin`) mounted on a running gateway: apply, auth, canary
//! actions, status and Prometheus metrics.

mod support;

use std::collections::HashMap;

use http::{Method, StatusCode};
use support::gateway::{Named, Running, get, send};

const TOKEN: &str = "s3cret-token";

const POLICY: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: test}
spec:
  loadBalancing: {algorithm: weighted-round-robin}
  rateLimit: {requestsPerSecond: 100, burstSize: 50, keyExtractor: header.X-Client-Id}
  canary: {weight: 10, metrics: {targetErrorRate: 0.01}}
";

async fn running() -> (Running, Named, Named) {
    let stable = Named::start("stable").await;
    let canary = Named::start("canary").await;
    let gw = Running::start(POLICY, &[(&stable, 1)], &[&canary], Some(TOKEN)).await;
    (gw, stable, canary)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// What `fluxctl apply --gateway` sends: `PUT /api/policies?namespace=NS`, YAML documents joined
/// by `---`, `Content-Type: application/yaml`, the bearer token.
#[tokio::test]
async fn put_policies_applies_all_or_nothing_behind_the_token() {
    let (gw, _stable, _canary) = running().await;
    let url = gw.admin_url("/api/policies?namespace=test");
    let changed = POLICY.replace("burstSize: 50", "burstSize: 60");
    let other =
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: other}\nspec: {}\n";
    let body = format!("{changed}\n---\n{other}");
    let yaml = ("content-type", "application/yaml");

    for auth in [None, Some("Bearer wrong"), Some("s3cret-token")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let answer = send(Method::PUT, &url, &headers, &body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert_eq!(
        gw.store.generation(),
        1,
        "nothing applied without the token"
    );

    let auth = bearer(TOKEN);
    let answer = send(Method::PUT, &url, &[yaml, ("authorization", &auth)], &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        "trafficpolicy test/shop configured\ntrafficpolicy test/other created\n"
    );
    let again = send(Method::PUT, &url, &[yaml, ("authorization", &auth)], &body).await;
    assert_eq!(
        again.body,
        "trafficpolicy test/shop unchanged\ntrafficpolicy test/other unchanged\n"
    );

    // One invalid document: 400 with the errors, nothing applied, the old policy stays.
    let invalid = format!(
        "{}\n---\n{}",
        POLICY.replace("burstSize: 50", "burstSize: 70"),
        other.replace("spec: {}", "spec: {rateLimit: {requestsPerSecond: 0}}")
    );
    let refused = send(
        Method::PUT,
        &url,
        &[yaml, ("authorization", &auth)],
        &invalid,
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("spec.rateLimit"), "{}", refused.body);
    assert_eq!(gw.store.generation(), 2);
    let shop = gw.store.get(&gw.id).unwrap();
    let burst = shop.compiled().policy().spec.rate_limit.as_ref().unwrap().0[0].burst_size;
    assert_eq!(burst, 60);

    // A document of another namespace is refused, as kubectl does.
    let foreign = POLICY.replace("namespace: test", "namespace: prod");
    let mismatch = send(
        Method::PUT,
        &url,
        &[yaml, ("authorization", &auth)],
        &foreign,
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert!(mismatch.body.contains("namespace"), "{}", mismatch.body);

    let status: serde_json::Value =
        serde_json::from_str(&get(&gw.admin_url("/api/status"), &[]).await.body).unwrap();
    assert_eq!(status["store"]["generation"], 2);
    assert_eq!(status["store"]["rejected"], 2);
    assert!(
        status["store"]["lastRejection"]["message"].is_string(),
        "{status}"
    );
}

#[tokio::test]
async fn canary_actions_need_the_token_and_follow_the_phase() {
    let (gw, _stable, _canary) = running().await;
    let auth = bearer(TOKEN);
    let abort = gw.admin_url("/api/canary/abort");
    assert_eq!(
        send(Method::POST, &abort, &[], "").await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = send(Method::POST, &abort, &[("authorization", &auth)], "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let snapshot: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(snapshot["phase"], "rolledBack");
    let promote = gw.admin_url("/api/canary/promote?name=test/shop");
    let late = send(Method::POST, &promote, &[("authorization", &auth)], "").await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    let unknown = gw.admin_url("/api/canary/explode");
    assert_eq!(
        send(Method::POST, &unknown, &[("authorization", &auth)], "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let nameless = gw.admin_url("/api/canary/pause?name=nope");
    assert_eq!(
        send(Method::POST, &nameless, &[("authorization", &auth)], "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/"), &[]).await.upstream(), Some("stable"));
    }
}

#[tokio::test]
async fn status_reports_every_part() {
    let (gw, _stable, _canary) = running().await;
    for _ in 0..10 {
        get(&gw.url("/"), &[("x-client-id", "alice")]).await;
    }
    assert_eq!(get(&gw.admin_url("/healthz"), &[]).await.body, "ok\n");
    let answer = get(&gw.admin_url("/api/status"), &[]).await;
    assert_eq!(answer.headers["content-type"], "application/json");
    let status: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(status["store"]["policies"][0]["id"], "test/shop");
    assert_eq!(status["store"]["policies"][0]["generation"], 1);
    assert_eq!(status["balancers"]["stable"][0]["healthy"], true);
    assert_eq!(status["balancers"]["canary"].as_array().unwrap().len(), 1);
    assert_eq!(status["canaries"]["test/shop"]["phase"], "progressing");
    assert_eq!(status["rateLimits"][0]["policy"], "test/shop");
    assert_eq!(status["rateLimits"][0]["admitted"], 10);
    let page = get(&gw.admin_url("/"), &[]).await;
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// One sample: name, labels as written, value.
type Sample = (String, String, f64);

/// Parses Prometheus text: every sample's family has `# TYPE` (after its `# HELP`) above it;
/// returns the families and their types, and the samples by name and labels.
fn parse_prometheus(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let mut types = HashMap::new();
    let mut helped = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap().to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind));
            assert!(
                helped.contains(&name.to_owned()),
                "HELP before TYPE for {name}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} twice"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').expect("closing brace");
                    assert!(labels_are_valid(labels), "labels of {line:?}");
                    (name, labels)
                }
                None => (series, ""),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|base| types.get(*base).is_some_and(|t| t == "histogram"))
                .unwrap_or(name);
            assert!(types.contains_key(family), "{name} has no # TYPE above it");
            if family != name && name.ends_with("_bucket") {
                assert!(labels.contains("le=\""), "{name} without le");
            }
            samples.push((name.to_owned(), labels.to_owned(), value));
        }
    }
    (types, samples)
}

/// `name="value"` pairs separated by commas, values with `\\`, `\"` and `\n` escapes only.
fn labels_are_valid(labels: &str) -> bool {
    let mut chars = labels.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        if chars.next() != Some('"') {
            return false;
        }
        loop {
            match chars.next() {
                Some('\\') => {
                    if !matches!(chars.next(), Some('\\' | '"' | 'n')) {
                        return false;
                    }
                }
                Some('"') => break,
                Some(_) => {}
                None => return false,
            }
        }
        match chars.next() {
            Some(',') | None => {}
            Some(_) => return false,
        }
    }
    true
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_expected_families() {
    let (gw, _stable, _canary) = running().await;
    for _ in 0..30 {
        get(&gw.url("/"), &[("x-client-id", "alice")]).await;
    }
    let answer = get(&gw.admin_url("/metrics"), &[]).await;
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let (types, samples) = parse_prometheus(&answer.body);
    for (family, kind) in [
        ("fluxgate_policy_store_generation", "gauge"),
        ("fluxgate_policy_applies_total", "counter"),
        ("fluxgate_policy_generation", "gauge"),
        ("fluxgate_upstream_healthy", "gauge"),
        ("fluxgate_upstream_drained", "gauge"),
        ("fluxgate_upstream_effective_weight", "gauge"),
        ("fluxgate_upstream_latency_ewma_seconds", "gauge"),
        ("fluxgate_upstream_requests_total", "counter"),
        ("fluxgate_upstream_request_duration_seconds", "histogram"),
        ("fluxgate_canary_weight_ratio", "gauge"),
        ("fluxgate_canary_phase", "gauge"),
        ("fluxgate_canary_routed_total", "counter"),
        ("fluxgate_canary_transitions_total", "counter"),
        ("fluxgate_ratelimit_requests_total", "counter"),
        ("fluxgate_ratelimit_admitted_total", "counter"),
        ("fluxgate_ratelimit_refused_total", "counter"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|(_, _, v)| *v)
    };
    assert_eq!(value("fluxgate_policy_store_generation", ""), Some(1.0));
    assert_eq!(
        value(
            "fluxgate_canary_phase",
            r#"canary="test/shop",phase="progressing""#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "fluxgate_ratelimit_requests_total",
            r#"policy="test/shop",result="admitted""#
        ),
        Some(30.0)
    );
    let routed: f64 = samples
        .iter()
        .filter(|(n, _, _)| n == "fluxgate_canary_routed_total")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(routed, 30.0);
    let sum_of = |family: &str| -> f64 {
        samples
            .iter()
            .filter(|(n, _, _)| n == family)
            .map(|(_, _, v)| v)
            .sum()
    };
    assert_eq!(sum_of("fluxgate_upstream_requests_total"), 30.0);
    assert_eq!(
        sum_of("fluxgate_upstream_request_duration_seconds_count"),
        30.0
    );
}

#[test]
fn the_parser_refuses_bad_labels() {
    assert!(labels_are_valid(r#"a="x\"y",b="\\""#));
    assert!(!labels_are_valid(r#"a="x\y""#));
    assert!(!labels_are_valid(r#"a="x"#));
}
