//! The `fluxgate` binary starts while Redis is down (`--redis`): it serves with its policy file
//! and local rate limits, says so in `/api/status` and its logs, and joins Redis when a
//! `redis-server` starts later on the port it was given.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fluxgate_test_support::RedisServer;
use http::StatusCode;
use support::gateway::{Named, get};

/// The gateway process, killed when dropped.
struct Gateway {
    child: Child,
    proxy: String,
    admin: String,
    log: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    async fn status(&self) -> serde_json::Value {
        let answer = get(&format!("{}/api/status", self.admin), &[]).await;
        serde_json::from_str(&answer.body).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts the binary on ephemeral ports and reads its addresses from the banner.
fn start(dir: &std::path::Path, upstream: &Named, redis_port: u16) -> Gateway {
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: shop, namespace: test}\n\
         spec:\n  rateLimit: {requestsPerSecond: 0.001, burstSize: 3, keyExtractor: header.X-Client-Id}\n",
    )
    .unwrap();
    let log = dir.join("gateway.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fluxgate"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--policy",
        ])
        .arg(&policy)
        .args([
            "--upstream",
            &format!("http://127.0.0.1:{}", upstream.port()),
        ])
        .args(["--redis", &format!("redis://127.0.0.1:{redis_port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut proxy, mut admin) = (None, None);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let url = line.split_whitespace().nth(1).map(str::to_owned);
            if line.trim_start().starts_with("proxy") {
                proxy = url;
            } else if line.trim_start().starts_with("admin") {
                admin = url;
            }
            if let (Some(p), Some(a)) = (&proxy, &admin) {
                let _ = tx.send((p.clone(), a.clone()));
            }
        }
    });
    let mut gateway = Gateway {
        child,
        proxy: String::new(),
        admin: String::new(),
        log,
    };
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok((proxy, admin)) => (gateway.proxy, gateway.admin) = (proxy, admin),
        Err(_) => {
            let exit = gateway.child.try_wait().unwrap();
            panic!("the gateway did not start ({exit:?}):\n{}", gateway.log());
        }
    }
    gateway
}

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
    let gateway = start(dir.path(), &upstream, port);

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
