//! Reaction time: from an endpoint starting to fail to no more requests reaching it, at
//! 1000 requests/s over 8 endpoints with the seed policy's settings, on tokio's paused clock.
//!
//! Run with: `cargo run --release -p fluxgate-benches --bin balance_reaction`
//!
//! Two cases: the endpoint answers every request with 500 (outlier detection reacts), and the
//! endpoint's health checks fail while its answers stay good (active health checks react).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fluxgate_balance::health::probe_fn;
use fluxgate_balance::{Balance, Weighted};
use fluxgate_core::policy::{BalanceAlgorithm, HealthCheck, LoadBalancing, OutlierDetection};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

type Req = http::Request<()>;
type Resp = http::Response<()>;

const FAILING: usize = 3;

#[derive(Clone)]
struct Sim {
    failing: Arc<AtomicBool>,
    /// Virtual nanoseconds since `origin` of the last request received (`u64::MAX`: none yet).
    last: Arc<AtomicU64>,
    origin: Instant,
}

impl Service<Req> for Sim {
    type Response = Resp;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        let nanos = Instant::now().duration_since(self.origin).as_nanos() as u64;
        self.last.store(nanos, Ordering::Relaxed);
        let failing = self.failing.load(Ordering::Relaxed);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(if failing { 1 } else { 5 })).await;
            let status = if failing { 500 } else { 200 };
            Ok(http::Response::builder()
                .status(status)
                .body(())
                .unwrap_or_default())
        })
    }
}

async fn case(algorithm: BalanceAlgorithm, by_health: bool) {
    let origin = Instant::now();
    let failing = Arc::new(AtomicBool::new(false));
    let checks_fail = Arc::new(AtomicBool::new(false));
    let lasts: Vec<_> = (0..8).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let endpoints = (0..8).map(|i| {
        let sim = Sim {
            failing: if i == FAILING {
                Arc::clone(&failing)
            } else {
                Arc::new(AtomicBool::new(false))
            },
            last: Arc::clone(&lasts[i]),
            origin,
        };
        (i, Weighted::new(sim, 1))
    });
    let mut policy = LoadBalancing::default();
    policy.algorithm = algorithm;
    policy.outlier_detection = Some(OutlierDetection::default());
    policy.health_check = Some(HealthCheck::default());
    let mut balance = Balance::<_, Req>::new(policy, endpoints);
    let fail = Arc::clone(&checks_fail);
    let task = balance
        .health_task(probe_fn(move |key: &usize, _: &HealthCheck| {
            let ok = *key != FAILING || !fail.load(Ordering::Relaxed);
            async move { ok }
        }))
        .spawn();
    let onset = Duration::from_secs(2);
    let total = 4_000;
    let mut in_flight = FuturesUnordered::new();
    let (mut failed, mut after_onset) = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for i in 0..total {
        tick.tick().await;
        if i == onset.as_millis() as usize {
            if by_health {
                checks_fail.store(true, Ordering::Relaxed);
            } else {
                failing.store(true, Ordering::Relaxed);
            }
        }
        while let Some(Some(r)) = in_flight.now_or_never_opt() {
            let r: Result<Resp, _> = r;
            if i >= onset.as_millis() as usize
                && !matches!(&r, Ok(resp) if resp.status().is_success())
            {
                failed += 1;
            }
        }
        if i >= onset.as_millis() as usize {
            after_onset += 1;
        }
        let svc = balance.ready().await.expect("ready");
        in_flight.push(svc.call(http::Request::new(())));
    }
    while let Some(r) = in_flight.next().await {
        if !matches!(&r, Ok(resp) if resp.status().is_success()) {
            failed += 1;
        }
    }
    let last = Duration::from_nanos(lasts[FAILING].load(Ordering::Relaxed));
    let reaction = last.saturating_sub(onset);
    let window = reaction.as_millis().max(1) as u64;
    println!(
        "  {:<22} {:<14} reaction {:>5}ms  failed {:>3} = {:.2}% of the {} requests after onset, {:.1}% of the {} sent during the reaction",
        format!("{algorithm:?}"),
        if by_health {
            "health checks"
        } else {
            "all 5xx"
        },
        reaction.as_millis(),
        failed,
        failed as f64 * 100.0 / after_onset as f64,
        after_onset,
        failed as f64 * 100.0 / window as f64,
        window,
    );
    drop(balance);
    let _ = task.join().await;
}

/// Polls a stream once without waiting.
trait NowOrNever: futures::Stream + Unpin {
    fn now_or_never_opt(&mut self) -> Option<Option<Self::Item>> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match self.poll_next_unpin(&mut cx) {
            std::task::Poll::Ready(Some(x)) => Some(Some(x)),
            _ => None,
        }
    }
}

impl<S: futures::Stream + Unpin> NowOrNever for S {}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("8 endpoints, 1000 req/s, endpoint {FAILING} fails at t=2s; seed policy (200ms checks, thresholds 3/2, outlier defaults)");
        for algorithm in [
            BalanceAlgorithm::RoundRobin,
            BalanceAlgorithm::WeightedRoundRobin,
            BalanceAlgorithm::LeastRequest,
            BalanceAlgorithm::PeakEwma,
            BalanceAlgorithm::Adaptive,
        ] {
            case(algorithm, false).await;
            case(algorithm, true).await;
        }
    });
}
