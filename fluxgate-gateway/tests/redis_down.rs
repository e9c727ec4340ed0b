//! The `fluxgate` binary starts while Redis is down (`--redis`): it serves with its policy file
//! and local rate limits, says so in `/api/status` and its logs, and joins Redis when a
//! `redis-server` starts later on the port it was given.

#[path = "fault_matrix/process.rs"]
mod process;
mod support;

use std::time::Duration;

use fluxgate_test_support::RedisServer;
use http::StatusCode;
use process::{Process, limited_policy};
use support::gateway::{Named, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_starts_while_redis_is_down_and_joins_it_later() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Named::start("stable").await;
    // A port nothing listens on yet: Redis starts there later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = Process::start(
        dir.path(),
        &limited_policy(3),
        &format!("http://127.0.0.1:{}", upstream.port()),
        &["--redis", &format!("redis://127.0.0.1:{port}")],
    );

    // It serves, under the file's limits (burst 3), decided locally.
    let url = format!("{}/", gateway.proxy);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&url, &[("x-client-id", "alice")]).await.status);
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    let status = gateway.status().await;
    assert_eq!(status["redis"]["joined"], false, "{status}");
    assert_eq!(status["redis"]["startedWithoutRedis"], true, "{status}");
    assert!(
        gateway.log().contains("Redis does not answer"),
        "{}",
        gateway.log()
    );

    let _redis = RedisServer::builder().port(port).start().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Traffic makes the rate-limit store try Redis again.
        get(&url, &[("x-client-id", "bob")]).await;
        let status = gateway.status().await;
        if status["redis"]["joined"] == true {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never joined Redis: {status}\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gateway.log().contains("joined Redis"), "{}", gateway.log());
}
