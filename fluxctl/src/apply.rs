//! `fluxctl apply -f FILE... [--namespace NS] [--redis URL | --gateway URL | --kube]`.

use std::path::PathBuf;
use std::process::ExitCode;

use fluxgate_core::store::redact_url;

use crate::common::{self, DEFAULT_REDIS};
use crate::gateway;

/// Arguments of `fluxctl apply`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Policy files (YAML, several documents separated by `---`, or JSON; `-` reads stdin):
    /// `-f A B` or `-f A -f B`.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// The namespace of the policies [default: the one the documents name, or `default`]; a
    /// document naming another is refused.
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
    /// The Redis that gateway replicas follow.
    #[arg(long, value_name = "URL", env = "FLUXGATE_REDIS_URL", default_value = DEFAULT_REDIS, hide_env_values = true)]
    redis: String,
    /// Push to one gateway's admin endpoint (`PUT URL/api/policies`) instead of Redis (`--redis` is then ignored).
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// The bearer token of the gateway's admin endpoint.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLUXGATE_TOKEN",
        hide_env_values = true,
        requires = "gateway"
    )]
    token: Option<String>,
    /// Server-side-apply the policies as `TrafficPolicy` objects to the Kubernetes cluster of
    /// the default kubeconfig (or the in-cluster config) instead of Redis.
    #[arg(long, conflicts_with = "gateway")]
    kube: bool,
}

/// Validates every document, then applies them all; prints one `kubectl`-style line per policy,
/// then (on stderr) where they were written.
pub(crate) fn run(args: &Args) -> ExitCode {
    let documents = match common::read_policies(&args.files, args.namespace.as_deref()) {
        Ok(documents) => documents,
        Err(code) => return code,
    };
    let namespace = documents.namespace.as_str();
    if args.kube {
        return crate::kube::apply(&documents.policies, namespace);
    }
    if let Some(url) = &args.gateway {
        let runtime = match common::runtime() {
            Ok(runtime) => runtime,
            Err(code) => return code,
        };
        let request = gateway::Request {
            url,
            namespace,
            token: args.token.as_deref(),
            body: documents.text,
        };
        return runtime.block_on(gateway::put_policies(request));
    }
    common::with_redis(&args.redis, async |redis| {
        match redis.apply(namespace, &documents.policies).await {
            Ok(written) => {
                for policy in written {
                    println!("{}", policy.change);
                }
                let default = if args.redis == DEFAULT_REDIS {
                    " (the default: --redis URL or FLUXGATE_REDIS_URL to choose)"
                } else {
                    ""
                };
                eprintln!(
                    "applied to namespace {namespace} in Redis at {}{default}",
                    redact_url(&args.redis)
                );
                ExitCode::SUCCESS
            }
            Err(error) => common::fail(&error),
        }
    })
}
