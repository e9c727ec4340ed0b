//! Draining at real traffic, through the gateway: real hyper upstreams that slow down, fail,
//! hang or die, and keep-alive clients (one connection each) sending all the time. The policy
//! is the seed's (`policies/checkout-service-policy.yaml`) as written, unless a test says.
//!
//! No assertion of speed: shares and error counts are judged over bounded runs.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fluxgate_balance::{DrainReason, EndpointSnapshot};
use fluxgate_core::store::PolicyStore;
use fluxgate_gateway::proxy::ProxyConfig;
use fluxgate_gateway::server::ServerHandle;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::upstream::UpstreamSpec;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

use support::{client, full, serve};

const SEED: &str = include_str!("../policies/checkout-service-policy.yaml");

/// The seed's policy with `extra` added under `spec.loadBalancing` (two-space indented lines).
fn seed_with(extra: &str) -> String {
    SEED.replace(
        "      unhealthyThreshold: 3\n",
        &format!("      unhealthyThreshold: 3\n{extra}"),
    )
}

/// What an upstream does with real traffic; `/healthz` always answers 200 at once.
#[derive(Default)]
struct Control {
    delay_ms: AtomicU64,
    failing: AtomicBool,
    hanging: AtomicBool,
    served: AtomicU64,
}

/// A real HTTP/1.1 upstream on loopback that can be slowed, failed, hung or killed (every
/// connection closed at once, the port refusing).
struct Upstream {
    name: &'static str,
    addr: SocketAddr,
    control: Arc<Control>,
    tasks: JoinSet<()>,
}

