//! The gateway's command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser};
use fluxgate_examples::upstream::{Upstream, UpstreamSpec};

/// A FluxGate reverse proxy driven by a TrafficPolicy file.
///
/// Without --upstream it is a self-contained demo: it starts demo upstreams (fast, slow and a
/// canary) on loopback and proxies to them.
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
pub(crate) struct Args {
    /// Address the proxy listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,

    /// Address of the admin listener (GET /healthz, GET /api/status).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub(crate) admin: SocketAddr,

    /// The TrafficPolicy file [default: the bundled policies/checkout-service-policy.yaml].
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,

    /// An upstream, repeatable: requests rotate over them in proportion to their weights
    /// (default weight 1). Without any, the demo upstreams are started.
    #[arg(long = "upstream", value_name = "URL[,weight=N]")]
    pub(crate) upstreams: Vec<UpstreamSpec>,

    /// A canary upstream, repeatable. Parsed and reported on /api/status, NOT routed yet:
    /// canary routing arrives with FluxGate's canary layer.
    #[arg(long = "canary-upstream", value_name = "URL")]
    pub(crate) canary_upstreams: Vec<Upstream>,

    /// Redis URL for shared rate-limit state and policies (stored; not used yet).
    #[arg(long, value_name = "URL")]
    pub(crate) redis: Option<String>,

    /// Policy namespace to serve (stored; not used yet).
    #[arg(long, value_name = "NS")]
    pub(crate) namespace: Option<String>,

    /// Seconds an upstream has to send response headers before the gateway answers 504.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
    pub(crate) upstream_timeout: f64,

    /// Send the client's Host header upstream (false: the upstream's host:port).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub(crate) preserve_host: bool,
}
