//! Demo upstreams that run in-process, for the gateway's self-contained demo and for tests.
//!
//! Three kinds ([`DemoKind`]): `fast` answers at once, `slow` waits 50–200ms first, and `canary`
//! answers with `x-version: canary` and can be told to fail. Each serves:
//! - `GET /healthz`: `200 ok`;
//! - `POST /admin/fail?rate=R` (R from 0 to 1): from then on, that share of the other requests
//!   gets a `500`, spread evenly (meant for the canary, accepted by every kind);
//! - anything else: a small JSON echo of the request (`upstream`, `version`, `method`, `path`,
//!   `query`, `host`, `x_forwarded_for`), with `x-upstream` and `x-version` headers.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), fluxgate_gateway::server::ServerError> {
//! use fluxgate_gateway::demo::{DemoKind, start};
//!
//! let canary = start(DemoKind::Canary, "127.0.0.1:0".parse().unwrap()).await?;
//! println!("canary at {}", canary.url());
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::server::{ServerConfig, ServerError, ServerHandle, spawn};

/// Which demo upstream to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DemoKind {
    /// Answers immediately.
    Fast,
    /// Waits 50–200ms before answering.
    Slow,
    /// The canary version: `x-version: canary`, and `POST /admin/fail?rate=R` makes it fail.
    Canary,
}

impl DemoKind {
    /// The upstream's name, as in its answers: `fast`, `slow` or `canary`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Slow => "slow",
            Self::Canary => "canary",
        }
    }

    /// The version it reports: `canary` for the canary, `stable` otherwise.
    #[must_use]
    pub fn version(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::Fast | Self::Slow => "stable",
        }
    }
}

impl fmt::Display for DemoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running demo upstream; dropping it shuts it down.
#[derive(Debug)]
pub struct DemoUpstream {
    kind: DemoKind,
    server: ServerHandle,
}

impl DemoUpstream {
    /// Which kind it is.
    #[must_use]
    pub fn kind(&self) -> DemoKind {
        self.kind
    }

    /// Its address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Its base URL, `http://ADDR`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    /// Stops it and waits for it to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Starts a demo upstream of `kind` on `addr` (port 0 for an ephemeral port).
///
/// # Errors
///
/// [`ServerError::Bind`] when `addr` cannot be bound.
pub async fn start(kind: DemoKind, addr: SocketAddr) -> Result<DemoUpstream, ServerError> {
    let state = Arc::new(State {
        kind,
        fail_per_mille: AtomicU32::new(0),
        served: AtomicU64::new(0),
    });
    let service = tower::service_fn(move |request| handle(Arc::clone(&state), request));
    let server = spawn(addr, service, ServerConfig::default()).await?;
    Ok(DemoUpstream { kind, server })
}

/// What a demo upstream remembers between requests.
#[derive(Debug)]
struct State {
    kind: DemoKind,
    fail_per_mille: AtomicU32,
    served: AtomicU64,
}

async fn handle<B>(
    state: Arc<State>,
    request: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    if path == "/healthz" && request.method() == Method::GET {
        return Ok(reply(&state, StatusCode::OK, "text/plain", "ok\n".into()));
    }
    if path == "/admin/fail" && request.method() == Method::POST {
        return Ok(set_fail_rate(&state, request.uri().query()));
    }
    let n = state.served.fetch_add(1, Ordering::Relaxed);
    if state.kind == DemoKind::Slow {
        tokio::time::sleep(Duration::from_millis(50 + mix(n) % 151)).await;
    }
    // Fails exactly `rate` of the requests, spread evenly: request n fails when the running
    // count of failures owed goes up by one.
    let rate = u64::from(state.fail_per_mille.load(Ordering::Relaxed));
    let fails = (n + 1) * rate / 1000 > n * rate / 1000;
    let status = if fails {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header =
        |value: Option<&HeaderValue>| value.and_then(|v| v.to_str().ok()).map(str::to_owned);
    let echo = serde_json::json!({
        "upstream": state.kind.name(),
        "version": state.kind.version(),
        "status": status.as_u16(),
        "method": request.method().as_str(),
        "path": path,
        "query": request.uri().query(),
        "host": header(request.headers().get(HOST)),
        "x_forwarded_for": header(request.headers().get("x-forwarded-for")),
    });
    Ok(reply(
        &state,
        status,
        "application/json",
        format!("{echo}\n"),
    ))
}

/// Handles `POST /admin/fail?rate=R`.
fn set_fail_rate(state: &State, query: Option<&str>) -> Response<Full<Bytes>> {
    let rate = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("rate="))
        .and_then(|rate| rate.parse::<f64>().ok())
        .filter(|rate| (0.0..=1.0).contains(rate));
    let Some(rate) = rate else {
        let text = "expected ?rate=R with R from 0 to 1\n".to_owned();
        return reply(state, StatusCode::BAD_REQUEST, "text/plain", text);
    };
    // In range 0..=1000 after the check above, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_mille = (rate * 1000.0).round() as u32;
    state.fail_per_mille.store(per_mille, Ordering::Relaxed);
    tracing::info!(upstream = %state.kind, rate, "demo upstream failure rate changed");
    let body = serde_json::json!({ "upstream": state.kind.name(), "fail_rate": rate });
    reply(
        state,
        StatusCode::OK,
        "application/json",
        format!("{body}\n"),
    )
}

fn reply(
    state: &State,
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = crate::respond::full(status, content_type, body);
    let headers = response.headers_mut();
    headers.insert("x-upstream", HeaderValue::from_static(state.kind.name()));
    headers.insert("x-version", HeaderValue::from_static(state.kind.version()));
    response
}

/// A well-spread number from a counter (splitmix64), for the slow upstream's latency.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
