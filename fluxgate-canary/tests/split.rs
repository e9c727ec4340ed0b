//! Weighted split accuracy and sticky assignment (stable per key, monotone in the weight).

mod support;

use fluxgate_canary::{Canary, Judge};
use fluxgate_core::store::{PolicyId, PolicyStore};
use http::Request;
use support::{Backend, Router, get, router, send, yaml};

fn keyed(id: u32) -> Request<()> {
    Request::get("/")
        .header("x-client-id", format!("client-{id}"))
        .body(())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn hundred_thousand_requests_at_weight_10_within_half_a_point() {
    let (r, _, canary) = router("{weight: 10}");
    // One long-lived clone (a connection) and a fresh clone per request (axum's way).
    let mut one = r.clone();
    for _ in 0..100_000 {
        use tower::ServiceExt;
        one.ready().await.unwrap();
        let _ = tower::Service::call(&mut one, Request::new(()))
            .await
            .unwrap();
    }
    let share = canary.calls() as f64 / 100_000.0;
    assert!((share - 0.10).abs() < 0.0005, "one clone: {share}");
    let before = canary.calls();
    for _ in 0..100_000 {
        get(&r).await;
    }
    let share = (canary.calls() - before) as f64 / 100_000.0;
    assert!((share - 0.10).abs() < 0.005, "clone per request: {share}");
    let snapshot = r.handle().snapshot();
    assert_eq!(snapshot.canary.routed as usize, canary.calls());
    assert_eq!(snapshot.stable.routed + snapshot.canary.routed, 200_000);
}

#[tokio::test(start_paused = true)]
async fn sticky_clients_stay_on_their_side_and_the_share_follows_the_weight() {
    let (r, _, _) = router("{weight: 10, stickyKey: header.X-Client-Id}");
    let mut on_canary = 0;
    for id in 0..10_000 {
        let first = send(&r, keyed(id)).await.unwrap();
        for _ in 0..3 {
            assert_eq!(send(&r, keyed(id)).await.unwrap(), first);
        }
        on_canary += usize::from(first == "canary");
    }
    assert!((900..=1100).contains(&on_canary), "{on_canary}");
    // Without the key, requests are split.
    let canary = futures_count(&r, 1000).await;
    assert!((90..=110).contains(&canary), "{canary}");
}

async fn futures_count(r: &Router, n: usize) -> usize {
    let mut canary = 0;
    for _ in 0..n {
        canary += usize::from(get(r).await == "canary");
    }
    canary
}

#[tokio::test(start_paused = true)]
async fn raising_the_weight_only_moves_clients_from_stable_to_canary() {
    let store = PolicyStore::new();
    let slot = store.slot(&PolicyId::new("t", "web"));
    let (stable, canary) = (Backend::new("stable"), Backend::new("canary"));
    let (r, judge): (Router, Judge) = Canary::new(stable, canary, slot).unwrap();
    judge.spawn().detach();
    // No policy yet: everything to stable.
    assert_eq!(get(&r).await, "stable");
    let mut previous = vec!["stable"; 2000];
    for weight in [5, 10, 15, 25, 50, 100] {
        let spec = format!("{{weight: {weight}, stickyKey: header.x-client-id}}");
        store.apply_bytes(yaml(&spec).as_bytes(), None).unwrap();
        let mut count = 0;
        for (id, was) in previous.iter_mut().enumerate() {
            let side = send(&r, keyed(id as u32)).await.unwrap();
            assert!(
                !(*was == "canary" && side == "stable"),
                "client {id} moved back at {weight}"
            );
            *was = side;
            count += usize::from(side == "canary");
        }
        let expected = 20 * weight;
        assert!(
            count.abs_diff(expected) <= 2 * 20 + expected / 5,
            "{weight}: {count}"
        );
        assert_eq!(r.handle().snapshot().weight as usize, weight);
    }
}
