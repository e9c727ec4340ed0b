//! `fluxgate --kube` run as the real binary against a scripted API server on loopback (named
//! by a kubeconfig): objects applied reach the running gateway and get their status back
//! through the status subresource. No real API server runs here.
#![cfg(feature = "kube")]

#[path = "kube/api.rs"]
mod api;
mod support;

use std::process::Stdio;

use api::ApiServer;
use fluxgate_core::policy::parse_policies;
use fluxgate_gateway::policy::BUNDLED_POLICY;
use http::StatusCode;
use serde_json::{Value, json};
use support::gateway::{Named, get};
use support::within;

const NAME: &str = "checkout-service-policy";

/// The bundled policy's spec as JSON, changed by `edit`.
fn spec(edit: impl FnOnce(&mut Value)) -> Value {
    let policy = parse_policies(BUNDLED_POLICY.as_bytes()).unwrap().remove(0);
    let mut spec = serde_json::to_value(&policy.spec).unwrap();
    edit(&mut spec);
    spec
}

fn limited(spec: &mut Value, rps: u32) {
    spec["rateLimit"]["requestsPerSecond"] = json!(rps);
    spec["rateLimit"]["burstSize"] = json!(1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn url_of(upstream: &Named) -> String {
    format!("http://127.0.0.1:{}", upstream.port())
}

/// Runs `fluxgate --kube --namespace payments ARGS` against `api` (killed when dropped).
fn fluxgate(api: &ApiServer, dir: &std::path::Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fluxgate"))
        .args(["--kube", "--namespace", api::NS])
        .args(args)
        .env("KUBECONFIG", api.kubeconfig(dir))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn condition<'a>(patch: &'a Value, type_: &str) -> Option<&'a Value> {
    patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
}

/// The status the next patch of `name` writes (patches of other objects are skipped).
async fn status_of(api: &mut ApiServer, name: &str) -> Value {
    loop {
        let (patched, patch) = api.next_patch().await;
        if patched == name {
            return patch;
        }
    }
}

/// Statuses of the requests of one client, sent one after the other.
async fn statuses(url: &str, client: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(url, &[("x-client-id", client)]).await.status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_reach_the_gateway_and_get_their_status_back() {
    let mut api = ApiServer::start().await;
    api.apply(NAME, &spec(|s| limited(s, 1)));
    api.apply("other", &spec(|_| {}));
    let (stable, canary) = (Named::start("stable").await, Named::start("canary").await);
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let listen_at = format!("127.0.0.1:{listen}");
    let admin_at = format!("127.0.0.1:{admin}");
    let (stable_url, canary_url) = (url_of(&stable), url_of(&canary));
    let _gateway = fluxgate(
        &api,
        dir.path(),
        &[
            "--listen",
            &listen_at,
            "--admin",
            &admin_at,
            "--upstream",
            &stable_url,
            "--canary-upstream",
            &canary_url,
        ],
    );

    // Generation 1 is accepted and programmed; the canary's phase and weight come with it.
    let patch = status_of(&mut api, NAME).await;
    assert_eq!(patch["status"]["observedGeneration"], 1);
    let accepted = condition(&patch, "Accepted").unwrap();
    assert_eq!(
        (&accepted["status"], &accepted["reason"]),
        (&json!("True"), &json!("Accepted"))
    );
    assert_eq!(accepted["observedGeneration"], 1);
    let programmed = condition(&patch, "Programmed").unwrap();
    assert_eq!(programmed["status"], "True");
    assert_eq!(programmed["observedGeneration"], 1);
    assert!(programmed["lastTransitionTime"].is_string());
    assert_eq!(patch["status"]["canary"]["phase"], "Progressing");
    assert!(patch["status"]["canary"]["weight"].as_u64().unwrap() <= 100);

    // It is in force: one request per second for each client.
    let url = format!("http://127.0.0.1:{listen}/orders");
    let answers = within(statuses(&url, "alice", 2)).await;
    assert_eq!(answers, [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);

    // An invalid generation: refused, naming the field; generation 1 stays in force.
    api.apply(
        NAME,
        &spec(|s| {
            limited(s, 1);
            s["canary"]["weight"] = json!(150);
        }),
    );
    let patch = status_of(&mut api, NAME).await;
    assert_eq!(patch["status"]["observedGeneration"], 2);
    let accepted = condition(&patch, "Accepted").unwrap();
    assert_eq!(
        (&accepted["status"], &accepted["reason"]),
        (&json!("False"), &json!("Invalid"))
    );
    let message = accepted["message"].as_str().unwrap();
    assert!(message.starts_with("spec.canary.weight: "), "{message}");
    let programmed = condition(&patch, "Programmed").unwrap();
    assert_eq!(programmed["status"], "True");
    assert_eq!(programmed["observedGeneration"], 1);
    let answers = within(statuses(&url, "bob", 2)).await;
    assert_eq!(answers, [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);

    // A valid generation 3 replaces it.
    api.apply(NAME, &spec(|s| limited(s, 1000)));
    let patch = status_of(&mut api, NAME).await;
    assert_eq!(condition(&patch, "Accepted").unwrap()["status"], "True");
    assert_eq!(
        condition(&patch, "Programmed").unwrap()["observedGeneration"],
        3
    );
    let answers = within(statuses(&url, "carol", 3)).await;
    assert!(answers.iter().all(|s| *s == StatusCode::OK), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_policy_of_the_namespace_gets_no_programmed_condition() {
    let mut api = ApiServer::start().await;
    api.apply("other", &spec(|_| {}));
    let stable = Named::start("stable").await;
    let dir = tempfile::tempdir().unwrap();
    let stable_url = url_of(&stable);
    let _gateway = fluxgate(
        &api,
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--upstream",
            &stable_url,
        ],
    );
    let patch = status_of(&mut api, "other").await;
    assert_eq!(condition(&patch, "Accepted").unwrap()["status"], "True");
    assert!(condition(&patch, "Programmed").is_none(), "{patch}");
    assert!(patch["status"].get("canary").is_none());
}

#[tokio::test]
async fn an_upstream_name_that_resolves_to_nothing_is_not_programmed() {
    use fluxgate_core::store::{PolicyId, ReportPolicy};
    use fluxgate_gateway::discovery::DnsDiscovery;
    use fluxgate_gateway::kube::GatewayReport;

    let resolver = |_: &str, _: u16| async { Err(std::io::Error::other("no such host")) };
    let discovery = DnsDiscovery::new().resolver(resolver);
    let spec = "http://checkout.payments.svc.cluster.local:8080"
        .parse()
        .unwrap();
    discovery.resolve_now(&[spec]).await;
    let id = PolicyId::new(api::NS, NAME);
    let report = GatewayReport::new(id.clone(), None, discovery)
        .report(&id)
        .unwrap();
    let (reason, message) = report.not_programmed.unwrap();
    assert_eq!(reason, "UnresolvedUpstream");
    assert!(
        message.contains("checkout.payments.svc.cluster.local:8080 (no such host)"),
        "{message}"
    );
    assert!(report.canary.is_none());
}
