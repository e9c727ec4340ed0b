//! The open-loop load: requests leave on a fixed schedule whatever the answers, and each outcome
//! is counted in the second its request was sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, sleep_until, timeout};

/// The HTTP client of the load and of the status poller.
pub(crate) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A keep-alive HTTP/1.1 client with TCP_NODELAY.
pub(crate) fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response with this status, body read to its end.
    Status(StatusCode),
    /// No connection to the gateway (refused, unreachable).
    Connect,
    /// Sending or reading failed on an open connection (a reset, a truncated body).
    Transport,
    /// No complete response within the request timeout.
    TimedOut,
}

impl Outcome {
    /// Whether a client would call this an error (429s are the limiter's answer, not errors).
    pub(crate) fn is_error(self) -> bool {
        match self {
            Self::Status(status) => !status.is_success() && status != StatusCode::TOO_MANY_REQUESTS,
            Self::Connect | Self::Transport | Self::TimedOut => true,
        }
    }

    /// A short name for the report: the status code, `connect`, `io` or `timeout`.
    pub(crate) fn name(self) -> String {
        match self {
            Self::Status(status) => status.as_u16().to_string(),
            Self::Connect => "connect".to_owned(),
            Self::Transport => "io".to_owned(),
            Self::TimedOut => "timeout".to_owned(),
        }
    }
}

/// The counts of one second of load.
#[derive(Debug, Default)]
pub(crate) struct Second {
    /// Requests sent.
    pub(crate) sent: AtomicU64,
    /// Requests not sent because `max_in_flight` were already waiting.
    pub(crate) skipped: AtomicU64,
    /// The most requests waiting at once when one was sent.
    pub(crate) peak_in_flight: AtomicU64,
    /// Outcomes: by status, transport errors and timeouts; which upstream answered; latencies.
    pub(crate) detail: Mutex<Detail>,
}

/// The outcomes of one second.
#[derive(Debug, Default)]
pub(crate) struct Detail {
    /// Count per outcome.
    pub(crate) outcomes: BTreeMap<OutcomeKey, u64>,
    /// Count per `x-served-by` value of successful responses.
    pub(crate) served_by: BTreeMap<String, u64>,
    /// Latency of every answered request, in microseconds.
    pub(crate) latencies_us: Vec<u32>,
}

/// An [`Outcome`] as an ordered map key: the status code, or [`IO`], [`TIMEOUT`], [`CONNECT`].
pub(crate) type OutcomeKey = u16;
/// The key of [`Outcome::Transport`].
pub(crate) const IO: OutcomeKey = 0;
/// The key of [`Outcome::TimedOut`].
pub(crate) const TIMEOUT: OutcomeKey = 1;
/// The key of [`Outcome::Connect`].
pub(crate) const CONNECT: OutcomeKey = 2;

fn key(outcome: Outcome) -> OutcomeKey {
    match outcome {
        Outcome::Status(status) => status.as_u16(),
        Outcome::Transport => IO,
        Outcome::TimedOut => TIMEOUT,
        Outcome::Connect => CONNECT,
    }
}

/// An error seen by a client, with the time its request was sent (seconds since the start).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientError {
    /// When the request left, in seconds since the start of the soak.
    pub(crate) sent_at: f64,
    /// What came back.
    pub(crate) outcome: Outcome,
}

/// The counters the request tasks of one stream to one gateway replica write to.
#[derive(Debug)]
pub(crate) struct Tally {
    /// The index of the stream (0: the ordinary keys, 1: the greedy key).
    pub(crate) stream: usize,
    /// The index of the gateway replica.
    pub(crate) replica: usize,
    /// One entry per second of the soak.
    pub(crate) seconds: Vec<Second>,
    /// Every client error, in completion order.
    pub(crate) errors: Mutex<Vec<ClientError>>,
    /// How many connect and I/O failures gave each message (the error and its sources).
    pub(crate) messages: Mutex<BTreeMap<String, u64>>,
    in_flight: AtomicUsize,
}

impl Tally {
    /// Counters of `stream` to `replica` for a soak of `seconds` seconds.
    pub(crate) fn new(seconds: usize, stream: usize, replica: usize) -> Self {
        Self {
            stream,
            replica,
            seconds: (0..seconds).map(|_| Second::default()).collect(),
            errors: Mutex::new(Vec::new()),
            messages: Mutex::new(BTreeMap::new()),
            in_flight: AtomicUsize::new(0),
        }
    }
}

/// One stream of requests: `rate` per second, with `X-Client-Id` taken round robin from `keys`.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    /// Requests per second.
    pub(crate) rate: f64,
    /// The client keys, used in turn.
    pub(crate) keys: Vec<String>,
}

