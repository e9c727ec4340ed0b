//! The FluxGate gateway example: a reverse proxy driven by a `TrafficPolicy` file.
//!
//! Run the self-contained demo with `cargo run --release --example gateway`, or point it at your
//! own services:
//!
//! ```text
//! cargo run --release --example gateway -- --listen 127.0.0.1:8080 --admin 127.0.0.1:9090 \
//!     --policy policy.yaml --upstream http://10.0.0.1:3000,weight=3 --upstream http://10.0.0.2:3000
//! ```
//!
//! The request path today is `server → WeightedRotation → Proxy → upstream`; rate limiting,
//! canary routing and balancing from the policy come as FluxGate's layers land.

mod cli;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fluxgate_examples::admin::{AdminService, GatewayStatus};
use fluxgate_examples::demo::{self, DemoKind, DemoUpstream};
use fluxgate_examples::policy::GatewayPolicy;
use fluxgate_examples::proxy::{Proxy, ProxyConfig, proxy_client};
use fluxgate_examples::rotation::WeightedRotation;
use fluxgate_examples::server::{self, ServerConfig};
use fluxgate_examples::upstream::{Upstream, UpstreamSpec};
use tracing_subscriber::EnvFilter;

use crate::cli::Args;

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
    let policy_path = args.policy.take().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/checkout-service-policy.yaml")
    });
    let (policy, source) = GatewayPolicy::load(&policy_path, args.namespace.as_deref())?;
    // Saves to the policy file are applied while traffic flows; an invalid save is refused.
    let _following = source.spawn()?;
    tracing::info!(path = %policy_path.display(), id = %policy.id(), "policy loaded");

    // Without upstreams, run the demo ones; they stop when `_demos` is dropped.
    let _demos = if args.upstreams.is_empty() {
        let [fast, slow, canary] = start_demos().await?;
        args.upstreams = vec![spec(&fast, 3)?, spec(&slow, 1)?];
        if args.canary_upstreams.is_empty() {
            args.canary_upstreams.push(canary.url().parse()?);
        }
        vec![fast, slow, canary]
    } else {
        Vec::new()
    };

    let timeout = Duration::try_from_secs_f64(args.upstream_timeout)?;
    let config = ProxyConfig::default()
        .timeout(timeout)
        .preserve_host(args.preserve_host);
    let client = proxy_client();
    let proxies = args
        .upstreams
        .iter()
        .map(|spec| {
            (
                Proxy::new(client.clone(), spec.upstream.clone(), config.clone()),
                spec.weight,
            )
        })
        .collect();
    let rotation = WeightedRotation::new(proxies)?;

    let gateway = server::spawn(args.listen, rotation, ServerConfig::default()).await?;
    let status = GatewayStatus::new(
        gateway.local_addr(),
        args.upstreams.clone(),
        args.canary_upstreams.clone(),
        Some(policy),
        args.redis.clone(),
    )
    .with_namespace(args.namespace.clone());
    let admin = server::spawn(
        args.admin,
        AdminService::new(status),
        ServerConfig::default(),
    )
    .await?;
    print_banner(
        gateway.local_addr(),
        admin.local_addr(),
        &args.upstreams,
        &args.canary_upstreams,
    );

    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::join!(gateway.shutdown(), admin.shutdown());
    Ok(())
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

/// Prints where the gateway listens and what to try.
fn print_banner(
    listen: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    upstreams: &[UpstreamSpec],
    canaries: &[Upstream],
) {
    println!("FluxGate gateway\n  proxy    http://{listen}\n  admin    http://{admin}");
    for spec in upstreams {
        println!("  upstream {} (weight {})", spec.upstream, spec.weight);
    }
    for canary in canaries {
        println!("  canary   {canary} (not routed yet)");
    }
    println!("Try:");
    println!("  curl -s 'http://{listen}/orders?id=42'");
    println!("  curl -s http://{admin}/api/status");
    if let Some(canary) = canaries.first() {
        println!(
            "  curl -s -X POST '{canary}/admin/fail?rate=0.5'   # make the canary fail half the time"
        );
        println!("  curl -si {canary}/orders");
    }
    println!("Ctrl-C stops it gracefully.");
}
