//! The access log: one JSON line per request, written when its response has been sent.
//!
//! [`AccessLog::off`] (the default) writes nothing; [`AccessLog::json_stdout`] writes each line
//! to standard output (the `fluxgate` binary's `--access-log json`); [`AccessLog::json_to`]
//! hands each line to a function of yours. A line is an object with these fields, `null` where the
//! gateway does not know the value:
//!
//! | field | value |
//! | --- | --- |
//! | `time` | when the request arrived, seconds since the Unix epoch (milliseconds precision) |
//! | `request_id` | the request's `x-request-id` (the client's, or generated: [`request_id`](crate::request_id)) |
//! | `client` | the peer's IP address |
//! | `method`, `path` | the request's method and path (the query is left out: it may hold secrets) |
//! | `status` | the status sent to the client |
//! | `upstream` | the upstream that answered (its URL), `null` when none did (refused, no healthy endpoint, 400) |
//! | `canary_side` | `stable` or `canary`: the side of that upstream |
//! | `rate_limit` | `admitted` or `refused` when a rate limit applied to the request (it carries `RateLimit` headers), `null` otherwise |
//! | `duration_ms` | from the request's arrival to the end of its response body (or its abort) |
//! | `completed` | whether the response body was sent whole (`false`: the client left, or the upstream failed mid-body) |
//!
//! The upstream and side come from the [`ServedBy`] extension that [`Served`] (around each
//! upstream's service in the [`stack`](crate::stack)) puts on responses.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use fluxgate_gateway::access_log::AccessLog;
//!
//! let lines = Arc::new(Mutex::new(Vec::<String>::new()));
//! let sink = Arc::clone(&lines);
//! let log = AccessLog::json_to(move |line: &str| sink.lock().unwrap().push(line.to_owned()));
//! assert!(log.is_on());
//! assert!(!AccessLog::off().is_on());
//! ```

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use tokio::time::Instant;

use fluxgate_canary::Side;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use crate::request_id::RequestId;
use crate::watched::{End, Watched, Watcher};

type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// Where access log lines go; see the [module docs](self). Cheap to clone.
#[derive(Clone, Default)]
pub struct AccessLog {
    sink: Option<Sink>,
}

impl AccessLog {
    /// No access log.
    #[must_use]
    pub fn off() -> Self {
        Self { sink: None }
    }

    /// JSON lines on standard output.
    #[must_use]
    pub fn json_stdout() -> Self {
        Self::json_to(|line: &str| {
            // One write of the whole line, under the lock: lines never interleave.
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(line.as_bytes());
            let _ = stdout.write_all(b"\n");
        })
    }

    /// JSON lines (without their newline) handed to `sink`.
    #[must_use]
    pub fn json_to(sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            sink: Some(Arc::new(sink)),
        }
    }

    /// Whether lines are written.
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_on() {
            "AccessLog(json)"
        } else {
            "AccessLog(off)"
        })
    }
}

/// Which upstream answered a request, and on which side: a response extension.
#[derive(Debug, Clone)]
pub struct ServedBy {
    /// The upstream's URL.
    pub upstream: Arc<str>,
    /// Its side.
    pub side: Side,
}

/// An upstream's service that marks its responses with [`ServedBy`].
///
/// ```
/// use fluxgate_canary::Side;
/// use fluxgate_gateway::access_log::{Served, ServedBy};
/// use tower::{service_fn, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let upstream = service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// });
/// let served = Served::new(upstream, "http://10.0.0.7:8080", Side::Stable);
/// let response = served.clone().oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(&*response.extensions().get::<ServedBy>().unwrap().upstream, "http://10.0.0.7:8080");
///
/// // Read only by an access log or DEBUG spans: with neither, no mark (and no allocation).
/// let quiet = served.read_by(false);
/// let response = quiet.oneshot(http::Request::new(())).await.unwrap();
/// assert!(response.extensions().get::<ServedBy>().is_none());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Served<S> {
    inner: S,
    by: ServedBy,
    /// Whether every response is marked, or only when DEBUG-level tracing is on.
    always: bool,
}

impl<S> Served<S> {
    /// Marks every response of `inner` as served by `upstream` on `side`.
    #[must_use]
    pub fn new(inner: S, upstream: impl Into<Arc<str>>, side: Side) -> Self {
        let upstream = upstream.into();
        Self {
            inner,
            by: ServedBy { upstream, side },
            always: true,
        }
    }

