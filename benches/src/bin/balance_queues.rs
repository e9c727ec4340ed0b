//! Balancers over endpoints whose latency depends on their load, on the real clock.
//!
//! Run with: `cargo run --release -p fluxgate-benches --bin balance_queues`
//!
//! Each endpoint is a queue in front of a fixed number of workers (a semaphore): a request waits
//! for a free worker, then takes a service time drawn around the endpoint's mean (uniform,
//! ±50%). Sending more to an endpoint makes it slower, as a real server. A closed loop keeps a
//! fixed number of requests in flight through one balancer; latency is measured from the call
//! to the answer. Every balancer runs in the same process on the same endpoints:
//! FluxGate's algorithms (with their default draining), FluxGate's round robin without
//! draining (the baseline), tower's p2c over `PeakEwma` and over `PendingRequests`.
//!
//! 1. Heterogeneous cluster: p50/p99/p99.9 and the share of the slow endpoints.
//! 2. Reaction: 8 equal endpoints; one turns slow (600ms) or failing (500 at once) after 2s.
//!    Time until its share of the requests sent stays under 1% (100ms windows), and the
//!    requests it got (slow) or failed (failing) in between.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use fluxgate_balance::{Balance, Weighted};
use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing, OutlierDetection};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma, PendingRequests};
use tower::{BoxError, Service, ServiceExt};

type Req = http::Request<()>;
/// The body is the index of the endpoint that answered.
type Resp = http::Response<usize>;
type Fut = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

/// One endpoint: a queue in front of `workers` workers.
#[derive(Clone)]
struct Queue {
    index: usize,
    workers: Arc<Semaphore>,
    /// Mean service time in µs (changed while running by the reaction scenarios).
    mean_us: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    rng: u64,
}

