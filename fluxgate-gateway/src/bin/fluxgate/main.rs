//! `fluxgate`: the FluxGate gateway, a reverse proxy driven by `TrafficPolicy` documents.
//!
//! Run the self-contained demo with `fluxgate` (or `cargo run --release -p fluxgate-gateway`), or
//! point it at your own services:
//!
//! ```text
//! fluxgate --listen 127.0.0.1:8080 --admin 127.0.0.1:9090 \
//!     --policy policy.yaml --upstream http://10.0.0.1:3000,weight=3 --upstream http://10.0.0.2:3000 \
//!     --canary-upstream http://10.0.0.3:3000 [--redis redis://127.0.0.1:6379] [--admin-token T]
//! ```
//!
//! The request path (see `fluxgate_gateway::stack`) is
//! `server → Front → RateLimit → Canary(stable, canary) → RespondUnavailable(Balance) → Proxy → upstream`;
//! the admin API is `fluxgate::admin`; SIGTERM/SIGINT drain it (`fluxgate_gateway::lifecycle`).

mod cli;

/// The binary's allocator (the default `mimalloc` feature): the request path allocates about 20
/// times per request, and mimalloc's per-thread pages take fewer instructions for each than the C
/// library's malloc (`benches/e2e/PROFILE.md`, sixth round).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fluxgate_canary::fleet::RedisFleet;
use fluxgate_core::store::{RedisTls, redact_url};
use fluxgate_gateway::access_log::AccessLog;
use fluxgate_gateway::demo::{self, DemoKind, DemoUpstream};
use fluxgate_gateway::discovery::DnsDiscovery;
use fluxgate_gateway::lifecycle::{Lifecycle, shutdown_signal};
use fluxgate_gateway::policy::{BUNDLED_POLICY, GatewayPolicy};
use fluxgate_gateway::proxy::{ProxyClients, ProxyConfig};
use fluxgate_gateway::redis::{RedisClusterLink, RedisLink};
use fluxgate_gateway::server::{self, ServerConfig};
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::tls::TlsAcceptor;
use fluxgate_gateway::upstream::UpstreamSpec;
use fluxgate_ratelimit::store::RedisOptions;
use tracing_subscriber::EnvFilter;

