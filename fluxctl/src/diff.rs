//! `fluxctl diff -f FILE... --namespace NS`: what `apply` would change in Redis.

use std::path::PathBuf;
use std::process::ExitCode;

use fluxgate_core::policy::TrafficPolicy;
use fluxgate_core::store::PolicyId;

use crate::common::{self, FAILED, RedisArgs};
use crate::yaml;

/// Arguments of `fluxctl diff`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A policy file (YAML or JSON); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    target: RedisArgs,
}

/// Prints a line diff per policy that would change; exit 0 when none would, 1 when some would.
pub(crate) fn run(args: &Args) -> ExitCode {
    let documents = match common::read_policies(&args.files, Some(&args.target.namespace)) {
        Ok(documents) => documents,
        Err(code) => return code,
    };
    common::with_redis(&args.target.redis, async |redis| {
        let ns = &args.target.namespace;
        let mut differs = false;
        for policy in &documents.policies {
            let name = &policy.metadata.name;
            let current = match redis.get(ns, name).await {
                Ok(current) => current,
                Err(error) => return common::fail(&error),
            };
            let id = PolicyId::new(ns.as_str(), name.as_str());
            let old = current
                .as_ref()
                .map(|c| render(&c.policy))
                .unwrap_or_default();
            let new = render(policy);
            if old == new {
                continue;
            }
            differs = true;
            match &current {
                Some(c) => println!("--- {id} (Redis, version {})", c.version),
                None => println!("--- {id} (absent)"),
            }
            println!("+++ {id} (files)");
            for line in line_diff(&old, &new) {
                println!("{line}");
            }
        }
        if differs {
            ExitCode::from(FAILED)
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn render(policy: &TrafficPolicy) -> String {
    let mut policy = policy.clone();
    policy.metadata.generation = None;
    policy.metadata.resource_version = None;
    yaml::to_yaml(&serde_json::to_value(&policy).unwrap_or_default())
}

/// A line diff (longest common subsequence): ` ` kept, `-` removed, `+` added.
fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}
