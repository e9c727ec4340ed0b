//! Loading policy files: the bundled one, refusals with the path and field in the error, and
//! saves followed while the gateway runs.

use std::path::Path;
use std::time::Duration;

use fluxgate_gateway::policy::{GatewayPolicy, PolicyLoadError};

#[test]
fn loads_the_bundled_policy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/checkout-service-policy.yaml");
    let (policy, _source) = GatewayPolicy::load(&path, None).unwrap();
    assert_eq!(policy.id().to_string(), "payments/checkout-service-policy");
    let applied = policy.slot().load_full().unwrap();
    assert_eq!(applied.compiled().rate_limits()[0].burst_size, 150);
}

#[test]
fn refuses_missing_empty_binary_and_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let empty = write("empty.yaml", b" \n");
    let binary = write("binary.yaml", &[0xff, 0xfe, 0x00]);
    let invalid = write(
        "invalid.yaml",
        b"apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: a}\nspec:\n  canary: {weight: 101}\n",
    );
    let missing = dir.path().join("missing.yaml");
    for (path, needle) in [
        (&missing, "missing.yaml"),
        (&empty, "empty"),
        (&binary, "UTF-8"),
        (&invalid, "spec.canary.weight"),
    ] {
        let error = GatewayPolicy::load(path, None).unwrap_err();
        assert!(matches!(error, PolicyLoadError::Apply { .. }));
        let message = error.to_string();
        assert!(message.contains(needle), "{message} lacks {needle}");
    }
}

#[tokio::test]
async fn a_save_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let text = |rps: u32| {
        format!(
            "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: api}}\n\
             spec:\n  rateLimit: {{requestsPerSecond: {rps}, burstSize: 5}}\n"
        )
    };
    std::fs::write(&path, text(10)).unwrap();
    let (policy, source) = GatewayPolicy::load(&path, Some("prod")).unwrap();
    assert_eq!(policy.id().to_string(), "prod/api");
    let _following = source.spawn().unwrap();
    let mut slot = policy.slot();
    std::fs::write(&path, text(20)).unwrap();
    let applied = tokio::time::timeout(Duration::from_secs(10), slot.changed())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!((applied.compiled().rate_limits()[0].requests_per_second - 20.0).abs() < 1e-9);
}