impl Queue {
    fn new(index: usize, workers: usize, mean_ms: f64) -> Self {
        Self {
            index,
            workers: Arc::new(Semaphore::new(workers)),
            mean_us: Arc::new(AtomicU64::new((mean_ms * 1000.0) as u64)),
            failing: Arc::new(AtomicBool::new(false)),
            rng: (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }
}

impl Service<Req> for Queue {
    type Response = Resp;
    type Error = Infallible;
    type Future = Fut;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Fut {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let u = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let mean = Duration::from_micros(self.mean_us.load(Ordering::Relaxed));
        let service = mean.mul_f64(0.5 + u);
        let workers = Arc::clone(&self.workers);
        let failing = self.failing.load(Ordering::Relaxed);
        let index = self.index;
        Box::pin(async move {
            if failing {
                let mut response = http::Response::new(index);
                *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                return Ok(response);
            }
            let _worker = workers.acquire_owned().await;
            tokio::time::sleep(service).await;
            Ok(http::Response::new(index))
        })
    }
}

/// One request's record: when it was sent (from the start), its latency, where, and whether it
/// failed.
#[derive(Clone, Copy)]
struct Rec {
    sent: Duration,
    latency: Duration,
    endpoint: usize,
    failed: bool,
}

/// Keeps `concurrency` requests in flight through `svc` for `run`; `at` is called once, at
/// `change`, to change an endpoint.
async fn drive<S>(
    mut svc: S,
    concurrency: usize,
    run: Duration,
    change: Option<(Duration, Box<dyn FnOnce()>)>,
) -> Vec<Rec>
where
    S: Service<Req, Response = Resp>,
    S::Error: Into<BoxError>,
{
    let start = Instant::now();
    let mut change = change;
    let mut recs = Vec::with_capacity(100_000);
    let mut in_flight = FuturesUnordered::new();
    while start.elapsed() < run {
        if change
            .as_ref()
            .is_some_and(|(at, _)| start.elapsed() >= *at)
            && let Some((_, f)) = change.take()
        {
            f();
        }
        if in_flight.len() >= concurrency
            && let Some(rec) = in_flight.next().await
        {
            recs.push(rec);
        }
        let Ok(ready) = svc.ready().await else {
            break;
        };
        let sent = start.elapsed();
        let fut = ready.call(http::Request::new(()));
        in_flight.push(async move {
            let result = fut.await;
            let latency = start.elapsed() - sent;
            match result {
                Ok(response) => Rec {
                    sent,
                    latency,
                    endpoint: *response.body(),
                    failed: response.status().is_server_error(),
                },
                Err(_) => Rec {
                    sent,
                    latency,
                    endpoint: usize::MAX,
                    failed: true,
                },
            }
        });
    }
    while let Some(rec) = in_flight.next().await {
        recs.push(rec);
    }
    recs
}

/// Builds one balancer.
type Build = Box<dyn FnOnce() -> Boxed>;

/// The balancers compared, each built over clones of `queues`.
fn balancers(queues: &[Queue]) -> Vec<(&'static str, Build)> {
    let mut out: Vec<(&'static str, Build)> = Vec::new();
    let fluxgate = |algorithm: BalanceAlgorithm, draining: bool| {
        let queues = queues.to_vec();
        Box::new(move || {
            let mut policy = LoadBalancing::default();
            policy.algorithm = algorithm;
            if !draining {
                let mut off = OutlierDetection::default();
                off.enabled = false;
                policy.outlier_detection = Some(off);
            }
            let endpoints = queues
                .into_iter()
                .enumerate()
                .map(|(i, q)| (i, Weighted::new(q, 1)));
            Boxed::new(Balance::<_, Req>::new(policy, endpoints))
        }) as Build
    };
    out.push((
        "round-robin, no draining",
        fluxgate(BalanceAlgorithm::RoundRobin, false),
    ));
    for (name, algorithm) in [
        ("fluxgate round-robin", BalanceAlgorithm::RoundRobin),
        ("fluxgate weighted-rr", BalanceAlgorithm::WeightedRoundRobin),
        ("fluxgate least-request", BalanceAlgorithm::LeastRequest),
        ("fluxgate peak-ewma", BalanceAlgorithm::PeakEwma),
        ("fluxgate adaptive", BalanceAlgorithm::Adaptive),
    ] {
        out.push((name, fluxgate(algorithm, true)));
    }
    out.push((
        "tower p2c PeakEwma",
        tower_p2c(queues, |s| {
            PeakEwma::new(
                s,
                Duration::from_millis(1),
                Duration::from_secs(1).as_nanos() as f64,
                CompleteOnResponse::default(),
            )
        }),
    ));
    out.push((
        "tower p2c PendingRequests",
        tower_p2c(queues, |s| {
            PendingRequests::new(s, CompleteOnResponse::default())
        }),
    ));
    out
}

/// tower's p2c balancer over `queues`, each wrapped by `load` (a load measure).
fn tower_p2c<L>(queues: &[Queue], load: fn(Queue) -> L) -> Build
where
    L: Service<Req, Response = Resp> + tower::load::Load + Send + 'static,
    L::Error: Into<BoxError>,
    L::Future: Send + 'static,
    <L as tower::load::Load>::Metric: std::fmt::Debug + PartialOrd + Send,
{
    let queues = queues.to_vec();
    Box::new(move || {
        let services: Vec<L> = queues.into_iter().map(load).collect();
        Boxed::new(tower::balance::p2c::Balance::new(ServiceList::new::<Req>(
            services,
        )))
    })
}

/// A balancer behind one type (boxed future), so that all can be driven alike.
struct Boxed(tower::util::BoxService<Req, Resp, BoxError>);

impl Boxed {
    fn new<S>(svc: S) -> Self
    where
        S: Service<Req, Response = Resp> + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Self(tower::util::BoxService::new(svc.map_err(Into::into)))
    }
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// 1. Heterogeneous cluster.
async fn heterogeneous(concurrency: usize, run: Duration) {
    // 8 endpoints of 4 workers: 2ms x4, 4ms x2, 8ms, 20ms (mean service time, ±50%).
    let means = [2.0, 2.0, 2.0, 2.0, 4.0, 4.0, 8.0, 20.0];
    let slow = [6, 7];
    println!(
        "1. 8 endpoints x 4 workers, mean service 2ms x4, 4ms x2, 8ms, 20ms; {concurrency} in flight, {run:?} each"
    );
    println!(
        "   {:<26} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "balancer", "p50 ms", "p99 ms", "p99.9 ms", "req/s", "slow share"
    );
    let mut rows = Vec::new();
    let count = balancers(&fresh(&means)).len();
    for i in 0..count {
        let (name, build) = balancers(&fresh(&means)).swap_remove(i);
        let recs = drive(build().0, concurrency, run, None).await;
        let mut lat: Vec<Duration> = recs.iter().map(|r| r.latency).collect();
        lat.sort_unstable();
        let on_slow = recs.iter().filter(|r| slow.contains(&r.endpoint)).count();
        let row = (
            name,
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 0.999),
            recs.len() as f64 / run.as_secs_f64(),
            on_slow as f64 / recs.len().max(1) as f64,
        );
        println!(
            "   {:<26} {:>9.2} {:>9.2} {:>9.2} {:>9.0} {:>10.1}%",
            row.0,
            row.1,
            row.2,
            row.3,
            row.4,
            row.5 * 100.0
        );
        rows.push(row);
    }
    let get = |n: &str| rows.iter().find(|r| r.0 == n).copied();
    if let (Some(ad), Some(pe), Some(rr)) = (
        get("fluxgate adaptive"),
        get("tower p2c PeakEwma"),
        get("round-robin, no draining"),
    ) {
        println!(
            "   adaptive / tower PeakEwma: p50 {:.2}x, p99 {:.2}x, p99.9 {:.2}x; adaptive p99 / round robin {:.2}x",
            ad.1 / pe.1,
            ad.2 / pe.2,
            ad.3 / pe.3,
            ad.2 / rr.2
        );
    }
}

/// Fresh endpoints (new queues, no shared state with an earlier run).
fn fresh(means: &[f64]) -> Vec<Queue> {
    means
        .iter()
        .enumerate()
        .map(|(i, &m)| Queue::new(i, 4, m))
        .collect()
}

/// 2. Reaction to a node turning slow or failing at 2s.
async fn reaction(concurrency: usize, failing: bool) {
    let what = if failing {
        "failing (500 at once)"
    } else {
        "slow (600ms)"
    };
    println!(
        "2. 8 endpoints x 4 workers of 2ms; endpoint 0 turns {what} at 2s; {concurrency} in flight, 5s"
    );
    println!(
        "   {:<26} {:>16} {:>22}",
        "balancer",
        "share < 1% after",
        if failing {
            "failed in between"
        } else {
            "sent to it in between"
        }
    );
    let at = Duration::from_secs(2);
    let run = Duration::from_secs(5);
    let count = balancers(&fresh(&[2.0; 8])).len();
    for i in 0..count {
        // Fresh queues per balancer; the balancer's clones share their state with these.
        let queues = fresh(&[2.0; 8]);
        let (name, build) = balancers(&queues).swap_remove(i);
        let svc = build();
        let mean = Arc::clone(&queues[0].mean_us);
        let fail = Arc::clone(&queues[0].failing);
        let change: Box<dyn FnOnce()> = Box::new(move || {
            if failing {
                fail.store(true, Ordering::Relaxed);
            } else {
                mean.store(600_000, Ordering::Relaxed);
            }
        });
        let recs = drive(svc.0, concurrency, run, Some((at, change))).await;
        let (after, between) = settle(&recs, at, failing);
        let after = after.map_or_else(|| "never".to_owned(), |d| format!("{d:.0?}"));
        println!("   {name:<26} {after:>16} {between:>22}");
    }
}

/// When, after `at`, endpoint 0's share of the requests sent stays under 1% (the start of the
/// first 100ms window from which on it does), and how many requests it got (or failed) from
/// `at` to the end of that window.
fn settle(recs: &[Rec], at: Duration, failing: bool) -> (Option<Duration>, usize) {
    let window = Duration::from_millis(100);
    let end = recs.iter().map(|r| r.sent).max().unwrap_or_default();
    let mut windows = Vec::new();
    let mut t = at;
    while t + window <= end {
        let sent: Vec<_> = recs
            .iter()
            .filter(|r| r.sent >= t && r.sent < t + window)
            .collect();
        let on = sent.iter().filter(|r| r.endpoint == 0).count();
        windows.push((t, on as f64 / sent.len().max(1) as f64));
        t += window;
    }
    let settled = windows
        .iter()
        .rposition(|&(_, share)| share >= 0.01)
        .map_or(Some(at), |i| windows.get(i + 1).map(|w| w.0));
    let until = settled.map_or(end, |s| s + window);
    let between = recs
        .iter()
        .filter(|r| r.sent >= at && r.sent < until)
        .filter(|r| if failing { r.failed } else { r.endpoint == 0 })
        .count();
    (settled.map(|s| s - at), between)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let only = std::env::args().nth(1);
    rt.block_on(async {
        heterogeneous(24, Duration::from_secs(3)).await;
        if only.as_deref() == Some("1") {
            return;
        }
        println!();
        reaction(24, false).await;
        println!();
        reaction(24, true).await;
    });
}
