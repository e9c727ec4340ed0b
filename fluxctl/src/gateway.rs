//! The client side of a gateway's admin API: one small HTTP/1 exchange per command.
//!
//! [`call`] sends one request (`PUT /api/policies`, `GET /api/status`, `POST /api/canary/...`),
//! and prints why when the URL is malformed (exit 2) or the gateway cannot be reached (exit 3);
//! [`report`] turns a text answer into the exit status the commands share.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use fluxgate_core::store::redact_url;
use http::{Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::common::{FAILED, UNREACHABLE, USAGE};

/// How long connecting and the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One request to a gateway's admin API.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    /// `--gateway`: `http://HOST:PORT[/PREFIX]`.
    pub(crate) url: &'a str,
    /// The path under the URL's prefix, with its query (`/api/status`).
    pub(crate) path: String,
    pub(crate) token: Option<&'a str>,
    /// The body and its content type, if any.
    pub(crate) body: Option<(&'static str, Vec<u8>)>,
}

/// What the gateway answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
}

/// One push of policies to a gateway.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) url: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) token: Option<&'a str>,
    pub(crate) body: Vec<u8>,
}

/// Sends `PUT {url}/api/policies?namespace=NS`; prints the answer and gives the exit status.
pub(crate) async fn put_policies(request: Request<'_>) -> ExitCode {
    let put = Call {
        method: Method::PUT,
        url: request.url,
        path: format!("/api/policies?namespace={}", encode(request.namespace)),
        token: request.token,
        body: Some(("application/yaml", request.body)),
    };
    match call(put).await {
        Ok(answer) => report(&answer),
        Err(code) => code,
    }
}

/// Sends `request`; on a malformed URL or an unreachable gateway, prints why (the URL redacted)
/// and gives exit status 2 or 3.
pub(crate) async fn call(request: Call<'_>) -> Result<Answer, ExitCode> {
    let shown = redact_url(request.url);
    let uri = target(request.url, &request.path).map_err(|message| {
        eprintln!("error: gateway URL {shown}: {message}");
        ExitCode::from(USAGE)
    })?;
    let unreachable = |message: &str| {
        eprintln!("error: cannot reach the gateway at {shown}: {message}");
        ExitCode::from(UNREACHABLE)
    };
    match tokio::time::timeout(TIMEOUT, exchange(&uri, request)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(message)) => Err(unreachable(&message)),
        Err(_) => Err(unreachable("timed out")),
    }
}

/// Prints a text answer: the body on stdout for `200 OK` (exit 0), the status and the body on
/// stderr otherwise (exit 1).
pub(crate) fn report(answer: &Answer) -> ExitCode {
    match refused(answer) {
        None => {
            print!("{}", answer.body);
            ExitCode::SUCCESS
        }
        Some(code) => code,
    }
}

/// `None` for `200 OK`; otherwise prints why the gateway refused and gives exit status 1.
pub(crate) fn refused(answer: &Answer) -> Option<ExitCode> {
    match answer.status {
        StatusCode::OK => return None,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            eprintln!("error: the gateway refused the token ({})", answer.status);
        }
        status => {
            eprintln!("error: the gateway answered {status}");
            eprint!("{}", answer.body);
        }
    }
    Some(ExitCode::from(FAILED))
}

/// `s` percent-encoded for a query value (RFC 3986 unreserved characters kept).
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `URL` + `path`, for an `http://` URL with an optional path prefix.
fn target(url: &str, path: &str) -> Result<Uri, String> {
    let base: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    if base.scheme_str() != Some("http") {
        return Err(
            "only http:// is supported (use a loopback address or a port-forward)".to_owned(),
        );
    }
    let authority = base.authority().ok_or("no host")?;
    let prefix = base.path().trim_end_matches('/');
    format!("http://{authority}{prefix}{path}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())
}

async fn exchange(uri: &Uri, request: Call<'_>) -> Result<Answer, String> {
    let host = uri.host().ok_or("no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let mut builder = http::Request::builder()
        .method(request.method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, uri.authority().map_or(host, |a| a.as_str()));
    if let Some(token) = request.token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match request.body {
        Some((content_type, body)) => {
            builder = builder.header(header::CONTENT_TYPE, content_type);
            Bytes::from(body)
        }
        None => Bytes::new(),
    };
    let http_request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = sender
        .send_request(http_request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_the_prefix_and_refuse_other_schemes() {
        let uri = target("http://127.0.0.1:9/admin/", "/api/status").unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:9/admin/api/status");
        assert!(target("https://gw:9", "/api/status").is_err());
        assert_eq!(encode("web a/b"), "web%20a%2Fb");
    }
}
