//! The per-request span a subscriber can export: target `fluxgate::request`, name `request`,
//! with the method, path and request id when it opens, and the status, upstream and canary side
//! once answered.

#[path = "security/capture.rs"]
mod capture;
mod support;

use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_gateway::front::SPAN_TARGET;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use support::gateway::get;
use support::{echo_upstream, serve};
use tracing::Level;

const POLICY: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
    metadata: {name: shop, namespace: test}\n\
    spec:\n  rateLimit: {requestsPerSecond: 100, burstSize: 100, keyExtractor: header.X-Client-Id}\n";

#[tokio::test]
async fn each_request_runs_in_a_span_with_its_fields() {
    capture::install();
    let upstream = echo_upstream().await;
    let url = format!("http://{}", upstream.local_addr());
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let config = StackConfig::new(vec![url.parse().unwrap()]);
    let gateway = Gateway::build(&store, &PolicyId::new("test", "shop"), &config).unwrap();
    let server = serve(gateway.service()).await;
    capture::take();

    let target = format!("http://{}/orders?secret=1", server.local_addr());
    let answer = get(
        &target,
        &[("x-request-id", "span-test-1"), ("x-client-id", "a")],
    )
    .await;
    assert_eq!(answer.status, 200);

    let lines: Vec<_> = capture::take()
        .into_iter()
        .filter(|line| line.target == SPAN_TARGET)
        .collect();
    let opened = lines
        .iter()
        .find(|line| line.text.contains("request_id=span-test-1"))
        .unwrap_or_else(|| panic!("no span: {lines:#?}"));
    assert_eq!(opened.level, Level::DEBUG);
    assert!(opened.text.contains("method=GET"), "{opened:?}");
    assert!(opened.text.contains("path=/orders "), "{opened:?}");
    assert!(opened.message.is_empty(), "a span, not an event");
    let recorded: String = lines.iter().map(|line| line.text.as_str()).collect();
    assert!(recorded.contains("status=200"), "{recorded}");
    assert!(recorded.contains(&format!("upstream={url} ")), "{recorded}");
    assert!(recorded.contains("canary_side=stable"), "{recorded}");
    assert!(
        !recorded.contains("secret"),
        "the query stays out: {recorded}"
    );
}
