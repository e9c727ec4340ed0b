//! `rediss://`: the store connects with TLS (a private CA trusted through [`RedisOptions`]),
//! decides correctly over it in both modes, and fails with typed errors that never show the
//! password when the CA is not trusted, a client certificate is missing, or the URL asks for
//! plain text on a TLS port.
#![cfg(feature = "redis")]

use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, SyncMode};
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::{
    Checks, KeyRef, LimiterSpec, RateLimitStore, RedisConnectError, RedisLimiter, RedisOptions,
    RedisStore,
};
use fluxgate_test_support::{RedisServer, TestCa};
use tokio::time::{Instant, sleep, timeout};

const PASSWORD: &str = "tls-s3cret";

/// Five requests per 50s window: nothing rolls over while a test runs.
fn spec() -> LimiterSpec {
    LimiterSpec::new(
        "tls/edge/l/key",
        LimitAlgorithm::SlidingWindow,
        Quota::new(0.1, 5),
    )
}

/// One decision; `limiter` must live as long as the store decides for it (synced mode keeps
/// its counts there).
async fn decide(store: &RedisStore, limiter: &RedisLimiter) -> bool {
    let mut checks = Checks::new();
    checks.push(limiter, KeyRef::Bytes(b"client"), false);
    let verdict = store.check(&checks).await.expect("no request fails");
    verdict.admitted()
}

fn options(mode: SyncMode, ca: &TestCa) -> RedisOptions {
    RedisOptions::new()
        .mode(mode)
        .timeout(Duration::from_secs(1))
        .sync_interval(Duration::from_millis(20))
        .prefix(format!("tls-{mode:?}"))
        .tls_root_certificate(ca.ca_pem())
}

/// A TLS-only server with a password, serving `ca`'s certificate.
fn tls_server(ca: &TestCa, mutual: bool) -> RedisServer {
    let builder = RedisServer::builder().password(PASSWORD);
    let builder = if mutual {
        builder.mutual_tls(ca)
    } else {
        builder.tls(ca)
    };
    builder.start().unwrap()
}

/// Connecting to `url` fails within 5s, with an error that does not show the password.
async fn connect_fails(url: &str, options: RedisOptions) -> RedisConnectError {
    let connecting = RedisStore::connect(url, options.connect_timeout(Duration::from_secs(2)));
    let error = timeout(Duration::from_secs(5), connecting)
        .await
        .expect("fails in time")
        .unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains(PASSWORD), "the password shows: {text}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_and_synced_decide_over_tls() {
    let ca = TestCa::generate().unwrap();
    let server = tls_server(&ca, false);
    assert!(server.url().starts_with("rediss://"));

    let strict = RedisStore::connect(&server.url(), options(SyncMode::Strict, &ca))
        .await
        .unwrap();
    let limiter = strict.limiter(&spec());
    let mut admitted = Vec::new();
    for _ in 0..7 {
        admitted.push(decide(&strict, &limiter).await);
    }
    assert_eq!(admitted, [true, true, true, true, true, false, false]);
    let stats = strict.stats();
    assert_eq!((stats.faults, stats.strict_decisions), (0, 7), "{stats:?}");

    // Two synced replicas: what one admits locally reaches the other through Redis.
    let (a, b) = (
        RedisStore::connect(&server.url(), options(SyncMode::Synced, &ca)).await,
        RedisStore::connect(&server.url(), options(SyncMode::Synced, &ca)).await,
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let _tasks = (a.spawn_sync(), b.spawn_sync());
    let (la, lb) = (a.limiter(&spec()), b.limiter(&spec()));
    for _ in 0..5 {
        assert!(decide(&a, &la).await);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while decide(&b, &lb).await {
        assert!(Instant::now() < deadline, "b never saw a's admissions");
        sleep(Duration::from_millis(20)).await;
    }
    for store in [&a, &b] {
        let stats = store.stats();
        assert!(stats.faults == 0 && stats.syncs > 0, "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_is_a_tls_error_without_the_password() {
    let (ca, other) = (TestCa::generate().unwrap(), TestCa::generate().unwrap());
    let server = tls_server(&ca, false);
    // Another CA, and the system's roots (which do not hold the test CA).
    let other = RedisOptions::new().tls_root_certificate(other.ca_pem());
    for options in [other, RedisOptions::new()] {
        let error = connect_fails(&server.url(), options).await;
        assert!(
            matches!(&error, RedisConnectError::Tls { message, .. } if message.contains("certificate")),
            "{error:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_to_a_tls_port_is_a_typed_error() {
    let ca = TestCa::generate().unwrap();
    let server = tls_server(&ca, false);
    let plain = server.url().replacen("rediss://", "redis://", 1);
    let error = connect_fails(&plain, RedisOptions::new()).await;
    assert!(
        matches!(error, RedisConnectError::Unreachable { .. }),
        "{error:?}"
    );
    // TLS options ask for `rediss://`.
    let options = RedisOptions::new().tls_root_certificate(ca.ca_pem());
    let error = connect_fails(&plain, options).await;
    assert!(
        matches!(error, RedisConnectError::InvalidUrl { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let ca = TestCa::generate().unwrap();
    let server = tls_server(&ca, true);
    let options = options(SyncMode::Strict, &ca);
    let error = connect_fails(&server.url(), options.clone()).await;
    assert!(
        matches!(
            error,
            RedisConnectError::Tls { .. } | RedisConnectError::Unreachable { .. }
        ),
        "{error:?}"
    );
    let options = options.tls_client_certificate(ca.client_cert_pem(), ca.client_key_pem());
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    assert!(decide(&store, &store.limiter(&spec())).await);
    assert_eq!(store.stats().strict_decisions, 1);
}
