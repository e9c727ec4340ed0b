//! Automatic rollback: on error rate, on p99, on the error budget; complete once done.

mod support;

use std::time::Duration;

use fluxgate_canary::{Decision, Finding, Phase, RollbackReason};
use http::Request;
use support::{Router, burst, router, send};
use tokio::time::{Instant, sleep};

fn reason(r: &Router) -> RollbackReason {
    match r.handle().snapshot().last_decision {
        Some((Decision::RolledBack(reason), _)) => reason,
        other => panic!("not rolled back: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn error_rate_above_target_rolls_back_within_one_interval() {
    let (r, _, canary) =
        router("{weight: 50, interval: 1s, failureThreshold: 1, metrics: {targetErrorRate: 0.01}}");
    canary.fail_every(80); // 1.25% errors: over the target, within the 98.5% budget
    sleep(Duration::from_millis(1)).await;
    burst(&r, 2000).await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(r.handle().snapshot().phase, Phase::RolledBack);
    let RollbackReason::FailedChecks {
        check,
        failed_checks: 1,
    } = reason(&r)
    else {
        panic!("{:?}", reason(&r));
    };
    let Finding::ErrorRate { value, target } = check.finding else {
        panic!("{check:?}")
    };
    assert_eq!(target, 0.01);
    assert!((value - 0.0125).abs() < 0.002, "{value}");
    assert_eq!(check.samples as usize, canary.calls());
}

#[tokio::test(start_paused = true)]
async fn p99_above_target_rolls_back_within_one_interval() {
    let (r, _, canary) = router(
        "{weight: 50, interval: 1s, failureThreshold: 1, metrics: {targetP99Latency: 300ms}}",
    );
    canary.set_delay(Duration::from_millis(400));
    sleep(Duration::from_millis(1)).await;
    burst(&r, 200).await;
    sleep(Duration::from_millis(600)).await;
    assert_eq!(r.handle().snapshot().phase, Phase::RolledBack);
    let RollbackReason::FailedChecks { check, .. } = reason(&r) else {
        panic!()
    };
    let Finding::P99Latency { value, target } = check.finding else {
        panic!("{check:?}")
    };
    assert_eq!(target, Duration::from_millis(300));
    assert!(
        value.abs_diff(Duration::from_millis(400)) < Duration::from_millis(10),
        "{value:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_checks_hold_the_weight_until_the_threshold() {
    let (r, _, canary) =
        router("{steps: [10, 20], interval: 1s, errorBudget: 0, metrics: {targetErrorRate: 0.01}}");
    canary.set_status(500);
    sleep(Duration::from_millis(1)).await;
    for failed in 1..=2 {
        burst(&r, 1000).await;
        sleep(Duration::from_secs(1)).await;
        let snapshot = r.handle().snapshot();
        assert_eq!(
            (snapshot.phase, snapshot.weight, snapshot.failed_checks),
            (Phase::Progressing, 10, failed)
        );
    }
    burst(&r, 1000).await;
    sleep(Duration::from_secs(1)).await;
    assert!(matches!(
        reason(&r),
        RollbackReason::FailedChecks {
            failed_checks: 3,
            ..
        }
    ));
    assert_eq!(r.handle().snapshot().transitions.failed, 3);
}

#[tokio::test(start_paused = true)]
async fn error_budget_rolls_back_at_once_and_nothing_reaches_the_canary_after() {
    let (r, stable, canary) = router("{weight: 50, interval: 10s, stickyKey: header.x-client-id}");
    canary.set_status(500);
    let start = Instant::now();
    let keyed = |id: u32| {
        Request::get("/")
            .header("x-client-id", id.to_string())
            .body(())
            .unwrap()
    };
    let mut on_canary = Vec::new();
    while r.handle().snapshot().phase == Phase::Progressing {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not rolled back within a second"
        );
        for id in 0..10 {
            if send(&r, keyed(id)).await.unwrap() == "canary" {
                on_canary.push(id);
            }
        }
        sleep(Duration::from_millis(10)).await;
    }
    let RollbackReason::ErrorBudget(check) = reason(&r) else {
        panic!("{:?}", reason(&r))
    };
    assert_eq!(
        check.finding,
        Finding::Availability {
            value: 0.0,
            budget: 0.985
        }
    );
    assert!(check.samples >= 20);
    assert!(!on_canary.is_empty());
    let (canary_calls, stable_calls) = (canary.calls(), stable.calls());
    for _ in 0..10 {
        for id in 0..10 {
            assert_eq!(send(&r, keyed(id)).await.unwrap(), "stable");
        }
        burst(&r, 100).await;
        sleep(Duration::from_secs(3)).await;
    }
    assert_eq!(canary.calls(), canary_calls);
    assert_eq!(stable.calls(), stable_calls + 1100);
    let snapshot = r.handle().snapshot();
    assert_eq!((snapshot.phase, snapshot.weight), (Phase::RolledBack, 0));
    assert_eq!(snapshot.transitions.rolled_back, 1);
}
