//! `/readyz` on the admin API, through `Lifecycle::readiness`: not ready while starting, ready
//! with the policy loaded, the listeners bound and a healthy endpoint on each side; not ready
//! again when a side has no healthy endpoint, when the policy is gone, and once draining.
//! `/healthz` stays 200 throughout.

mod support;

use std::time::Duration;

use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_gateway::lifecycle::Lifecycle;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use support::gateway::{Named, get};
use support::{serve, within};

const POLICY: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
    metadata: {name: shop, namespace: test}\n\
    spec:\n\
    \x20 loadBalancing: {healthCheck: {interval: 50ms, unhealthyThreshold: 2, healthyThreshold: 1}}\n\
    \x20 canary: {enabled: true, weight: 10}\n";

/// Waits until `/readyz` answers `status`, and returns its body.
async fn readyz_becomes(url: &str, status: u16) -> String {
    within(async {
        loop {
            let answer = get(url, &[]).await;
            if answer.status.as_u16() == status {
                break answer.body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn readyz_follows_the_gateway() {
    let stable = Named::start("stable").await;
    let canary = Named::start("canary").await;
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let id = PolicyId::new("test", "shop");
    let config = StackConfig::new(vec![stable.spec(1)]).canary_upstreams(vec![canary.spec(1)]);
    let gateway = Gateway::build(&store, &id, &config).unwrap();
    let lifecycle = Lifecycle::new();
    let proxy = serve(lifecycle.track(gateway.service())).await;
    let admin = gateway
        .admin(&id)
        .readiness(lifecycle.readiness(&gateway, store.clone(), id.clone()))
        .build();
    let admin = serve(admin.router()).await;
    let readyz = format!("http://{}/readyz", admin.local_addr());
    let healthz = format!("http://{}/healthz", admin.local_addr());

    let starting = readyz_becomes(&readyz, 503).await;
    assert!(starting.contains("starting"), "{starting}");
    lifecycle.listening();
    assert_eq!(readyz_becomes(&readyz, 200).await, "ready\n");

    canary.fail(true);
    let body = readyz_becomes(&readyz, 503).await;
    assert_eq!(body, "not ready: no healthy canary endpoint\n");
    canary.fail(false);
    readyz_becomes(&readyz, 200).await;
    stable.fail(true);
    let body = readyz_becomes(&readyz, 503).await;
    assert_eq!(body, "not ready: no healthy stable endpoint\n");
    stable.fail(false);
    readyz_becomes(&readyz, 200).await;

    store.delete(&id);
    let body = readyz_becomes(&readyz, 503).await;
    assert_eq!(body, "not ready: policy test/shop is not loaded\n");
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    readyz_becomes(&readyz, 200).await;

    assert_eq!(get(&healthz, &[]).await.status, 200);
    let report = lifecycle.drain(proxy, Duration::from_secs(1)).await;
    assert_eq!(report.cut, 0);
    assert_eq!(
        readyz_becomes(&readyz, 503).await,
        "not ready: shutting down\n"
    );
    assert_eq!(get(&healthz, &[]).await.status, 200);
}