/// Upstreams named and delayed as `specs` says.
async fn upstreams(specs: &[(&'static str, u64)]) -> Vec<Upstream> {
    let mut all = Vec::new();
    for &(name, delay_ms) in specs {
        all.push(Upstream::start(name, delay_ms).await);
    }
    all
}

impl Upstream {
    async fn start(name: &'static str, delay_ms: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(Control::default());
        control.delay_ms.store(delay_ms, Ordering::Relaxed);
        let mut tasks = JoinSet::new();
        let ctl = Arc::clone(&control);
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let ctl = Arc::clone(&ctl);
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    answer(name, Arc::clone(&ctl), request)
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            name,
            addr,
            control,
            tasks,
        }
    }

    fn spec(&self) -> UpstreamSpec {
        format!("http://{}", self.addr).parse().unwrap()
    }

    fn key(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the server: the listener and every connection are dropped at once.
    fn kill(&mut self) {
        self.tasks.abort_all();
    }
}

async fn answer(
    name: &'static str,
    ctl: Arc<Control>,
    request: Request<Incoming>,
) -> Result<Response<fluxgate_gateway::proxy::ProxyBody>, Infallible> {
    if request.uri().path() != "/healthz" {
        ctl.served.fetch_add(1, Ordering::Relaxed);
        if ctl.hanging.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        let delay = ctl.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if ctl.failing.load(Ordering::Relaxed) {
            let mut response = Response::new(full("failing"));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(response);
        }
    }
    let mut response = Response::new(full(name));
    response
        .headers_mut()
        .insert("x-upstream", name.parse().unwrap());
    Ok(response)
}

/// The gateway over `upstreams` with `policy`, serving on loopback.
struct Gw {
    gateway: Gateway,
    server: ServerHandle,
}

impl Gw {
    /// A gateway on its own HTTP/1.1 pool, as `StackConfig::new` and the `fluxgate` binary
    /// make it.
    async fn start(policy: &str, upstreams: &[Upstream], timeout: Duration) -> Self {
        let proxy = ProxyConfig::default().timeout(timeout).http1_pool(true);
        Self::start_with(policy, upstreams, proxy).await
    }

    async fn start_with(policy: &str, upstreams: &[Upstream], proxy: ProxyConfig) -> Self {
        let store = PolicyStore::new();
        let report = store.apply_bytes(policy.as_bytes(), None).unwrap();
        let id = report.changes[0].id().clone();
        let config = StackConfig::new(upstreams.iter().map(Upstream::spec).collect()).proxy(proxy);
        let gateway = Gateway::build(&store, &id, &config).unwrap();
        let server = serve(gateway.service()).await;
        Self { gateway, server }
    }

    fn snapshot(&self, upstream: &Upstream) -> EndpointSnapshot<String> {
        let key = upstream.key();
        self.gateway
            .stable()
            .snapshot()
            .into_iter()
            .find(|s| s.key == key)
            .unwrap()
    }

    fn drained(&self) -> usize {
        let snapshot = self.gateway.stable().snapshot();
        snapshot.iter().filter(|s| s.drained.is_some()).count()
    }
}

/// One finished request: when it was sent (from the start of the run), its status and the
/// upstream that answered (`x-upstream`).
#[derive(Debug, Clone)]
struct Sample {
    sent: Duration,
    status: u16,
    /// The upstream that answered, or the body of an answer other than 200.
    upstream: Option<String>,
}

/// `clients` keep-alive clients (one connection each, their own client id) sending `GET /`
/// one after the other for `run`.
async fn load(gw: &Gw, clients: usize, run: Duration) -> Vec<Sample> {
    let url = format!("http://{}/checkout", gw.server.local_addr());
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for id in 0..clients {
        let url = url.clone();
        tasks.spawn(async move {
            let client = client();
            let mut samples = Vec::new();
            while start.elapsed() < run {
                let sent = start.elapsed();
                let request = Request::get(&url)
                    .header("x-client-id", format!("client-{id}"))
                    .body(full(""))
                    .unwrap();
                let answer = tokio::time::timeout(Duration::from_secs(20), client.request(request));
                let (status, upstream) = match answer.await {
                    Ok(Ok(response)) => {
                        let upstream = response
                            .headers()
                            .get("x-upstream")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let status = response.status().as_u16();
                        let body = http_body_util::BodyExt::collect(response.into_body()).await;
                        let upstream = if status == 200 {
                            upstream
                        } else {
                            body.ok()
                                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                        };
                        (status, upstream)
                    }
                    _ => (0, None),
                };
                samples.push(Sample {
                    sent,
                    status,
                    upstream,
                });
            }
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(samples) = tasks.join_next().await {
        all.extend(samples.unwrap());
    }
    all
}

/// Of the samples sent from `from` on: how many, and how many answered by `name`.
fn share(samples: &[Sample], from: Duration, name: &str) -> (usize, usize) {
    let late: Vec<_> = samples.iter().filter(|s| s.sent >= from).collect();
    let on = late
        .iter()
        .filter(|s| s.upstream.as_deref() == Some(name))
        .count();
    (late.len(), on)
}

fn failed(samples: &[Sample], from: Duration) -> (usize, usize) {
    let late: Vec<_> = samples.iter().filter(|s| s.sent >= from).collect();
    let bad = late.iter().filter(|s| s.status != 200).count();
    (late.len(), bad)
}

/// The most endpoints drained at once, looking every 100ms `ticks` times.
async fn most_drained(gw: &Gw, ticks: usize) -> usize {
    let mut most = 0;
    for _ in 0..ticks {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most = most.max(gw.drained());
    }
    most
}

const TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_policy_drains_a_slow_node_below_a_tenth_within_two_seconds() {
    let ups = upstreams(&[("a", 5), ("b", 5), ("slow", 600)]).await;
    let slow = &ups[2];
    let gw = Gw::start(SEED, &ups, TIMEOUT).await;
    let samples = load(&gw, 8, Duration::from_secs(4)).await;
    let (total, on_slow) = share(&samples, Duration::from_secs(2), "slow");
    assert!(total > 50, "{total} requests after 2s");
    assert!(
        on_slow * 10 < total,
        "slow node: {on_slow} of {total} after 2s"
    );
    assert!(matches!(
        gw.snapshot(slow).drained,
        Some(DrainReason::Latency(_))
    ));
    let (all, bad) = failed(&samples, Duration::ZERO);
    assert_eq!(bad, 0, "{bad} of {all} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_node_whose_health_check_passes_is_drained_and_stays_out() {
    let ups = upstreams(&[("a", 5), ("b", 5), ("bad", 5)]).await;
    let bad = &ups[2];
    bad.control.failing.store(true, Ordering::Relaxed);
    let gw = Gw::start(SEED, &ups, TIMEOUT).await;
    let samples = load(&gw, 8, Duration::from_secs(3)).await;
    let (total, failures) = failed(&samples, Duration::from_secs(1));
    assert!(total > 50, "{total} requests after 1s");
    assert!(
        failures * 50 <= total,
        "{failures} of {total} failed after 1s"
    );
    let snapshot = gw.snapshot(bad);
    assert!(
        matches!(
            snapshot.drained,
            Some(DrainReason::ConsecutiveFailures(_) | DrainReason::ErrorRate(_))
        ),
        "{snapshot:?}"
    );
    assert_eq!(snapshot.health, fluxgate_balance::Health::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovering_node_returns_after_its_ejection_time_and_a_trial_not_on_its_health_check() {
    let ups = upstreams(&[("a", 5), ("b", 5), ("bad", 5)]).await;
    let bad = &ups[2];
    bad.control.failing.store(true, Ordering::Relaxed);
    let policy = seed_with("    outlierDetection:\n      baseEjectionTime: 1s\n");
    let gw = Gw::start(&policy, &ups, TIMEOUT).await;
    // Failing for 3s while /healthz passes every 200ms: it only ever gets trial requests.
    load(&gw, 4, Duration::from_secs(1)).await;
    assert!(gw.snapshot(bad).drained.is_some());
    let before = bad.control.served.load(Ordering::Relaxed);
    load(&gw, 4, Duration::from_secs(2)).await;
    let trials = bad.control.served.load(Ordering::Relaxed) - before;
    assert!(trials <= 3, "{trials} requests reached the failing node");
    assert!(gw.snapshot(bad).drained.is_some());
    // Healed: back after at most its (doubled, tripled) ejection time and one trial.
    bad.control.failing.store(false, Ordering::Relaxed);
    let samples = load(&gw, 4, Duration::from_secs(5)).await;
    let (_, on_bad) = share(&samples, Duration::from_secs(4), "bad");
    assert!(on_bad > 0, "the healed node never came back");
    assert!(gw.snapshot(bad).drained.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ejection_percent_caps_the_drained_nodes() {
    let ups = upstreams(&[("a", 5), ("b", 5), ("c", 5)]).await;
    ups[1].control.failing.store(true, Ordering::Relaxed);
    ups[2].control.failing.store(true, Ordering::Relaxed);
    let gw = Gw::start(SEED, &ups, TIMEOUT).await;
    let (_, most) = tokio::join!(load(&gw, 4, Duration::from_secs(2)), most_drained(&gw, 20));
    // maxEjectionPercent 50 of 3 endpoints: one at most.
    assert_eq!(most, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_slowing_down_together_is_not_drained() {
    let ups = upstreams(&[("a", 600), ("b", 600), ("c", 600)]).await;
    let gw = Gw::start(SEED, &ups, TIMEOUT).await;
    let (samples, most) = tokio::join!(load(&gw, 8, Duration::from_secs(4)), most_drained(&gw, 40));
    assert_eq!(most, 0, "{:?}", gw.gateway.stable().snapshot());
    for name in ["a", "b", "c"] {
        assert!(
            share(&samples, Duration::from_secs(2), name).1 > 0,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_node_is_drained_before_its_first_request_times_out() {
    let ups = upstreams(&[("a", 5), ("b", 5), ("hang", 5)]).await;
    let hang = &ups[2];
    let timeout = Duration::from_secs(3);
    let gw = Gw::start(SEED, &ups, timeout).await;
    let drained_at = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        hang.control.hanging.store(true, Ordering::Relaxed);
        let hung = Instant::now();
        while gw.snapshot(hang).drained.is_none() && hung.elapsed() < timeout * 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        hung.elapsed()
    };
    let (samples, drained_after) = tokio::join!(load(&gw, 8, Duration::from_secs(5)), drained_at);
    assert!(
        drained_after < timeout,
        "drained {drained_after:?} after hanging"
    );
    assert!(matches!(
        gw.snapshot(hang).drained,
        Some(DrainReason::Latency(_))
    ));
    // Every client got stuck on it (504 after the timeout); requests sent after the drain go to
    // the other two.
    let (total, on_hang) = share(&samples, Duration::from_millis(500) + drained_after, "hang");
    assert!(total > 0 && on_hang == 0, "{on_hang} of {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_two_upstreams_costs_no_get() {
    let ups = upstreams(&[("a", 5), ("b", 5)]).await;
    let gw = Gw::start(SEED, &ups, TIMEOUT).await;
    kill_one_of_two(ups, &gw).await;
}

/// The same on hyper-util's pooled client (`ProxyConfig::default()` leaves the own HTTP/1.1
/// pool off; `--http1-pool false` in the binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_two_upstreams_costs_no_get_on_hypers_client() {
    let ups = upstreams(&[("a", 5), ("b", 5)]).await;
    let proxy = ProxyConfig::default().timeout(TIMEOUT);
    let gw = Gw::start_with(SEED, &ups, proxy).await;
    kill_one_of_two(ups, &gw).await;
}

/// Loads `gw` for 2 s with `b` killed at 700 ms: every GET gets a 200 (retried on `a` when `b`
/// fails under it), and `a` keeps answering.
async fn kill_one_of_two(mut ups: Vec<Upstream>, gw: &Gw) {
    let kill = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        ups[1].kill();
    };
    let (samples, ()) = tokio::join!(load(gw, 8, Duration::from_secs(2)), kill);
    let (total, bad) = failed(&samples, Duration::ZERO);
    let statuses: Vec<_> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(total > 100, "{total}");
    assert_eq!(bad, 0, "{statuses:?}");
    assert!(share(&samples, Duration::from_millis(1_200), "a").1 > 0);
    assert_eq!(ups[1].name, "b");
}
