//! The weighted rotation in front of proxies, the demo upstreams and the admin service.

mod support;

use std::collections::HashMap;
use std::num::NonZeroU32;

use fluxgate_examples::admin::{AdminService, GatewayStatus};
use fluxgate_examples::demo::{self, DemoKind};
use fluxgate_examples::proxy::{Proxy, ProxyConfig, proxy_client};
use fluxgate_examples::rotation::WeightedRotation;
use fluxgate_examples::upstream::UpstreamSpec;
use http::Request;
use support::{client, full, loopback, serve, text, within};

#[tokio::test]
async fn spreads_requests_by_weight_over_real_upstreams() {
    let fast = demo::start(DemoKind::Fast, loopback()).await.unwrap();
    let canary = demo::start(DemoKind::Canary, loopback()).await.unwrap();
    let shared = proxy_client();
    let proxies = [(&fast, 3), (&canary, 1)]
        .map(|(demo, weight)| {
            let proxy = Proxy::new(
                shared.clone(),
                demo.url().parse().unwrap(),
                ProxyConfig::default(),
            );
            (proxy, NonZeroU32::new(weight).unwrap())
        })
        .into_iter()
        .collect();
    let gateway = serve(WeightedRotation::new(proxies).unwrap()).await;

    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        let request = Request::get(format!("http://{}/orders", gateway.local_addr()))
            .body(full(""))
            .unwrap();
        let response = within(client().request(request)).await.unwrap();
        let upstream = response.headers()["x-upstream"]
            .to_str()
            .unwrap()
            .to_owned();
        *counts.entry(upstream).or_default() += 1;
    }
    assert_eq!(counts["fast"], 30);
    assert_eq!(counts["canary"], 10);
    gateway.shutdown().await;
}

#[test]
fn an_empty_rotation_is_refused() {
    assert!(WeightedRotation::<Proxy>::new(Vec::new()).is_err());
}

#[tokio::test]
async fn the_canary_demo_fails_on_request() {
    let canary = demo::start(DemoKind::Canary, loopback()).await.unwrap();
    let base = canary.url();
    let set = Request::post(format!("{base}/admin/fail?rate=0.5"))
        .body(full(""))
        .unwrap();
    assert_eq!(within(client().request(set)).await.unwrap().status(), 200);
    let mut failures = 0;
    for _ in 0..10 {
        let request = Request::get(format!("{base}/checkout"))
            .body(full(""))
            .unwrap();
        let response = within(client().request(request)).await.unwrap();
        assert_eq!(response.headers()["x-version"], "canary");
        if response.status() == 500 {
            failures += 1;
        }
    }
    assert_eq!(failures, 5);
    let health = Request::get(format!("{base}/healthz"))
        .body(full(""))
        .unwrap();
    assert_eq!(
        within(client().request(health)).await.unwrap().status(),
        200
    );
    let bad = Request::post(format!("{base}/admin/fail?rate=2"))
        .body(full(""))
        .unwrap();
    assert_eq!(within(client().request(bad)).await.unwrap().status(), 400);
}

#[tokio::test]
async fn the_demo_echo_shows_the_forwarded_chain() {
    let slow = demo::start(DemoKind::Slow, loopback()).await.unwrap();
    let proxy = support::proxy_to(&slow.url(), ProxyConfig::default()).await;
    let request = Request::get(format!("http://{}/a?b=1", proxy.local_addr()))
        .header("x-forwarded-for", "198.51.100.1")
        .body(full(""))
        .unwrap();
    let echo: serde_json::Value =
        serde_json::from_str(&text(within(client().request(request)).await.unwrap()).await)
            .unwrap();
    assert_eq!(echo["upstream"], "slow");
    assert_eq!(echo["version"], "stable");
    assert_eq!(echo["path"], "/a");
    assert_eq!(echo["query"], "b=1");
    assert_eq!(echo["x_forwarded_for"], "198.51.100.1, 127.0.0.1");
}

#[tokio::test]
async fn admin_reports_health_and_status() {
    let spec: UpstreamSpec = "http://127.0.0.1:1/p,weight=4".parse().unwrap();
    let status = GatewayStatus::new(
        "127.0.0.1:8080".parse().unwrap(),
        vec![spec],
        vec!["http://127.0.0.1:2".parse().unwrap()],
        None,
        Some("redis://127.0.0.1:6379".to_owned()),
    )
    .with_namespace(Some("payments".to_owned()));
    let admin = serve(AdminService::new(status)).await;
    let base = format!("http://{}", admin.local_addr());
    let health = Request::get(format!("{base}/healthz"))
        .body(full(""))
        .unwrap();
    assert_eq!(
        text(within(client().request(health)).await.unwrap()).await,
        "ok\n"
    );
    let request = Request::get(format!("{base}/api/status"))
        .body(full(""))
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&text(within(client().request(request)).await.unwrap()).await)
            .unwrap();
    assert_eq!(json["listen"], "127.0.0.1:8080");
    assert_eq!(json["upstreams"][0]["url"], "http://127.0.0.1:1/p");
    assert_eq!(json["upstreams"][0]["weight"], 4);
    assert_eq!(json["canary_upstreams"][0], "http://127.0.0.1:2");
    assert_eq!(json["namespace"], "payments");
    assert_eq!(json["redis"], "redis://127.0.0.1:6379");
    let missing = Request::get(format!("{base}/nope")).body(full("")).unwrap();
    assert_eq!(
        within(client().request(missing)).await.unwrap().status(),
        404
    );
}
