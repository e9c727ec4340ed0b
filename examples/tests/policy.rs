//! Loading policy files: the bundled one, and refusals with the path in the error.

use std::path::Path;

use fluxgate_examples::policy::{PolicyLoadError, load_policy_file};

#[test]
fn loads_the_bundled_policy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/checkout-service-policy.yaml");
    let policy = load_policy_file(&path).unwrap();
    assert_eq!(policy.namespace.as_deref(), Some("payments"));
    assert_eq!(policy.name.as_deref(), Some("checkout-service-policy"));
    assert!(policy.text.contains("kind: TrafficPolicy"));
}

#[test]
fn refuses_missing_empty_and_binary_files() {
    let dir = std::env::temp_dir().join(format!("fluxgate-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.yaml");
    std::fs::write(&empty, " \n").unwrap();
    let binary = dir.join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();

    let missing = load_policy_file(&dir.join("missing.yaml")).unwrap_err();
    assert!(matches!(missing, PolicyLoadError::Read { .. }));
    assert!(missing.to_string().contains("missing.yaml"));
    assert!(matches!(
        load_policy_file(&empty),
        Err(PolicyLoadError::Empty { .. })
    ));
    assert!(matches!(
        load_policy_file(&binary),
        Err(PolicyLoadError::NotUtf8 { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
