//! `rediss://` for the Redis policy source and writer: servers are verified against the system's
//! roots, which `SSL_CERT_FILE` replaces, or against a private CA given in code ([`RedisTls`],
//! with a client certificate for mutual TLS); an untrusted server is an `Unreachable` error that
//! never shows the password.
#![cfg(feature = "redis")]

use std::process::Command;

use fluxgate_core::policy::{TrafficPolicy, parse_policies};
use fluxgate_core::store::{
    PolicyId, PolicyStore, RedisPolicies, RedisSource, RedisStoreError, RedisTls,
};
use fluxgate_test_support::{RedisServer, TestCa};

const PASSWORD: &str = "tls-pw-s3cret";
/// Set (to the server's URL) in the child process that trusts the test CA.
const CHILD_URL: &str = "FLUXGATE_TEST_TLS_URL";

fn policy() -> TrafficPolicy {
    let yaml = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: a}\n\
        spec:\n  rateLimit: {requestsPerSecond: 5, burstSize: 5}\n";
    parse_policies(yaml.as_bytes()).unwrap().remove(0)
}

#[tokio::test]
async fn rediss_is_verified_against_the_system_roots() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        // The child: SSL_CERT_FILE names the test CA.
        let writer = RedisPolicies::connect(&url).await.unwrap();
        writer.apply("tls", &[policy()]).await.unwrap();
        assert_eq!(writer.list("tls").await.unwrap().len(), 1);
        return;
    }
    let ca = TestCa::generate().unwrap();
    let server = RedisServer::builder()
        .password(PASSWORD)
        .tls(&ca)
        .start()
        .unwrap();
    // This process trusts the system's roots only: the test CA is not among them.
    let error = RedisPolicies::connect(&server.url()).await.unwrap_err();
    assert!(
        matches!(error, RedisStoreError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains(PASSWORD), "{error}");
    // A child process of this test, told to trust the test CA, writes over TLS.
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rediss_is_verified_against_the_system_roots"])
        .env(CHILD_URL, server.url())
        .env("SSL_CERT_FILE", ca.ca_cert())
        .status()
        .unwrap();
    assert!(status.success(), "the child failed: {status}");
}

#[tokio::test]
async fn a_private_ca_and_a_client_certificate_are_given_in_code() {
    let ca = TestCa::generate().unwrap();
    let server = RedisServer::builder()
        .password(PASSWORD)
        .mutual_tls(&ca)
        .start()
        .unwrap();
    let trusted = RedisTls::new().root_certificate(ca.ca_pem());
    // The server asks for a client certificate: without one, no connection.
    let refused = RedisPolicies::connect_with_tls(&server.url(), &trusted).await;
    assert!(
        matches!(refused, Err(RedisStoreError::Unreachable { .. })),
        "{refused:?}"
    );
    let tls = trusted.client_certificate(ca.client_cert_pem(), ca.client_key_pem());
    let writer = RedisPolicies::connect_with_tls(&server.url(), &tls)
        .await
        .unwrap();
    writer.apply("tls", &[policy()]).await.unwrap();
    // A follower with the same certificates loads what the writer wrote.
    let store = PolicyStore::new();
    let mut source = RedisSource::with_tls(&server.url(), "tls", store.clone(), &tls).unwrap();
    let report = source.load().await.unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    assert!(store.slot(&PolicyId::new("tls", "a")).load().is_some());
}
