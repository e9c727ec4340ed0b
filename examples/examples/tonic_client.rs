//! A tonic client over several real gRPC servers, through FluxGate's three layers.
//!
//! Run with: `cargo run -p fluxgate-examples --example tonic_client`
//!
//! It starts three `tonic-health` servers on loopback (`stable-a` with weight 2, `stable-b`,
//! and `canary`), each naming itself in an `x-server` response header, and builds the client
//! stack, outermost first:
//!
//! ```text
//! RateLimit ─ Canary ─┬─ stable: Balance (gRPC health checks) ─ Channel × 2
//!   (per x-client-id)  └─ canary: Balance (gRPC health checks) ─ Channel
//! ```
//!
//! - **RateLimit** comes first, so a refused call costs nothing further down. It is the HTTP
//!   variant: it sees `content-type: application/grpc` and answers a trailers-only
//!   `RESOURCE_EXHAUSTED`, which tonic turns into a `Status` with that code.
//! - **Canary** sends calls with the metadata `x-canary: true` to the canary, and 20% of the
//!   others.
//! - **Balance** spreads each side's calls by weight over its servers and takes a server out
//!   of rotation when `grpc.health.v1.Health/Check` stops saying `SERVING`.
//!
//! Then it prints what it observes: the split, the matched calls, a server marked
//! `NOT_SERVING` leaving the rotation, and a greedy client refused; and exits.

use std::collections::BTreeMap;
use std::error::Error;
use std::time::Duration;

use bytes::Bytes;
use fluxgate_balance::health::GrpcProbe;
use fluxgate_balance::{Balance, BalanceHandle, FixedEndpoints, Weighted};
use fluxgate_canary::Canary;
use fluxgate_core::policy::LoadBalancing;
use fluxgate_core::store::PolicyStore;
use fluxgate_ratelimit::RateLimitLayer;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const POLICY: &str = r#"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: inventory, namespace: shop}
spec:
  loadBalancing:
    algorithm: weighted-round-robin
    healthCheck: {protocol: grpc, interval: 100ms, unhealthyThreshold: 2}
  rateLimit: {requestsPerSecond: 100, burstSize: 40, keyExtractor: header.x-client-id}
  canary:
    weight: 20
    match: [{header: {name: x-canary, value: "true"}}]
    metrics: {targetErrorRate: 0.05}
"#;

/// A running tonic-health server and the reporter that sets its status.
struct GrpcServer {
    name: &'static str,
    url: String,
    reporter: HealthReporter,
    task: JoinHandle<()>,
}

/// Starts a tonic-health server on a loopback ephemeral port, naming itself in `x-server`.
async fn start(name: &'static str) -> Result<GrpcServer> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let name_header = MapResponseLayer::new(move |mut response: http::Response<Body>| {
        let value = http::HeaderValue::from_static(name);
        response.headers_mut().insert("x-server", value);
        response
    });
    let server = Server::builder()
        .layer(name_header)
        .add_service(health)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let task = tokio::spawn(async move {
        if let Err(error) = server.await {
            eprintln!("{name}: {error}");
        }
    });
    Ok(GrpcServer {
        name,
        url,
        reporter,
        task,
    })
}

/// One side: a balancer over a lazily connected channel per server, health-checked
/// over gRPC. Returns the side, its handle and its health task.
fn side(
    policy: &LoadBalancing,
    servers: &[(&GrpcServer, u32)],
) -> Result<(Side, BalanceHandle<String>, fluxgate_core::task::TaskHandle)> {
    let mut endpoints = Vec::new();
    for (server, weight) in servers {
        let channel: Channel = Endpoint::from_shared(server.url.clone())?.connect_lazy();
        endpoints.push((server.url.clone(), Weighted::new(channel, *weight)));
    }
    let balance: Balanced = Balance::new(policy.clone(), endpoints);
    let handle = balance.handle();
    let probes: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let health = balance.health_task(GrpcProbe::new(probes)).spawn();
    Ok((balance, handle, health))
}

