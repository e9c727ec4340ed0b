//! The axum handlers of [`Admin::router`](super::Admin::router).

use std::error::Error as _;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use fluxgate_canary::CanaryHandle;
use serde::Deserialize;

use super::Admin;
use super::auth::authorized;

const TEXT: &str = "text/plain; charset=utf-8";

/// The query of `PUT /api/policies`.
#[derive(Debug, Deserialize)]
pub(super) struct ApplyQuery {
    namespace: Option<String>,
}

/// The query of `POST /api/canary/{action}`.
#[derive(Debug, Deserialize)]
pub(super) struct CanaryQuery {
    name: Option<String>,
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, TEXT)], body).into_response()
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = format!("{value:#}\n");
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, "Bearer"), (CONTENT_TYPE, TEXT)],
        "a valid bearer token is required\n",
    )
        .into_response()
}

pub(super) async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

pub(super) async fn readyz(State(admin): State<Admin>) -> Response {
    match admin.readiness() {
        Ok(()) => text(StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

pub(super) async fn status(State(admin): State<Admin>) -> Response {
    json(StatusCode::OK, &admin.status())
}

pub(super) async fn metrics(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    super::metrics::answer(&admin, &headers)
}

/// The largest policy body `PUT /api/policies` reads (1 MiB); a larger one is answered `413`.
pub(super) const MAX_POLICY_BYTES: usize = 1 << 20;

/// Checks the token before anything of the body is read, then reads at most
/// [`MAX_POLICY_BYTES`] of it.
pub(super) async fn put_policies(
    State(admin): State<Admin>,
    Query(query): Query<ApplyQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !authorized(admin.inner.token.as_deref(), &headers) {
        return unauthorized();
    }
    let too_large = || {
        let message = format!("the policy body is over {MAX_POLICY_BYTES} bytes\n");
        text(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_POLICY_BYTES as u64) {
        return too_large();
    }
    let body = match axum::body::to_bytes(body, MAX_POLICY_BYTES).await {
        Ok(body) => body,
        Err(error) if is_length_limit(error.source()) => return too_large(),
        Err(error) => return text(StatusCode::BAD_REQUEST, format!("{error}\n")),
    };
    let Some(store) = &admin.inner.store else {
        let message = "this admin API has no policy store\n".to_owned();
        return text(StatusCode::SERVICE_UNAVAILABLE, message);
    };
    match store.apply_bytes(&body, query.namespace.as_deref()) {
        Ok(report) => {
            let lines: String = report.changes.iter().map(|c| format!("{c}\n")).collect();
            text(StatusCode::OK, lines)
        }
        Err(error) => text(StatusCode::BAD_REQUEST, format!("{error}\n")),
    }
}

/// Whether a body error is [`axum::body::to_bytes`]'s limit being reached.
fn is_length_limit(mut error: Option<&(dyn std::error::Error + 'static)>) -> bool {
    while let Some(e) = error {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        error = e.source();
    }
    false
}

pub(super) async fn canary_action(
    State(admin): State<Admin>,
    Path(action): Path<String>,
    Query(query): Query<CanaryQuery>,
    headers: HeaderMap,
) -> Response {
    if !authorized(admin.inner.token.as_deref(), &headers) {
        return unauthorized();
    }
    let act: fn(&CanaryHandle) -> Result<(), fluxgate_canary::CanaryError> = match action.as_str() {
        "promote" => CanaryHandle::promote,
        "abort" => CanaryHandle::abort,
        "pause" => CanaryHandle::pause,
        "resume" => CanaryHandle::resume,
        _ => {
            let message = format!("unknown action `{action}`: promote, abort, pause or resume\n");
            return text(StatusCode::NOT_FOUND, message);
        }
    };
    let canaries = &admin.inner.canaries;
    let found = match (&query.name, canaries.as_slice()) {
        (Some(name), _) => canaries.iter().find(|(n, _)| n == name),
        (None, [only]) => Some(only),
        (None, []) => None,
        (None, _) => {
            let names: Vec<&str> = canaries.iter().map(|(n, _)| n.as_str()).collect();
            let message = format!(
                "several canaries, add ?name= (one of {})\n",
                names.join(", ")
            );
            return text(StatusCode::BAD_REQUEST, message);
        }
    };
    let Some((name, handle)) = found else {
        return text(StatusCode::NOT_FOUND, "no such canary\n".to_owned());
    };
    match act(handle) {
        Ok(()) => {
            tracing::info!(canary = %name, %action, "canary action from the admin API");
            let status = super::status::canary(&handle.snapshot());
            json(StatusCode::OK, &super::status::to_value(status))
        }
        Err(error) => text(StatusCode::CONFLICT, format!("{error}\n")),
    }
}