    /// Marks responses only when something reads the mark: an access log (`access_log`), or
    /// the front's request span, a DEBUG span, when tracing may record DEBUG (the global
    /// maximum level, one atomic load per request). Inserting the mark is the response's only
    /// extension in the gateway: three allocations a response saves when nothing reads it.
    #[must_use]
    pub fn read_by(mut self, access_log: bool) -> Self {
        self.always = access_log;
        self
    }
}

impl<S, B, RB> Service<Request<B>> for Served<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ServedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let read = self.always || tracing::level_enabled!(tracing::Level::DEBUG);
        ServedFuture {
            inner: self.inner.call(request),
            by: read.then(|| self.by.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Served`].
    #[derive(Debug)]
    pub struct ServedFuture<F> {
        #[pin]
        inner: F,
        by: Option<ServedBy>,
    }
}

impl<F, RB, E> Future for ServedFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(by)) = (&mut result, this.by.take()) {
            response.extensions_mut().insert(by);
        }
        Poll::Ready(result)
    }
}

/// What is known of a request when it arrives.
#[derive(Debug)]
pub(crate) struct Started {
    time: SystemTime,
    start: Instant,
    request_id: RequestId,
    client: Option<IpAddr>,
    method: Method,
    path: String,
}

impl Started {
    pub(crate) fn new<B>(request: &Request<B>, request_id: RequestId, start: Instant) -> Self {
        let client = request
            .extensions()
            .get::<fluxgate_core::key::PeerAddr>()
            .map(|peer| peer.0.ip());
        Self {
            time: SystemTime::now(),
            start,
            request_id,
            client,
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
        }
    }
}

/// The rate-limit outcome a response shows: its `RateLimit` fields say a limit applied.
pub(crate) fn rate_limit_outcome(status: StatusCode, headers: &HeaderMap) -> Option<&'static str> {
    if !headers.contains_key(fluxgate_ratelimit::RATELIMIT) {
        return None;
    }
    let grpc_exhausted = headers.get("grpc-status").is_some_and(|s| s == "8")
        && headers.contains_key(http::header::RETRY_AFTER);
    Some(
        if status == StatusCode::TOO_MANY_REQUESTS || grpc_exhausted {
            "refused"
        } else {
            "admitted"
        },
    )
}

/// A request whose response has been decided, waiting for the end of its body.
#[derive(Debug)]
pub(crate) struct Pending {
    started: Started,
    status: StatusCode,
    served: Option<ServedBy>,
    rate_limit: Option<&'static str>,
}

impl Pending {
    pub(crate) fn new<RB>(started: Started, response: &Response<RB>) -> Self {
        Self {
            started,
            status: response.status(),
            served: response.extensions().get::<ServedBy>().cloned(),
            rate_limit: rate_limit_outcome(response.status(), response.headers()),
        }
    }

    /// The JSON line.
    fn line(&self, completed: bool) -> String {
        let started = &self.started;
        let time = started
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |t| (t.as_millis() as f64) / 1000.0);
        let duration_ms = started.start.elapsed().as_secs_f64() * 1000.0;
        serde_json::json!({
            "time": time,
            "request_id": started.request_id.as_str(),
            "client": started.client.map(|ip| ip.to_string()),
            "method": started.method.as_str(),
            "path": started.path,
            "status": self.status.as_u16(),
            "upstream": self.served.as_ref().map(|s| &*s.upstream),
            "canary_side": self.served.as_ref().map(|s| s.side.to_string()),
            "rate_limit": self.rate_limit,
            "duration_ms": (duration_ms * 1000.0).round() / 1000.0,
            "completed": completed,
        })
        .to_string()
    }
}

/// What writes a request's line when its response body ends.
pub(crate) struct Logged {
    pending: Pending,
    sink: Sink,
}

impl Watcher for Logged {
    fn ended(self, end: End) {
        (self.sink)(&self.pending.line(end == End::Whole));
    }
}

impl fmt::Debug for Logged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logged")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// `body`, logged to `log` when it ends; `Err(body)` when the log is off.
pub(crate) fn logged<B: Body>(
    body: B,
    pending: Pending,
    log: &AccessLog,
) -> Result<Watched<B, Logged>, B> {
    match &log.sink {
        Some(sink) => Ok(Watched::new(
            body,
            Logged {
                pending,
                sink: Arc::clone(sink),
            },
        )),
        None => Err(body),
    }
}
