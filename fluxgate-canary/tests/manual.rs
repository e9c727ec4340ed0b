//! Manual promote/abort/pause/resume through the handle; readiness; the judge's lifetime.

mod support;

use std::task::{Context, Poll};
use std::time::Duration;

use fluxgate_canary::{Action, Canary, CanaryError, Decision, Phase, RollbackReason};
use http::Request;
use support::{Backend, Router, burst, canary, router};
use tokio::time::sleep;
use tower::Service;

#[tokio::test(start_paused = true)]
async fn promote_sends_everything_to_the_canary() {
    let (r, stable, canary) = router("{steps: [5, 10], interval: 1s}");
    let handle = r.handle();
    handle.promote().unwrap();
    burst(&r, 500).await;
    assert_eq!((stable.calls(), canary.calls()), (0, 500));
    assert!(matches!(
        handle.snapshot().last_decision,
        Some((Decision::Promoted { manual: true }, _))
    ));
    assert_eq!(handle.snapshot().weight, 100);
    assert_eq!(
        handle.promote(),
        Err(CanaryError::InvalidTransition {
            action: Action::Promote,
            phase: Phase::Promoted
        })
    );
    // A promoted canary can still be aborted.
    handle.abort().unwrap();
    burst(&r, 500).await;
    assert_eq!((stable.calls(), canary.calls()), (500, 500));
}

#[tokio::test(start_paused = true)]
async fn abort_rolls_back_with_a_manual_reason() {
    let (r, _, canary) = router("{weight: 50}");
    burst(&r, 100).await;
    let before = canary.calls();
    assert!(before > 0);
    r.handle().abort().unwrap();
    burst(&r, 1000).await;
    assert_eq!(canary.calls(), before);
    let snapshot = r.handle().snapshot();
    assert_eq!(
        snapshot.last_decision.map(|d| d.0),
        Some(Decision::RolledBack(RollbackReason::Manual))
    );
    assert_eq!(
        r.handle().abort().unwrap_err().to_string(),
        "cannot abort a canary that is rolled-back"
    );
}

#[tokio::test(start_paused = true)]
async fn pause_freezes_steps_and_resume_goes_on() {
    let (r, _, _) = router("{steps: [10, 20, 30], interval: 1s, minRequests: 5}");
    let handle = r.handle();
    sleep(Duration::from_millis(1)).await;
    handle.pause().unwrap();
    for _ in 0..3 {
        burst(&r, 500).await;
        sleep(Duration::from_secs(1)).await;
        assert_eq!(
            (handle.snapshot().phase, handle.snapshot().weight),
            (Phase::Paused, 10)
        );
    }
    assert!(handle.pause().is_err());
    handle.resume().unwrap();
    burst(&r, 500).await;
    sleep(Duration::from_secs(1)).await;
    let snapshot = handle.snapshot();
    assert_eq!((snapshot.phase, snapshot.weight), (Phase::Progressing, 20));
    assert_eq!(
        (snapshot.transitions.paused, snapshot.transitions.resumed),
        (1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_canary_is_still_held_to_its_error_budget() {
    let (r, _, canary) = router("{weight: 50, interval: 10s}");
    r.handle().pause().unwrap();
    canary.set_status(503);
    for _ in 0..50 {
        burst(&r, 10).await;
        sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(r.handle().snapshot().phase, Phase::RolledBack);
}

#[tokio::test(start_paused = true)]
async fn restart_starts_over_after_a_rollback() {
    let (r, _, canary) = router("{steps: [10, 20], interval: 1s}");
    r.handle().abort().unwrap();
    r.handle().restart().unwrap();
    let snapshot = r.handle().snapshot();
    assert_eq!(
        (snapshot.phase, snapshot.weight, snapshot.step),
        (Phase::Progressing, 10, Some(0))
    );
    burst(&r, 1000).await;
    assert!(canary.calls() > 50);
}

/// A service that is ready only when told.
#[derive(Clone)]
struct Gate(std::sync::Arc<std::sync::atomic::AtomicBool>, Backend);

impl Service<Request<()>> for Gate {
    type Response = <Backend as Service<Request<()>>>::Response;
    type Error = std::io::Error;
    type Future = <Backend as Service<Request<()>>>::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    fn call(&mut self, request: Request<()>) -> Self::Future {
        self.1.call(request)
    }
}

#[tokio::test(start_paused = true)]
async fn poll_ready_waits_for_both_sides_and_call_without_it_fails() {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = Gate(open.clone(), Backend::new("canary"));
    let (mut r, _judge) = Canary::new(Backend::new("stable"), gate, canary("{weight: 0}")).unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(r.poll_ready(&mut cx).is_pending());
    let error = r.call(Request::new(())).await.unwrap_err();
    assert!(matches!(
        error.downcast_ref::<CanaryError>(),
        Some(CanaryError::NotReady)
    ));
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(r.poll_ready(&mut cx).is_ready());
    assert_eq!(
        *r.call(Request::new(())).await.unwrap().body().get_ref(),
        "stable"
    );
}

#[tokio::test(start_paused = true)]
async fn the_judge_stops_when_the_router_is_dropped() {
    let (r, judge): (Router, _) = Canary::new(
        Backend::new("stable"),
        Backend::new("canary"),
        canary("{weight: 5}"),
    )
    .unwrap();
    let task = judge.spawn();
    let handle = r.handle();
    let clone = r.clone();
    drop(r);
    sleep(Duration::from_secs(1)).await;
    assert!(!task.is_finished());
    drop(clone);
    tokio::time::timeout(Duration::from_millis(250), task.join())
        .await
        .unwrap()
        .unwrap();
    // The handle still reads the last state.
    assert_eq!(handle.snapshot().weight, 5);
}
