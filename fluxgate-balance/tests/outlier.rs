//! Passive outlier detection: draining, backoff and return, caps, fail-fast, slow start,
//! discovery changes, policy changes. On a paused clock.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{drive, endpoint, endpoints};
use fluxgate_balance::{Balance, BalanceError, DrainReason, RespondUnavailable, Weighted};
use fluxgate_core::policy::{
    BalanceAlgorithm, HealthCheck, LoadBalancing, OutlierDetection, SlowStart,
};
use futures::channel::mpsc;
use tower::discover::Change;
use tower::{Service, ServiceExt};

fn with_outliers(algorithm: BalanceAlgorithm) -> LoadBalancing {
    let mut p = LoadBalancing::default();
    p.algorithm = algorithm;
    p.outlier_detection = Some(OutlierDetection::default());
    p
}

fn drained(b: &fluxgate_balance::BalanceHandle<&'static str>, key: &str) -> Option<DrainReason> {
    b.snapshot()
        .into_iter()
        .find(|s| s.key == key)
        .unwrap()
        .drained
}

#[tokio::test(start_paused = true)]
async fn drains_on_5xx_and_lets_in_flight_finish() {
    let (list, scripts) = endpoints(&[("a", 10, 1), ("b", 10, 1), ("c", 10, 1), ("d", 10, 1)]);
    let mut balance = Balance::new(with_outliers(BalanceAlgorithm::RoundRobin), list);
    let handle = balance.handle();
    drive(&mut balance, 400, 8, Some(Duration::from_millis(1))).await;
    // One request in flight on "b" when it starts failing: it still completes.
    scripts["b"].latency_ms.store(300, Ordering::Relaxed);
    let mut slow = None;
    for _ in 0..4 {
        let fut = balance.ready().await.unwrap().call(http::Request::new(()));
        slow.get_or_insert(Vec::new()).push(fut);
    }
    scripts["b"].status.store(502, Ordering::Relaxed);
    scripts["b"].latency_ms.store(10, Ordering::Relaxed);
    let tally = drive(&mut balance, 1_000, 8, Some(Duration::from_millis(1))).await;
    for fut in slow.unwrap() {
        assert!(fut.await.is_ok());
    }
    assert!(matches!(
        drained(&handle, "b"),
        Some(DrainReason::ConsecutiveFailures(_) | DrainReason::ErrorRate(_))
    ));
    assert!(tally.failed_status <= 6, "{tally:?}");
    let before = scripts["b"].served.load(Ordering::Relaxed);
    drive(&mut balance, 1_000, 8, Some(Duration::from_millis(1))).await;
    assert_eq!(scripts["b"].served.load(Ordering::Relaxed), before);
}