use crate::cli::{AccessLogFormat, Args, flatten};

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr, so the banner on stdout stays readable.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> Result<(), Box<dyn Error>> {
    if args.print_policy {
        print!("{BUNDLED_POLICY}");
        return Ok(());
    }
    // Installed first: a SIGTERM while starting up ends the gateway once it has started.
    let stop = shutdown_signal()?;
    let (policy, _following_file) = match args.policy.take() {
        Some(path) => {
            let (policy, source) = GatewayPolicy::load(&path, args.namespace.as_deref())?;
            // Saves to the policy file are applied while traffic flows; an invalid save is refused.
            let following = source.spawn()?;
            tracing::info!(path = %path.display(), id = %policy.id(), "policy loaded");
            (policy, Some(following))
        }
        None => {
            let policy = GatewayPolicy::bundled(args.namespace.as_deref())?;
            tracing::info!(id = %policy.id(), "the bundled demo policy loaded");
            (policy, None)
        }
    };
    let id = policy.id().clone();

    // A private CA for rediss:// (both the policy source and the rate-limit store use it).
    let redis_ca = match &args.redis_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };

    // Without upstreams, run the demo ones; they stop when `_demos` is dropped.
    let mut upstreams = flatten(&args.upstreams);
    let mut canary_upstreams = flatten(&args.canary_upstreams);
    let demos = if upstreams.is_empty() {
        let [fast, slow, canary] = start_demos().await?;
        upstreams = vec![spec(&fast, 3)?, spec(&slow, 1)?];
        if canary_upstreams.is_empty() {
            canary_upstreams.push(spec(&canary, 1)?);
        }
        vec![fast, slow, canary]
    } else {
        Vec::new()
    };

    let proxy = ProxyConfig::default()
        .timeout(args.upstream_timeout)
        .preserve_host(args.preserve_host)
        .http1_pool(args.http1_pool);
    let upstream_ca = match &args.upstream_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };
    // One serving thread per core unless told otherwise (0: the multi-threaded runtime).
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
    let clients = ProxyClients::with_ca(upstream_ca.as_deref())
        .map_err(|e| format!("--upstream-ca: {e}"))?
        .workers(workers);
    // Upstreams named by DNS: resolved now (to start with their endpoints), then every interval.
    let discovery =
        DnsDiscovery::new().interval(Duration::try_from_secs_f64(args.resolve_interval)?);
    discovery
        .resolve_now(&[upstreams.as_slice(), &canary_upstreams].concat())
        .await;
    let access_log = match args.access_log {
        AccessLogFormat::Off => AccessLog::off(),
        AccessLogFormat::Json => AccessLog::json_stdout(),
    };
    let mut config = StackConfig::new(upstreams.clone())
        .canary_upstreams(canary_upstreams.clone())
        .proxy(proxy)
        .clients(clients)
        .discovery(discovery.clone())
        .access_log(access_log);
    // With Redis, its policies take over from the file's under the same namespace and name, and
    // replicas enforce one quota together; a Redis that does not answer yet is joined later.
    let redis = match &args.redis {
        Some(url) => {
            let namespace = args.namespace.as_deref().unwrap_or(id.namespace());
            let mut options = RedisOptions::new().replicas(args.replicas.max(1));
            let mut tls = RedisTls::new();
            if let Some(ca) = &redis_ca {
                options = options.tls_root_certificate(ca.clone());
                tls = tls.root_certificate(ca.clone());
            }
            let link = RedisLink::start(url, namespace, policy.store(), options, &tls).await?;
            tracing::info!(redis = %redact_url(url), namespace, min_replicas = args.replicas, "following policies and sharing rate limits in Redis (replicas counted by heartbeats)");
            config = config.rate_limit_store(link.rate_limit_store());
            Some(Arc::new(link))
        }
        None => None,
    };
    // With Redis, the replicas share one canary state, judged on the fleet's traffic.
    if let Some(url) = &args.redis {
        // Lazily: a gateway started while Redis is down joins the fleet when it answers.
        let fleet = RedisFleet::connect_lazy(url, redis_ca.clone())?;
        tracing::info!(redis = %redact_url(url), "canary state shared through Redis");
        config = config.canary_fleet(Arc::new(fleet));
    }
    // A Redis Cluster shares the rate limits and the canary state (no policies: see --help).
    let seeds: Vec<String> = (args.redis_cluster.iter())
        .flat_map(|list| list.0.iter().cloned())
        .collect();
    let cluster = if seeds.is_empty() {
        None
    } else {
        let seeds = &seeds;
        let mut options = RedisOptions::new().replicas(args.replicas.max(1));
        if let Some(ca) = &redis_ca {
            options = options.tls_root_certificate(ca.clone());
        }
        let link = RedisClusterLink::start(seeds, options).await?;
        config = config.rate_limit_store(link.rate_limit_store());
        let fleet = RedisFleet::connect_cluster(seeds).await?;
        config = config.canary_fleet(Arc::new(fleet));
        let seeds: Vec<_> = seeds.iter().map(|u| redact_url(u)).collect();
        tracing::info!(
            ?seeds,
            min_replicas = args.replicas,
            "sharing rate limits and canary state in a Redis Cluster"
        );
        Some(Arc::new(link))
    };
    let stack = Gateway::build(policy.store(), &id, &config)?;
    #[cfg(feature = "kube")]
    let _following_kube = if args.kube {
        let namespace = args.namespace.as_deref().unwrap_or(id.namespace());
        let store = policy.store();
        Some(
            fluxgate_gateway::kube::follow_gateway(&stack, &id, store, namespace, discovery)
                .await?,
        )
    } else {
        None
    };
    let lifecycle = Lifecycle::new();
    let mut server_config = ServerConfig::default();
    server_config.drain_timeout = args.grace_period;
    server_config.own_http1 = !args.hyper_http1;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        server_config.tls = Some(
            TlsAcceptor::from_files(cert, key).map_err(|e| format!("--tls-cert/--tls-key: {e}"))?,
        );
    }
    let service = lifecycle.track(stack.service());
    let gateway = if workers > 0 {
        let gateway = server::spawn_workers(args.listen, service, server_config, workers).await?;
        tracing::info!(
            workers,
            "serving: a thread per worker, each new connection to the worker with the fewest open"
        );
        gateway
    } else {
        let gateway = server::spawn(args.listen, service, server_config).await?;
        tracing::info!("serving on the multi-threaded runtime (--workers 0)");
        gateway
    };

    if args.admin_token.as_deref().is_none_or(str::is_empty) && !args.admin.ip().is_loopback() {
        tracing::warn!(
            admin = %args.admin,
            "the admin API listens beyond loopback without a token: anyone who reaches it can \
             change policies; set --admin-token or FLUXGATE_ADMIN_TOKEN"
        );
    }
    let mut admin_api = stack
        .admin(&id)
        .store(policy.store().clone())
        .token(args.admin_token.clone())
        .readiness(lifecycle.readiness(&stack, policy.store().clone(), id.clone()));
    if let Some(link) = redis.clone() {
        admin_api = admin_api.section("redis", move || link.status());
    }
    if let Some(link) = cluster {
        admin_api = admin_api.section("redis", move || link.status());
    }
    let admin_api = admin_api.build();
    let admin = server::spawn(args.admin, admin_api.router(), ServerConfig::default()).await?;
    #[cfg(unix)]
    let _hangups = log_hangups()?;
    lifecycle.listening();
    let sides = (&upstreams[..], &canary_upstreams[..]);
    print_banner(
        gateway.local_addr(),
        admin.local_addr(),
        &args,
        sides,
        &demos,
        &id,
    );

    let signal = stop.await;
    tracing::info!(signal, "shutting down");
    // The admin API stays up during the drain: `/readyz` says 503 there.
    lifecycle.drain(gateway, args.grace_period).await;
    admin.shutdown().await;
    drop(stack);
    Ok(())
}

