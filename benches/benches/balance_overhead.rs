//! Per-request overhead of each FluxGate algorithm around 8 trivial endpoints, next to tower's
//! `p2c::Balance` with `PeakEwma` and with `PendingRequests`, and a direct call. The
//! `fluxgate/clone/…` rows clone the balancer for every request, as a server does when it
//! clones its service per connection or per request (the clones share one balancer).
#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fluxgate_balance::{Balance, Weighted};
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

fn bench(c: &mut Criterion) {
    // Tokio's clock (used by PeakEwma and FluxGate) needs no runtime unless paused; a runtime
    // context is entered anyway to match how both run in a gateway.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let mut group = c.benchmark_group("balance/overhead");

    group.bench_function("direct", |b| {
        let mut svc = Trivial;
        b.iter(|| one(&mut svc, &mut cx));
    });

    for (name, algorithm) in [
        ("round-robin", BalanceAlgorithm::RoundRobin),
        ("weighted-round-robin", BalanceAlgorithm::WeightedRoundRobin),
        ("least-request", BalanceAlgorithm::LeastRequest),
        ("peak-ewma", BalanceAlgorithm::PeakEwma),
        ("adaptive", BalanceAlgorithm::Adaptive),
    ] {
        for outliers in [false, true] {
            let mut policy = LoadBalancing::default();
            policy.algorithm = algorithm;
            if outliers {
                policy.outlier_detection = Some(OutlierDetection::default());
            }
            let endpoints = (0..8).map(|i| (i, Weighted::new(Trivial, 1 + i % 3)));
            let mut balance = Balance::<_, Req>::new(policy, endpoints);
            let id = if outliers {
                format!("fluxgate/{name}+outliers")
            } else {
                format!("fluxgate/{name}")
            };
            group.bench_function(id, |b| b.iter(|| one(&mut balance, &mut cx)));
            if !outliers {
                let id = format!("fluxgate/clone/{name}");
                group.bench_function(id, |b| b.iter(|| one(&mut balance.clone(), &mut cx)));
            }
        }
    }

    group.bench_function("tower/p2c+PeakEwma", |b| {
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
        let mut balance = tower::balance::p2c::Balance::new(ServiceList::new::<Req>(services));
        b.iter(|| one(&mut balance, &mut cx));
    });

    group.bench_function("tower/p2c+PendingRequests", |b| {
        let services: Vec<_> = (0..8)
            .map(|_| PendingRequests::new(Trivial, CompleteOnResponse::default()))
            .collect();
        let mut balance = tower::balance::p2c::Balance::new(ServiceList::new::<Req>(services));
        b.iter(|| one(&mut balance, &mut cx));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
