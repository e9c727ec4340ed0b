//! A whole gateway stack in-process, its admin API, and upstreams that can be told to fail.

use fluxgate_gateway::server::RequestBody;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_gateway::server::ServerHandle;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::upstream::UpstreamSpec;
use http::{HeaderMap, Method, Request, Response, StatusCode};

use super::{client, full, serve, within};

/// An upstream that answers its name (also in `x-upstream`), or `500` (health checks
/// included) once told to fail.
pub struct Named {
    pub name: &'static str,
    pub failing: Arc<AtomicBool>,
    pub server: ServerHandle,
}

impl Named {
    pub async fn start(name: &'static str) -> Self {
        let failing = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failing);
        let server = serve(tower::service_fn(move |_request: Request<RequestBody>| {
            let status = if flag.load(Ordering::Relaxed) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            async move {
                let mut response = Response::new(full(name));
                *response.status_mut() = status;
                response
                    .headers_mut()
                    .insert("x-upstream", name.parse().unwrap());
                Ok::<_, Infallible>(response)
            }
        }))
        .await;
        Self {
            name,
            failing,
            server,
        }
    }

    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::Relaxed);
    }

    pub fn port(&self) -> u16 {
        self.server.local_addr().port()
    }

    pub fn spec(&self, weight: u32) -> UpstreamSpec {
        format!("http://{},weight={weight}", self.server.local_addr())
            .parse()
            .unwrap()
    }
}

/// A gateway serving on loopback, with its admin API.
pub struct Running {
    pub store: PolicyStore,
    pub id: PolicyId,
    pub gateway: Gateway,
    pub proxy: ServerHandle,
    pub admin: ServerHandle,
}

impl Running {
    /// Applies `policy` (one document) to a new store, builds the stack over the upstreams and
    /// serves it and its admin API (with `token`).
    pub async fn start(
        policy: &str,
        stable: &[(&Named, u32)],
        canary: &[&Named],
        token: Option<&str>,
    ) -> Self {
        let store = PolicyStore::new();
        let report = store.apply_bytes(policy.as_bytes(), None).unwrap();
        let id = report.changes[0].id().clone();
        let config = StackConfig::new(stable.iter().map(|(u, w)| u.spec(*w)).collect())
            .canary_upstreams(canary.iter().map(|u| u.spec(1)).collect());
        let gateway = Gateway::build(&store, &id, &config).unwrap();
        let proxy = serve(gateway.service()).await;
        let admin = gateway
            .admin(&id)
            .store(store.clone())
            .token(token.map(str::to_owned))
            .build();
        let admin = serve(admin.router()).await;
        Self {
            store,
            id,
            gateway,
            proxy,
            admin,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.local_addr())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.local_addr())
    }
}

/// A request's answer: status, headers, body as text.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn upstream(&self) -> Option<&str> {
        self.headers.get("x-upstream").and_then(|v| v.to_str().ok())
    }
}

/// Sends one request with `headers` and `body`.
pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(full(body.to_owned())).unwrap();
    let response = within(client().request(request)).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = super::text(response).await;
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    send(Method::GET, url, headers, "").await
}
