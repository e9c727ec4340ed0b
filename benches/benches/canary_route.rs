//! Per-request cost of the canary router's decision (header match, weighted split, sticky key)
//! around trivial services, against tower's `Steer` over the same services in the same run.
//!
//! Like with like: both routers wrap the same two `Trivial` services, get the same requests, and
//! each `Steer` picker does the work of the canary case it is compared with (a header compare, a
//! counter, a hash of the client header). The canary figures also include what `Steer` does not
//! do: reading the published weight, classifying each response and recording its outcome and
//! latency in the side's windows (two clock reads).
//! The split accuracy (100k requests at weight 10 within 0.5pp) is a test:
//! `fluxgate-canary/tests/split.rs`.
//!
//! Run with `cargo bench -p fluxgate-benches --bench canary_route`.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group};
use fluxgate_benches::CALLGRIND_OPS;
use fluxgate_canary::Canary;
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

/// Every variant: tower's `Steer` for each case, then the canary router.
fn variants() -> Vec<Variant> {
    let mut out = Vec::new();
    let mut steer = Steer::new([Trivial, Trivial], |r: &Request<()>, _: &[Trivial]| {
        usize::from(r.headers().get("x-canary").is_some_and(|v| v == "true"))
    });
    out.push(Variant {
        id: "steer_header",
        route: Box::new(move |r| route(&mut steer, r)),
        request: matched,
    });
    let counter = Cell::new(0u64);
    let mut steer = Steer::new([Trivial, Trivial], move |_: &Request<()>, _: &[Trivial]| {
        counter.set(counter.get() + 1);
        usize::from(counter.get().is_multiple_of(10))
    });
    out.push(Variant {
        id: "steer_weighted",
        route: Box::new(move |r| route(&mut steer, r)),
        request: plain,
    });
    let mut steer = Steer::new([Trivial, Trivial], |r: &Request<()>, _: &[Trivial]| {
        let key = r
            .headers()
            .get("x-client-id")
            .map_or(&b""[..], |v| v.as_bytes());
        usize::from(fnv1a(key) % 100 < 10)
    });
    out.push(Variant {
        id: "steer_sticky",
        route: Box::new(move |r| route(&mut steer, r)),
        request: client,
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
    for (id, spec, request) in cases {
        let (mut canary, judge) = Canary::new(Trivial, Trivial, compiled(spec)).unwrap();
        out.push(Variant {
            id,
            route: Box::new(move |r| {
                let _judge = &judge;
                route(&mut canary, r)
            }),
            request,
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
    let requests: Vec<_> = (0..CALLGRIND_OPS).map(|_| (variant.request)()).collect();
    fluxgate_benches::measure(requests, |r| {
        black_box((variant.route)(r));
    });
    println!("{id}: {CALLGRIND_OPS} requests");
}

criterion_group!(benches, bench);

fn main() {
    if let Some(variant) = fluxgate_benches::callgrind_variant() {
        callgrind(&variant);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
