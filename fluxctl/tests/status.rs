//! `fluxctl status` and `fluxctl canary` as a real binary against a scripted admin API, and
//! against a real one (`fluxgate::admin`) whose document reads into the shared types
//! (`fluxgate_core::api`) without losing a field.

use std::convert::Infallible;
use std::process::Output;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fluxgate::admin::Admin;
use fluxgate::api::{CanaryStatus, Status};
use fluxgate::balance::{Balance, Weighted};
use fluxgate::canary::Canary;
use fluxgate::policy::LoadBalancing;
use fluxgate::ratelimit::RateLimitLayer;
use fluxgate::store::{PolicyId, PolicyStore};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tower::service_fn;

const TOKEN: &str = "s3cret";

/// A gateway's `/api/status`, in the shape `fluxgate::admin` serves it.
fn realistic() -> Value {
    json!({
        "store": {
            "generation": 7, "applied": 6, "rejected": 1,
            "lastRejection": {
                "message": "payments/checkout: spec.rateLimit.requestsPerSecond: must be at least 1",
                "atUnixSeconds": 1_700_000_000
            },
            "policies": [{"id": "payments/checkout", "generation": 7}]
        },
        "balancers": {
            "checkout": [
                {"endpoint": "http://10.0.0.1:8080", "healthy": true, "weight": 100,
                 "effectiveWeight": 100.0, "drained": null, "drainedDetail": null, "probing": false,
                 "inFlight": 3, "requests": 412, "errorRate": 0.005, "p95Ms": 12.4,
                 "latencyEwmaMs": 8.1, "ejections": 0},
                {"endpoint": "http://10.0.0.2:8080", "healthy": true, "weight": 100,
                 "effectiveWeight": 0.0, "drained": "errorRate", "drainedDetail": "0.310",
                 "probing": false, "inFlight": 0, "requests": 29, "errorRate": 0.31,
                 "p95Ms": 512.0, "latencyEwmaMs": 430.0, "ejections": 1}
            ]
        },
        "canaries": {
            "checkout": {
                "phase": "rolledBack", "enabled": true, "weight": 0, "step": 1,
                "steps": [5, 25, 50, 100], "failedChecks": 0,
                "lastDecision": {
                    "kind": "rolledBack", "reason": "errorBudget",
                    "summary": "rolled back: error budget: availability 90.00% < budget 98.50% over 40 requests",
                    "finding": {"metric": "availability", "value": 0.9, "budget": 0.985},
                    "samples": 40, "agoMs": 1250.0
                },
                "stable": {"routed": 960, "windowRequests": 96, "errorRate": 0.01, "p99Ms": 41.5},
                "canary": {"routed": 40, "windowRequests": 40, "errorRate": 0.1, "p99Ms": 230.0},
                "transitions": {"started": 1, "rolledBack": 1},
                "generation": 7
            }
        },
        "rateLimits": [
            {"policy": "payments/checkout", "generation": 7, "admitted": 1200, "refused": 30,
             "rejected": 0,
             "limits": [{"name": "perClient", "key": "header:x-client-id", "admitted": 1200,
                         "refused": 30, "shadowRefused": 0}]}
        ]
    })
}

/// The requests the scripted gateway saw: `METHOD PATH AUTHORIZATION`.
type Seen = Arc<Mutex<Vec<String>>>;

/// A scripted admin API on a free loopback port: `/api/status` answers `status`; canary
/// actions need the bearer token and know one canary, `checkout`.
async fn gateway(status: String) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/admin", listener.local_addr().unwrap());
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (status, log) = (status.clone(), log.clone());
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let answer = answer(&request, &status);
                let auth = request.headers().get("authorization");
                let auth = auth.map_or("-", |v| v.to_str().unwrap()).to_owned();
                let target = request.uri().path_and_query().unwrap().to_string();
                log.lock()
                    .unwrap()
                    .push(format!("{} {target} {auth}", request.method()));
                async move { Ok::<_, Infallible>(answer) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service),
            );
        }
    });
    (url, seen)
}

fn answer(request: &Request<Incoming>, status: &str) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, body: String| {
        Response::builder()
            .status(code)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let path = request.uri().path();
    if path == "/admin/api/status" {
        return reply(StatusCode::OK, status.to_owned());
    }
    let Some(action) = path.strip_prefix("/admin/api/canary/") else {
        return reply(StatusCode::NOT_FOUND, "not found\n".to_owned());
    };
    let bearer = format!("Bearer {TOKEN}");
    if request.headers().get("authorization").map(|v| v.as_bytes()) != Some(bearer.as_bytes()) {
        return reply(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n".to_owned(),
        );
    }
    match request.uri().query() {
        None | Some("name=checkout") => {
            let phase = if action == "promote" {
                "promoted"
            } else {
                "paused"
            };
            let weight = if action == "promote" { 100 } else { 25 };
            reply(
                StatusCode::OK,
                json!({"phase": phase, "weight": weight}).to_string(),
            )
        }
        Some(_) => reply(StatusCode::NOT_FOUND, "no such canary\n".to_owned()),
    }
}

