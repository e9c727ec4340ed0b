//! `fluxctl apply -f FILE... --namespace NS [--redis URL | --gateway URL | --kube]`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common::{self, RedisArgs};
use crate::gateway;

/// Arguments of `fluxctl apply`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A policy file (YAML, several documents separated by `---`, or JSON); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    target: RedisArgs,
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

/// Validates every document, then applies them all; prints one `kubectl`-style line per policy.
pub(crate) fn run(args: &Args) -> ExitCode {
    let documents = match common::read_policies(&args.files, &args.target.namespace) {
        Ok(documents) => documents,
        Err(code) => return code,
    };
    if args.kube {
        return crate::kube::apply(&documents.policies, &args.target.namespace);
    }
    if let Some(url) = &args.gateway {
        let runtime = match common::runtime() {
            Ok(runtime) => runtime,
            Err(code) => return code,
        };
        let request = gateway::Request {
            url,
            namespace: &args.target.namespace,
            token: args.token.as_deref(),
            body: documents.text,
        };
        return runtime.block_on(gateway::put_policies(request));
    }
    common::with_redis(&args.target, async |redis| {
        match redis
            .apply(&args.target.namespace, &documents.policies)
            .await
        {
            Ok(written) => {
                for policy in written {
                    println!("{}", policy.change);
                }
                ExitCode::SUCCESS
            }
            Err(error) => common::fail(&error),
        }
    })
}
