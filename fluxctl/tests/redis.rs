//! `fluxctl apply/get/delete/diff` as a real binary against a real `redis-server`, with a
//! following `PolicyStore` standing in for a gateway replica.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fluxgate_core::store::{PolicyId, PolicyStore, RedisSource};
use fluxgate_test_support::RedisServer;

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fluxgate-gateway/policies/checkout-service-policy.yaml"
);
const SMALL: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: edge}\nspec:\n  rateLimit: {requestsPerSecond: 10, burstSize: 5}\n";

fn fluxctl(redis: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fluxctl"))
        .args(args)
        .env("FLUXGATE_REDIS_URL", redis)
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

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reaches_a_follower_and_get_delete_diff_work() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let store = PolicyStore::new();
    let mut follower = RedisSource::new(&url, "payments", store.clone())
        .unwrap()
        .spawn();
    follower.wait_synced(1).await;
    let id = PolicyId::new("payments", "checkout-service-policy");

    let out = fluxctl(&url, &["diff", "-f", SEED, "-n", "payments"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("--- payments/checkout-service-policy (absent)"));

    let out = fluxctl(
        &url,
        &["apply", "-f", SEED, "--namespace", "payments"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "trafficpolicy payments/checkout-service-policy created\n"
    );
    eventually("policy in force", || store.get(&id).is_some()).await;

    let out = fluxctl(&url, &["apply", "-f", SEED, "-n", "payments"], None);
    assert_eq!(
        text(&out.stdout),
        "trafficpolicy payments/checkout-service-policy unchanged\n"
    );
    let out = fluxctl(&url, &["diff", "-f", SEED, "-n", "payments"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // Changed file: diff shows the line, apply configures version 2.
    let changed = std::fs::read_to_string(SEED)
        .unwrap()
        .replace("weight: 10", "weight: 12");
    let out = fluxctl(&url, &["diff", "-f", "-", "-n", "payments"], Some(&changed));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("-     weight: 10\n+     weight: 12"),
        "{}",
        text(&out.stdout)
    );
    let out = fluxctl(
        &url,
        &["apply", "-f", "-", "-n", "payments"],
        Some(&changed),
    );
    assert_eq!(
        text(&out.stdout),
        "trafficpolicy payments/checkout-service-policy configured\n"
    );
    eventually("version 2", || {
        store
            .get(&id)
            .is_some_and(|p| p.compiled().policy().metadata.generation == Some(2))
    })
    .await;

    let out = fluxctl(&url, &["get", "-n", "payments"], None);
    assert_eq!(
        text(&out.stdout),
        "NAME                      VERSION   SECTIONS\ncheckout-service-policy   2         loadBalancing,rateLimit,canary\n"
    );
    let out = fluxctl(
        &url,
        &[
            "get",
            "checkout-service-policy",
            "-n",
            "payments",
            "-o",
            "json",
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["spec"]["canary"]["weight"], 12);
    let out = fluxctl(
        &url,
        &[
            "get",
            "checkout-service-policy",
            "-n",
            "payments",
            "-o",
            "yaml",
        ],
        None,
    );
    let yaml = text(&out.stdout);
    assert!(yaml.contains("  name: checkout-service-policy\n"), "{yaml}");
    let check = fluxctl(&url, &["validate", "-f", "-"], Some(&yaml));
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert_eq!(
        fluxctl(&url, &["get", "nope", "-n", "payments"], None)
            .status
            .code(),
        Some(1)
    );

    let out = fluxctl(
        &url,
        &["delete", "checkout-service-policy", "-n", "payments"],
        None,
    );
    assert_eq!(
        text(&out.stdout),
        "trafficpolicy payments/checkout-service-policy deleted\n"
    );
    eventually("policy deleted", || store.get(&id).is_none()).await;
    let out = fluxctl(
        &url,
        &["delete", "checkout-service-policy", "-n", "payments"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_documents_apply_nothing() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(SEED)
            .unwrap()
            .replace("weight: 10", "weight: 150"),
    )
    .unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, SMALL).unwrap();

    let out = fluxctl(
        &url,
        &[
            "apply",
            "-f",
            good.to_str().unwrap(),
            "-f",
            bad.to_str().unwrap(),
            "-n",
            "payments",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("spec.canary.weight: found 150"),
        "{}",
        text(&out.stderr)
    );
    // The namespace of a document must agree with --namespace.
    let out = fluxctl(
        &url,
        &[
            "apply",
            "-f",
            SEED,
            "-f",
            good.to_str().unwrap(),
            "-n",
            "production",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("is in namespace payments, but is applied to namespace production")
    );
    let out = fluxctl(&url, &["get", "-n", "payments", "-o", "json"], None);
    assert_eq!(text(&out.stdout), "[]\n");

    // A document without a namespace gets --namespace.
    let out = fluxctl(
        &url,
        &["apply", "-f", good.to_str().unwrap(), "-n", "production"],
        None,
    );
    assert_eq!(text(&out.stdout), "trafficpolicy production/edge created\n");
}

#[test]
fn unreachable_redis_exits_3_without_printing_the_password() {
    let mut server = RedisServer::builder()
        .password("t0ps3cret")
        .start()
        .unwrap();
    let url = server.url();
    server.stop();
    for args in [
        &["apply", "-f", SEED, "-n", "payments"][..],
        &["get", "-n", "payments"],
        &["delete", "x", "-n", "payments"],
        &["diff", "-f", SEED, "-n", "payments"],
    ] {
        let out = fluxctl(&url, args, None);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("cannot reach Redis at redis://:***@127.0.0.1:"),
            "{err}"
        );
        assert!(!err.contains("t0ps3cret"));
    }
    let out = fluxctl("not a url", &["get", "-n", "payments"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let help = fluxctl(&url, &["apply", "--help"], None);
    assert!(text(&help.stdout).contains("3  cannot reach Redis or the gateway"));
    assert!(!text(&help.stdout).contains("t0ps3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_push_follows_the_contract() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut requests = Vec::new();
        for answer in [
            "HTTP/1.1 200 OK\r\ncontent-length: 52\r\n\r\ntrafficpolicy payments/checkout-service-policy created\n",
            "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n",
        ] {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(head) = text.find("\r\n\r\n") {
                    let length: usize = text[..head]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= head + 4 + length {
                        break;
                    }
                }
            }
            let answer = answer.replace(
                "content-length: 52",
                &format!(
                    "content-length: {}",
                    answer.split("\r\n\r\n").nth(1).unwrap().len()
                ),
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            requests.push(String::from_utf8(request).unwrap());
        }
        requests
    });
    let gateway = format!("http://127.0.0.1:{port}/admin");
    let out = fluxctl(
        "redis://127.0.0.1:1",
        &[
            "apply",
            "-f",
            SEED,
            "-n",
            "payments",
            "--gateway",
            &gateway,
            "--token",
            "tok",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "trafficpolicy payments/checkout-service-policy created\n"
    );
    let out = fluxctl(
        "redis://127.0.0.1:1",
        &["apply", "-f", SEED, "-n", "payments", "--gateway", &gateway],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("refused the token"));
    let requests = server.await.unwrap();
    assert!(
        requests[0].starts_with("PUT /admin/api/policies?namespace=payments HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer tok\r\n")
    );
    assert!(requests[0].contains("name: checkout-service-policy"));
    assert!(!requests[1].to_ascii_lowercase().contains("authorization"));

    let out = fluxctl(
        "redis://127.0.0.1:1",
        &[
            "apply",
            "-f",
            SEED,
            "-n",
            "payments",
            "--gateway",
            &format!("http://127.0.0.1:{port}"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}
