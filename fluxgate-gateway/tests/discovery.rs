//! Upstreams named by DNS: `localhost` through the system's resolver, and a name whose answers
//! the test controls, its addresses joining and leaving a running gateway's balancer.

mod support;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxgate_core::store::PolicyStore;
use fluxgate_gateway::discovery::{DiscoveryStatus, DnsDiscovery};
use fluxgate_gateway::server::ServerHandle;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::upstream::UpstreamSpec;
use http::StatusCode;
use support::gateway::{Named, get};
use support::{serve, within};

const POLICY: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: test}
spec:
  loadBalancing: {algorithm: round-robin}
";

/// Answers of the controlled resolver: the addresses, or a failure.
type Answers = Arc<Mutex<io::Result<Vec<SocketAddr>>>>;

fn answer(answers: &Answers, addresses: io::Result<Vec<SocketAddr>>) {
    *answers.lock().unwrap() = addresses;
}

fn discovery(answers: &Answers) -> DnsDiscovery {
    let answers = Arc::clone(answers);
    let resolver = move |_: &str, _: u16| {
        let answer = match &*answers.lock().unwrap() {
            Ok(addresses) => Ok(addresses.clone()),
            Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
        };
        async move { answer }
    };
    DnsDiscovery::new()
        .resolver(resolver)
        .interval(Duration::from_millis(20))
}

fn spec(text: &str) -> UpstreamSpec {
    text.parse().unwrap()
}

/// A gateway over `specs`, served; its proxy URL, and the server to keep.
async fn build(
    specs: Vec<UpstreamSpec>,
    discovery: &DnsDiscovery,
) -> (Gateway, String, ServerHandle) {
    let store = PolicyStore::new();
    let id = store.apply_bytes(POLICY.as_bytes(), None).unwrap().changes[0]
        .id()
        .clone();
    discovery.resolve_now(&specs).await;
    let config = StackConfig::new(specs).discovery(discovery.clone());
    let gateway = Gateway::build(&store, &id, &config).unwrap();
    let server = serve(gateway.service()).await;
    let url = format!("http://{}/", server.local_addr());
    (gateway, url, server)
}

fn keys(gateway: &Gateway) -> Vec<String> {
    let mut keys: Vec<String> = gateway
        .stable()
        .snapshot()
        .into_iter()
        .map(|e| e.key)
        .collect();
    keys.sort();
    keys
}

/// Waits for the next round of resolutions after now.
async fn next_round(discovery: &DnsDiscovery) {
    let rounds = |s: &DiscoveryStatus| s.names.values().map(|n| n.resolutions).sum::<u64>();
    let now = rounds(&discovery.status());
    within(discovery.subscribe().wait_for(|s| rounds(s) > now + 1))
        .await
        .unwrap();
}

/// Waits, sending no request, until the balancer has `n` endpoints.
async fn until_endpoints(gateway: &Gateway, n: usize) {
    within(async {
        while keys(gateway).len() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Sends requests until one is answered by `name`.
async fn until_answered_by(url: &str, name: &str) {
    within(async { while get(url, &[]).await.upstream() != Some(name) {} }).await;
}

#[tokio::test]
async fn localhost_is_resolved_to_its_loopback_addresses() {
    let upstream = Named::start("local").await;
    let discovery = DnsDiscovery::new();
    let url = format!("http://localhost:{}", upstream.port());
    let (gateway, proxy, _server) = build(vec![spec(&url)], &discovery).await;
    let endpoints = keys(&gateway);
    assert!(!endpoints.is_empty());
    for key in &endpoints {
        let address: SocketAddr = key.trim_start_matches("http://").parse().unwrap();
        assert!(
            address.ip().is_loopback() && address.port() == upstream.port(),
            "{key}"
        );
    }
    assert!(endpoints.contains(&format!("http://127.0.0.1:{}", upstream.port())));
    let status = discovery.status();
    let name = &status.names[&format!("localhost:{}", upstream.port())];
    assert!(name.last_error.is_none() && name.resolutions == 1);
    assert_eq!(get(&proxy, &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_ip_literal_is_one_endpoint_without_resolving() {
    let upstream = Named::start("literal").await;
    let discovery = DnsDiscovery::new();
    let (gateway, _proxy, _server) = build(vec![upstream.spec(2)], &discovery).await;
    assert_eq!(
        keys(&gateway),
        [format!("http://127.0.0.1:{}", upstream.port())]
    );
    assert!(discovery.status().names.is_empty());
}

#[tokio::test]
async fn addresses_join_and_leave_the_balancer() {
    let (a, b) = (Named::start("a").await, Named::start("b").await);
    let addr = |n: &Named| n.server.local_addr();
    let answers: Answers = Arc::new(Mutex::new(Ok(vec![addr(&a)])));
    let discovery = discovery(&answers);
    let specs = vec![spec("http://checkout.payments.svc.cluster.local:8080")];
    let (gateway, url, _server) = build(specs, &discovery).await;
    assert_eq!(keys(&gateway), [format!("http://{}", addr(&a))]);
    assert_eq!(get(&url, &[]).await.upstream(), Some("a"));

    // b joins, before any request (the handle and the health checks see it), and gets requests.
    answer(&answers, Ok(vec![addr(&a), addr(&b)]));
    until_endpoints(&gateway, 2).await;
    until_answered_by(&url, "b").await;

    // a leaves: every request goes to b.
    answer(&answers, Ok(vec![addr(&b)]));
    until_endpoints(&gateway, 1).await;
    assert_eq!(keys(&gateway), [format!("http://{}", addr(&b))]);
    for _ in 0..4 {
        assert_eq!(get(&url, &[]).await.upstream(), Some("b"));
    }

    // The name resolves to nothing: reported, retried, and b (the last answer) stays.
    answer(
        &answers,
        Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
    );
    next_round(&discovery).await;
    let status = discovery.status();
    let unresolved = status.unresolved();
    assert_eq!(unresolved.len(), 1, "{status:?}");
    assert!(unresolved[0].1.contains("no such host"));
    assert_eq!(get(&url, &[]).await.upstream(), Some("b"));
    answer(&answers, Ok(Vec::new()));
    next_round(&discovery).await;
    assert_eq!(discovery.status().unresolved()[0].1, "no address");

    // It resolves again: a is back, the failure is cleared.
    answer(&answers, Ok(vec![addr(&a), addr(&b)]));
    next_round(&discovery).await;
    until_answered_by(&url, "a").await;
    assert!(discovery.status().unresolved().is_empty());
}

#[tokio::test]
async fn a_name_unresolved_at_start_joins_once_it_resolves() {
    let a = Named::start("a").await;
    let answers: Answers = Arc::new(Mutex::new(Err(io::Error::other("timed out"))));
    let discovery = discovery(&answers);
    let specs = vec![spec("http://checkout.payments.svc.cluster.local:8080")];
    let (gateway, url, _server) = build(specs, &discovery).await;
    assert!(keys(&gateway).is_empty());
    assert_eq!(get(&url, &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    answer(&answers, Ok(vec![a.server.local_addr()]));
    until_endpoints(&gateway, 1).await;
    until_answered_by(&url, "a").await;
}
