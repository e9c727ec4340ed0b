//! Per-request cost of rate limiting around a no-op service, keyed by a header:
//! FluxGate's layer (GCRA and sliding window; GCRA with the admitted responses' `RateLimit`
//! header fields, and over `AnyStore`, too), the floor (a
//! `service_fn` checking a governor keyed limiter directly) and tower_governor's layer, with 1 key
//! and 100k keys, on one thread and on two threads sharing the limiter.
//!
//! Run with: `cargo bench -p fluxgate-benches --bench ratelimit_local`

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use axum::body::Body;
use criterion::{BatchSize, Criterion, criterion_group};
use fluxgate_core::policy::{LimitAlgorithm, RateLimitSpec};
use fluxgate_ratelimit::RateLimitLayer;
use fluxgate_ratelimit::store::{AnyStore, LocalStore, RateLimitStore};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service, service_fn};
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

const KEY: HeaderName = HeaderName::from_static("x-api-key");
const RPS: u64 = 1_000_000_000;
const BURST: u32 = 1_000_000;

type Req = Request<()>;
/// Sends one request through one clone of a service.
type Call = Box<dyn FnMut(Req, &mut Context<'_>) + Send>;
/// Makes a new clone of a service.
type MakeCall = Box<dyn Fn() -> Call>;

fn noop() -> impl Service<
    Req,
    Response = Response<Body>,
    Error = Infallible,
    Future = Ready<Result<Response<Body>, Infallible>>,
> + Clone {
    service_fn(|_req: Req| ready(Ok::<_, Infallible>(Response::new(Body::empty()))))
}

fn keys(n: usize) -> Arc<Vec<HeaderValue>> {
    Arc::new(
        (0..n)
            .map(|i| HeaderValue::from_str(&format!("client-{i:08}")).unwrap())
            .collect(),
    )
}

fn request(value: &HeaderValue) -> Req {
    let mut request = Request::new(());
    request.headers_mut().insert(KEY, value.clone());
    request
}

/// Drives one request through a service whose futures are ready at once.
fn drive<S: Service<Req>>(service: &mut S, request: Req, cx: &mut Context<'_>) {
    assert!(service.poll_ready(cx).is_ready());
    let future = pin!(service.call(request));
    match future.poll(cx) {
        Poll::Ready(response) => {
            black_box(response.is_ok());
        }
        Poll::Pending => unreachable!("no-op services answer at once"),
    }
}

#[derive(Clone)]
struct HeaderKey;

impl KeyExtractor for HeaderKey {
    type Key = HeaderValue;

    fn extract<T>(&self, req: &Request<T>) -> Result<HeaderValue, GovernorError> {
        req.headers()
            .get(KEY)
            .cloned()
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

fn fluxgate<St: RateLimitStore>(
    algorithm: LimitAlgorithm,
    store: St,
) -> impl Service<Req> + Clone + Send + 'static {
    limited(algorithm, store, false)
}

/// FluxGate's layer; `headers`: admitted responses carry the `RateLimit` fields.
fn limited<St: RateLimitStore>(
    algorithm: LimitAlgorithm,
    store: St,
    headers: bool,
) -> impl Service<Req> + Clone + Send + 'static {
    let mut limit = RateLimitSpec::new(RPS as f64, BURST);
    limit.key_extractor = "header.x-api-key".into();
    limit.algorithm = algorithm;
    let layer = RateLimitLayer::builder()
        .store(store)
        .limit(limit)
        .admit_headers(headers)
        .build()
        .unwrap();
    layer.layer(noop())
}

fn floor() -> impl Service<Req> + Clone + Send + 'static {
    let quota = Quota::per_second(std::num::NonZeroU32::new(BURST).unwrap());
    let limiter: Arc<DefaultKeyedRateLimiter<HeaderValue>> = Arc::new(RateLimiter::keyed(quota));
    let inner = noop();
    service_fn(move |req: Req| {
        let admitted = req
            .headers()
            .get(KEY)
            .is_some_and(|key| limiter.check_key(key).is_ok());
        let mut inner = inner.clone();
        async move {
            if admitted {
                inner.call(req).await
            } else {
                Ok(Response::builder().status(429).body(Body::empty()).unwrap())
            }
        }
    })
}

fn tower_governor() -> impl Service<Req> + Clone + Send + 'static {
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(BURST)
        .key_extractor(HeaderKey)
        .finish()
        .unwrap();
    tower_governor::GovernorLayer::new(config).layer(noop())
}

/// tower_governor with its `x-ratelimit-*` headers on every response (`use_headers`).
fn tower_governor_headers() -> impl Service<Req> + Clone + Send + 'static {
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(BURST)
        .key_extractor(HeaderKey)
        .use_headers()
        .finish()
        .unwrap();
    tower_governor::GovernorLayer::new(config).layer(noop())
}

