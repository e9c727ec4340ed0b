//! `KubeSource` against a scripted API server: a `tower_test` mock service behind
//! `kube::Client::new` that answers the list, watch and status requests the test scripts, and
//! hands the status patches to the test. No real API server runs here.
#![cfg(feature = "kube")]

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use fluxgate_core::store::{
    CanaryStatus, KubeSource, KubeSourceHandle, PolicyId, PolicyReport, PolicyStore,
};
use http::{Method, Request, Response};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type Reply = Response<UnsyncBoxBody<Bytes, Infallible>>;

const NS: &str = "payments";
const PATH: &str = "/apis/fluxgate.io/v1beta1/namespaces/payments/trafficpolicies";

/// The scripted API server: the test answers each request the source sends, in order.
struct ApiServer {
    handle: tower_test::mock::Handle<Request<Body>, Reply>,
    version: u64,
}

/// An open watch: each `send` is one event line on the response body.
struct Watch(mpsc::UnboundedSender<Bytes>);

impl Watch {
    fn send(&self, kind: &str, object: &Value) {
        let line = format!("{}\n", json!({"type": kind, "object": object}));
        self.0.send(Bytes::from(line)).unwrap();
    }

    /// The answer of a server that has compacted the resource version: the watcher re-lists.
    fn gone(&self) {
        let status = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": "too old resource version", "reason": "Expired", "code": 410});
        self.send("ERROR", &status);
    }
}

fn full(value: &Value) -> Reply {
    Response::new(Full::new(Bytes::from(serde_json::to_vec(value).unwrap())).boxed_unsync())
}

impl ApiServer {
    fn start(store: &PolicyStore) -> (Self, KubeSourceHandle) {
        Self::start_with(store, |source| source)
    }

    /// Starts a source configured by `configure`.
    fn start_with(
        store: &PolicyStore,
        configure: impl FnOnce(KubeSource) -> KubeSource,
    ) -> (Self, KubeSourceHandle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Reply>();
        let client = kube::Client::new(service, NS);
        let source = configure(KubeSource::new(client, store.clone())).spawn();
        (Self { handle, version: 1 }, source)
    }

    async fn next(&mut self) -> (Request<Body>, tower_test::mock::SendResponse<Reply>) {
        self.handle
            .next_request()
            .await
            .expect("the source stopped")
    }

    /// Answers the next request, which must be a list, with `items`.
    async fn list(&mut self, items: &[Value]) {
        let (request, reply) = self.next().await;
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), PATH);
        let query = request.uri().query().unwrap_or_default();
        assert!(
            !query.contains("watch=true"),
            "expected a list, got {}",
            request.uri()
        );
        self.version += 1;
        let list = json!({"apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicyList",
            "metadata": {"resourceVersion": self.version.to_string()}, "items": items});
        reply.send_response(full(&list));
    }

    /// Answers the next request, which must be a watch, with a body the test writes to.
    async fn watch(&mut self) -> Watch {
        let (request, reply) = self.next().await;
        assert_eq!(request.method(), Method::GET);
        let query = request.uri().query().unwrap_or_default();
        assert!(
            query.contains("watch=true"),
            "expected a watch, got {} {}",
            request.method(),
            request.uri()
        );
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let frames = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        reply.send_response(Response::new(StreamBody::new(frames).boxed_unsync()));
        Watch(tx)
    }

    /// Answers the next request, which must be a status merge patch of `name`; gives its body.
    async fn status_patch(&mut self, name: &str) -> Value {
        let (patch, reply) = self.take_status_patch(name).await;
        reply.send_response(full(&object(name, 1, &json!({}))));
        patch
    }

    /// Takes the next request, which must be a status merge patch of `name`, unanswered.
    async fn take_status_patch(
        &mut self,
        name: &str,
    ) -> (Value, tower_test::mock::SendResponse<Reply>) {
        let (request, reply) = self.next().await;
        assert_eq!(request.method(), Method::PATCH, "{}", request.uri());
        assert_eq!(request.uri().path(), format!("{PATH}/{name}/status"));
        let content_type = request.headers()[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "application/merge-patch+json");
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let patch: Value = serde_json::from_slice(&body).unwrap();
        (patch, reply)
    }
}

