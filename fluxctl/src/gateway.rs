//! The client side of a gateway's admin endpoint `PUT /api/policies`.

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
    let shown = redact_url(request.url);
    let uri = match target(request.url, request.namespace) {
        Ok(uri) => uri,
        Err(message) => {
            eprintln!("error: gateway URL {shown}: {message}");
            return ExitCode::from(USAGE);
        }
    };
    match tokio::time::timeout(TIMEOUT, exchange(&uri, &request)).await {
        Ok(Ok((status, body))) => report(status, &body),
        Ok(Err(message)) => {
            eprintln!("error: cannot reach the gateway at {shown}: {message}");
            ExitCode::from(UNREACHABLE)
        }
        Err(_) => {
            eprintln!("error: cannot reach the gateway at {shown}: timed out");
            ExitCode::from(UNREACHABLE)
        }
    }
}

fn report(status: StatusCode, body: &str) -> ExitCode {
    match status {
        StatusCode::OK => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            eprintln!("error: the gateway refused the token ({status})");
            ExitCode::from(FAILED)
        }
        _ => {
            eprintln!("error: the gateway answered {status}");
            eprint!("{body}");
            ExitCode::from(FAILED)
        }
    }
}

/// `URL/api/policies?namespace=NS`, for an `http://` URL with an optional path prefix.
fn target(url: &str, namespace: &str) -> Result<Uri, String> {
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
    format!("http://{authority}{prefix}/api/policies?namespace={namespace}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())
}

async fn exchange(uri: &Uri, request: &Request<'_>) -> Result<(StatusCode, String), String> {
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
        .method(Method::PUT)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, uri.authority().map_or(host, |a| a.as_str()))
        .header(header::CONTENT_TYPE, "application/yaml");
    if let Some(token) = request.token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let http_request = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| e.to_string())?;
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
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