#[tokio::test(start_paused = true)]
async fn drains_on_error_rate_without_a_streak() {
    let (list, scripts) = endpoints(&[("a", 5, 1), ("b", 5, 1)]);
    let mut balance = Balance::new(with_outliers(BalanceAlgorithm::RoundRobin), list);
    let handle = balance.handle();
    // Every 4th request of "b" fails: 12.5% > 2.5%, never 5 in a row.
    for round in 0..200 {
        let fail = round % 4 == 0;
        scripts["b"]
            .status
            .store(if fail { 500 } else { 200 }, Ordering::Relaxed);
        drive(&mut balance, 2, 2, Some(Duration::from_millis(2))).await;
        if drained(&handle, "b").is_some() {
            break;
        }
    }
    match drained(&handle, "b") {
        Some(DrainReason::ErrorRate(rate)) => assert!(rate > 0.025),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn drains_on_p95_latency() {
    let (list, _) = endpoints(&[("a", 10, 1), ("b", 10, 1), ("slow", 600, 1), ("d", 10, 1)]);
    let mut balance = Balance::new(with_outliers(BalanceAlgorithm::RoundRobin), list);
    let handle = balance.handle();
    drive(&mut balance, 2_000, 40, Some(Duration::from_millis(1))).await;
    match drained(&handle, "slow") {
        Some(DrainReason::Latency(p95)) => assert!(p95 > Duration::from_millis(450)),
        other => panic!("{other:?}"),
    }
    assert!(drained(&handle, "a").is_none());
}

#[tokio::test(start_paused = true)]
async fn judges_latency_relative_to_the_others_when_most_are_slow() {
    let (list, _) = endpoints(&[
        ("a", 500, 1),
        ("b", 500, 1),
        ("c", 500, 1),
        ("worst", 2_000, 1),
    ]);
    let mut balance = Balance::new(with_outliers(BalanceAlgorithm::RoundRobin), list);
    let handle = balance.handle();
    drive(&mut balance, 1_000, 100, Some(Duration::from_millis(2))).await;
    for name in ["a", "b", "c"] {
        assert!(
            drained(&handle, name).is_none(),
            "{name} drained: {:?}",
            handle.snapshot()
        );
    }
    assert!(matches!(
        drained(&handle, "worst"),
        Some(DrainReason::Latency(_))
    ));
}

/// A server clones its service per request: clones that never call before share the balancer's
/// schedule, so an ejection ends and its trial request goes out all the same.
#[tokio::test(start_paused = true)]
async fn an_ejection_ends_and_returns_through_clones_made_per_request() {
    let (list, scripts) = endpoints(&[("a", 1, 1), ("b", 1, 1)]);
    let template = Balance::new(with_outliers(BalanceAlgorithm::RoundRobin), list);
    let handle = template.handle();
    scripts["b"].status.store(500, Ordering::Relaxed);
    for _ in 0..20 {
        let _ = template.clone().oneshot(http::Request::new(())).await;
        tokio::time::advance(Duration::from_millis(5)).await;
    }
    assert!(drained(&handle, "b").is_some());
    scripts["b"].status.store(200, Ordering::Relaxed);
    tokio::time::advance(Duration::from_secs(40)).await;
    let served = scripts["b"].served.load(Ordering::Relaxed);
    for _ in 0..100 {
        let _ = template.clone().oneshot(http::Request::new(())).await;
        tokio::time::advance(Duration::from_millis(5)).await;
    }
    assert!(
        drained(&handle, "b").is_none(),
        "back after its ejection and a trial"
    );
    assert!(scripts["b"].served.load(Ordering::Relaxed) >= served + 40);
}

#[tokio::test(start_paused = true)]
async fn ejections_back_off_and_return_through_a_probe() {
    let (list, scripts) = endpoints(&[("a", 1, 1), ("b", 1, 1)]);
    let mut balance = Balance::new(with_outliers(BalanceAlgorithm::RoundRobin), list);
    let handle = balance.handle();
    scripts["b"].status.store(500, Ordering::Relaxed);
    drive(&mut balance, 20, 1, Some(Duration::from_millis(5))).await;
    let snap = handle
        .snapshot()
        .into_iter()
        .find(|s| s.key == "b")
        .unwrap();
    assert_eq!(snap.ejections, 1);
    let first = snap.ejected_for.unwrap();
    assert!(
        first > Duration::from_secs(26) && first <= Duration::from_secs(33),
        "{first:?}"
    );
    // Still failing at the end of the ejection: the single probe fails, ejected for 2x base.
    tokio::time::advance(first).await;
    let served = scripts["b"].served.load(Ordering::Relaxed);
    drive(&mut balance, 50, 1, Some(Duration::from_millis(5))).await;
    assert_eq!(
        scripts["b"].served.load(Ordering::Relaxed),
        served + 1,
        "one probe"
    );
    let snap = handle
        .snapshot()
        .into_iter()
        .find(|s| s.key == "b")
        .unwrap();
    assert_eq!(snap.ejections, 2);
    assert!(
        snap.ejected_for.unwrap() > Duration::from_secs(50),
        "{snap:?}"
    );
    // Healed: the next probe brings it back.
    scripts["b"].status.store(200, Ordering::Relaxed);
    tokio::time::advance(Duration::from_secs(70)).await;
    let tally = drive(&mut balance, 100, 1, Some(Duration::from_millis(5))).await;
    assert!(tally.get("b") >= 45, "{tally:?}");
    assert!(drained(&handle, "b").is_none());
}

#[tokio::test(start_paused = true)]
async fn never_ejects_more_than_max_ejection_percent() {
    let (list, scripts) = endpoints(&[
        ("a", 1, 1),
        ("b", 1, 1),
        ("c", 1, 1),
        ("d", 1, 1),
        ("e", 1, 1),
    ]);
    for s in scripts.values() {
        s.status.store(500, Ordering::Relaxed);
    }
    let mut balance = Balance::new(with_outliers(BalanceAlgorithm::LeastRequest), list);
    let handle = balance.handle();
    let tally = drive(&mut balance, 500, 4, Some(Duration::from_millis(1))).await;
    let out = handle
        .snapshot()
        .iter()
        .filter(|s| s.drained.is_some())
        .count();
    assert_eq!(out, 2, "50% of 5");
    assert_eq!(tally.errors, 0, "traffic still flows to the rest");
}

#[tokio::test(start_paused = true)]
async fn fails_fast_with_no_healthy_endpoint() {
    let mut policy = LoadBalancing::default();
    policy.health_check = Some(HealthCheck::default());
    let (list, _) = endpoints(&[("a", 1, 1), ("b", 1, 1)]);
    let balance = Balance::new(policy, list);
    let task = balance
        .health_task(fluxgate_balance::health::probe_fn(
            |_: &&str, _: &HealthCheck| async { false },
        ))
        .spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut svc = balance;
    let start = tokio::time::Instant::now();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap_err();
    assert!(matches!(
        err.downcast_ref(),
        Some(BalanceError::NoHealthyEndpoints)
    ));
    assert_eq!(start.elapsed(), Duration::ZERO);
    let mut http = RespondUnavailable::new(svc);
    let resp = http
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    assert_eq!(resp.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    drop(http);
    tokio::time::timeout(Duration::from_secs(1), task.join())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_a_new_endpoint_up() {
    let mut policy = LoadBalancing::default();
    policy.slow_start = Some(SlowStart::default()); // 30s
    let (tx, rx) = mpsc::unbounded();
    let mut balance = Balance::<_, common::Req>::from_discover(policy, rx);
    for name in ["a", "b"] {
        tx.unbounded_send(Ok::<_, std::convert::Infallible>(Change::Insert(
            name,
            Weighted::new(endpoint(name, 1).0, 1),
        )))
        .unwrap();
    }
    drive(&mut balance, 100, 4, Some(Duration::from_millis(10))).await;
    tx.unbounded_send(Ok(Change::Insert(
        "new",
        Weighted::new(endpoint("new", 1).0, 1),
    )))
    .unwrap();
    // First 3s: about 10% of its weight.
    let early = drive(&mut balance, 300, 4, Some(Duration::from_millis(10))).await;
    let early_share = early.get("new") as f64 / 300.0;
    assert!(early_share < 0.1, "{early:?}");
    tokio::time::advance(Duration::from_secs(30)).await;
    let late = drive(&mut balance, 300, 4, Some(Duration::from_millis(10))).await;
    let late_share = late.get("new") as f64 / 300.0;
    assert!((0.3..0.36).contains(&late_share), "{late:?}");
}

#[tokio::test(start_paused = true)]
async fn discovery_changes_under_load() {
    let (tx, rx) = mpsc::unbounded();
    let mut balance =
        Balance::<_, common::Req>::from_discover(with_outliers(BalanceAlgorithm::PeakEwma), rx);
    let handle = balance.handle();
    let mut scripts = Vec::new();
    for name in ["a", "b", "c"] {
        let (e, s) = endpoint(name, 5);
        scripts.push(s);
        tx.unbounded_send(Ok::<_, std::convert::Infallible>(Change::Insert(
            name,
            Weighted::new(e, 1),
        )))
        .unwrap();
    }
    let t1 = drive(&mut balance, 500, 16, Some(Duration::from_micros(500))).await;
    tx.unbounded_send(Ok(Change::Remove("b"))).unwrap();
    let (d, _) = endpoint("d", 5);
    tx.unbounded_send(Ok(Change::Insert("d", Weighted::new(d, 1))))
        .unwrap();
    let served_b = scripts[1].served.load(Ordering::Relaxed);
    let t2 = drive(&mut balance, 500, 16, Some(Duration::from_micros(500))).await;
    assert_eq!(t1.errors + t2.errors, 0);
    assert_eq!(
        scripts[1].served.load(Ordering::Relaxed),
        served_b,
        "removed: no new requests"
    );
    assert!(t2.get("d") > 50, "{t2:?}");
    let keys: Vec<_> = handle.snapshot().into_iter().map(|s| s.key).collect();
    assert_eq!(keys.len(), 3);
    assert!(!keys.contains(&"b"));
    // Everything removed: fail fast, no hang.
    for name in ["a", "c", "d"] {
        tx.unbounded_send(Ok(Change::Remove(name))).unwrap();
    }
    let err = balance
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap_err();
    assert!(fluxgate_balance::is_no_healthy_endpoints(&*err));
}

#[tokio::test(start_paused = true)]
async fn a_new_policy_keeps_endpoint_state() {
    let (list, scripts) = endpoints(&[("a", 1, 1), ("b", 1, 1), ("c", 1, 1)]);
    let mut balance = Balance::new(with_outliers(BalanceAlgorithm::RoundRobin), list);
    let handle = balance.handle();
    scripts["b"].status.store(500, Ordering::Relaxed);
    drive(&mut balance, 60, 1, Some(Duration::from_millis(5))).await;
    assert!(drained(&handle, "b").is_some());
    handle.set_policy(with_outliers(BalanceAlgorithm::WeightedRoundRobin));
    let tally = drive(&mut balance, 60, 1, Some(Duration::from_millis(5))).await;
    assert_eq!(tally.get("b"), 0, "still drained after the change");
    assert_eq!(
        handle.policy().algorithm,
        BalanceAlgorithm::WeightedRoundRobin
    );
}

/// The false-drain rate of the whole rule (volume, evidence over 1s and 5s, in-flight cohort),
/// measured on the paused clock: one endpoint of three answers a random `share` of its
/// requests in 600ms (over the 450ms limit), the rest in 10ms, at low volume (~11 requests a
/// second each, under `minRequests`) for about 100s of traffic (~500 evaluations). At 3% slow
/// (a p95 under the limit) it is never drained; at 25% (a p95 over it) it is.
#[tokio::test(start_paused = true)]
async fn judges_on_evidence_at_low_volume_without_false_drains() {
    for (share, expect_drained) in [(0.03, false), (0.25, true)] {
        let (list, scripts) = endpoints(&[("a", 10, 1), ("b", 10, 1), ("c", 10, 1)]);
        let mut balance = Balance::new(with_outliers(BalanceAlgorithm::RoundRobin), list);
        let handle = balance.handle();
        let mut rng = 0x2545_F491_4F6C_DD1D_u64;
        for _ in 0..3_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let slow = (rng >> 11) as f64 / (1u64 << 53) as f64 <= share;
            scripts["c"]
                .latency_ms
                .store(if slow { 600 } else { 10 }, Ordering::Relaxed);
            drive(&mut balance, 1, 1, Some(Duration::from_millis(20))).await;
            if expect_drained && drained(&handle, "c").is_some() {
                break;
            }
        }
        let snapshot = handle.snapshot();
        let c = snapshot.iter().find(|s| s.key == "c").unwrap();
        if expect_drained {
            assert!(matches!(c.drained, Some(DrainReason::Latency(_))), "{c:?}");
        } else {
            assert_eq!(c.ejections, 0, "{c:?}");
        }
        assert!(
            snapshot
                .iter()
                .filter(|s| s.key != "c")
                .all(|s| s.ejections == 0)
        );
    }
}
