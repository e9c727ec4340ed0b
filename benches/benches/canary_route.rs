//! Per-request cost of the canary router's decision (header match, weighted split, sticky key)
//! around trivial services, against tower's `Steer` over the same services in the same run.
//!
//! Like with like: both routers wrap the same two `Trivial` services, get the same requests, and
//! each `Steer` picker does the work of the canary case it is compared with (a header compare, a
//! counter, a hash of the client header). The canary figures also include what `Steer` does not
//! do: reading the published weight, classifying each response and recording its outcome and
//! latency in the side's windows. Each router's judge runs on a runtime thread of its own, as
//! in a gateway: at these rates it has the busy side time one response in 16 (the crate docs'
//! "Latency sampling"; the others place their count with the coarse clock), and the paired
//! mode prints the stride it measured at (`timed 1/N`).
//! The split accuracy (100k requests at weight 10 within 0.5pp) is a test:
//! `fluxgate-canary/tests/split.rs`.
//!
//! Run with `cargo bench -p fluxgate-benches --bench canary_route`; on a noisy machine,
//! `BENCH_PAIRED=20000 cargo bench -p fluxgate-benches --bench canary_route` times the pairs in
//! alternating blocks instead and prints the median ratio (see `paired`), and
//! `BENCH_SHARED=2000` routes from one thread and then from two at once (see `shared`).

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group};
use fluxgate_benches::CALLGRIND_OPS;
use fluxgate_canary::{Canary, CanaryHandle, Judge};
use fluxgate_core::clock::Stamp;
use fluxgate_core::key::fnv1a;
use fluxgate_core::policy::{CompiledCanary, CompiledPolicy, parse_policies};
use http::{Request, Response};
use tower::Service;
use tower::steer::Steer;

/// A service that answers at once.
#[derive(Clone, Copy, Debug)]
struct Trivial;

impl Service<Request<()>> for Trivial {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

fn compiled(spec: &str) -> CompiledCanary {
    let yaml = format!(
        "{{apiVersion: fluxgate.io/v1beta1, kind: TrafficPolicy, metadata: {{name: b}}, spec: {{canary: {spec}}}}}"
    );
    let policy = CompiledPolicy::compile(&parse_policies(yaml.as_bytes()).unwrap()[0]).unwrap();
    policy.canary().unwrap().clone()
}

/// One request through `svc`: ready, call, and the (already complete) future polled once.
fn route<S: Service<Request<()>>>(svc: &mut S, request: Request<()>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let ready = matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(())));
    let future = pin!(svc.call(request));
    ready && matches!(future.poll(&mut cx), Poll::Ready(Ok(_)))
}

fn request(header: Option<(&'static str, &'static str)>) -> Request<()> {
    let mut builder = Request::get("/checkout?item=7");
    if let Some((name, value)) = header {
        builder = builder.header(name, value);
    }
    builder.header("accept", "*/*").body(()).unwrap()
}

/// One variant: routes a request, and the requests it gets.
struct Variant {
    id: &'static str,
    route: Box<dyn FnMut(Request<()>) -> bool>,
    request: MakeRequest,
    /// The canary router's handle (none for `Steer`).
    handle: Option<CanaryHandle>,
}

/// Runs `judge` on a current-thread runtime on a thread of its own (it ends with its router).
fn spawn_judge(judge: Judge) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    std::thread::spawn(move || runtime.block_on(judge.run()));
}

/// Builds a fresh request for one routing.
type MakeRequest = fn() -> Request<()>;

fn matched() -> Request<()> {
    request(Some(("x-canary", "true")))
}

fn plain() -> Request<()> {
    request(None)
}

fn client() -> Request<()> {
    request(Some(("x-client-id", "client-4711")))
}

