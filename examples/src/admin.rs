//! The gateway's admin endpoints: `GET /healthz` and `GET /api/status`.
//!
//! [`AdminService`] is a tower service for the admin listener. `/healthz` answers `200 ok`;
//! `/api/status` answers JSON with the listen address, the upstreams and their weights, the canary
//! upstreams, the policy (its file, id, generation, and the last refused save), the Redis URL and namespace if given, and the
//! uptime in seconds. Anything else is a `404`.
//!
//! # Example
//!
//! ```
//! use fluxgate_examples::admin::{AdminService, GatewayStatus};
//! # use tower::ServiceExt;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let status = GatewayStatus::new("127.0.0.1:8080".parse().unwrap(), vec![], vec![], None, None);
//! let admin = AdminService::new(status);
//! let request = http::Request::get("/api/status").body(()).unwrap();
//! let response = admin.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::Service;

use crate::policy::GatewayPolicy;
use crate::respond::full;
use crate::upstream::{Upstream, UpstreamSpec};

/// What the gateway reports about itself on `/api/status`.
#[derive(Debug, Clone)]
pub struct GatewayStatus {
    listen: SocketAddr,
    upstreams: Vec<UpstreamSpec>,
    canary_upstreams: Vec<Upstream>,
    policy: Option<GatewayPolicy>,
    redis: Option<String>,
    namespace: Option<String>,
    started: Instant,
}

impl GatewayStatus {
    /// The status of a gateway started now.
    #[must_use]
    pub fn new(
        listen: SocketAddr,
        upstreams: Vec<UpstreamSpec>,
        canary_upstreams: Vec<Upstream>,
        policy: Option<GatewayPolicy>,
        redis: Option<String>,
    ) -> Self {
        Self {
            listen,
            upstreams,
            canary_upstreams,
            policy,
            redis,
            namespace: None,
            started: Instant::now(),
        }
    }

    /// Sets the namespace given with `--namespace`.
    #[must_use]
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace;
        self
    }

    /// The status as JSON.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let upstreams: Vec<_> = self
            .upstreams
            .iter()
            .map(|spec| serde_json::json!({ "url": spec.upstream.to_string(), "weight": spec.weight.get() }))
            .collect();
        let canaries: Vec<_> = self
            .canary_upstreams
            .iter()
            .map(ToString::to_string)
            .collect();
        let policy = self.policy.as_ref().map(|policy| {
            let store = policy.store().status();
            let applied = policy.slot().load_full();
            serde_json::json!({
                "path": policy.path().display().to_string(),
                "id": policy.id().to_string(),
                "in_force": applied.is_some(),
                "policy_generation": applied.map(|p| p.generation()),
                "store_generation": store.generation,
                "applied": store.applied,
                "rejected": store.rejected,
                "last_rejection": store.last_rejection.map(|r| r.message),
            })
        });
        serde_json::json!({
            "listen": self.listen.to_string(),
            "upstreams": upstreams,
            "canary_upstreams": canaries,
            "policy": policy,
            "redis": self.redis,
            "namespace": self.namespace,
            "uptime_seconds": self.started.elapsed().as_secs(),
        })
    }
}

/// The admin listener's service; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct AdminService {
    status: Arc<GatewayStatus>,
}

impl AdminService {
    /// An admin service reporting `status`.
    #[must_use]
    pub fn new(status: GatewayStatus) -> Self {
        Self {
            status: Arc::new(status),
        }
    }
}

impl<B> Service<Request<B>> for AdminService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => full(StatusCode::OK, "text/plain", "ok\n".to_owned()),
            (&Method::GET, "/api/status") => {
                let body = format!("{:#}\n", self.status.to_json());
                full(StatusCode::OK, "application/json", body)
            }
            _ => full(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_owned(),
            ),
        };
        ready(Ok(response))
    }
}
