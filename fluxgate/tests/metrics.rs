//! FluxGate's metrics in a user's own prometheus-client registry, and `/metrics` negotiation.

use fluxgate::admin::Admin;
use fluxgate::balance::{Balance, Weighted};
use fluxgate::canary::Canary;
use fluxgate::metrics::Metrics;
use fluxgate::policy::LoadBalancing;
use fluxgate::ratelimit::RateLimitLayer;
use fluxgate::store::{PolicyId, PolicyStore};
use http_body_util::BodyExt;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tower::{Layer, Service, ServiceExt};

const POLICY: &str = "apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: edge, namespace: shop}
spec:
  rateLimit: {requestsPerSecond: 100, burstSize: 3, keyExtractor: header.X-Client-Id}
  canary: {weight: 10}
";

async fn answer(_: http::Request<()>) -> Result<http::Response<()>, std::io::Error> {
    Ok(http::Response::new(()))
}

/// A store with the policy, its rate limit layer after 5 requests (3 admitted), a balancer and
/// a canary.
async fn parts() -> Metrics {
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let slot = store.slot(&PolicyId::new("shop", "edge"));
    let limits = RateLimitLayer::from_slot(slot.clone());
    let mut limited = limits.layer(tower::service_fn(answer));
    for _ in 0..5 {
        let request = http::Request::get("/")
            .header("x-client-id", "a")
            .body(())
            .unwrap();
        limited.ready().await.unwrap().call(request).await.unwrap();
    }
    let endpoint = Weighted::new(tower::service_fn(answer), 1);
    let balance: Balance<_, http::Request<()>> =
        Balance::new(LoadBalancing::default(), [("10.0.0.1:80", endpoint)]);
    let side = tower::service_fn(answer);
    let (canary, _judge) = Canary::new(side, side, slot).unwrap();
    Metrics::new()
        .store(store)
        .rate_limits(&limits)
        .balancer("web", balance.handle())
        .canary("shop/edge", canary.handle())
}

#[tokio::test]
async fn a_users_registry_exports_fluxgates_metrics() {
    let mut registry = Registry::default();
    let mine: Counter = Counter::default();
    registry.register(
        "myapp_logins",
        "The application's own counter",
        mine.clone(),
    );
    mine.inc();
    parts().await.register(&mut registry);

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for line in [
        "myapp_logins_total 1",
        "# TYPE fluxgate_policy_applies counter",
        r#"fluxgate_policy_applies_total{result="applied"} 1"#,
        r#"fluxgate_ratelimit_requests_total{policy="shop/edge",result="admitted"} 3"#,
        r#"fluxgate_ratelimit_requests_total{policy="shop/edge",result="refused"} 2"#,
        r#"fluxgate_upstream_healthy{balancer="web",endpoint="10.0.0.1:80"} 1.0"#,
        "# TYPE fluxgate_upstream_request_duration_seconds histogram",
        r#"fluxgate_canary_weight_ratio{canary="shop/edge"} 0.1"#,
        r#"fluxgate_canary_phase{canary="shop/edge",phase="progressing"} 1.0"#,
        r#"fluxgate_canary_routed_total{canary="shop/edge",side="canary"} 0"#,
        "# EOF",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    // Each family once, however many parts there are.
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut unique = types.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(types.len(), unique.len());
}

async fn scrape(admin: &Admin, accept: Option<&str>) -> (String, String) {
    let mut request = http::Request::get("/metrics");
    if let Some(accept) = accept {
        request = request.header(http::header::ACCEPT, accept);
    }
    let request = request.body(axum::body::Body::empty()).unwrap();
    let answer = admin.router().oneshot(request).await.unwrap();
    let content_type = answer.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (content_type, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn admin_metrics_negotiate_openmetrics() {
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let admin = Admin::builder().store(store).build();

    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, body) = scrape(&admin, Some(prometheus)).await;
    assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE fluxgate_policy_applies counter\n"));

    for accept in [None, Some("text/plain;version=0.0.4")] {
        let (content_type, body) = scrape(&admin, accept).await;
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        assert!(!body.contains("# EOF"));
        assert!(body.contains("# TYPE fluxgate_policy_applies_total counter\n"));
        assert!(body.contains("fluxgate_policy_applies_total{result=\"applied\"} 1\n"));
    }
}

/// Every family the Grafana dashboard queries is one that FluxGate exports.
#[tokio::test]
async fn the_grafana_dashboard_queries_exported_families() {
    let mut registry = Registry::default();
    parts().await.register(&mut registry);
    let text = fluxgate::metrics::encode(&registry, fluxgate::metrics::Format::Text);
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/fluxgate-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("fluxgate_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = name.strip_suffix("_bucket").unwrap_or(&name);
                assert!(
                    families.contains(&family),
                    "{name} in {expr:?} is not exported"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 20, "{queried}");
}
