//! `fluxctl crd` and `fluxctl apply --kube` run as a real binary; the cluster is a scripted
//! HTTP server on loopback named by a kubeconfig (no real API server runs here).

use std::convert::Infallible;
use std::io::Write;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fluxgate_core::store::traffic_policy_crd;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use saphyr::{LoadableYamlNode, Yaml};
use serde_json::{Value, json};

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fluxgate-gateway/policies/checkout-service-policy.yaml"
);

fn fluxctl(args: &[&str], kubeconfig: Option<&std::path::Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fluxctl"));
    command
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A YAML node as JSON, every number as a float (so YAML and JSON forms compare equal).
fn to_json(node: &Yaml<'_>) -> Value {
    if let Some(map) = node.as_mapping() {
        let map = map
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), to_json(v)));
        Value::Object(map.collect())
    } else if let Some(items) = node.as_vec() {
        Value::Array(items.iter().map(to_json).collect())
    } else if let Some(s) = node.as_str() {
        json!(s)
    } else if let Some(b) = node.as_bool() {
        json!(b)
    } else if let Some(i) = node.as_integer() {
        json!(i as f64)
    } else if let Some(f) = node.as_floating_point() {
        json!(f)
    } else {
        assert!(node.is_null(), "{node:?}");
        Value::Null
    }
}

fn floats(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(floats).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, floats(v))).collect()),
        other => other,
    }
}

fn kubeconfig(dir: &tempfile::TempDir, server: &str) -> std::path::PathBuf {
    let path = dir.path().join("kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\n\
         users:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: payments}}\n\
         current-context: x\n"
    );
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    path
}

#[test]
fn crd_prints_the_manifest_as_yaml() {
    let out = fluxctl(&["crd"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let docs = Yaml::load_from_str(&yaml).expect("valid YAML");
    assert_eq!(docs.len(), 1);
    let crd = to_json(&docs[0]);
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "trafficpolicies.fluxgate.io");
    assert_eq!(crd["spec"]["group"], "fluxgate.io");
    assert_eq!(crd["spec"]["names"]["kind"], "TrafficPolicy");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["versions"][0]["name"], "v1beta1");
    assert_eq!(
        crd["spec"]["versions"][0]["subresources"]["status"],
        json!({})
    );
    // The YAML reads back as exactly the generated definition.
    assert_eq!(
        crd,
        floats(serde_json::to_value(traffic_policy_crd()).unwrap())
    );
}

#[test]
fn apply_kube_without_a_cluster_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&dir, "http://127.0.0.1:1");
    let out = fluxctl(
        &["apply", "--kube", "-f", SEED, "--namespace", "payments"],
        Some(&config),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot reach the Kubernetes cluster"),
        "{}",
        text(&out.stderr)
    );

    let missing = dir.path().join("none");
    let out = fluxctl(
        &["apply", "--kube", "-f", SEED, "--namespace", "payments"],
        Some(&missing),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

#[test]
fn apply_kube_validates_every_document_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&dir, "http://127.0.0.1:1");
    let bad = dir.path().join("bad.yaml");
    let seed = std::fs::read_to_string(SEED).unwrap();
    std::fs::write(&bad, seed.replace("weight: 10", "weight: 150")).unwrap();
    let out = fluxctl(
        &[
            "apply",
            "--kube",
            "-f",
            SEED,
            "-f",
            bad.to_str().unwrap(),
            "--namespace",
            "payments",
        ],
        Some(&config),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("spec.canary.weight"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

type Seen = Arc<Mutex<Vec<(String, String, String, Value)>>>;

#[test]
fn apply_kube_server_side_applies_each_policy() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    runtime.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let record = record.clone();
                async move {
                    let method = request.method().to_string();
                    let uri = request.uri().to_string();
                    let content_type = request.headers()["content-type"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let object: Value = serde_json::from_slice(&body).unwrap();
                    record
                        .lock()
                        .unwrap()
                        .push((method, uri, content_type, object));
                    let reply = Response::builder().header("content-type", "application/json");
                    Ok::<_, Infallible>(reply.body(Full::new(Bytes::from(body.to_vec()))).unwrap())
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&dir, &format!("http://127.0.0.1:{port}"));
    let out = fluxctl(
        &["apply", "--kube", "-f", SEED, "--namespace", "payments"],
        Some(&config),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "trafficpolicy payments/checkout-service-policy serverside-applied\n"
    );

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (method, uri, content_type, object) = &seen[0];
    assert_eq!(method, "PATCH");
    assert!(
        uri.starts_with(
            "/apis/fluxgate.io/v1beta1/namespaces/payments/trafficpolicies/checkout-service-policy?"
        ),
        "{uri}"
    );
    assert!(uri.contains("fieldManager=fluxctl"), "{uri}");
    assert_eq!(content_type, "application/apply-patch+yaml");
    assert_eq!(object["apiVersion"], "fluxgate.io/v1beta1");
    assert_eq!(object["kind"], "TrafficPolicy");
    assert_eq!(
        object["metadata"],
        json!({"name": "checkout-service-policy", "namespace": "payments"})
    );
    assert_eq!(object["spec"]["rateLimit"]["requestsPerSecond"], 1200.0);
    assert_eq!(object["spec"]["canary"]["weight"], 10);
    assert_eq!(
        object["spec"]["loadBalancing"]["healthCheck"]["interval"],
        "200ms"
    );
    assert!(object.get("status").is_none());
}