fn variants() -> Vec<(&'static str, MakeCall)> {
    fn boxed<S: Service<Req> + Clone + Send + 'static>(s: S) -> MakeCall {
        Box::new(move || {
            let mut s = s.clone();
            Box::new(move |req, cx| drive(&mut s, req, cx))
        })
    }
    vec![
        (
            "fluxgate/gcra",
            boxed(fluxgate(LimitAlgorithm::Gcra, LocalStore::new())),
        ),
        // Admitted responses with their `RateLimit` and `RateLimit-Policy` fields.
        (
            "fluxgate/gcra/headers",
            boxed(limited(LimitAlgorithm::Gcra, LocalStore::new(), true)),
        ),
        // The local store behind `AnyStore`, as a `fluxgate::stack` stack uses it.
        (
            "fluxgate/gcra/any_store",
            boxed(fluxgate(LimitAlgorithm::Gcra, AnyStore::local())),
        ),
        (
            "fluxgate/sliding_window",
            boxed(fluxgate(LimitAlgorithm::SlidingWindow, LocalStore::new())),
        ),
        ("floor/governor_service_fn", boxed(floor())),
        ("tower_governor/gcra", boxed(tower_governor())),
        (
            "tower_governor/gcra/headers",
            boxed(tower_governor_headers()),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    for (n, label) in [(1, "1_key"), (100_000, "100k_keys")] {
        let values = keys(n);
        for (name, make) in variants() {
            // Warm every key in so that the 100k-key runs measure lookups, not inserts.
            let mut warm = make();
            let mut cx = Context::from_waker(Waker::noop());
            for v in values.iter() {
                warm(request(v), &mut cx);
            }
            let mut call = make();
            let mut i = 0;
            c.bench_function(&format!("ratelimit/{name}/{label}"), |b| {
                b.iter_batched(
                    || {
                        i = (i + 1) % n;
                        request(&values[i])
                    },
                    |req| call(req, &mut Context::from_waker(Waker::noop())),
                    BatchSize::SmallInput,
                );
            });
            c.bench_function(&format!("ratelimit/{name}/{label}/2_threads"), |b| {
                b.iter_custom(|iters| two_threads(&make, &values, iters));
            });
        }
    }
}

/// Each of two threads sends `iters` requests through its own clone; the time per thread.
fn two_threads(make: &dyn Fn() -> Call, values: &Arc<Vec<HeaderValue>>, iters: u64) -> Duration {
    let mut calls = [make(), make()];
    let times: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = calls
            .iter_mut()
            .enumerate()
            .map(|(t, call)| {
                let values = Arc::clone(values);
                scope.spawn(move || {
                    let mut cx = Context::from_waker(Waker::noop());
                    let mut elapsed = Duration::ZERO;
                    let mut left = iters;
                    let mut i = t * 7919;
                    while left > 0 {
                        let chunk = left.min(4096);
                        let batch: Vec<Req> = (0..chunk)
                            .map(|_| {
                                i = (i + 1) % values.len();
                                request(&values[i])
                            })
                            .collect();
                        let start = Instant::now();
                        for req in batch {
                            call(req, &mut cx);
                        }
                        elapsed += start.elapsed();
                        left -= chunk;
                    }
                    elapsed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.iter().sum::<Duration>() / 2
}

/// Instructions per request under callgrind: `RATELIMIT_CALLGRIND=<variant> valgrind
/// --tool=callgrind --toggle-collect=ratelimit_local::measure <bench binary>` sends
/// [`CALLGRIND_REQUESTS`] requests with 1 key through the variant named (as in the bench IDs,
/// `fluxgate/gcra`); divide the instructions collected by that count.
const CALLGRIND_REQUESTS: usize = 100_000;

fn callgrind(variant: &str) {
    let Some((_, make)) = variants().into_iter().find(|(name, _)| *name == variant) else {
        panic!("no variant {variant}");
    };
    let values = keys(1);
    let mut call = make();
    let mut cx = Context::from_waker(Waker::noop());
    call(request(&values[0]), &mut cx);
    let requests: Vec<Req> = (0..CALLGRIND_REQUESTS)
        .map(|_| request(&values[0]))
        .collect();
    measure(&mut call, requests, &mut cx);
    println!("{variant}: {CALLGRIND_REQUESTS} requests");
}

#[inline(never)]
fn measure(call: &mut Call, requests: Vec<Req>, cx: &mut Context<'_>) {
    for request in requests {
        call(request, cx);
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(variant) = std::env::var("RATELIMIT_CALLGRIND") {
        callgrind(&variant);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