/// A `TrafficPolicy` object as the API server sends it, server fields included.
fn object(name: &str, generation: i64, spec: &Value) -> Value {
    json!({
        "apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicy",
        "metadata": {
            "name": name, "namespace": NS, "generation": generation,
            "resourceVersion": format!("{generation}0"), "uid": "0b6e3f2a-1111-2222-3333-444455556666",
            "creationTimestamp": "2025-01-01T00:00:00Z", "labels": {"team": "payments"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        },
        "spec": spec,
    })
}

fn with_status(mut object: Value, patch: &Value) -> Value {
    object["status"] = patch["status"].clone();
    object
}

fn limit(rps: u32) -> Value {
    json!({"rateLimit": {"requestsPerSecond": rps, "burstSize": 20}, "canary": {"weight": 10}})
}

fn id(name: &str) -> PolicyId {
    PolicyId::new(NS, name)
}

fn generation_in_force(store: &PolicyStore, name: &str) -> Option<i64> {
    store
        .get(&id(name))
        .and_then(|p| p.compiled().policy().metadata.generation)
}

async fn wait_until(store: &PolicyStore, mut done: impl FnMut(&PolicyStore) -> bool) {
    let mut changes = store.subscribe();
    while !done(store) {
        changes.changed().await.unwrap();
    }
}

fn condition<'a>(patch: &'a Value, type_: &str) -> &'a Value {
    let conditions = patch["status"]["conditions"].as_array().unwrap();
    conditions
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {patch}"))
}

fn accepted(patch: &Value) -> &Value {
    condition(patch, "Accepted")
}

fn programmed(patch: &Value) -> &Value {
    condition(patch, "Programmed")
}

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(20), test)
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn applies_an_object_and_reports_it_accepted() {
    bounded(async {
        let store = PolicyStore::new();
        let (mut server, source) = ApiServer::start(&store);
        let first = object("checkout", 1, &limit(100));
        server.list(std::slice::from_ref(&first)).await;
        let patch = server.status_patch("checkout").await;
        assert_eq!(patch["status"]["observedGeneration"], 1);
        let condition = accepted(&patch);
        assert_eq!(condition["status"], "True");
        assert_eq!(condition["observedGeneration"], 1);
        assert!(condition["lastTransitionTime"].is_string());
        assert_eq!(programmed(&patch)["status"], "True");
        assert_eq!(programmed(&patch)["observedGeneration"], 1);
        assert_eq!(generation_in_force(&store, "checkout"), Some(1));
        let policy = store.get(&id("checkout")).unwrap();
        assert_eq!(
            policy.compiled().policy().metadata.labels["team"],
            "payments"
        );

        // The status write comes back as a change: nothing to write again. A new generation is
        // applied and reported.
        let watch = server.watch().await;
        watch.send("MODIFIED", &with_status(first, &patch));
        watch.send("MODIFIED", &object("checkout", 2, &limit(200)));
        let patch = server.status_patch("checkout").await;
        assert_eq!(patch["status"]["observedGeneration"], 2);
        assert_eq!(accepted(&patch)["status"], "True");
        wait_until(&store, |s| generation_in_force(s, "checkout") == Some(2)).await;
        let mut status = source.subscribe();
        status.wait_for(|s| s.status_writes == 2).await.unwrap();
        assert!(source.status().synced);
    })
    .await;
}

#[tokio::test]
async fn refuses_an_invalid_object_and_keeps_the_policy_in_force() {
    bounded(async {
        let store = PolicyStore::new();
        let (mut server, source) = ApiServer::start(&store);
        let typo = object("typo", 1, &json!({"canary": {"wieght": 10}}));
        server
            .list(&[object("checkout", 1, &limit(100)), typo])
            .await;
        assert_eq!(
            accepted(&server.status_patch("checkout").await)["status"],
            "True"
        );
        let patch = server.status_patch("typo").await;
        let condition = accepted(&patch);
        assert_eq!(condition["status"], "False");
        assert_eq!(condition["reason"], "Invalid");
        assert_eq!(
            condition["message"],
            "spec.canary.wieght: unknown field, did you mean weight?"
        );
        assert!(store.get(&id("typo")).is_none());

        let watch = server.watch().await;
        watch.send(
            "MODIFIED",
            &object("checkout", 2, &json!({"canary": {"weight": 150}})),
        );
        let patch = server.status_patch("checkout").await;
        assert_eq!(patch["status"]["observedGeneration"], 2);
        let condition = accepted(&patch);
        assert_eq!(condition["status"], "False");
        assert_eq!(condition["observedGeneration"], 2);
        let message = condition["message"].as_str().unwrap();
        assert!(message.starts_with("spec.canary.weight: "), "{message}");
        // Generation 1 stays in force, and the Programmed condition says so.
        assert_eq!(programmed(&patch)["status"], "True");
        assert_eq!(programmed(&patch)["observedGeneration"], 1);
        assert_eq!(generation_in_force(&store, "checkout"), Some(1));
        assert_eq!(source.status().rejected, 2);
        assert!(store.status().rejected >= 2);
    })
    .await;
}