async fn fluxctl(args: &[&str], token: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_fluxctl"));
    command.args(args).env_remove("FLUXGATE_TOKEN");
    if let Some(token) = token {
        command.env("FLUXGATE_TOKEN", token);
    }
    command.output().await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn status_renders_every_section() {
    let (url, seen) = gateway(realistic().to_string()).await;
    let out = fluxctl(&["status", "--gateway", &url], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "POLICIES: generation 7, 6 applied, 1 rejected\n",
        "  last rejection: payments/checkout: spec.rateLimit.requestsPerSecond: must be at least 1 (",
        "  POLICY              GENERATION\n  payments/checkout   7\n",
        "BALANCER checkout\n",
        "  ENDPOINT               HEALTH    WEIGHT   INFLIGHT   P95      ERR%    DRAINED\n",
        "  http://10.0.0.1:8080   healthy   100      3          12.4ms   0.5%    -\n",
        "  http://10.0.0.2:8080   healthy   0/100    0          512ms    31.0%   errorRate (0.310)\n",
        "CANARY checkout\n",
        "  PHASE        WEIGHT   STEP                FAILED CHECKS   LAST DECISION\n",
        "  rolledBack   0%       2/4 [5,25,50,100]   0               rolledBack\n",
        "  reason: rolled back: error budget: availability 90.00% < budget 98.50% over 40 requests (1.25s ago)\n",
        "  stable   960      96         1.0%    41.5ms\n",
        "  canary   40       40         10.0%   230ms\n",
        "  payments/checkout   (all)       -                    1200       30\n",
        "  payments/checkout   perClient   header:x-client-id   1200       30\n",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in\n{shown}");
    }
    assert!(!shown.contains("absent"), "{shown}");
    assert_eq!(seen.lock().unwrap().as_slice(), ["GET /admin/api/status -"]);

    let out = fluxctl(&["status", "--gateway", &url, "-o", "json"], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, realistic());
}

#[tokio::test]
async fn status_shows_missing_sections_as_absent() {
    // Fields left out take their defaults; sections this version does not know are shown as
    // they are.
    let partial = json!({
        "store": {"generation": 3, "lastRejection": null},
        "balancers": {"web": [{"endpoint": "10.0.0.9:80", "healthy": false,
                               "drained": "healthCheck", "newField": 1}]},
        "canaries": {"web": {"phase": "paused", "weight": 25}},
        "redis": {"joined": false, "url": "redis://127.0.0.1:6390"}
    });
    let (url, _) = gateway(partial.to_string()).await;
    let out = fluxctl(&["status", "--gateway", &url], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "POLICIES: generation 3, 0 applied, 0 rejected\n  last rejection: none\n",
        "  10.0.0.9:80   unhealthy   0        0          -     -      healthCheck\n",
        "  paused   25%      -      0               -\n",
        "RATE LIMITS: absent\n",
        "\nREDIS: joined=false, url=redis://127.0.0.1:6390\n",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in\n{shown}");
    }

    let (url, _) = gateway("{}".to_owned()).await;
    let out = fluxctl(&["status", "--gateway", &url], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "POLICIES: absent\n\nBALANCERS: absent\n\nCANARIES: absent\n\nRATE LIMITS: absent\n"
    );

    let (url, _) = gateway("<html>".to_owned()).await;
    let out = fluxctl(&["status", "--gateway", &url], None).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not JSON"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn canary_actions_send_the_token() {
    let (url, seen) = gateway("{}".to_owned()).await;
    let gw = ["--gateway", url.as_str()];
    let out = fluxctl(
        &[&["canary", "promote", "checkout"], &gw[..]].concat(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "canary checkout: promote done: phase promoted, weight 100%\n"
    );
    let args = [&["canary", "pause"], &gw[..], &["--token", TOKEN]].concat();
    let out = fluxctl(&args, None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = fluxctl(&[&["canary", "abort", "checkout"], &gw[..]].concat(), None).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused the token (401"),
        "{}",
        text(&out.stderr)
    );
    let out = fluxctl(
        &[&["canary", "resume", "nope"], &gw[..]].concat(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("404 Not Found\nno such canary\n"));
    let out = fluxctl(&[&["canary", "rewind"], &gw[..]].concat(), Some(TOKEN)).await;
    assert_eq!(out.status.code(), Some(2));

    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [
            "POST /admin/api/canary/promote?name=checkout Bearer s3cret",
            "POST /admin/api/canary/pause Bearer s3cret",
            "POST /admin/api/canary/abort?name=checkout -",
            "POST /admin/api/canary/resume?name=nope Bearer s3cret",
        ]
    );
}

#[tokio::test]
async fn unreachable_gateways_exit_3_and_urls_are_redacted() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://admin:hunter2@127.0.0.1:{port}");
    for args in [
        vec!["status", "--gateway", &url],
        vec!["canary", "abort", "--gateway", &url],
    ] {
        let out = fluxctl(&args, Some(TOKEN)).await;
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("cannot reach the gateway at http://"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    let out = fluxctl(&["status", "--gateway", "https://gw.example:9"], None).await;
    assert_eq!(out.status.code(), Some(2));
    let help = fluxctl(&["status", "--help"], None).await;
    assert!(text(&help.stdout).contains("3  cannot reach Redis or the gateway"));
}

/// The policy the real admin API (below) serves.
const POLICY: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: test}
spec:
  rateLimit: {requestsPerSecond: 40, burstSize: 20, keyExtractor: header.X-Client-Id}
  canary: {steps: [5, 25, 50], metrics: {targetErrorRate: 0.05}}
";

type Empty = http::Request<()>;

/// An admin API over a store with one policy, its canary and rate limits, a balancer of two
/// endpoints and a section of its own, served on a free loopback port; its URL.
async fn serve() -> String {
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let id = PolicyId::new("test", "shop");
    let ok = service_fn(|_: Empty| async { Ok::<_, Infallible>(http::Response::new(())) });
    let (canary, _judge) = Canary::new(ok, ok, store.slot(&id)).unwrap();
    let endpoints = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
        .map(|url| (url.to_owned(), Weighted::new(ok, 3)));
    let balance: Balance<_, Empty> = Balance::new(LoadBalancing::default(), endpoints);
    let limits = RateLimitLayer::from_slot(store.slot(&id));
    let admin = Admin::builder()
        .store(store)
        .balancer("shop", balance.handle())
        .canary(id.to_string(), canary.handle())
        .rate_limits(&limits)
        .section("redis", || json!({"joined": true}))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, admin.router()).await });
    url
}