/// Keeps SIGHUP (a closed terminal, a habit of operators) from ending the gateway: it is logged
/// and ignored, as the policy file is followed on every save already.
#[cfg(unix)]
fn log_hangups() -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!(
                "SIGHUP ignored: the policy file is followed on every save, nothing to reload"
            );
        }
    }))
}

/// Starts the fast, slow and canary demo upstreams on loopback ephemeral ports.
async fn start_demos() -> Result<[DemoUpstream; 3], Box<dyn Error>> {
    let loopback = "127.0.0.1:0".parse()?;
    let fast = demo::start(DemoKind::Fast, loopback).await?;
    let slow = demo::start(DemoKind::Slow, loopback).await?;
    let canary = demo::start(DemoKind::Canary, loopback).await?;
    Ok([fast, slow, canary])
}

/// The demo upstream as an upstream argument with `weight`.
fn spec(demo: &DemoUpstream, weight: u32) -> Result<UpstreamSpec, Box<dyn Error>> {
    Ok(format!("{},weight={weight}", demo.url()).parse()?)
}

/// Prints where the gateway listens and what to try: on stdout, or on stderr when stdout
/// carries the access log's JSON lines.
fn print_banner(
    listen: SocketAddr,
    admin: SocketAddr,
    args: &Args,
    upstreams_and_canary: (&[UpstreamSpec], &[UpstreamSpec]),
    demos: &[DemoUpstream],
    id: &fluxgate_core::store::PolicyId,
) {
    let mut out: Box<dyn Write> = match args.access_log {
        AccessLogFormat::Off => Box::new(std::io::stdout().lock()),
        AccessLogFormat::Json => Box::new(std::io::stderr().lock()),
    };
    // A closed stream is no reason to stop the gateway.
    let _ = banner(
        &mut out,
        listen,
        admin,
        args,
        upstreams_and_canary,
        demos,
        id,
    );
}

