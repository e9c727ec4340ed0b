//! A valid save that renames the gateway's policy (a typo in `metadata.name`, another namespace)
//! does not remove its protection: the gateway follows the policy under its new name, and the
//! status says so.

mod support;

use std::path::Path;
use std::time::Duration;

use fluxgate_gateway::policy::GatewayPolicy;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use http::StatusCode;
use support::gateway::{Named, get};
use support::serve;

fn policy(namespace: &str, name: &str, burst: u32) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  rateLimit: {{requestsPerSecond: 0.001, burstSize: {burst}, keyExtractor: header.X-Client-Id}}\n"
    )
}

/// Writes the way editors do: a new file renamed over the old one.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_policy_keeps_protecting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy("payments", "checkout", 5)).unwrap();
    let (policy_file, source) = GatewayPolicy::load(&file, None).unwrap();
    let _following = source
        .poll_interval(Duration::from_millis(50))
        .spawn()
        .unwrap();
    let upstream = Named::start("stable").await;
    let config = StackConfig::new(vec![upstream.spec(1)]);
    let gateway = Gateway::build(policy_file.store(), policy_file.id(), &config).unwrap();
    let proxy = serve(gateway.service()).await;
    let admin = gateway
        .admin(policy_file.id())
        .store(policy_file.store().clone())
        .build();
    let admin = serve(admin.router()).await;
    let url = format!("http://{}/", proxy.local_addr());

    // The name gets a typo and the namespace changes, in one valid save; the burst goes to 2.
    save(&file, &policy("shop", "chekout", 2));
    let store = policy_file.store();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.status().renamed.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the save was never read"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut admitted = 0;
    for _ in 0..30 {
        if get(&url, &[("x-client-id", "alice")]).await.status == StatusCode::OK {
            admitted += 1;
        }
    }
    assert!(
        admitted <= 2,
        "{admitted} of 30 admitted: the limit is gone"
    );

    let status = get(&format!("http://{}/api/status", admin.local_addr()), &[]).await;
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(
        status["store"]["renamed"],
        serde_json::json!([{"from": "payments/checkout", "to": "shop/chekout"}]),
        "{status}"
    );
}
