//! What the soak watches besides the clients' outcomes: each gateway process (RSS, open file
//! descriptors and its TCP connections, threads, from `/proc`) and each admin API's
//! `/api/status`.

use std::collections::HashSet;
use std::time::Duration;

use http::Uri;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use crate::load::HttpClient;

/// One reading of the gateway process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcSample {
    /// Seconds since the start of the soak.
    pub(crate) at: f64,
    /// Resident set size, in kB (`VmRSS`).
    pub(crate) rss_kb: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub(crate) fds: u64,
    /// Threads.
    pub(crate) threads: u64,
    /// Open connections accepted on the proxy port (from clients).
    pub(crate) client_conns: u64,
    /// Other open connections the process started (to upstreams, health checks included).
    pub(crate) upstream_conns: u64,
}

/// Reads the process `pid` now, `proxy_port` being the port it accepts clients on; `None` once
/// it is gone.
pub(crate) fn sample(pid: u32, proxy_port: u16, at: f64) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
    };
    let mut fds = 0;
    let mut sockets = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        fds += 1;
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            sockets.insert(inode.to_owned());
        }
    }
    let (client_conns, upstream_conns) = connections(pid, proxy_port, &sockets);
    Some(ProcSample {
        at,
        rss_kb: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
        client_conns,
        upstream_conns,
    })
}

/// Counts the established TCP connections among `sockets` (inodes): those accepted on
/// `proxy_port`, and those the process started (their local port is not one it listens on).
fn connections(pid: u32, proxy_port: u16, sockets: &HashSet<String>) -> (u64, u64) {
    const ESTABLISHED: &str = "01";
    const LISTEN: &str = "0A";
    let port = |address: &str| {
        let hex = address.rsplit(':').next().unwrap_or_default();
        u16::from_str_radix(hex, 16).unwrap_or(0)
    };
    let (mut listening, mut established) = (HashSet::new(), Vec::new());
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, local, _, state, _, _, _, _, _, inode, ..] = fields[..] else {
                continue;
            };
            if !sockets.contains(inode) {
                continue;
            }
            match state {
                LISTEN => {
                    listening.insert(port(local));
                }
                ESTABLISHED => established.push(port(local)),
                _ => {}
            }
        }
    }
    let clients = established.iter().filter(|&&p| p == proxy_port).count();
    let started = established
        .iter()
        .filter(|p| !listening.contains(*p))
        .count();
    (clients as u64, started as u64)
}

/// Samples every `(pid, proxy port)` of `gateways` every second from `start` until `end`: one
/// list of samples per gateway.
pub(crate) async fn sample_every_second(
    gateways: Vec<(u32, u16)>,
    start: Instant,
    end: Instant,
) -> Vec<Vec<ProcSample>> {
    let mut ticks = interval_at(start, Duration::from_secs(1));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut samples = vec![Vec::new(); gateways.len()];
    loop {
        let now = ticks.tick().await;
        if now > end {
            return samples;
        }
        let at = (now - start).as_secs_f64();
        for (list, &(pid, port)) in samples.iter_mut().zip(&gateways) {
            list.extend(sample(pid, port, at));
        }
    }
}

/// One endpoint of one balancer, as `/api/status` showed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EndpointState {
    /// `stable` or `canary`.
    pub(crate) side: String,
    /// The endpoint's key (its URL).
    pub(crate) endpoint: String,
    /// Health from active checks.
    pub(crate) healthy: bool,
    /// Why it is drained (`healthCheck`, `errorRate`, `consecutiveFailures`...), if it is.
    pub(crate) drained: Option<String>,
}

/// One reading of `/api/status`.
#[derive(Debug, Clone)]
pub(crate) struct StatusPoint {
    /// The poll it was taken in (the replicas are read together, once per poll).
    pub(crate) tick: u64,
    /// Seconds since the start of the soak.
    pub(crate) at: f64,
    /// How the replica sees the canary: `fleet` (shared state), `localOnly`, `local`.
    pub(crate) view: String,
    /// Whether this replica holds the fleet's lease (judges the canary).
    pub(crate) leader: bool,
    /// The canary's phase (`progressing`, `promoted`, `rolledBack`...).
    pub(crate) phase: String,
    /// The canary's weight in percent.
    pub(crate) weight: u64,
    /// The canary's last decision (`started`, `advanced`, `promoted`...).
    pub(crate) decision: String,
    /// Every balancer's endpoints.
    pub(crate) endpoints: Vec<EndpointState>,
}

/// Reads every `/api/status` of `urls` (together) every `every` from `start` until `end`: one
/// list of readings per URL; failed reads are skipped.
pub(crate) async fn poll_status(
    client: HttpClient,
    urls: Vec<Uri>,
    every: Duration,
    start: Instant,
    end: Instant,
) -> Vec<Vec<StatusPoint>> {
    let mut ticks = interval_at(start, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut points = vec![Vec::new(); urls.len()];
    for tick in 0u64.. {
        let now = ticks.tick().await;
        if now > end {
            break;
        }
        let at = (now - start).as_secs_f64();
        let reads = futures::future::join_all(urls.iter().map(|url| fetch(&client, url))).await;
        for (list, status) in points.iter_mut().zip(reads) {
            list.extend(status.and_then(|s| parse(&s, tick, at)));
        }
    }
    points
}

async fn fetch(client: &HttpClient, url: &Uri) -> Option<Value> {
    let response = client.get(url.clone()).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

/// The canary (the first one) and the endpoints of a status document.
fn parse(status: &Value, tick: u64, at: f64) -> Option<StatusPoint> {
    let canary = status["canaries"].as_object()?.values().next()?;
    let mut endpoints = Vec::new();
    for (side, list) in status["balancers"].as_object()? {
        for endpoint in list.as_array()? {
            endpoints.push(EndpointState {
                side: side.clone(),
                endpoint: endpoint["endpoint"].as_str()?.to_owned(),
                healthy: endpoint["healthy"].as_bool()?,
                drained: endpoint["drained"].as_str().map(str::to_owned),
            });
        }
    }
    Some(StatusPoint {
        tick,
        at,
        view: canary["view"].as_str().unwrap_or("?").to_owned(),
        leader: canary["fleet"]["leader"].as_bool().unwrap_or(false),
        phase: canary["phase"].as_str()?.to_owned(),
        weight: canary["weight"].as_u64()?,
        decision: canary["lastDecision"]["kind"]
            .as_str()
            .unwrap_or("none")
            .to_owned(),
        endpoints,
    })
}
