//! FluxGate's layers behind a plain hyper server (no axum): RateLimit per client IP, Canary and
//! Balance in front of real upstreams started in-process, served by hyper-util's auto
//! (HTTP/1.1 and h2c) connection builder.
//!
//! Run with: `cargo run -p fluxgate-examples --example hyper_gateway` (add `-- --once` to exit
//! after the demonstration requests instead of serving on 127.0.0.1:3001).
//!
//! ```text
//! accept loop (PeerAddr, errors → 502) ─ RateLimit (ip) ─ Canary ─┬─ stable: RespondUnavailable ─ Balance ─ Proxy × 2
//!                                                                  └─ canary: RespondUnavailable ─ Balance ─ Proxy
//! ```
//!
//! Ordering (`ServiceBuilder` lists the outermost layer first):
//! - hyper drops the connection when a service fails, so the accept loop turns any failure of
//!   the stack into a `502` response;
//! - the rate limit comes first, so a refused request (`429`) costs nothing further down. It keys
//!   on the client IP, which it reads from the [`PeerAddr`] extension the accept loop inserts;
//! - the canary picks a side, each side a `Balance` (its clones shared by every connection) that answers `503` when no
//!   endpoint is healthy. Its response body (which reports outcomes to the canary judge) is
//!   boxed, since the rate limit answers with the inner body type's default.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::error::Error;
use std::time::Duration;

use fluxgate_balance::health::HttpProbe;
use fluxgate_balance::{Balance, FixedEndpoints, RespondUnavailable, Weighted};
use fluxgate_canary::Canary;
use fluxgate_core::key::PeerAddr;
use fluxgate_core::policy::LoadBalancing;
use fluxgate_core::store::PolicyStore;
use fluxgate_core::task::TaskHandle;
use fluxgate_gateway::demo::{self, DemoKind, DemoUpstream};
use fluxgate_gateway::proxy::{BoxError, Proxy, ProxyBody, ProxyClient, ProxyConfig, proxy_client};
use fluxgate_ratelimit::RateLimitLayer;
use futures::FutureExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const POLICY: &str = r#"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: demo}
spec:
  loadBalancing: {algorithm: weighted-round-robin, healthCheck: {interval: 200ms}}
  rateLimit: {requestsPerSecond: 20, burstSize: 10, keyExtractor: ip}
  canary: {weight: 10, metrics: {targetErrorRate: 0.01, targetP99Latency: 300ms}}
"#;

type Balanced = Balance<FixedEndpoints<String, Weighted<Proxy>>, Request<Incoming>>;
type Side = RespondUnavailable<Balanced>;

/// A 503-answering balancer over one proxy per upstream, and its health task.
fn side(
    client: &ProxyClient,
    policy: &LoadBalancing,
    upstreams: &[(&DemoUpstream, u32)],
) -> Result<(Side, TaskHandle)> {
    let mut endpoints = Vec::new();
    for (upstream, weight) in upstreams {
        let proxy = Proxy::new(
            client.clone(),
            upstream.url().parse()?,
            ProxyConfig::default(),
        );
        endpoints.push((upstream.url(), Weighted::new(proxy, *weight)));
    }
    let balance: Balanced = Balance::new(policy.clone(), endpoints);
    let health = balance
        .health_task(HttpProbe::<_, ProxyBody>::new(client.clone()))
        .spawn();
    Ok((RespondUnavailable::new(balance), health))
}

/// The response with its body boxed (as [`ProxyBody`], which has a default).
fn boxed<B>(response: Response<B>) -> Response<ProxyBody>
where
    B: http_body::Body<Data = bytes::Bytes, Error = BoxError> + Send + 'static,
{
    response.map(BodyExt::boxed_unsync)
}

/// The response, or `502` when the request failed inside the stack.
fn or_bad_gateway(
    result: Result<Response<ProxyBody>, BoxError>,
) -> Result<Response<ProxyBody>, Infallible> {
    let error = match result {
        Ok(response) => return Ok(response),
        Err(error) => error,
    };
    let body = Full::from(format!(
        "the gateway could not route the request: {error}\n"
    ));
    let mut response = Response::new(body.map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    Ok(response)
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
    let (stable_side, stable_health) = side(&client, &balancing, &[(&fast, 3), (&slow, 1)])?;
    let (canary_side, canary_health) = side(&client, &balancing, &[(&canary, 1)])?;
    let (router, judge) = Canary::new(stable_side, canary_side, slot.clone())?;
    let judging = judge.spawn();

    // Outermost first.
    let service = ServiceBuilder::new()
        .layer(RateLimitLayer::from_slot(slot))
        .map_response(boxed)
        .service(router);

    let once = std::env::args().any(|arg| arg == "--once");
    let listener = TcpListener::bind(if once {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3001"
    })
    .await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            // One hyper service per connection: it tags each request with the peer, runs the
            // tower stack on it and answers 502 if the stack fails.
            let per_request = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                service.clone().oneshot(request).map(or_bad_gateway).boxed()
            });
            tokio::spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                if let Err(error) = builder
                    .serve_connection(TokioIo::new(stream), per_request)
                    .await
                {
                    eprintln!("connection from {peer}: {error}");
                }
            });
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("serving on {base}");

    let mut answers = BTreeMap::<String, u32>::new();
    for _ in 0..30 {
        let (status, upstream) = fetch(&client, &format!("{base}/orders")).await?;
        *answers
            .entry(format!("{} from {upstream}", status.as_u16()))
            .or_default() += 1;
    }
    println!("30 requests in a row from 127.0.0.1 (20/s, burst 10 per IP): {answers:?}");

    if once {
        server.abort();
    } else {
        println!("try: curl {base}/orders   (Ctrl-C to stop)");
        tokio::signal::ctrl_c().await?;
    }
    for task in [judging, stable_health, canary_health] {
        task.abort();
    }
    Ok(())
}

/// `GET url`: the status and the `x-upstream` that answered (`-` for none).
async fn fetch(client: &ProxyClient, url: &str) -> Result<(StatusCode, String)> {
    let body: ProxyBody = Empty::new().map_err(|never| match never {}).boxed_unsync();
    let response = client.request(Request::get(url).body(body)?).await?;
    let upstream = response
        .headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    Ok((response.status(), upstream))
}
