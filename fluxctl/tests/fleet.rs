//! `fluxctl status --redis` and `fluxctl canary ACTION --redis` as a real binary against a real
//! `redis-server`, with three in-process canary routers (each with its own Redis connection
//! and judge) standing in for the gateway replicas of a fleet.

use std::process::{Command, Output};
use std::time::Duration;

use fluxgate::task::TaskHandle;
use fluxgate_canary::fleet::{Fleet, RedisFleet};
use fluxgate_canary::{Canary, Phase};
use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
use fluxgate_core::store::PolicyId;
use fluxgate_test_support::RedisServer;
use http::{Request, Response};
use serde_json::Value;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{ServiceExt, service_fn};

type Side = BoxCloneSyncService<Request<()>, Response<()>, std::io::Error>;

fn side(name: &'static str) -> Side {
    BoxCloneSyncService::new(service_fn(move |_: Request<()>| async move {
        let mut response = Response::new(());
        response
            .headers_mut()
            .insert("x-side", http::HeaderValue::from_static(name));
        Ok::<_, std::io::Error>(response)
    }))
}

struct Replica {
    router: Canary<Side, Side>,
    _judge: TaskHandle,
}

impl Replica {
    async fn start(url: &str, name: &str) -> Self {
        let mut policy = TrafficPolicy::new(Some("test"), "web");
        let mut spec = CanarySpec::default();
        spec.weight = 50;
        policy.spec.canary = Some(spec);
        let compiled = CompiledPolicy::compile(&policy).unwrap();
        let store = RedisFleet::connect(url).await.unwrap();
        let fleet = Fleet::new(store, PolicyId::new("test", "web")).replica(name);
        let (router, judge) =
            Canary::builder(side("stable"), side("canary"), compiled.canary().unwrap())
                .fleet(fleet)
                .build()
                .unwrap();
        Self {
            router,
            _judge: judge.spawn(),
        }
    }

    fn phase(&self) -> Phase {
        self.router.handle().snapshot().phase
    }

    fn joined(&self) -> bool {
        self.router
            .handle()
            .snapshot()
            .fleet
            .is_some_and(|f| f.joined)
    }

    /// Sends `n` requests; how many the canary answered.
    async fn send(&self, n: usize) -> usize {
        let mut canary = 0;
        for _ in 0..n {
            let response = self.router.clone().oneshot(Request::new(())).await.unwrap();
            canary += usize::from(response.headers()["x-side"] == "canary");
        }
        canary
    }
}

fn fluxctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fluxctl"))
        .args(args)
        .env_remove("FLUXGATE_REDIS_URL")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status_json(url: &str) -> Value {
    let out = fluxctl(&["status", "-n", "test", "--redis", url, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluxctl_shows_the_fleet_and_aborts_the_canary_on_every_replica() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let mut replicas = Vec::new();
    for name in ["gw-a", "gw-b", "gw-c"] {
        replicas.push(Replica::start(&url, name).await);
    }
    eventually("every replica joined", async || {
        replicas.iter().all(Replica::joined)
    })
    .await;

    // The fleet as fluxctl reads it: three live replicas, one judge, the merged window.
    for replica in &replicas {
        assert!(replica.send(40).await > 0, "the canary gets traffic");
    }
    let requests = |doc: &Value, side: &str| {
        doc["canaries"]["web"]["window"][side]["requests"]
            .as_u64()
            .unwrap_or(0)
    };
    eventually(
        "the judged window merges every replica's requests",
        async || {
            let doc = status_json(&url);
            doc["canaries"]["web"]["replicas"] == serde_json::json!(["gw-a", "gw-b", "gw-c"])
                && requests(&doc, "stable") + requests(&doc, "canary") == 120
        },
    )
    .await;
    let doc = status_json(&url);
    let web = &doc["canaries"]["web"];
    assert_eq!(web["state"]["phase"], "progressing", "{doc:#}");
    assert!(web["leader"].as_str().is_some_and(|l| l.starts_with("gw-")));
    let out = fluxctl(&["status", "-n", "test", "--redis", &url]);
    let table = text(&out.stdout);
    assert!(table.contains("CANARY web"), "{table}");
    assert!(
        table.contains("replicas: 3 live (gw-a, gw-b, gw-c)"),
        "{table}"
    );
    assert!(table.contains("merged over every replica"), "{table}");

    // One command, every replica: nothing goes to the canary within a second.
    let out = fluxctl(&["canary", "abort", "web", "-n", "test", "--redis", &url]);
    let done = Instant::now();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("phase rolledBack, weight 0%"),
        "{}",
        text(&out.stdout)
    );
    eventually("every replica rolled back", async || {
        replicas.iter().all(|r| r.phase() == Phase::RolledBack)
    })
    .await;
    let took = done.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "rolled back everywhere in {took:?}"
    );
    for replica in &replicas {
        assert_eq!(
            replica.send(20).await,
            0,
            "no canary traffic after the abort"
        );
    }
    let doc = status_json(&url);
    assert_eq!(doc["canaries"]["web"]["state"]["decidedBy"], "fluxctl");

    // A second abort does not apply to a rolled-back canary: refused, exit 1.
    let out = fluxctl(&["canary", "abort", "web", "-n", "test", "--redis", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    // A canary no replica runs: exit 1 with the hint.
    let out = fluxctl(&["canary", "promote", "nosuch", "-n", "test", "--redis", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no gateway replica sharing Redis"),
        "{}",
        text(&out.stderr)
    );

    // A replica that stops beating leaves the list once its heartbeat expires.
    drop(replicas.pop());
    eventually("the dead replica disappears", async || {
        status_json(&url)["canaries"]["web"]["replicas"] == serde_json::json!(["gw-a", "gw-b"])
    })
    .await;
}

#[test]
fn fleet_commands_say_what_is_wrong() {
    // Redis that does not answer: exit 3.
    let out = fluxctl(&[
        "canary",
        "abort",
        "web",
        "-n",
        "test",
        "--redis",
        "redis://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = fluxctl(&["status", "-n", "test", "--redis", "redis://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // --redis needs a namespace, and a name for an action; --gateway and --redis exclude each other.
    for args in [
        &["canary", "abort", "web", "--redis", "redis://127.0.0.1:1"][..],
        &[
            "canary",
            "abort",
            "-n",
            "test",
            "--redis",
            "redis://127.0.0.1:1",
        ],
        &[
            "canary",
            "abort",
            "web",
            "--gateway",
            "http://127.0.0.1:1",
            "--redis",
            "redis://x",
        ],
        &["status", "--redis", "redis://127.0.0.1:1"],
        &["status"],
    ] {
        let out = fluxctl(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
