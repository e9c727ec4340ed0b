//! `fluxctl get [NAME] --namespace NS [-o yaml|json]` and `fluxctl delete NAME --namespace NS`.

use std::process::ExitCode;

use fluxgate_core::store::{PolicyId, StoredPolicy};

use crate::common::{self, FAILED, RedisArgs};
use crate::{table, yaml};

/// How `get` prints policies.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum Output {
    /// One line per policy: name, version, sections.
    #[default]
    Table,
    /// The documents, separated by `---`.
    Yaml,
    /// One object for a NAME, an array otherwise.
    Json,
}

/// Arguments of `fluxctl get`.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    /// One policy; all of the namespace when absent.
    name: Option<String>,
    #[command(flatten)]
    target: RedisArgs,
    /// The output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Arguments of `fluxctl delete`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    /// The policy to delete.
    name: String,
    #[command(flatten)]
    target: RedisArgs,
}

/// Prints the policies held in Redis.
pub(crate) fn get(args: &GetArgs) -> ExitCode {
    common::with_redis(&args.target.redis, async |redis| {
        let ns = &args.target.namespace;
        let policies = match &args.name {
            Some(name) => match redis.get(ns, name).await {
                Ok(Some(policy)) => vec![policy],
                Ok(None) => {
                    eprintln!(
                        "error: trafficpolicy {} not found",
                        PolicyId::new(ns.as_str(), name.as_str())
                    );
                    return ExitCode::from(FAILED);
                }
                Err(error) => return common::fail(&error),
            },
            None => match redis.list(ns).await {
                Ok(list) => list,
                Err(error) => return common::fail(&error),
            },
        };
        print!("{}", render(&policies, args.output, args.name.is_some()));
        ExitCode::SUCCESS
    })
}

/// Deletes one policy from Redis.
pub(crate) fn delete(args: &DeleteArgs) -> ExitCode {
    common::with_redis(&args.target.redis, async |redis| {
        let id = PolicyId::new(args.target.namespace.as_str(), args.name.as_str());
        match redis.delete(id.namespace(), id.name()).await {
            Ok(Some(_)) => {
                println!("trafficpolicy {id} deleted");
                ExitCode::SUCCESS
            }
            Ok(None) => {
                eprintln!("error: trafficpolicy {id} not found");
                ExitCode::from(FAILED)
            }
            Err(error) => common::fail(&error),
        }
    })
}

fn render(policies: &[StoredPolicy], output: Output, single: bool) -> String {
    let values: Vec<serde_json::Value> = policies
        .iter()
        .map(|p| serde_json::to_value(&p.policy).unwrap_or_default())
        .collect();
    match output {
        Output::Json => {
            let value = match (single, values.as_slice()) {
                (true, [one]) => one.clone(),
                _ => serde_json::Value::Array(values),
            };
            format!("{value:#}\n")
        }
        Output::Yaml => values
            .iter()
            .map(yaml::to_yaml)
            .collect::<Vec<_>>()
            .join("---\n"),
        Output::Table => {
            let mut rows = vec![["NAME", "VERSION", "SECTIONS"].map(str::to_owned)];
            for policy in policies {
                let spec = &policy.policy.spec;
                let sections: Vec<&str> = [
                    (spec.load_balancing.is_some(), "loadBalancing"),
                    (spec.rate_limit.is_some(), "rateLimit"),
                    (spec.canary.is_some(), "canary"),
                ]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
                rows.push([
                    policy.policy.metadata.name.clone(),
                    policy.version.to_string(),
                    if sections.is_empty() {
                        "-".to_owned()
                    } else {
                        sections.join(",")
                    },
                ]);
            }
            table::render(&rows, "")
        }
    }
}
