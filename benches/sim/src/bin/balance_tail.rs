//! Tail latency per algorithm over simulated endpoints, on tokio's paused clock.
//!
//! Run with: `cargo run --release -p fluxgate-benches --bin balance_tail`
//!
//! Each endpoint answers after a latency drawn from its distribution (a base latency times a
//! random factor); time is virtual, so runs are fast and repeatable. 50 requests are kept in
//! flight; latency is measured from the call to the answer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use fluxgate_balance::{Balance, Weighted};
use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma};
use tower::{BoxError, Service, ServiceExt};

type Req = http::Request<()>;
type Resp = http::Response<()>;
type Fut = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

const REQUESTS: usize = 40_000;
const CONCURRENCY: usize = 50;

/// A simulated endpoint: `base` latency times a uniform factor in `[lo, hi)`.
#[derive(Clone)]
struct Sim {
    base: Duration,
    lo: f64,
    hi: f64,
    rng: u64,
}

impl Sim {
    fn new(base_ms: f64, lo: f64, hi: f64, seed: u64) -> Self {
        Self {
            base: Duration::from_secs_f64(base_ms / 1000.0),
            lo,
            hi,
            rng: seed | 1,
        }
    }
}

impl Service<Req> for Sim {
    type Response = Resp;
    type Error = Infallible;
    type Future = Fut;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Fut {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let u = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let latency = self.base.mul_f64(self.lo + (self.hi - self.lo) * u);
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            Ok(http::Response::new(()))
        })
    }
}

async fn run<S>(mut svc: S) -> Vec<Duration>
where
    S: Service<Req, Response = Resp>,
    S::Error: Into<BoxError>,
{
    let mut latencies = Vec::with_capacity(REQUESTS);
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..REQUESTS {
        if in_flight.len() >= CONCURRENCY
            && let Some(l) = in_flight.next().await
        {
            latencies.push(l);
        }
        let ready = svc.ready().await.map_err(Into::into).expect("ready");
        let start = Instant::now();
        let fut = ready.call(http::Request::new(()));
        in_flight.push(async move {
            let _ = fut.await;
            start.elapsed()
        });
    }
    while let Some(l) = in_flight.next().await {
        latencies.push(l);
    }
    latencies.sort_unstable();
    latencies
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn print(name: &str, sorted: &[Duration]) -> f64 {
    let p99 = pct(sorted, 0.99);
    println!(
        "  {name:<26} p50 {:>8.2}ms  p99 {:>8.2}ms  p999 {:>8.2}ms",
        pct(sorted, 0.5),
        p99,
        pct(sorted, 0.999)
    );
    p99
}

async fn scenario(title: &str, sims: Vec<Sim>) -> Vec<(String, f64)> {
    println!("{title}");
    let mut out = Vec::new();
    for (name, algorithm) in [
        ("fluxgate/round-robin", BalanceAlgorithm::RoundRobin),
        ("fluxgate/weighted-rr", BalanceAlgorithm::WeightedRoundRobin),
        ("fluxgate/least-request", BalanceAlgorithm::LeastRequest),
        ("fluxgate/peak-ewma", BalanceAlgorithm::PeakEwma),
        ("fluxgate/adaptive", BalanceAlgorithm::Adaptive),
    ] {
        let mut policy = LoadBalancing::default();
        policy.algorithm = algorithm;
        let endpoints = sims
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, s)| (i, Weighted::new(s, 1)));
        let balance = Balance::<_, Req>::new(policy, endpoints);
        let sorted = run(balance).await;
        out.push((name.to_owned(), print(name, &sorted)));
    }
    let services: Vec<_> = sims
        .iter()
        .cloned()
        .map(|s| {
            PeakEwma::new(
                s,
                Duration::from_millis(1),
                1e9,
                CompleteOnResponse::default(),
            )
        })
        .collect();
    let tower = tower::balance::p2c::Balance::new(ServiceList::new::<Req>(services));
    let sorted = run(tower).await;
    out.push((
        "tower/p2c+PeakEwma".to_owned(),
        print("tower/p2c+PeakEwma", &sorted),
    ));
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut seed = 0x5eed_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed
        };
        // (a) tower's skewed cluster: up to 1ms, 10ms x4, 100ms x4, 1000ms (each ±50%).
        let mut a = vec![Sim::new(1.0, 0.0, 1.0, next())];
        a.extend((0..4).map(|_| Sim::new(10.0, 0.5, 1.5, next())));
        a.extend((0..4).map(|_| Sim::new(100.0, 0.5, 1.5, next())));
        a.push(Sim::new(1000.0, 0.5, 1.5, next()));
        let ra = scenario(&format!("(a) 10 endpoints: ≤1ms, 10ms x4, 100ms x4, 1000ms; {REQUESTS} requests, concurrency {CONCURRENCY}"), a).await;
        // (b) 8 endpoints of 10ms ±20%, two of them 3x slower with more jitter (30ms ±50%).
        let mut b: Vec<Sim> = (0..6).map(|_| Sim::new(10.0, 0.8, 1.2, next())).collect();
        b.extend((0..2).map(|_| Sim::new(30.0, 0.5, 1.5, next())));
        let rb = scenario(&format!("(b) 8 endpoints: 10ms ±20% x6, 30ms ±50% x2; {REQUESTS} requests, concurrency {CONCURRENCY}"), b).await;
        let p99 = |r: &[(String, f64)], n: &str| r.iter().find(|(k, _)| k == n).map_or(f64::NAN, |(_, v)| *v);
        let rr = p99(&rb, "fluxgate/round-robin");
        let ad = p99(&rb, "fluxgate/adaptive");
        println!("(b) adaptive p99 vs round robin: {:.0}% lower", (1.0 - ad / rr) * 100.0);
        for (t, r) in [("(a)", &ra), ("(b)", &rb)] {
            println!(
                "{t} adaptive p99 {:.2}ms vs tower p2c PeakEwma {:.2}ms",
                p99(r, "fluxgate/adaptive"),
                p99(r, "tower/p2c+PeakEwma")
            );
        }
    });
}