/// How the load runs.
#[derive(Debug, Clone)]
pub(crate) struct LoadConfig {
    /// Where requests go: the gateway replicas, in turn (keep-alive connections to each).
    pub(crate) urls: Vec<Uri>,
    /// Time a request has to complete (headers and body).
    pub(crate) timeout: Duration,
    /// Requests waiting at once above which new ones are skipped (and counted as such).
    pub(crate) max_in_flight: usize,
}

/// Sends `stream` from `start` until `start + duration`, counting into `tallies` (one per
/// replica) when given (the warm-up counts nothing). Request `n` goes to replica `n % replicas`
/// with key `(n / replicas) % keys`, so that every key reaches every replica. Returns when the
/// last request has been sent.
pub(crate) async fn run(
    client: &HttpClient,
    config: &LoadConfig,
    stream: &Stream,
    start: Instant,
    duration: Duration,
    tallies: Option<&[Arc<Tally>]>,
) {
    let replicas = config.urls.len().max(1);
    let period = Duration::from_secs_f64(1.0 / stream.rate);
    let end = start + duration;
    for n in 0u64.. {
        // A schedule computed from `start`, so the rate holds when a wake-up comes late.
        let due = start + period.mul_f64(n as f64);
        if due >= end {
            break;
        }
        sleep_until(due).await;
        let second = (due - start).as_secs() as usize;
        let replica = n as usize % replicas;
        let tally = tallies.and_then(|t| t.get(replica));
        let cell = tally.and_then(|t| t.seconds.get(second).map(|s| (t, s)));
        if let Some((tally, counts)) = cell {
            if tally.in_flight.load(Ordering::Relaxed) >= config.max_in_flight {
                counts.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            counts.sent.fetch_add(1, Ordering::Relaxed);
        }
        let key = &stream.keys[(n as usize / replicas) % stream.keys.len()];
        let request = Request::get(config.urls[replica].clone())
            .header("x-client-id", key.as_str())
            .body(Empty::new())
            .expect("a GET of a valid URI with a valid header");
        let client = client.clone();
        let limit = config.timeout;
        let tally = tally.cloned();
        let sent_at = (due - start).as_secs_f64();
        if let Some((tally, counts)) = cell {
            let waiting = tally.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            counts
                .peak_in_flight
                .fetch_max(waiting as u64, Ordering::Relaxed);
        }
        tokio::spawn(async move {
            let began = Instant::now();
            let (outcome, served_by) = match timeout(limit, send(&client, request)).await {
                Ok(Ok((status, served_by))) => (Outcome::Status(status), served_by),
                Ok(Err((outcome, message))) => {
                    if let Some(tally) = &tally {
                        let mut messages = tally.messages.lock().expect("not poisoned");
                        *messages.entry(message).or_default() += 1;
                    }
                    (outcome, None)
                }
                Err(_) => (Outcome::TimedOut, None),
            };
            let Some(tally) = tally else { return };
            tally.in_flight.fetch_sub(1, Ordering::Relaxed);
            record(&tally, second, sent_at, outcome, served_by, began.elapsed());
        });
    }
}

/// An error and its sources, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One request: its status and `x-served-by`, once the whole body has arrived; or how it failed
/// ([`Outcome::Connect`] or [`Outcome::Transport`], and the error's message).
async fn send(
    client: &HttpClient,
    request: Request<Empty<Bytes>>,
) -> Result<(StatusCode, Option<String>), (Outcome, String)> {
    let response = client.request(request).await.map_err(|e| {
        let outcome = if e.is_connect() {
            Outcome::Connect
        } else {
            Outcome::Transport
        };
        (outcome, chain(&e))
    })?;
    let status = response.status();
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    response.into_body().collect().await.map_err(|e| {
        (
            Outcome::Transport,
            format!("reading the body: {}", chain(&e)),
        )
    })?;
    Ok((status, served_by))
}

fn record(
    tally: &Tally,
    second: usize,
    sent_at: f64,
    outcome: Outcome,
    served_by: Option<String>,
    latency: Duration,
) {
    if outcome.is_error() {
        let error = ClientError { sent_at, outcome };
        tally.errors.lock().expect("not poisoned").push(error);
    }
    let Some(counts) = tally.seconds.get(second) else {
        return;
    };
    let mut detail = counts.detail.lock().expect("not poisoned");
    *detail.outcomes.entry(key(outcome)).or_default() += 1;
    if let (Some(name), true) = (
        served_by,
        matches!(outcome, Outcome::Status(s) if s.is_success()),
    ) {
        *detail.served_by.entry(name).or_default() += 1;
    }
    if outcome != Outcome::TimedOut {
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        detail.latencies_us.push(micros);
    }
}
