//! Latency sampling: a busy side times a random share of its responses, its quantiles still
//! describe them all, and a quiet side times every response again.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fluxgate_canary::Canary;
use http::{Request, Response};
use tokio::time::{Instant, sleep};
use tower::{Service, ServiceExt, service_fn};

/// A side that answers in 2ms, except every 40th call (2.5%) in 20ms.
fn side() -> impl tower::Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<()>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    let calls = Arc::new(AtomicU64::new(0));
    service_fn(move |_: Request<()>| {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        async move {
            let ms = if n % 40 == 39 { 20 } else { 2 };
            sleep(Duration::from_millis(ms)).await;
            Ok::<_, Infallible>(Response::new(()))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_busy_side_is_sampled_and_its_p99_holds() {
    let spec = "{weight: 10, interval: 1s, minRequests: 1000000000}";
    let (router, judge) = Canary::new(side(), side(), support::canary(spec)).unwrap();
    let _judge = judge.spawn();
    let handle = router.handle();
    sleep(Duration::from_millis(1)).await;

    // 100 clients in a loop for 2.2s: about 40,000 responses a second, 36,000 on stable.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (router, stop) = (router.clone(), stop.clone());
        clients.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                router.clone().oneshot(Request::new(())).await.unwrap();
            }
        });
    }
    let start = Instant::now();
    sleep(Duration::from_millis(2_200)).await;
    let busy = handle.snapshot();
    stop.store(true, Ordering::Relaxed);
    while clients.join_next().await.is_some() {}

    // 36,000 a second at 1,280 timed a second: one in 16 (the largest stride).
    assert_eq!(busy.stable.timed_one_in, 16, "{busy:?}");
    assert!(busy.canary.timed_one_in >= 2, "{busy:?}");
    // Every response is counted; the sampled p99 is the slow 2.5%'s bin (20ms, within 19%).
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        busy.stable.window_requests > 30_000,
        "{busy:?} in {seconds}s"
    );
    let p99 = busy.stable.p99.unwrap();
    assert!(
        p99 >= Duration::from_millis(20) && p99 < Duration::from_millis(24),
        "{p99:?}"
    );
    let canary_p99 = busy.canary.p99.unwrap();
    assert!(canary_p99 >= Duration::from_millis(20), "{canary_p99:?}");

    // Quiet: a request every 10ms; after a tick, every response is timed again.
    for _ in 0..50 {
        router.clone().oneshot(Request::new(())).await.unwrap();
        sleep(Duration::from_millis(10)).await;
    }
    let quiet = handle.snapshot();
    assert_eq!(quiet.stable.timed_one_in, 1, "{quiet:?}");
    assert_eq!(quiet.canary.timed_one_in, 1, "{quiet:?}");
}

/// Clones called from several threads at once count into stripes of their own; the snapshot
/// sums them exactly, and the split holds.
#[test]
fn clones_on_many_threads_count_every_request() {
    let spec = "{weight: 30, interval: 1s, minRequests: 1000000000}";
    let ok = || service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (router, judge) = runtime
        .block_on(async { Canary::new(ok(), ok(), support::canary(spec)) })
        .unwrap();
    let handle = router.handle();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let router = router.clone();
            s.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let mut router = router;
                    for _ in 0..5_000 {
                        router
                            .ready()
                            .await
                            .unwrap()
                            .call(Request::new(()))
                            .await
                            .unwrap();
                    }
                });
            });
        }
    });
    drop(judge);
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.stable.routed + snapshot.canary.routed, 20_000);
    let canary = snapshot.canary.routed;
    assert!((5_000..7_000).contains(&canary), "{canary}");
}
