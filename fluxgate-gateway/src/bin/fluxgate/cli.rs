//! The gateway's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use fluxgate_gateway::upstream::{UpstreamError, UpstreamSpec};

/// A FluxGate reverse proxy driven by a TrafficPolicy file.
///
/// Request path: rate limit → canary (stable | canary) → balancer → proxy → upstream.
/// Without --upstream it is a self-contained demo: it starts demo upstreams (fast, slow and a
/// canary) on loopback and proxies to them.
///
/// Every option can also be set by the environment variable named in its [env: ...]; the
/// command line wins. The variables of repeatable options hold a list separated by spaces or
/// newlines (FLUXGATE_UPSTREAMS="http://10.0.0.1:3000,weight=3 http://10.0.0.2:3000").
/// Boolean variables take true or false.
///
/// SIGTERM and SIGINT stop it gracefully: /readyz on the admin address answers 503, new
/// connections are refused, the requests in flight finish (at most --grace-period), then it
/// exits 0. /healthz answers 200 while it runs.
#[derive(Debug, Parser)]
#[command(name = "fluxgate", version)]
pub(crate) struct Args {
    /// Address the proxy listens on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "FLUXGATE_LISTEN"
    )]
    pub(crate) listen: SocketAddr,

    /// Address of the admin API (dashboard, /healthz, /readyz, /api/status, /metrics, PUT
    /// /api/policies, canary actions).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9090",
        env = "FLUXGATE_ADMIN"
    )]
    pub(crate) admin: SocketAddr,

    /// Bearer token the admin API's mutating endpoints require (PUT, POST).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLUXGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub(crate) admin_token: Option<String>,

    /// The TrafficPolicy file, or a folder of them [default: the bundled demo policy].
    #[arg(long, value_name = "FILE", env = "FLUXGATE_POLICY")]
    pub(crate) policy: Option<PathBuf>,

    /// A stable upstream, repeatable, balanced as the policy's loadBalancing says (default
    /// weight 1). URL is http:// or https:// (TLS, ALPN chooses HTTP/2 or HTTP/1.1);
    /// protocol=http1 (the default for http://), h2c (HTTP/2 with prior knowledge) or grpc
    /// (HTTP/2, health-checked with grpc.health.v1). Without any, the demo upstreams are started.
    #[arg(
        long = "upstream",
        value_name = "URL[,protocol=P][,weight=N]",
        env = "FLUXGATE_UPSTREAMS"
    )]
    pub(crate) upstreams: Vec<SpecList>,

    /// A canary upstream, repeatable, as --upstream: the canary side of the policy's canary
    /// section. Without any, there is no canary routing.
    #[arg(
        long = "canary-upstream",
        value_name = "URL[,protocol=P][,weight=N]",
        env = "FLUXGATE_CANARY_UPSTREAMS"
    )]
    pub(crate) canary_upstreams: Vec<SpecList>,

    /// A CA certificate (PEM) to verify https:// upstreams with, instead of the system's roots.
    #[arg(long, value_name = "FILE", env = "FLUXGATE_UPSTREAM_CA")]
    pub(crate) upstream_ca: Option<PathBuf>,

    /// The proxy's TLS certificate chain (PEM): clients then connect with TLS (ALPN h2 or
    /// http/1.1). Needs --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        env = "FLUXGATE_TLS_CERT",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "FLUXGATE_TLS_KEY",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,

    /// Follow the policies of --namespace in this Redis (as `fluxctl apply --redis` writes them):
    /// one with the name of the file's policy replaces it. The file still applies at startup.
    /// Rate-limit counters are shared through it with the other replicas (synced mode).
    #[arg(
        long,
        value_name = "URL",
        env = "FLUXGATE_REDIS",
        hide_env_values = true
    )]
    pub(crate) redis: Option<String>,

    /// Share rate limits and the canary state through this Redis Cluster instead of --redis (a
    /// seed node; repeat it for more). Policies then come from the file or Kubernetes, not from
    /// Redis. The cluster must answer at startup; a master failing over is an outage (local
    /// limits at this replica's share) until its replica takes over.
    #[arg(
        long,
        value_name = "URL",
        env = "FLUXGATE_REDIS_CLUSTER",
        conflicts_with = "redis",
        hide_env_values = true
    )]
    pub(crate) redis_cluster: Vec<UrlList>,

    /// A CA certificate (PEM) to verify a rediss:// server with, instead of the system's roots.
    #[arg(long, value_name = "FILE", env = "FLUXGATE_REDIS_CA")]
    pub(crate) redis_ca: Option<PathBuf>,

    /// Serving threads; by default one per core. N > 0: N worker threads, each a
    /// current-thread runtime with its own upstream connection pools (thread-per-core), taking
    /// the connections that one acceptor on --listen hands to the worker with the fewest open;
    /// the policy, limits, canary and balancers stay shared. 0: tokio's multi-threaded runtime
    /// (work-stealing) serves every connection.
    #[arg(long, value_name = "N", env = "FLUXGATE_WORKERS")]
    pub(crate) workers: Option<usize>,

    /// Serve every plain HTTP/1.1 request with hyper's server, instead of reading and answering
    /// requests without a body or with a small one that came with the head on the gateway's own
    /// HTTP/1.1 path (requests with a larger, chunked or late body, TLS and h2c are hyper's
    /// either way).
    #[arg(long, env = "FLUXGATE_HYPER_HTTP1")]
    pub(crate) hyper_http1: bool,

    /// The fewest gateway replicas assumed to share the Redis rate limits. Replicas count each
    /// other through heartbeats in Redis; while Redis is unreachable, each limits locally at
    /// 1/N of the policy's rate, N the larger of this floor and the last live count.
    #[arg(long, value_name = "N", default_value_t = 1, env = "FLUXGATE_REPLICAS")]
    pub(crate) replicas: u32,

    /// Policy namespace: given to documents of the file that name none, and followed in Redis
    /// [default: the namespace of the file's policy].
    #[arg(long, value_name = "NS", env = "FLUXGATE_NAMESPACE")]
    pub(crate) namespace: Option<String>,

    /// Seconds an upstream has to send response headers before the gateway answers 504.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "15",
        value_parser = seconds,
        allow_hyphen_values = true,
        env = "FLUXGATE_UPSTREAM_TIMEOUT"
    )]
    pub(crate) upstream_timeout: Duration,

    /// Seconds the requests in flight have to finish after SIGTERM or SIGINT; those still
    /// running then are cut (counted in a warning) and the gateway exits 0.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "30",
        value_parser = seconds,
        allow_hyphen_values = true,
        env = "FLUXGATE_GRACE_PERIOD"
    )]
    pub(crate) grace_period: Duration,

    /// The access log: off, or one JSON line per request on stdout (method, path, status,
    /// upstream, canary side, rate-limit outcome, duration, request id).
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "off",
        env = "FLUXGATE_ACCESS_LOG"
    )]
    pub(crate) access_log: AccessLogFormat,

    /// Follow the TrafficPolicy objects of --namespace on the Kubernetes API server (the pod's
    /// service account, or the kubeconfig) and write their status back: the one named as the
    /// gateway's policy replaces it while traffic flows.
    #[cfg(feature = "kube")]
    #[arg(long, env = "FLUXGATE_KUBE")]
    pub(crate) kube: bool,

    /// Seconds between two resolutions of upstreams named by DNS (such as a headless Service):
    /// each address is an endpoint, joining and leaving the balancer.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5.0,
        env = "FLUXGATE_RESOLVE_INTERVAL"
    )]
    pub(crate) resolve_interval: f64,

    /// Print the bundled demo policy (a starting point for your own) and exit.
    #[arg(long)]
    pub(crate) print_policy: bool,

    /// Send the client's Host header upstream (false: the upstream's host:port).
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = ArgAction::Set,
        env = "FLUXGATE_PRESERVE_HOST"
    )]
    pub(crate) preserve_host: bool,

    /// Reach plain http:// HTTP/1.1 upstreams over the gateway's own connections, one pool
    /// per upstream and serving worker (false: hyper-util's pooled client, as for https://,
    /// h2c and gRPC upstreams).
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = ArgAction::Set,
        env = "FLUXGATE_HTTP1_POOL"
    )]
    pub(crate) http1_pool: bool,
}

/// The formats of `--access-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AccessLogFormat {
    /// No access log.
    Off,
    /// JSON lines on stdout.
    Json,
}

/// Upstream arguments separated by spaces or newlines: one per `--upstream`, several in
/// `FLUXGATE_UPSTREAMS`.
#[derive(Debug, Clone)]
pub(crate) struct SpecList(pub(crate) Vec<UpstreamSpec>);

impl FromStr for SpecList {
    type Err = UpstreamError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// URLs separated by spaces or newlines: one per `--redis-cluster`, several in its variable.
#[derive(Debug, Clone)]
pub(crate) struct UrlList(pub(crate) Vec<String>);

impl FromStr for UrlList {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.split_whitespace().map(str::to_owned).collect()))
    }
}

/// All the upstreams of repeated `--upstream` options (or of their variable).
pub(crate) fn flatten(lists: &[SpecList]) -> Vec<UpstreamSpec> {
    lists
        .iter()
        .flat_map(|list| list.0.iter().cloned())
        .collect()
}

/// A number of seconds (`1.5`), at least 0.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number of seconds, such as 30 or 0.5".to_owned())?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| "expected a number of seconds, at least 0 and finite".to_owned())
}