type Balanced = Balance<FixedEndpoints<String, Weighted<Channel>>, http::Request<Body>>;
type Side = Balanced;

#[tokio::main]
async fn main() -> Result<()> {
    let stable_a = start("stable-a").await?;
    let stable_b = start("stable-b").await?;
    let canary = start("canary").await?;
    let names: BTreeMap<String, &str> = [&stable_a, &stable_b, &canary]
        .iter()
        .map(|s| (s.url.clone(), s.name))
        .collect();

    let store = PolicyStore::new();
    let report = store.apply_bytes(POLICY.as_bytes(), None)?;
    let slot = store.slot(report.changes[0].id());
    let balancing = slot
        .load_full()
        .and_then(|p| p.compiled().load_balancing().cloned())
        .unwrap_or_default();
    let (stable_side, stable_handle, stable_health) =
        side(&balancing, &[(&stable_a, 2), (&stable_b, 1)])?;
    let (canary_side, _, canary_health) = side(&balancing, &[(&canary, 1)])?;
    let (router, judge) = Canary::new(stable_side, canary_side, slot.clone())?;
    let judging = judge.spawn();

    // Outermost first: refuse over the limit, then pick a side, then a server. The canary's
    // observed body goes back into tonic's body type, which the rate limit's answer needs.
    let limits = RateLimitLayer::from_slot(slot);
    let service = ServiceBuilder::new()
        .layer(limits.clone())
        .layer(MapResponseLayer::new(|r: http::Response<_>| {
            r.map(Body::new)
        }))
        .service(router);
    let client = HealthClient::new(service);
    // Let the first health checks pass.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let call = |client_id: &'static str, canary_header: bool| {
        let mut client = client.clone();
        async move {
            let mut request = tonic::Request::new(HealthCheckRequest::default());
            request
                .metadata_mut()
                .insert("x-client-id", client_id.parse().expect("ASCII"));
            if canary_header {
                request
                    .metadata_mut()
                    .insert("x-canary", "true".parse().expect("ASCII"));
            }
            client.check(request).await.map(|answer| {
                let server = answer.metadata().get("x-server").cloned();
                server.map_or_else(String::new, |v| v.to_str().unwrap_or("?").to_owned())
            })
        }
    };

    let mut seen = BTreeMap::<String, u32>::new();
    for _ in 0..30 {
        *seen.entry(call("alice", false).await?).or_default() += 1;
    }
    println!("30 calls: {seen:?} (stable-a:stable-b is 2:1, about 20% to the canary)");

    let mut matched = BTreeMap::<String, u32>::new();
    for _ in 0..5 {
        *matched.entry(call("bob", true).await?).or_default() += 1;
    }
    println!("5 calls with x-canary: true: {matched:?}");

    stable_b
        .reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for endpoint in stable_handle.snapshot() {
        println!(
            "after stable-b says NOT_SERVING: {} is {:?}",
            names[&endpoint.key], endpoint.health
        );
    }
    let mut after = BTreeMap::<String, u32>::new();
    for _ in 0..12 {
        *after.entry(call("carol", false).await?).or_default() += 1;
    }
    println!("12 calls: {after:?}");

    let (mut ok, mut exhausted) = (0, 0);
    let burst = futures::future::join_all((0..100).map(|_| call("greedy", false))).await;
    for answer in burst {
        match answer {
            Ok(_) => ok += 1,
            Err(status) if status.code() == tonic::Code::ResourceExhausted => exhausted += 1,
            Err(status) => return Err(status.into()),
        }
    }
    let metrics = limits.metrics();
    println!(
        "100 calls at once from x-client-id greedy (100/s, burst 40): {ok} served, {exhausted} RESOURCE_EXHAUSTED \
         (limiter: {} admitted, {} refused in all)",
        metrics.admitted, metrics.refused
    );

    for task in [judging, stable_health, canary_health] {
        task.abort();
    }
    for server in [stable_a, stable_b, canary] {
        server.task.abort();
    }
    Ok(())
}
