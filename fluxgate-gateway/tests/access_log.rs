//! The access log and request ids through a real gateway and a real client on one keep-alive
//! connection: one JSON line per request with method, path (no query), status, upstream, canary
//! side, rate-limit outcome, duration and request id; `x-request-id` kept when the client sent
//! one, generated otherwise, sent upstream and returned. Then the binary's `--access-log json`.

mod binary;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use binary::{Fluxgate, LOOPBACK, command};
use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_gateway::access_log::AccessLog;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use support::{echo_upstream, echoed, serve, within};

const POLICY: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
    metadata: {name: shop, namespace: test}\n\
    spec:\n\
    \x20 rateLimit: {requestsPerSecond: 1, burstSize: 3, keyExtractor: header.X-Client-Id}\n\
    \x20 canary:\n\
    \x20   enabled: true\n\
    \x20   weight: 10\n\
    \x20   match:\n\
    \x20     - header: {name: x-canary, value: \"true\"}\n";

/// One answer: status, `x-request-id`, body.
struct Answer {
    status: u16,
    request_id: String,
    body: String,
}

#[tokio::test]
async fn one_line_per_request_with_ids_sides_and_limits() {
    let stable = echo_upstream().await;
    let canary = echo_upstream().await;
    let stable_url = format!("http://{}", stable.local_addr());
    let canary_url = format!("http://{}", canary.local_addr());
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let config = StackConfig::new(vec![stable_url.parse().unwrap()])
        .canary_upstreams(vec![canary_url.parse().unwrap()])
        .access_log(AccessLog::json_to(move |line: &str| {
            sink.lock().unwrap().push(line.to_owned());
        }));
    let gateway = Gateway::build(&store, &PolicyId::new("test", "shop"), &config).unwrap();
    let server = serve(gateway.service()).await;

    // One keep-alive connection for every request.
    let stream = within(tokio::net::TcpStream::connect(server.local_addr()))
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut send = async |path: &str, headers: &[(&str, &str)]| {
        let mut request = Request::get(path).header("host", "shop.example");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<bytes::Bytes>::new()).unwrap();
        within(sender.ready()).await.unwrap();
        let response = within(sender.send_request(request)).await.unwrap();
        let status = response.status().as_u16();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = within(response.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        Answer {
            status,
            request_id,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };

    // The client's id is kept, sent upstream and returned.
    let kept = send(
        "/orders?id=42",
        &[("x-request-id", "client-chosen-1"), ("x-client-id", "a")],
    )
    .await;
    assert_eq!(kept.status, 200);
    assert_eq!(kept.request_id, "client-chosen-1");
    assert_eq!(
        echoed(&kept.body, "x-request-id").as_deref(),
        Some("client-chosen-1")
    );
    // Without one, a new one, sent upstream and returned.
    let generated = send("/orders", &[("x-client-id", "b")]).await;
    assert_eq!(generated.request_id.len(), 32);
    assert!(generated.request_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        echoed(&generated.body, "x-request-id"),
        Some(generated.request_id.clone())
    );
    let to_canary = send("/pay", &[("x-canary", "true"), ("x-client-id", "c")]).await;
    assert_eq!(to_canary.status, 200);
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(send("/limited", &[("x-client-id", "d")]).await.status);
        }
        statuses
    };
    assert_eq!(statuses, [200, 200, 200, 429]);
    let refused_id = send("/limited", &[("x-client-id", "d")]).await.request_id;

    let lines = within(async {
        loop {
            let lines = lines.lock().unwrap().clone();
            if lines.len() >= 8 {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(lines.len(), 8, "{lines:#?}");
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:#?}"))
    };

    let first = by_id("client-chosen-1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/orders", "the query is not logged");
    assert_eq!(first["status"], 200);
    assert_eq!(first["rate_limit"], "admitted");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["completed"], true);
    assert!(first["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(first["time"].as_f64().unwrap() > 1.6e9);
    // The side and the upstream go together.
    for record in records.iter().filter(|r| r["status"] == 200) {
        let expected = match record["canary_side"].as_str() {
            Some("stable") => &stable_url,
            Some("canary") => &canary_url,
            other => panic!("side {other:?}: {record}"),
        };
        assert_eq!(record["upstream"], expected.as_str(), "{record}");
    }
    assert!(by_id(&generated.request_id)["upstream"].is_string());
    let canary_line = records.iter().find(|r| r["path"] == "/pay").unwrap();
    assert_eq!(canary_line["canary_side"], "canary");
    assert_eq!(canary_line["upstream"], canary_url.as_str());

    // A refused request reached no upstream.
    let refused = by_id(&refused_id);
    assert_eq!(refused["status"], 429);
    assert_eq!(refused["rate_limit"], "refused");
    assert!(refused["upstream"].is_null());
    assert!(refused["canary_side"].is_null());
    assert_eq!(
        records
            .iter()
            .filter(|r| r["rate_limit"] == "refused")
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_writes_json_lines_to_stdout() {
    let upstream = echo_upstream().await;
    let target = format!("http://{}", upstream.local_addr());
    let mut args = LOOPBACK.to_vec();
    args.extend(["--upstream", &target, "--access-log", "json"]);
    let gateway = Fluxgate::start(command(&args, &[])).await;
    let url = format!("http://{}/hello?secret=1", gateway.proxy);
    let answer = support::gateway::get(&url, &[("x-request-id", "from-curl")]).await;
    assert_eq!(answer.status, 200);
    let line = within(async {
        loop {
            if let Some(line) = gateway.stdout().into_iter().find(|l| l.starts_with('{')) {
                break line;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["request_id"], "from-curl");
    assert_eq!(record["path"], "/hello");
    assert_eq!(record["upstream"], target.as_str());
    assert_eq!(record["canary_side"], "stable");
    assert!(!line.contains("secret"));
    // Only JSON lines on stdout: the banner went to stderr.
    assert!(gateway.stdout().iter().all(|l| l.starts_with('{')));
}
