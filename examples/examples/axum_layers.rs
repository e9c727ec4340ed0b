//! FluxGate's layers in an axum `Router`: RateLimit, Canary and Balance in front of real
//! upstreams started in-process.
//!
//! Run with: `cargo run -p fluxgate-examples --example axum_layers` (add `-- --once` to exit
//! after the demonstration requests instead of serving on 127.0.0.1:3000).
//!
//! ```text
//! axum::serve ─ RateLimit ─ Router ─┬─ GET /whoami: a handler of the gateway itself
//!               (Router::layer)     └─ fallback: HandleError ─ Canary ─┬─ stable: RespondUnavailable ─ Balance ─ Proxy × 2
//!                                                                      └─ canary: RespondUnavailable ─ Balance ─ Proxy
//! ```
//!
//! Ordering:
//! - `Router::layer` wraps everything added **before** it, so the layer added last runs first.
//!   The rate limit is added last: a refused request (`429`) reaches neither the router nor an
//!   upstream. `tower::ServiceBuilder` reads the other way: the first layer listed is the
//!   outermost, as in the fallback's stack below.
//! - The rate limit answers `429` itself and never fails, so it needs no `HandleErrorLayer`.
//!   The canary router can fail (a side's failed discovery), and axum only takes services that cannot:
//!   `HandleErrorLayer` above it turns a failure into a `502`.
//! - Each canary side is a `Balance` wrapped in `RespondUnavailable` (no healthy endpoint: `503`); axum
//!   clones services, and a `Balance`'s clones are one balancer (no `Buffer` needed).

use std::error::Error;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use fluxgate_balance::health::HttpProbe;
use fluxgate_balance::{Balance, FixedEndpoints, RespondUnavailable, Weighted};
use fluxgate_canary::Canary;
use fluxgate_core::policy::LoadBalancing;
use fluxgate_core::store::PolicyStore;
use fluxgate_core::task::TaskHandle;
use fluxgate_gateway::demo::{self, DemoKind, DemoUpstream};
use fluxgate_gateway::proxy::{BoxError, Proxy, ProxyBody, ProxyClient, ProxyConfig, proxy_client};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use tower::ServiceBuilder;

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const POLICY: &str = r#"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: demo}
spec:
  loadBalancing:
    algorithm: weighted-round-robin
    healthCheck: {interval: 200ms, unhealthyThreshold: 3}
  rateLimit: {requestsPerSecond: 20, burstSize: 10, keyExtractor: header.x-client-id}
  canary:
    weight: 10
    match: [{header: {name: x-canary, value: "true"}}]
    metrics: {targetErrorRate: 0.01, targetP99Latency: 300ms}
"#;

type Balanced = Balance<FixedEndpoints<String, Weighted<Proxy>>, Request<Body>>;
type Side = RespondUnavailable<Balanced>;

/// A 503-answering balancer over one proxy per upstream, and its health task.
fn side(
    client: &ProxyClient,
    policy: &LoadBalancing,
    upstreams: &[(&DemoUpstream, u32)],
) -> (Side, TaskHandle) {
    let endpoints = upstreams.iter().map(|(upstream, weight)| {
        let proxy = Proxy::new(
            client.clone(),
            upstream.url().parse().expect("a URL"),
            ProxyConfig::default(),
        );
        (upstream.url(), Weighted::new(proxy, *weight))
    });
    let balance: Balanced = Balance::new(policy.clone(), endpoints);
    let health = balance
        .health_task(HttpProbe::<_, ProxyBody>::new(client.clone()))
        .spawn();
    (RespondUnavailable::new(balance), health)
}

#[tokio::main]
async fn main() -> Result<()> {
    let loopback = "127.0.0.1:0".parse()?;
    let fast = demo::start(DemoKind::Fast, loopback).await?;
    let slow = demo::start(DemoKind::Slow, loopback).await?;
    let canary = demo::start(DemoKind::Canary, loopback).await?;

    let store = PolicyStore::new();
    let report = store.apply_bytes(POLICY.as_bytes(), None)?;
    let slot = store.slot(report.changes[0].id());
    let balancing = slot
        .load_full()
        .and_then(|p| p.compiled().load_balancing().cloned())
        .unwrap_or_default();
    let client = proxy_client();
    let (stable_side, stable_health) = side(&client, &balancing, &[(&fast, 3), (&slow, 1)]);
    let (canary_side, canary_health) = side(&client, &balancing, &[(&canary, 1)]);
    let (router, judge) = Canary::new(stable_side, canary_side, slot.clone())?;
    let judging = judge.spawn();

    // ServiceBuilder: the first layer listed is the outermost.
    let upstreams = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|error: BoxError| async move {
            (
                StatusCode::BAD_GATEWAY,
                format!("the gateway could not route the request: {error}"),
            )
        }))
        .service(router);
    // Router::layer: the last layer added is the outermost, so the rate limit runs first.
    let app = Router::new()
        .route("/whoami", get(|| async { "the axum gateway itself\n" }))
        .fallback_service(upstreams)
        .layer(fluxgate_ratelimit::RateLimitLayer::from_slot(slot));

    let once = std::env::args().any(|arg| arg == "--once");
    let listen = if once {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let base = format!("http://{addr}");
    println!("serving on {base}");
    for (path, headers) in [
        ("/whoami", vec![]),
        ("/orders/1", vec![("x-client-id", "alice")]),
        (
            "/orders/2",
            vec![("x-client-id", "alice"), ("x-canary", "true")],
        ),
    ] {
        let (status, upstream) = fetch(&client, &format!("{base}{path}"), &headers).await?;
        println!("GET {path} {headers:?}: {status} from {upstream}");
    }
    let mut answers = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..30 {
        let (status, upstream) = fetch(
            &client,
            &format!("{base}/orders"),
            &[("x-client-id", "bob")],
        )
        .await?;
        *answers
            .entry(format!("{} from {upstream}", status.as_u16()))
            .or_default() += 1;
    }
    println!("30 requests in a row as bob (20/s, burst 10): {answers:?}");

    if once {
        server.abort();
    } else {
        println!("try: curl -H 'x-client-id: me' {base}/orders   (Ctrl-C to stop)");
        tokio::signal::ctrl_c().await?;
    }
    for task in [judging, stable_health, canary_health] {
        task.abort();
    }
    Ok(())
}

/// `GET url` with `headers`: the status and the `x-upstream` that answered (`-` for none).
async fn fetch(
    client: &ProxyClient,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, String)> {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body: ProxyBody = Empty::new().map_err(|never| match never {}).boxed_unsync();
    let response = client.request(request.body(body)?).await?;
    let upstream = response
        .headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    Ok((response.status(), upstream))
}
