//! A scripted Kubernetes API server on loopback for `TrafficPolicy` objects of one namespace:
//! list, watch (events streamed as objects change), and status merge patches (recorded for the
//! test, applied to the object and streamed back as a `MODIFIED` event, as a real server does).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(crate) const NS: &str = "payments";

#[derive(Default)]
struct State {
    version: u64,
    objects: BTreeMap<String, Value>,
    watches: Vec<mpsc::UnboundedSender<Bytes>>,
    /// Every event with its resource version, replayed to a watch that starts behind it.
    history: Vec<(u64, Bytes)>,
}

impl State {
    fn event(&mut self, kind: &str, object: &Value) {
        let line = Bytes::from(format!("{}\n", json!({"type": kind, "object": object})));
        self.history.push((self.version, line.clone()));
        self.watches.retain(|w| w.send(line.clone()).is_ok());
    }

    fn bump(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }
}

/// The server; status patches arrive on [`ApiServer::patches`].
pub(crate) struct ApiServer {
    state: Arc<Mutex<State>>,
    pub(crate) port: u16,
    pub(crate) patches: mpsc::UnboundedReceiver<(String, Value)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(value: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap());
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(bytes).boxed_unsync())
        .unwrap()
}

impl ApiServer {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let (record, patches) = mpsc::unbounded_channel();
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (state, record) = (Arc::clone(&shared), record.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (state, record) = (Arc::clone(&state), record.clone());
                    async move { Ok::<_, Infallible>(answer(&state, &record, request).await) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self {
            state,
            port,
            patches,
            task,
        }
    }

    /// What `kubectl apply` does: creates the object, or changes its spec (a new generation).
    pub(crate) fn apply(&self, name: &str, spec: &Value) {
        let mut state = self.state.lock().unwrap();
        let version = state.bump();
        let (kind, object) = match state.objects.get(name) {
            Some(old) => {
                let mut object = old.clone();
                let generation = old["metadata"]["generation"].as_i64().unwrap() + 1;
                object["metadata"]["generation"] = json!(generation);
                object["metadata"]["resourceVersion"] = json!(version);
                object["spec"] = spec.clone();
                ("MODIFIED", object)
            }
            None => {
                let object = json!({
                    "apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicy",
                    "metadata": {"name": name, "namespace": NS, "generation": 1,
                        "resourceVersion": version, "uid": format!("uid-{name}"),
                        "creationTimestamp": "2026-12-06T00:00:00Z"},
                    "spec": spec,
                });
                ("ADDED", object)
            }
        };
        state.objects.insert(name.to_owned(), object.clone());
        state.event(kind, &object);
    }

    /// The next status patch: the object's name and the patch body.
    pub(crate) async fn next_patch(&mut self) -> (String, Value) {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.patches.recv())
            .await
            .expect("no status patch in time")
            .unwrap()
    }

    /// A kubeconfig in `dir` naming this server, namespace `payments`.
    pub(crate) fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{}\"}}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: {NS}}}\n\
             current-context: x\n",
            self.port
        );
        std::fs::File::create(&path)
            .unwrap()
            .write_all(config.as_bytes())
            .unwrap();
        path
    }
}

async fn answer(
    state: &Mutex<State>,
    record: &mpsc::UnboundedSender<(String, Value)>,
    request: Request<Incoming>,
) -> Response<Body> {
    let base = format!("/apis/fluxgate.io/v1beta1/namespaces/{NS}/trafficpolicies");
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let watch = query.contains("watch=true");
    match (request.method().clone(), path.strip_prefix(&base)) {
        (Method::GET, Some("")) if watch => {
            let since: u64 = query
                .split('&')
                .find_map(|p| p.strip_prefix("resourceVersion="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
            let mut state = state.lock().unwrap();
            for (_, line) in state.history.iter().filter(|(v, _)| *v > since) {
                tx.send(line.clone()).unwrap();
            }
            state.watches.push(tx);
            drop(state);
            let frames = futures::stream::poll_fn(move |cx| {
                rx.poll_recv(cx)
                    .map(|b| b.map(|b| Ok::<_, Infallible>(Frame::data(b))))
            });
            Response::new(StreamBody::new(frames).boxed_unsync())
        }
        (Method::GET, Some("")) => {
            let mut state = state.lock().unwrap();
            let version = state.bump();
            let items: Vec<Value> = state.objects.values().cloned().collect();
            full(
                &json!({"apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicyList",
                "metadata": {"resourceVersion": version}, "items": items}),
            )
        }
        (Method::PATCH, Some(rest)) if rest.ends_with("/status") => {
            let name = rest
                .trim_start_matches('/')
                .trim_end_matches("/status")
                .to_owned();
            let content_type = request.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(content_type, "application/merge-patch+json");
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let patch: Value = serde_json::from_slice(&body).unwrap();
            let mut state = state.lock().unwrap();
            let version = state.bump();
            let object = state.objects.get_mut(&name).map(|object| {
                object["status"] = patch["status"].clone();
                object["metadata"]["resourceVersion"] = json!(version);
                object.clone()
            });
            let Some(object) = object else {
                return full(&json!({"kind": "Status", "code": 404}));
            };
            state.event("MODIFIED", &object);
            record.send((name, patch)).unwrap();
            full(&object)
        }
        (method, _) => panic!("unexpected request {method} {path}"),
    }
}
