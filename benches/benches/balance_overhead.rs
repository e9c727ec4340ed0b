//! Per-request overhead of each FluxGate algorithm around 8 trivial endpoints, next to tower's
//! `p2c::Balance` with `PeakEwma` and with `PendingRequests`, and a direct call. The
//! `fluxgate/clone/…` rows clone the balancer for every request, as a server does when it
//! clones its service per connection or per request (the clones share one balancer).
//! `BENCH_SHARED=<blocks>` times each algorithm from one thread and then from two at once
//! through clones of one balancer (see `shared`).
#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use fluxgate_balance::{Balance, Weighted};
use fluxgate_benches::CALLGRIND_OPS;
use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing, OutlierDetection};
use tower::Service;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma, PendingRequests};

type Req = http::Request<()>;
type Resp = http::Response<()>;

#[derive(Clone, Copy)]
struct Trivial;

impl Service<Req> for Trivial {
    type Response = Resp;
    type Error = Infallible;
    type Future = Ready<Result<Resp, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        ready(Ok(http::Response::new(())))
    }
}

/// One request through `svc`: poll_ready, call, poll the (immediately ready) future.
fn one<S>(svc: &mut S, cx: &mut Context<'_>)
where
    S: Service<Req, Response = Resp>,
    S::Error: std::fmt::Debug,
{
    match svc.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("not ready: {other:?}"),
    }
    let fut = pin!(svc.call(http::Request::new(())));
    match fut.poll(cx) {
        Poll::Ready(Ok(resp)) => {
            black_box(resp);
        }
        _ => panic!("not done"),
    }
}

/// FluxGate's algorithms, by bench id.
const ALGORITHMS: [(&str, BalanceAlgorithm); 5] = [
    ("round-robin", BalanceAlgorithm::RoundRobin),
    ("weighted-round-robin", BalanceAlgorithm::WeightedRoundRobin),
    ("least-request", BalanceAlgorithm::LeastRequest),
    ("peak-ewma", BalanceAlgorithm::PeakEwma),
    ("adaptive", BalanceAlgorithm::Adaptive),
];

/// One variant: a request through it per call.
type Op = Box<dyn FnMut(&mut Context<'_>)>;

/// Every variant, by bench id.
fn variants() -> Vec<(String, Op)> {
    let mut out: Vec<(String, Op)> = Vec::new();
    let mut direct = Trivial;
    out.push(("direct".into(), Box::new(move |cx| one(&mut direct, cx))));
    for (name, algorithm) in ALGORITHMS {
        for outliers in [false, true] {
            let mut policy = LoadBalancing::default();
            policy.algorithm = algorithm;
            if outliers {
                policy.outlier_detection = Some(OutlierDetection::default());
            }
            let endpoints = (0..8).map(|i| (i, Weighted::new(Trivial, 1 + i % 3)));
            let mut balance = Balance::<_, Req>::new(policy, endpoints);
            if outliers {
                let id = format!("fluxgate/{name}+outliers");
                out.push((id, Box::new(move |cx| one(&mut balance, cx))));
            } else {
                let id = format!("fluxgate/clone/{name}");
                let shared = balance.clone();
                out.push((id, Box::new(move |cx| one(&mut shared.clone(), cx))));
                let id = format!("fluxgate/{name}");
                out.push((id, Box::new(move |cx| one(&mut balance, cx))));
            }
        }
    }
    let services: Vec<_> = (0..8)
        .map(|_| {
            PeakEwma::new(
                Trivial,
                Duration::from_millis(1),
                10e9,
                CompleteOnResponse::default(),
            )
        })
        .collect();
    let mut ewma = tower::balance::p2c::Balance::new(ServiceList::new::<Req>(services));
    out.push((
        "tower/p2c+PeakEwma".into(),
        Box::new(move |cx| one(&mut ewma, cx)),
    ));
    let services: Vec<_> = (0..8)
        .map(|_| PendingRequests::new(Trivial, CompleteOnResponse::default()))
        .collect();
    let mut pending = tower::balance::p2c::Balance::new(ServiceList::new::<Req>(services));
    out.push((
        "tower/p2c+PendingRequests".into(),
        Box::new(move |cx| one(&mut pending, cx)),
    ));
    out
}

/// Tokio's clock (used by PeakEwma and FluxGate) needs no runtime unless paused; a runtime
/// context is entered anyway to match how both run in a gateway.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let mut group = c.benchmark_group("balance/overhead");
    for (id, mut op) in variants() {
        group.bench_function(id, |b| b.iter(|| op(&mut cx)));
    }
    group.finish();
}