/// Every variant, in pairs: tower's `Steer` for a case, then the canary router for it (criterion
/// measures them one after the other, so a slow spell of the machine is less likely to fall
/// between the two it compares; [`paired`] interleaves them).
fn variants() -> Vec<Variant> {
    let mut steers = Vec::new();
    let mut steer = Steer::new([Trivial, Trivial], |r: &Request<()>, _: &[Trivial]| {
        usize::from(r.headers().get("x-canary").is_some_and(|v| v == "true"))
    });
    steers.push(Variant {
        id: "steer_header",
        route: Box::new(move |r| route(&mut steer, r)),
        request: matched,
        handle: None,
    });
    let counter = Cell::new(0u64);
    let mut steer = Steer::new([Trivial, Trivial], move |_: &Request<()>, _: &[Trivial]| {
        counter.set(counter.get() + 1);
        usize::from(counter.get().is_multiple_of(10))
    });
    steers.push(Variant {
        id: "steer_weighted",
        route: Box::new(move |r| route(&mut steer, r)),
        request: plain,
        handle: None,
    });
    let mut steer = Steer::new([Trivial, Trivial], |r: &Request<()>, _: &[Trivial]| {
        let key = r
            .headers()
            .get("x-client-id")
            .map_or(&b""[..], |v| v.as_bytes());
        usize::from(fnv1a(key) % 100 < 10)
    });
    steers.push(Variant {
        id: "steer_sticky",
        route: Box::new(move |r| route(&mut steer, r)),
        request: client,
        handle: None,
    });
    let cases: [(&str, &str, MakeRequest); 3] = [
        (
            "header_match",
            r#"{weight: 0, match: [{header: {name: x-canary, value: "true"}}]}"#,
            matched,
        ),
        ("weighted", "{weight: 10}", plain),
        (
            "sticky",
            "{weight: 10, stickyKey: header.x-client-id}",
            client,
        ),
    ];
    let mut out = Vec::new();
    for (steer, (id, spec, request)) in steers.into_iter().zip(cases) {
        out.push(steer);
        let (mut canary, judge) = Canary::new(Trivial, Trivial, compiled(spec)).unwrap();
        let handle = Some(canary.handle());
        spawn_judge(judge);
        out.push(Variant {
            id,
            route: Box::new(move |r| route(&mut canary, r)),
            request,
            handle,
        });
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("canary/route");
    for mut variant in variants() {
        group.bench_function(variant.id, |b| {
            b.iter_batched(
                variant.request,
                |r| black_box((variant.route)(r)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// Instructions per request of one variant (see `fluxgate_benches`): `BENCH_CALLGRIND=<id>
/// valgrind --tool=callgrind --toggle-collect='fluxgate_benches::measure*' <bench binary>`.
fn callgrind(id: &str) {
    let Some(mut variant) = variants().into_iter().find(|v| v.id == id) else {
        panic!("no variant {id}");
    };
    for _ in 0..1000 {
        assert!((variant.route)((variant.request)()));
    }
    warm(&mut variant, 600);
    println!("{id}: timed {}", stride(&variant));
    let requests: Vec<_> = (0..CALLGRIND_OPS).map(|_| (variant.request)()).collect();
    fluxgate_benches::measure(requests, |r| {
        black_box((variant.route)(r));
    });
    println!("{id}: {CALLGRIND_OPS} requests");
}

/// Requests per timed block of [`paired`]: few enough that they are still in the cache when
/// routed, as in criterion's small batches (10,000 made up front would be routed from memory,
/// a cost that both sides pay and that would hide their difference).
const BLOCK: usize = 100;

/// Routes requests through `variant` for `ms` milliseconds (past a budget tick or two, for
/// the judge to see the rate).
fn warm(variant: &mut Variant, ms: u64) {
    let start = Stamp::now();
    while Stamp::now().nanos_since(start) < ms * 1_000_000 {
        for _ in 0..1_000 {
            black_box((variant.route)((variant.request)()));
        }
    }
}

/// The busier side's latency stride of a canary variant (`-` for `Steer`).
fn stride(variant: &Variant) -> String {
    variant.handle.as_ref().map_or_else(
        || "-".to_owned(),
        |h| {
            let snapshot = h.snapshot();
            let stride = snapshot
                .stable
                .timed_one_in
                .max(snapshot.canary.timed_one_in);
            format!("1/{stride}")
        },
    )
}

/// Nanoseconds per request of routing one block of fresh requests through `variant` (the
/// requests are made before the clock starts; their drop is timed, as in the criterion bench).
fn time_block(variant: &mut Variant) -> f64 {
    let requests: Vec<_> = (0..BLOCK).map(|_| (variant.request)()).collect();
    let start = Stamp::now();
    for request in requests {
        black_box((variant.route)(request));
    }
    Stamp::now().nanos_since(start) as f64 / BLOCK as f64
}

/// The median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Interleaved timing for noisy machines (`BENCH_PAIRED=<blocks>`): for each case, blocks of
/// [`BLOCK`] requests alternate between `Steer` and the canary (which goes first alternates
/// too), so a slow spell of the machine falls on both; prints each side's median time per
/// request over the blocks and the median and quartiles of the block pairs' ratios.
fn paired(blocks: usize) {
    let mut variants = variants();
    for pair in variants.chunks_exact_mut(2) {
        let [steer, canary] = pair else {
            unreachable!("chunks of two")
        };
        warm(steer, 100);
        warm(canary, 600);
        let (mut steer_ns, mut canary_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for block in 0..blocks {
            let (s, c) = if block % 2 == 0 {
                let s = time_block(steer);
                (s, time_block(canary))
            } else {
                let c = time_block(canary);
                (time_block(steer), c)
            };
            steer_ns.push(s);
            canary_ns.push(c);
            ratios.push(c / s);
        }
        let ratio = median(&mut ratios);
        let (low, high) = (ratios[blocks / 4], ratios[blocks * 3 / 4]);
        println!(
            "{:<13} steer {:6.1} ns  canary {:6.1} ns  ratio {ratio:.2} (quartiles {low:.2}-{high:.2}, {blocks} block pairs of {BLOCK}, timed {})",
            canary.id,
            median(&mut steer_ns),
            median(&mut canary_ns),
            stride(canary),
        );
    }
}

/// The weighted case from one thread and from two at once (`BENCH_SHARED=<blocks>` per
/// thread): `Steer` with a router per thread (nothing shared), and the canary with clones of
/// one router (its counts, windows and reference counts shared, as a gateway's workers share
/// them). Prints the mean over the threads of each one's median time per request over its
/// blocks: what the canary's growth
/// from one thread to two costs is the traffic of its shared cache lines between the cores.
fn shared(blocks: usize) {
    let (canary, judge) = Canary::new(Trivial, Trivial, compiled("{weight: 10}")).unwrap();
    let handle = canary.handle();
    spawn_judge(judge);
    for threads in [1, 2] {
        let mut line = format!("weighted, {threads} thread(s):");
        for steer in [true, false] {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let barrier = barrier.clone();
                    let mut canary = canary.clone();
                    std::thread::spawn(move || {
                        let counter = Cell::new(0u64);
                        let mut steer_router = Steer::new(
                            [Trivial, Trivial],
                            move |_: &Request<()>, _: &[Trivial]| {
                                counter.set(counter.get() + 1);
                                usize::from(counter.get().is_multiple_of(10))
                            },
                        );
                        let mut variant = Variant {
                            id: "shared",
                            route: if steer {
                                Box::new(move |r| route(&mut steer_router, r))
                            } else {
                                Box::new(move |r| route(&mut canary, r))
                            },
                            request: plain,
                            handle: None,
                        };
                        barrier.wait();
                        warm(&mut variant, 600);
                        let mut ns: Vec<f64> =
                            (0..blocks).map(|_| time_block(&mut variant)).collect();
                        median(&mut ns)
                    })
                })
                .collect();
            let ns: Vec<f64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
            let name = if steer { "steer" } else { "canary" };
            let mean = ns.iter().sum::<f64>() / ns.len() as f64;
            line += &format!("  {name} {mean:6.1} ns");
        }
        let snapshot = handle.snapshot();
        println!("{line}  (canary timed 1/{})", snapshot.stable.timed_one_in);
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Some(variant) = fluxgate_benches::callgrind_variant() {
        callgrind(&variant);
        return;
    }
    if let Ok(blocks) = std::env::var("BENCH_SHARED") {
        shared(blocks.parse().unwrap_or(2_000).max(4));
        return;
    }
    if let Ok(blocks) = std::env::var("BENCH_PAIRED") {
        paired(blocks.parse().unwrap_or(20_000).max(4));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
