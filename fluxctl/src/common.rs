//! What the commands share: reading policy files, the Redis URL, exit codes.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fluxgate_core::policy::{TrafficPolicy, parse_documents};
use fluxgate_core::store::{
    ApplyError, DEFAULT_NAMESPACE, PolicyStore, RedisPolicies, RedisStoreError,
};

/// The Redis that `--redis` defaults to.
pub(crate) const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// Exit status 1: an invalid document, a refused or failed operation (for `diff`: differences).
pub(crate) const FAILED: u8 = 1;
/// Exit status 2: a usage error.
pub(crate) const USAGE: u8 = 2;
/// Exit status 3: Redis or the gateway cannot be reached.
pub(crate) const UNREACHABLE: u8 = 3;

/// Where policies are kept: `--redis URL` (the default) and `--namespace NS`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RedisArgs {
    /// The namespace of the policies.
    #[arg(short = 'n', long, value_name = "NS")]
    pub(crate) namespace: String,
    /// The Redis that gateway replicas follow.
    #[arg(long, value_name = "URL", env = "FLUXGATE_REDIS_URL", default_value = DEFAULT_REDIS, hide_env_values = true)]
    pub(crate) redis: String,
}

/// Where `status` and `canary` act: one gateway's admin API, or the whole fleet through the
/// Redis its replicas share.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// One gateway's admin endpoint (`http://HOST:PORT[/PREFIX]`): that gateway only.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "redis",
        conflicts_with = "redis"
    )]
    pub(crate) gateway: Option<String>,
    /// The Redis the fleet's replicas share: every replica (needs `--namespace`).
    #[arg(long, value_name = "URL", requires = "namespace")]
    pub(crate) redis: Option<String>,
    /// The namespace of the fleet's policies (with `--redis`).
    #[arg(short = 'n', long, value_name = "NS", requires = "redis")]
    pub(crate) namespace: Option<String>,
    /// The bearer token of the gateway's admin endpoint (sent if given).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLUXGATE_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
}

/// Prints `error` and gives its exit status: 3 when Redis cannot be reached, 2 for a bad URL.
pub(crate) fn fail(error: &RedisStoreError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(match error {
        e if e.is_unreachable() => UNREACHABLE,
        RedisStoreError::InvalidUrl { .. } => USAGE,
        _ => FAILED,
    })
}

/// The files given with `-f`, read and joined (for the gateway), the policies they hold, and
/// their namespace.
#[derive(Debug)]
pub(crate) struct Documents {
    pub(crate) policies: Vec<TrafficPolicy>,
    pub(crate) text: Vec<u8>,
    pub(crate) namespace: String,
}

/// Reads and validates every file: all of them parse and validate in `namespace` (without one,
/// the one namespace the documents name, or `default`), or the errors are printed
/// (`FILE: error`, with the fix for a namespace mismatch) and exit status 1 is returned.
pub(crate) fn read_policies(
    files: &[PathBuf],
    namespace: Option<&str>,
) -> Result<Documents, ExitCode> {
    let mut ok = true;
    let mut policies = Vec::new();
    let mut text = Vec::new();
    for file in files {
        let label = file.display().to_string();
        let input = match read_input(file) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("{label}: cannot read: {e}");
                ok = false;
                continue;
            }
        };
        for document in parse_documents(&input).documents {
            match document.result {
                Ok(policy) => policies.push(policy),
                Err(errors) => {
                    ok = false;
                    for error in errors.iter() {
                        eprintln!("{label}: {error}");
                    }
                }
            }
        }
        if !text.is_empty() {
            text.extend_from_slice(b"\n---\n");
        }
        text.extend_from_slice(&input);
    }
    if !ok {
        return Err(ExitCode::from(FAILED));
    }
    let namespace = match namespace {
        Some(namespace) => namespace.to_owned(),
        None => documents_namespace(&policies)?,
    };
    // Namespaces, duplicates and compilation, exactly as a gateway's store will check them.
    if let Err(error) = PolicyStore::new().apply_all(&policies, Some(&namespace)) {
        eprintln!("error: {error}");
        if let ApplyError::NamespaceMismatch { document, .. } = &error {
            eprintln!(
                "hint: drop --namespace to apply the document to its own namespace, or use \
                 --namespace {document} (the document's); to move the policy to {namespace}, \
                 change metadata.namespace in the file"
            );
        }
        return Err(ExitCode::from(FAILED));
    }
    for policy in &mut policies {
        policy.metadata.namespace = Some(namespace.clone());
    }
    Ok(Documents {
        policies,
        text,
        namespace,
    })
}

/// The one namespace the documents name (`default` when none names one); several are refused.
fn documents_namespace(policies: &[TrafficPolicy]) -> Result<String, ExitCode> {
    let named: BTreeSet<&str> = policies
        .iter()
        .filter_map(|p| p.metadata.namespace.as_deref())
        .collect();
    match named.len() {
        0 => Ok(DEFAULT_NAMESPACE.to_owned()),
        1 => Ok(named.into_iter().collect()),
        _ => {
            let list: Vec<&str> = named.into_iter().collect();
            eprintln!(
                "error: the documents name several namespaces ({}): apply one namespace at a \
                 time, with --namespace NS",
                list.join(", ")
            );
            Err(ExitCode::from(USAGE))
        }
    }
}

/// The bytes of `file`, or of stdin when it is `-`.
pub(crate) fn read_input(file: &Path) -> std::io::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(file)
    }
}

/// Runs `work` with a connection to the Redis at `url`, on a runtime made for it.
pub(crate) fn with_redis(url: &str, work: impl AsyncFnOnce(RedisPolicies) -> ExitCode) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        match RedisPolicies::connect(url).await {
            Ok(redis) => work(redis).await,
            Err(error) => fail(&error),
        }
    })
}

/// A tokio runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(FAILED)
        })
}