/// Instructions per request of one variant (see `fluxgate_benches`): `BENCH_CALLGRIND=<id>
/// valgrind --tool=callgrind --toggle-collect='fluxgate_benches::measure*' <bench binary>`.
fn callgrind(variant: &str) {
    let rt = runtime();
    let _guard = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let Some((_, mut op)) = variants().into_iter().find(|(id, _)| id == variant) else {
        panic!("no variant {variant}");
    };
    // Warm up (first allocations, lazily made state), then measure.
    for _ in 0..1000 {
        op(&mut cx);
    }
    fluxgate_benches::measure(vec![(); CALLGRIND_OPS], |()| op(&mut cx));
    println!("{variant}: {CALLGRIND_OPS} requests");
}

/// Each FluxGate algorithm from one thread, then from two at once through clones of one
/// balancer (its endpoints' counts and its cursor shared, as a gateway's workers share them),
/// and tower's `p2c` + `PendingRequests` with a balancer per thread (nothing shared): the
/// mean over the threads of each one's median time per request over `blocks` blocks of 1,000.
/// Eight endpoints, or `BENCH_ENDPOINTS`; `BENCH_OUTLIERS=1` turns outlier detection on (the
/// endpoints' latency quantiles and slow samples are then kept too).
fn shared(blocks: usize) {
    const BLOCK: u32 = 1_000;
    // `BENCH_ENDPOINTS=1`: one endpoint, as a gateway in front of one upstream, where both
    // threads add to the same endpoint's counts.
    let count: u32 = std::env::var("BENCH_ENDPOINTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8)
        .max(1);
    let outliers = std::env::var("BENCH_OUTLIERS").is_ok_and(|v| v == "1");
    let time = move |op: &mut dyn FnMut(&mut Context<'_>)| {
        let rt = runtime();
        let _guard = rt.enter();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..50 * BLOCK {
            op(&mut cx);
        }
        let mut ns: Vec<f64> = (0..blocks)
            .map(|_| {
                let start = fluxgate_core::clock::Stamp::now();
                for _ in 0..BLOCK {
                    op(&mut cx);
                }
                fluxgate_core::clock::Stamp::now().nanos_since(start) as f64 / f64::from(BLOCK)
            })
            .collect();
        ns.sort_by(f64::total_cmp);
        ns[ns.len() / 2]
    };
    let baseline = ("tower/p2c+PendingRequests", BalanceAlgorithm::RoundRobin);
    for (name, algorithm) in ALGORITHMS.into_iter().chain([baseline]) {
        let tower = name == baseline.0;
        let mut policy = LoadBalancing::default();
        policy.algorithm = algorithm;
        if outliers {
            policy.outlier_detection = Some(OutlierDetection::default());
        }
        let endpoints = (0..count).map(|i| (i, Weighted::new(Trivial, 1 + i % 3)));
        let balance = Balance::<_, Req>::new(policy, endpoints);
        let mut line = format!("{name:<26}");
        for threads in [1, 2] {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (barrier, mut balance) = (barrier.clone(), balance.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        if tower {
                            let services: Vec<_> = (0..count)
                                .map(|_| {
                                    PendingRequests::new(Trivial, CompleteOnResponse::default())
                                })
                                .collect();
                            let mut p2c = tower::balance::p2c::Balance::new(
                                ServiceList::new::<Req>(services),
                            );
                            time(&mut |cx| one(&mut p2c, cx))
                        } else {
                            time(&mut |cx| one(&mut balance, cx))
                        }
                    })
                })
                .collect();
            let ns: Vec<f64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
            let mean = ns.iter().sum::<f64>() / ns.len() as f64;
            line += &format!("  {threads} thread(s) {mean:6.1} ns");
        }
        println!("{line}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}

fn main() {
    if let Some(variant) = fluxgate_benches::callgrind_variant() {
        callgrind(&variant);
        return;
    }
    if let Ok(blocks) = std::env::var("BENCH_SHARED") {
        shared(blocks.parse().unwrap_or(200).max(4));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
