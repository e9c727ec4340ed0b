//! What an operator hits first with `fluxctl`: duplicates refused by `validate` at their line,
//! `-f A B` and `-f A -f B`, a namespace mismatch that says the fix, `apply` saying where it
//! wrote, and usage lines that do not show defaulted options as required.

use std::process::{Command, Output};

use fluxgate_test_support::RedisServer;

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fluxgate-gateway/policies/checkout-service-policy.yaml"
);
const OTHER: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
     metadata: {name: edge, namespace: payments}\nspec:\n  rateLimit: {requestsPerSecond: 10, burstSize: 5}\n";

/// Runs fluxctl with `FLUXGATE_REDIS_URL` set to `redis` (never the machine's own Redis).
fn fluxctl(redis: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fluxctl"))
        .args(args)
        .env("FLUXGATE_REDIS_URL", redis)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Nothing listens there: a command that reaches Redis fails with exit 3.
const NOWHERE: &str = "redis://127.0.0.1:1";

#[test]
fn validate_refuses_duplicates_at_the_second_documents_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.yaml");
    let seed = std::fs::read_to_string(SEED).unwrap();
    let first_lines = seed.lines().count();
    std::fs::write(&path, format!("{seed}---\n{seed}")).unwrap();
    let file = path.to_str().unwrap();
    let out = fluxctl(NOWHERE, &["validate", "-f", file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    let second = first_lines + 2; // the line after `---`
    assert!(
        err.contains(&format!(
            "{file}: document 2 (payments/checkout-service-policy), line {second}: policy \
             payments/checkout-service-policy appears more than once (first in {file}, line 1)"
        )),
        "{err}"
    );
}

#[test]
fn validate_takes_files_after_one_or_several_f() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, OTHER).unwrap();
    let other = other.to_str().unwrap();
    for args in [
        vec!["validate", "-f", SEED, other],
        vec!["validate", "-f", SEED, "-f", other],
    ] {
        let out = fluxctl(NOWHERE, &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout).lines().count(), 2, "{args:?}");
    }
}

#[test]
fn a_namespace_mismatch_says_the_fix() {
    let out = fluxctl(NOWHERE, &["apply", "-f", SEED, "--namespace", "production"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("drop --namespace"), "{err}");
    assert!(err.contains("--namespace payments"), "{err}");
}

#[test]
fn apply_says_where_it_wrote_and_takes_the_files_namespace() {
    let server = RedisServer::builder()
        .password("t0ps3cret")
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, OTHER).unwrap();
    // No --namespace: the documents' own (payments); two files after one -f.
    let out = fluxctl(
        &server.url(),
        &["apply", "-f", SEED, other.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "trafficpolicy payments/checkout-service-policy created\ntrafficpolicy payments/edge created\n"
    );
    let err = text(&out.stderr);
    let port = server.port();
    assert!(
        err.contains("applied to namespace payments in Redis at redis://"),
        "{err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("t0ps3cret"), "{err}");
}

#[test]
fn usage_lines_do_not_show_defaulted_options_as_required() {
    // FLUXGATE_REDIS_URL is set, which clap counts as a given --redis.
    for args in [
        vec!["apply", "--redis", NOWHERE],
        vec!["diff", "--redis", NOWHERE],
        vec!["get", "--redis", NOWHERE],
        vec!["delete", "--redis", NOWHERE],
    ] {
        let out = fluxctl(NOWHERE, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        let usage = err
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .unwrap_or_default();
        assert!(usage.contains("[--redis URL"), "{args:?}: {usage}");
    }
}
