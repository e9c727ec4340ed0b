//! The whole request path in-process: rate limit, balancing and draining, canary split and
//! rollback, over real hyper upstreams on loopback.

mod support;

use std::time::Duration;

use fluxgate_canary::Phase;
use http::{Method, StatusCode};
use support::gateway::{Named, Running, get, send};
use support::within;

const RATE_LIMITED: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: test}
spec:
  rateLimit: {requestsPerSecond: 1, burstSize: 5, keyExtractor: header.X-Client-Id}
";

#[tokio::test]
async fn a_client_over_its_limit_gets_429_while_another_passes() {
    let up = Named::start("up").await;
    let gw = Running::start(RATE_LIMITED, &[(&up, 1)], &[], None).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let answer = get(&gw.url("/"), &[("x-client-id", "alice")]).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.headers.contains_key("retry-after"));
        }
        statuses.push(answer.status);
    }
    let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!((5..=7).contains(&admitted), "{statuses:?}");
    assert_eq!(admitted + refused, 12, "{statuses:?}");
    let bob = get(&gw.url("/"), &[("x-client-id", "bob")]).await;
    assert_eq!(bob.status, StatusCode::OK);
    assert_eq!(bob.body, "up");
    let metrics = gw.gateway.rate_limit_metrics();
    assert_eq!(metrics.refused, refused as u64);
}

const BALANCED: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: test}
spec:
  loadBalancing:
    algorithm: weighted-round-robin
    healthCheck: {interval: 50ms, timeout: 200ms, unhealthyThreshold: 2, healthyThreshold: 2}
    outlierDetection: {interval: 50ms, minRequests: 5, maxErrorRate: 0.1, baseEjectionTime: 30s}
";

#[tokio::test]
async fn traffic_follows_the_weights_and_a_failing_upstream_is_drained() {
    let heavy = Named::start("heavy").await;
    let light = Named::start("light").await;
    let gw = Running::start(BALANCED, &[(&heavy, 3), (&light, 1)], &[], None).await;
    let mut heavy_count = 0;
    for _ in 0..200 {
        let answer = get(&gw.url("/"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        heavy_count += usize::from(answer.upstream() == Some("heavy"));
    }
    assert!(
        (140..=160).contains(&heavy_count),
        "heavy got {heavy_count} of 200"
    );

    light.fail(true);
    let drained = within(async {
        loop {
            let mut all_ok = true;
            for _ in 0..40 {
                let answer = get(&gw.url("/"), &[]).await;
                all_ok &= answer.status == StatusCode::OK && answer.upstream() == Some("heavy");
            }
            if all_ok {
                break;
            }
        }
    });
    drained.await;
    let light_state = gw
        .gateway
        .stable()
        .snapshot()
        .into_iter()
        .find(|e| e.key.contains(&light.server.local_addr().to_string()))
        .unwrap();
    assert!(light_state.drained.is_some(), "{light_state:?}");
}

const CANARY: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: test}
spec:
  canary:
    weight: 20
    interval: 500ms
    minRequests: 10
    metrics: {targetErrorRate: 0.01}
";

#[tokio::test]
async fn the_canary_gets_its_weight_and_is_rolled_back_when_it_fails() {
    let stable = Named::start("stable").await;
    let canary = Named::start("canary").await;
    let gw = Running::start(CANARY, &[(&stable, 1)], &[&canary], None).await;
    let mut to_canary = 0;
    for _ in 0..500 {
        let answer = get(&gw.url("/"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        to_canary += usize::from(answer.upstream() == Some("canary"));
    }
    assert!(
        (75..=125).contains(&to_canary),
        "canary got {to_canary} of 500"
    );

    canary.fail(true);
    let handle = gw.gateway.canary().unwrap().clone();
    within(async {
        while handle.snapshot().phase != Phase::RolledBack {
            get(&gw.url("/"), &[]).await;
        }
    })
    .await;
    for _ in 0..100 {
        let answer = get(&gw.url("/"), &[]).await;
        assert_eq!(answer.upstream(), Some("stable"));
        assert_eq!(answer.status, StatusCode::OK);
    }
    let status: serde_json::Value =
        serde_json::from_str(&get(&gw.admin_url("/api/status"), &[]).await.body).unwrap();
    let snapshot = &status["canaries"]["test/shop"];
    assert_eq!(snapshot["phase"], "rolledBack", "{snapshot}");
    assert_eq!(snapshot["lastDecision"]["kind"], "rolledBack", "{snapshot}");
}

#[tokio::test]
async fn a_policy_change_reaches_the_balancers() {
    let one = Named::start("one").await;
    let gw = Running::start(BALANCED, &[(&one, 1)], &[], None).await;
    let changed = BALANCED.replace("weighted-round-robin", "least-request");
    gw.store.apply_bytes(changed.as_bytes(), None).unwrap();
    let stable = gw.gateway.stable().clone();
    within(async {
        while stable.policy().algorithm != fluxgate_core::policy::BalanceAlgorithm::LeastRequest {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(get(&gw.url("/"), &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_post_whose_endpoint_refuses_its_connection_goes_to_another() {
    let dead = Named::start("dead").await;
    let live = Named::start("live").await;
    // The dead endpoint weighs the most: the first requests are picked for it.
    let gw = Running::start(BALANCED, &[(&dead, 9), (&live, 1)], &[], None).await;
    dead.server.shutdown().await;
    for n in 0..10 {
        let body = format!("{{\"order\":{n}}}");
        let answer = send(Method::POST, &gw.url("/orders"), &[], &body).await;
        assert_eq!(answer.status, StatusCode::OK, "POST {n}: {}", answer.body);
        assert_eq!(answer.upstream(), Some("live"), "POST {n}");
    }
}

#[tokio::test]
async fn no_healthy_upstream_is_a_503() {
    let down = Named::start("down").await;
    down.fail(true);
    let gw = Running::start(BALANCED, &[(&down, 1)], &[], None).await;
    within(async {
        while get(&gw.url("/"), &[]).await.status != StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
