//! How long a fleet takes to stop routing to a failing canary, and to follow an abort.
//!
//! `cargo bench -p fluxgate-canary --bench fleet_rollback`: three replicas (in-process routers,
//! each with its own Redis client and judge) on a `redis-server` started here; 20 runs of each:
//!
//! - **rollback**: from the moment the fleet holds `minRequests` failing canary answers (none of
//!   the replicas alone does) to the moment no replica routes to the canary;
//! - **abort**: from an abort through one replica's handle to the moment no replica routes to
//!   the canary.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fluxgate_canary::fleet::{Fleet, RedisFleet};
use fluxgate_canary::{Canary, Phase};
use fluxgate_core::policy::{CompiledPolicy, parse_policies};
use fluxgate_core::store::PolicyId;
use fluxgate_test_support::RedisServer;
use tokio::time::Instant;
use tower::{ServiceExt, service_fn};

const RUNS: usize = 20;

type Router = Canary<Svc, Svc>;
type Svc = tower::util::ServiceFn<
    fn(http::Request<()>) -> std::future::Ready<Result<http::Response<()>, std::io::Error>>,
>;

fn ok(_: http::Request<()>) -> std::future::Ready<Result<http::Response<()>, std::io::Error>> {
    std::future::ready(Ok(http::Response::new(())))
}

fn failing(_: http::Request<()>) -> std::future::Ready<Result<http::Response<()>, std::io::Error>> {
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    std::future::ready(Ok(response))
}

async fn fleet(url: &str, run: usize) -> Vec<Router> {
    let yaml = format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: web{run}, namespace: bench}}\n\
         spec:\n  canary: {{weight: 50, interval: 10s, minRequests: 30, errorBudget: 0.9}}\n"
    );
    let compiled = CompiledPolicy::compile(&parse_policies(yaml.as_bytes()).unwrap()[0]).unwrap();
    let mut routers = Vec::new();
    for name in ["a", "b", "c"] {
        let store = RedisFleet::connect(url).await.unwrap();
        let fleet = Fleet::new(store, PolicyId::new("bench", format!("web{run}"))).replica(name);
        let (router, judge) = Canary::builder(
            service_fn(ok as fn(_) -> _),
            service_fn(failing as fn(_) -> _),
            compiled.canary().unwrap(),
        )
        .fleet(fleet)
        .build()
        .unwrap();
        judge.spawn().detach();
        routers.push(router);
    }
    while !routers
        .iter()
        .all(|r| r.handle().snapshot().fleet.is_some_and(|f| f.joined))
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    routers
}

async fn until_rolled_back(routers: &[Router]) -> Duration {
    let start = Instant::now();
    while !routers
        .iter()
        .all(|r| r.handle().snapshot().phase == Phase::RolledBack)
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: p50 {:?}, p99 {:?}, max {:?} over {} runs",
        at(0.5),
        at(0.99),
        times[times.len() - 1],
        times.len()
    );
}

fn main() {
    let server = RedisServer::start().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut rollback = Vec::new();
        let mut abort = Vec::new();
        for run in 0..RUNS {
            let routers = fleet(&server.url(), run).await;
            // Until the fleet holds minRequests (30) failing canary answers.
            let mut canary = 0;
            'send: loop {
                for router in &routers {
                    let response = router
                        .clone()
                        .oneshot(http::Request::new(()))
                        .await
                        .unwrap();
                    canary += usize::from(response.status().is_server_error());
                    if canary >= 30 {
                        break 'send;
                    }
                }
            }
            rollback.push(until_rolled_back(&routers).await);

            let routers = fleet(&server.url(), RUNS + run).await;
            routers[run % 3].handle().abort().unwrap();
            abort.push(until_rolled_back(&routers).await);
        }
        report("fleet rollback after minRequests failing samples", rollback);
        report("fleet abort through one replica", abort);
    });
}