fn banner(
    out: &mut dyn Write,
    listen: SocketAddr,
    admin: SocketAddr,
    args: &Args,
    (upstreams, canary_upstreams): (&[UpstreamSpec], &[UpstreamSpec]),
    demos: &[DemoUpstream],
    id: &fluxgate_core::store::PolicyId,
) -> std::io::Result<()> {
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    writeln!(
        out,
        "FluxGate gateway, policy {id}\n  proxy    {scheme}://{listen}\n  admin    http://{admin}  (dashboard at /)"
    )?;
    for spec in upstreams {
        writeln!(out, "  stable   {} (weight {})", spec.upstream, spec.weight)?;
    }
    for spec in canary_upstreams {
        writeln!(out, "  canary   {} (weight {})", spec.upstream, spec.weight)?;
    }
    let auth = args.admin_token.as_ref().map_or(String::new(), |_| {
        " -H \"Authorization: Bearer $FLUXGATE_ADMIN_TOKEN\"".to_owned()
    });
    writeln!(out, "\nTry:")?;
    writeln!(
        out,
        "  curl -s 'http://{listen}/orders?id=42'                      # balanced 3:1 over fast and slow, ~10% to the canary"
    )?;
    writeln!(
        out,
        "  curl -s -H 'x-canary: true' http://{listen}/orders           # always the canary"
    )?;
    writeln!(
        out,
        "  curl -s http://{admin}/api/status                            # endpoints, canary, rate limits, policy"
    )?;
    writeln!(
        out,
        "  curl -s http://{admin}/metrics                               # Prometheus text"
    )?;
    writeln!(
        out,
        "Rate limit (the policy limits each X-Client-Id to 1200/s, burst 150):"
    )?;
    writeln!(
        out,
        "  seq 400 | xargs -P 16 -I{{}} curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'X-Client-Id: alice' http://{listen}/ | sort | uniq -c"
    )?;
    writeln!(
        out,
        "  # lower it for everyone, through the admin API (fluxctl apply --gateway does the same):"
    )?;
    let exe = std::env::current_exe()
        .map_or_else(|_| "fluxgate".to_owned(), |path| path.display().to_string());
    writeln!(
        out,
        "  {exe} --print-policy | sed 's/requestsPerSecond: 1200/requestsPerSecond: 5/; s/burstSize: 150/burstSize: 5/' \\\n    | curl -s -X PUT{auth} --data-binary @- 'http://{admin}/api/policies?namespace={}'",
        id.namespace()
    )?;
    if let Some(canary) = demos.iter().find(|d| d.kind() == DemoKind::Canary) {
        writeln!(out, "Canary rollback:")?;
        writeln!(
            out,
            "  curl -s -X POST '{}/admin/fail?rate=0.5'                    # the canary fails half its requests",
            canary.url()
        )?;
        // One client id per request: a lowered rate limit (above) does not refuse them.
        writeln!(
            out,
            "  seq 600 | xargs -P 8 -I{{}} curl -s -o /dev/null -H 'X-Client-Id: user-{{}}' http://{listen}/orders"
        )?;
        writeln!(
            out,
            "  curl -s http://{admin}/api/status | grep -A3 '\"phase\"'      # rolledBack, with the reason (errorBudget)"
        )?;
        writeln!(
            out,
            "  curl -s -X POST{auth} http://{admin}/api/canary/abort          # or promote, pause, resume"
        )?;
    }
    writeln!(
        out,
        "Ctrl-C or SIGTERM stops it gracefully (grace period {:?}).",
        args.grace_period
    )?;
    Ok(())
}
