//! `fluxctl validate` run as a real binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fluxgate-gateway/policies/checkout-service-policy.yaml"
);

fn fluxctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fluxctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn seed_is_valid() {
    let out = fluxctl(&["validate", "-f", SEED], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{SEED}: ok TrafficPolicy payments/checkout-service-policy\n")
    );
}

#[test]
fn invalid_file_fails_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let seed = std::fs::read_to_string(SEED).unwrap();
    std::fs::write(&path, seed.replace("weight: 10", "weight: 150")).unwrap();
    let file = path.to_str().unwrap();
    let out = fluxctl(&["validate", "--filename", SEED, "--filename", file], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("ok TrafficPolicy"));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{file}: document 1 (payments/checkout-service-policy), line 22: spec.canary.weight: found 150")),
        "{err}"
    );
}

#[test]
fn stdin_is_read_with_dash() {
    let seed = std::fs::read_to_string(SEED).unwrap();
    let out = fluxctl(&["validate", "-f", "-"], Some(&seed));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "-: ok TrafficPolicy payments/checkout-service-policy\n"
    );
}

#[test]
fn missing_file_fails() {
    let out = fluxctl(&["validate", "-f", "/nonexistent/policy.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/policy.yaml: cannot read"));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(fluxctl(&["validate"], None).status.code(), Some(2));
    assert_eq!(fluxctl(&["frobnicate"], None).status.code(), Some(2));
    assert_eq!(fluxctl(&[], None).status.code(), Some(2));
    let help = fluxctl(&["validate", "--help"], None);
    assert!(text(&help.stdout).contains("2  usage error"));
}
