//! Three gateway stacks sharing one Redis for their canary (as `fluxgate --redis` builds them):
//! failing canary traffic that no replica alone judges rolls back every replica.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fluxgate_canary::Phase;
use fluxgate_canary::fleet::RedisFleet;
use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_test_support::RedisServer;
use http::Request;
use http_body_util::Empty;
use tower::ServiceExt;

mod support;

use support::gateway::Named;

const POLICY: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
    metadata: {name: shop, namespace: test}\n\
    spec:\n  canary: {weight: 50, interval: 5s, minRequests: 30, errorBudget: 0.9}\n";

async fn replica(redis: &str, stable: &Named, canary: &Named) -> (PolicyStore, Gateway) {
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let fleet = RedisFleet::connect(redis).await.unwrap();
    let config = StackConfig::new(vec![stable.spec(1)])
        .canary_upstreams(vec![canary.spec(1)])
        .canary_fleet(Arc::new(fleet));
    let gateway = Gateway::build(&store, &PolicyId::new("test", "shop"), &config).unwrap();
    (store, gateway)
}

/// Sends `n` requests; how many the canary answered.
async fn send(gateway: &Gateway, n: usize) -> usize {
    let mut canary = 0;
    for _ in 0..n {
        let request = Request::get("http://gateway/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = gateway.service().oneshot(request).await.unwrap();
        canary += usize::from(
            response
                .headers()
                .get("x-upstream")
                .is_some_and(|u| u == "canary"),
        );
    }
    canary
}

async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..150 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_rolls_back_on_every_gateway_replica() {
    let server = RedisServer::start().unwrap();
    let stable = Named::start("stable").await;
    let canary = Named::start("canary").await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&server.url(), &stable, &canary).await);
    }
    let phase = |g: &Gateway| g.canary().unwrap().snapshot().phase;
    let joined = |g: &Gateway| g.canary().unwrap().snapshot().fleet.unwrap().joined;
    assert!(eventually(|| replicas.iter().all(|(_, g)| joined(g))).await);

    canary.fail(true);
    for (_, gateway) in &replicas {
        send(gateway, 25).await; // about 12 canary answers each: under minRequests alone
    }
    assert!(eventually(|| replicas.iter().all(|(_, g)| phase(g) == Phase::RolledBack)).await);
    for (_, gateway) in &replicas {
        assert_eq!(
            send(gateway, 20).await,
            0,
            "no canary traffic after the rollback"
        );
    }
    // A gateway started now stays off the canary.
    let (_store, late) = replica(&server.url(), &stable, &canary).await;
    assert_eq!(send(&late, 20).await, 0);
    assert!(eventually(|| joined(&late)).await);
    assert_eq!(phase(&late), Phase::RolledBack);

    // Every replica's admin status says whose state it shows: the fleet's...
    let id = PolicyId::new("test", "shop");
    let view = |g: &Gateway| {
        let status = g.admin(&id).build().status();
        let canary = &status["canaries"]["test/shop"];
        (
            canary["view"].as_str().map(str::to_owned),
            canary["fleet"]["connected"].as_bool(),
        )
    };
    for (_, gateway) in &replicas {
        assert_eq!(view(gateway), (Some("fleet".to_owned()), Some(true)));
    }
    // ...or, with the shared store gone, only its own.
    drop(server);
    assert!(eventually(|| view(&late).0.as_deref() == Some("localOnly")).await);
    assert_eq!(view(&late).1, Some(false));
}