#[tokio::test]
async fn the_admin_document_reads_into_the_shared_types_and_fluxctl_shows_it() {
    let url = serve().await;

    let out = fluxctl(&["canary", "abort", "--gateway", &url], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "canary (the only one): abort done: phase rolledBack, weight 0%\n"
    );

    let out = fluxctl(&["status", "--gateway", &url, "-o", "json"], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status: Status = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json,
        "a field was lost"
    );
    let store = status.store.as_ref().unwrap();
    assert_eq!(
        (store.generation, store.policies[0].id.as_str()),
        (1, "test/shop")
    );
    let endpoints = &status.balancers.as_ref().unwrap()["shop"];
    assert_eq!(endpoints.len(), 2);
    assert!(endpoints.iter().all(|e| e.healthy && e.weight == 3));
    let canary: &CanaryStatus = &status.canaries.as_ref().unwrap()["test/shop"];
    assert_eq!(
        (canary.phase.as_str(), canary.steps.as_slice()),
        ("rolledBack", &[5, 25, 50][..])
    );
    let last = canary.last_decision.as_ref().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.text()),
        ("rolledBack", "rolled back: aborted by hand")
    );
    assert_eq!(last.details["reason"], "manual");
    assert_eq!(canary.transitions["rolledBack"], 1);
    let limits = status.rate_limits.as_ref().unwrap();
    assert_eq!(limits[0].policy.as_deref(), Some("test/shop"));
    assert_eq!(status.extra["redis"], json!({"joined": true}));

    let out = fluxctl(&["status", "--gateway", &url], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "POLICIES: generation 1, 1 applied, 0 rejected\n",
        "  test/shop   1\n",
        "BALANCER shop\n",
        "  http://10.0.0.1:8080   healthy   3",
        "CANARY test/shop\n",
        "  rolledBack   0%       1/3 [5,25,50]   0               rolledBack\n",
        "  reason: rolled back: aborted by hand (",
        "  test/shop   limit-0   header.x-client-id   0          0\n",
        "\nREDIS: joined=true\n",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in\n{shown}");
    }
    assert!(!shown.contains("absent"), "{shown}");
}
