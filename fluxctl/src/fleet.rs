//! The fleet through the Redis its replicas share (`--redis URL`): `fluxctl canary ACTION NAME
//! -n NS --redis URL` and `fluxctl status -n NS --redis URL`.

use std::process::ExitCode;

use fluxgate_canary::fleet::{FleetError, FleetOverview, RedisFleet};
use fluxgate_canary::{Action, Phase};
use fluxgate_core::store::{RedisPolicies, install_tls_provider, redact_url};

use crate::common::{self, FAILED, UNREACHABLE, USAGE};

/// Who `decidedBy` names for an action taken here.
const BY: &str = "fluxctl";

/// Prints `error` and gives its exit status: 3 for an unreachable store, 1 otherwise.
fn fail(url: &str, error: &FleetError) -> ExitCode {
    eprintln!("error: {error}");
    if error.is_unreachable() {
        eprintln!("hint: is Redis at {} up?", redact_url(url));
        ExitCode::from(UNREACHABLE)
    } else {
        ExitCode::from(FAILED)
    }
}

async fn connect(url: &str) -> Result<RedisFleet, ExitCode> {
    RedisFleet::connect(url).await.map_err(|error| {
        if redis_url_is_malformed(url) {
            eprintln!("error: Redis URL {}: {error}", redact_url(url));
            return ExitCode::from(USAGE);
        }
        fail(url, &error)
    })
}

fn redis_url_is_malformed(url: &str) -> bool {
    !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
}

/// Applies `action` to the canary of `namespace/name` on every replica of the fleet: one
/// compare-and-set of the shared state, which every replica follows within a tick.
pub(crate) fn act(url: &str, namespace: &str, name: &str, action: Action) -> ExitCode {
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let fleet = match connect(url).await {
            Ok(fleet) => fleet,
            Err(code) => return code,
        };
        match fleet.act(namespace, name, action, BY).await {
            Ok(state) => {
                println!(
                    "canary {namespace}/{name}: {action} done on the fleet: phase {}, weight {}% \
                     (state version {})",
                    phase_name(state.phase),
                    state.weight,
                    state.version
                );
                ExitCode::SUCCESS
            }
            Err(FleetError::Refused(reason)) => {
                eprintln!("error: canary {namespace}/{name}: {reason}");
                if reason.starts_with("no fleet state") {
                    eprintln!(
                        "hint: no gateway replica sharing Redis at {} has started this canary \
                         (is the policy's name right, and do the gateways run with --redis?)",
                        redact_url(url)
                    );
                }
                ExitCode::from(FAILED)
            }
            Err(error) => fail(url, &error),
        }
    })
}

/// A phase as the admin API and the status documents spell it (`rolledBack`).
pub(crate) fn phase_name(phase: Phase) -> String {
    match serde_json::to_value(phase) {
        Ok(serde_json::Value::String(name)) => name,
        _ => phase.to_string(),
    }
}

/// One canary's fleet, as `status` shows it.
pub(crate) struct Canary {
    pub(crate) name: String,
    pub(crate) overview: FleetOverview,
}

/// What `status --redis` reads: the replicas sharing rate limits and every canary's fleet.
pub(crate) struct Fleet {
    pub(crate) url: String,
    pub(crate) namespace: String,
    /// Replicas with a live rate-limit heartbeat: name and milliseconds until it expires.
    pub(crate) replicas: Vec<(String, u64)>,
    pub(crate) canaries: Vec<Canary>,
    /// Policies of the namespace in Redis with a canary that no replica has started.
    pub(crate) unstarted: Vec<String>,
}

/// Reads the fleet of `namespace` (one canary when `name` is given).
pub(crate) fn read(url: &str, namespace: &str, name: Option<&str>) -> Result<Fleet, ExitCode> {
    let runtime = common::runtime()?;
    runtime.block_on(async {
        let fleet = connect(url).await?;
        let names = match name {
            Some(name) => vec![name.to_owned()],
            None => fleet.canaries(namespace).await.map_err(|e| fail(url, &e))?,
        };
        let mut canaries = Vec::new();
        for name in names {
            let overview = fleet
                .overview(namespace, &name)
                .await
                .map_err(|e| fail(url, &e))?;
            canaries.push(Canary { name, overview });
        }
        let policies = RedisPolicies::connect(url)
            .await
            .map_err(|e| common::fail(&e))?;
        let stored = policies
            .list(namespace)
            .await
            .map_err(|e| common::fail(&e))?;
        let started = |n: &str| {
            canaries
                .iter()
                .any(|c| c.name == n && c.overview.state.is_some())
        };
        let mut unstarted: Vec<String> = stored
            .iter()
            .map(|p| &p.policy)
            .filter(|p| p.spec.canary.as_ref().is_some_and(|c| c.enabled))
            .map(|p| p.metadata.name.clone())
            .filter(|n| name.is_none_or(|name| name == n) && !started(n))
            .collect();
        if let Some(name) = name.filter(|n| !started(n) && !unstarted.iter().any(|u| u == n)) {
            unstarted.push(name.to_owned());
        }
        canaries.retain(|c| c.overview.state.is_some());
        let replicas = rate_limit_replicas(url).await.map_err(|e| {
            eprintln!("error: reading the replicas' heartbeats: {e}");
            ExitCode::from(UNREACHABLE)
        })?;
        Ok(Fleet {
            url: redact_url(url),
            namespace: namespace.to_owned(),
            replicas,
            canaries,
            unstarted,
        })
    })
}

/// The gateway replicas' rate-limit heartbeats (`fluxgate:rl:{replicas}`, scored with their
/// expiry on Redis' clock): the live ones and how long until each expires.
async fn rate_limit_replicas(url: &str) -> redis::RedisResult<Vec<(String, u64)>> {
    install_tls_provider();
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
    let now = seconds * 1000 + micros / 1000;
    let live: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
        .arg("fluxgate:rl:{replicas}")
        .arg(now)
        .arg("+inf")
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await?;
    Ok(live
        .into_iter()
        .map(|(name, expiry)| (name, (expiry as u64).saturating_sub(now)))
        .collect())
}
