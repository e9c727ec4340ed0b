//! A gateway refusing to start on a missing policy file says so without claiming that
//! "the policies in force stay": there are none.

use std::process::Command;

#[test]
fn a_missing_policy_file_is_refused_without_claiming_policies_stay() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_fluxgate"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--policy",
        ])
        .arg(&missing)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.yaml"), "{err}");
    assert!(!err.contains("policies in force stay"), "{err}");
    assert!(err.contains("no policy is in force"), "{err}");
}
