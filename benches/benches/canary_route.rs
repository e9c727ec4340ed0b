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

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
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

fn request(header: Option<(&'static str, &'static str)>) -> impl Fn() -> Request<()> {
    move || {
        let mut builder = Request::get("/checkout?item=7");
        if let Some((name, value)) = header {
            builder = builder.header(name, value);
        }
        builder.header("accept", "*/*").body(()).unwrap()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("canary/route");
    let matched = request(Some(("x-canary", "true")));
    let plain = request(None);
    let client = request(Some(("x-client-id", "client-4711")));

    let mut steer = Steer::new([Trivial, Trivial], |r: &Request<()>, _: &[Trivial]| {
        usize::from(r.headers().get("x-canary").is_some_and(|v| v == "true"))
    });
    group.bench_function("steer_header", |b| {
        b.iter_batched(
            &matched,
            |r| black_box(route(&mut steer, r)),
            BatchSize::SmallInput,
        );
    });
    let counter = Cell::new(0u64);
    let mut steer = Steer::new([Trivial, Trivial], move |_: &Request<()>, _: &[Trivial]| {
        counter.set(counter.get() + 1);
        usize::from(counter.get().is_multiple_of(10))
    });
    group.bench_function("steer_weighted", |b| {
        b.iter_batched(
            &plain,
            |r| black_box(route(&mut steer, r)),
            BatchSize::SmallInput,
        );
    });
    let mut steer = Steer::new([Trivial, Trivial], |r: &Request<()>, _: &[Trivial]| {
        let key = r
            .headers()
            .get("x-client-id")
            .map_or(&b""[..], |v| v.as_bytes());
        usize::from(fnv1a(key) % 100 < 10)
    });
    group.bench_function("steer_sticky", |b| {
        b.iter_batched(
            &client,
            |r| black_box(route(&mut steer, r)),
            BatchSize::SmallInput,
        );
    });

    let cases = [
        (
            "header_match",
            r#"{weight: 0, match: [{header: {name: x-canary, value: "true"}}]}"#,
            &matched as &dyn Fn() -> Request<()>,
        ),
        ("weighted", "{weight: 10}", &plain),
        (
            "sticky",
            "{weight: 10, stickyKey: header.x-client-id}",
            &client,
        ),
    ];
    for (name, spec, make) in cases {
        let (mut canary, _judge) = Canary::new(Trivial, Trivial, compiled(spec)).unwrap();
        group.bench_function(name, |b| {
            b.iter_batched(
                make,
                |r| black_box(route(&mut canary, r)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