#[tokio::test]
async fn a_delete_event_removes_the_policy() {
    bounded(async {
        let store = PolicyStore::new();
        let (mut server, _source) = ApiServer::start(&store);
        let checkout = object("checkout", 1, &limit(100));
        server.list(std::slice::from_ref(&checkout)).await;
        server.status_patch("checkout").await;
        let watch = server.watch().await;
        watch.send("ADDED", &object("search", 1, &limit(50)));
        server.status_patch("search").await;
        wait_until(&store, |s| s.get(&id("search")).is_some()).await;
        watch.send("DELETED", &checkout);
        wait_until(&store, |s| s.get(&id("checkout")).is_none()).await;
        assert!(store.get(&id("search")).is_some());
    })
    .await;
}

#[tokio::test]
async fn a_relist_without_an_object_removes_it() {
    bounded(async {
        let store = PolicyStore::new();
        let (mut server, source) = ApiServer::start(&store);
        let (a, b) = (object("a", 1, &limit(100)), object("b", 1, &limit(100)));
        server.list(&[a.clone(), b]).await;
        let a = with_status(a, &server.status_patch("a").await);
        server.status_patch("b").await;
        let watch = server.watch().await;
        wait_until(&store, |s| s.list().len() == 2).await;

        // The watch expires; the watcher lists again (after its backoff) and `b` is gone. `a`
        // already says it is accepted, so the next request is the watch, not a status write.
        watch.gone();
        server.list(&[a]).await;
        let _watch = server.watch().await;
        wait_until(&store, |s| s.get(&id("b")).is_none()).await;
        assert_eq!(generation_in_force(&store, "a"), Some(1));
        let status = source
            .subscribe()
            .wait_for(|s| s.syncs == 2)
            .await
            .unwrap()
            .clone();
        assert!(status.failures >= 1, "the expired watch is counted");
    })
    .await;
}

#[tokio::test]
async fn a_failed_status_write_is_retried() {
    bounded(async {
        let store = PolicyStore::new();
        let (mut server, source) =
            ApiServer::start_with(&store, |s| s.resync(Duration::from_millis(20)));
        server.list(&[object("checkout", 1, &limit(100))]).await;
        let (_, reply) = server.take_status_patch("checkout").await;
        let refusal = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": "etcd is busy", "reason": "InternalError", "code": 500});
        let mut response = full(&refusal);
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        reply.send_response(response);
        // The watch opens, and the status write comes again after the backoff.
        let _watch = server.watch().await;
        let patch = server.status_patch("checkout").await;
        assert_eq!(accepted(&patch)["status"], "True");
        let status = source
            .subscribe()
            .wait_for(|s| s.status_writes == 1)
            .await
            .unwrap()
            .clone();
        assert_eq!(status.failures, 1);
        assert!(status.last_error.unwrap().to_string().contains("checkout"));
    })
    .await;
}

#[tokio::test]
async fn the_report_adds_the_canary_and_a_change_is_written() {
    bounded(async {
        let store = PolicyStore::new();
        let canary =
            std::sync::Arc::new(std::sync::Mutex::new(CanaryStatus::new("Progressing", 5)));
        let seen = std::sync::Arc::clone(&canary);
        let report = move |id: &PolicyId| {
            (id.name() == "checkout")
                .then(|| PolicyReport::programmed().canary(seen.lock().unwrap().clone()))
        };
        let (mut server, _source) = ApiServer::start_with(&store, |s| {
            s.report_with(report).resync(Duration::from_millis(20))
        });
        let checkout = object("checkout", 1, &limit(100));
        server
            .list(&[checkout.clone(), object("other", 1, &limit(10))])
            .await;
        let patch = server.status_patch("checkout").await;
        assert_eq!(
            patch["status"]["canary"],
            json!({"phase": "Progressing", "weight": 5})
        );
        // A policy the reporter does not use gets no Programmed condition.
        let other = server.status_patch("other").await;
        assert_eq!(other["status"]["conditions"].as_array().unwrap().len(), 1);
        let watch = server.watch().await;
        watch.send("MODIFIED", &with_status(checkout, &patch));

        // The canary advances: the next resync writes it; Accepted keeps its transition time.
        *canary.lock().unwrap() = CanaryStatus::new("Progressing", 10);
        let next = server.status_patch("checkout").await;
        assert_eq!(next["status"]["canary"]["weight"], 10);
        assert_eq!(
            accepted(&next)["lastTransitionTime"],
            accepted(&patch)["lastTransitionTime"]
        );
        assert_eq!(programmed(&next)["status"], "True");
    })
    .await;
}
