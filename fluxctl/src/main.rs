//! `fluxctl`: the command line for FluxGate policies.
//!
//! Run with `cargo run -p fluxctl -- validate -f fluxgate-gateway/policies/checkout-service-policy.yaml`.
//!
//! # Commands
//!
//! - `validate -f FILE...` (`-f A B` or `-f A -f B`): check documents, print one line per
//!   document; two documents with the same `namespace/name` are an error at the second's line.
//! - `apply -f FILE... [--namespace NS] [--redis URL | --gateway URL [--token TOKEN]]`: validate
//!   every document (nothing is applied if one is invalid, or names another namespace than
//!   `--namespace`, which defaults to the one the documents name), then write them to Redis
//!   (`--redis`, default `FLUXGATE_REDIS_URL` or `redis://127.0.0.1:6379`), which every gateway
//!   replica following the namespace applies, or push them to one gateway's admin endpoint.
//!   Prints `trafficpolicy NS/NAME created|configured|unchanged` per policy, then on stderr where
//!   it wrote (the URL without its password).
//! - `get [NAME] --namespace NS [-o table|yaml|json]`, `delete NAME --namespace NS`.
//! - `diff -f FILE... --namespace NS`: a line diff per policy that `apply` would change.
//! - `apply -f FILE... --namespace NS --kube`: validate every document, then server-side-apply each
//!   as a `TrafficPolicy` object (field manager `fluxctl`) to the cluster of the default
//!   kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the in-cluster config. Prints
//!   `trafficpolicy NS/NAME serverside-applied` per policy.
//! - `crd`: print the `TrafficPolicy` CustomResourceDefinition, generated from the policy model.
//! - `status -n NS --redis URL [NAME] [-o table|json]`: the fleet sharing that Redis: the
//!   replicas with a live heartbeat, and per canary the fleet's shared state (phase, weight,
//!   step, version, who decided and the last decision), the live replicas following it, the
//!   lease holder judging it, and the window it last judged, merged over every replica.
//! - `status --gateway URL [-o table|json]`: one gateway's state from `GET /api/status`: the
//!   policy generation and last rejection, a table per balancer, each canary's phase, weight,
//!   step and last decision (in the gateway's words), rate-limit counts, read with the admin API's
//!   own types (`fluxgate_core::api`). Sections the gateway leaves out show as absent; sections
//!   fluxctl does not know (such as `redis`) show one line each.
//! - `canary promote|abort|pause|resume NAME -n NS --redis URL`: one compare-and-set of the
//!   fleet's shared canary state, which every replica follows within a second; prints the new
//!   phase, weight and state version. Exit 1 when no replica has started that canary or the
//!   action does not apply to its phase.
//! - `canary promote|abort|pause|resume [NAME] --gateway URL [--token TOKEN]`: `POST
//!   /api/canary/ACTION[?name=NAME]` to one gateway (which publishes it to its fleet when it
//!   has one); prints the canary's new phase and weight.
//!
//! # Exit status
//!
//! 0 success; 1 an invalid document, a refused or failed operation, a policy not found (for
//! `diff`: differences found); 2 usage error (including a malformed URL); 3 Redis, the gateway or
//! the Kubernetes cluster cannot be reached. Passwords in URLs are never printed.
//!
//! # The gateway admin contract (`--gateway URL`)
//!
//! `fluxctl apply --gateway http://HOST:PORT[/PREFIX]` sends:
//!
//! ```text
//! PUT /PREFIX/api/policies?namespace=NS HTTP/1.1
//! Content-Type: application/yaml
//! Authorization: Bearer TOKEN            (only with --token / FLUXGATE_TOKEN)
//!
//! <the files, joined by "\n---\n": YAML documents, or JSON>
//! ```
//!
//! and expects:
//!
//! - `200 OK`, `text/plain`: one line per policy, `trafficpolicy NS/NAME created|configured|unchanged`
//!   (printed as is; exit 0);
//! - `400 Bad Request`, `text/plain`: the validation errors, one per line (printed; exit 1); the
//!   gateway applies nothing then;
//! - `401 Unauthorized` (or `403`) when the token is missing or wrong (exit 1).
//!
//! `fluxctl status` sends `GET /PREFIX/api/status` (with the token if one is given) and expects
//! `200 OK` with a JSON object; `fluxctl canary ACTION` sends `POST /PREFIX/api/canary/ACTION`
//! (`?name=NAME` when given) and expects `200 OK` (the canary's snapshot as JSON, or text);
//! `401`/`403` (token), `404` (no such canary), `409` (the action does not apply now) exit 1.
//!
//! Only `http://` is supported; any other status exits 1, and a connection failure exits 3.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod apply;
mod canary;
mod common;
mod crd;
mod diff;
mod fleet;
mod gateway;
mod get;
mod kube;
mod status;
mod table;
mod validate;
mod yaml;

const EXIT_CODES: &str = "Exit status:
  0  success (for diff: no differences)
  1  failure: an invalid document, a refused or failed operation, not found (for diff: differences;
     for status and canary: the gateway answered an error, refused the token, or has no such canary)
  2  usage error
  3  cannot reach Redis or the gateway (with --kube: the Kubernetes cluster)
URLs are printed without their passwords.

Environment: FLUXGATE_REDIS_URL (default --redis), FLUXGATE_TOKEN (default --token).";

/// Validate and manage FluxGate TrafficPolicy documents.
#[derive(Debug, Parser)]
#[command(name = "fluxctl", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check TrafficPolicy files (YAML or JSON) and print one line per document.
    #[command(after_help = EXIT_CODES, override_usage = "fluxctl validate -f FILE...")]
    Validate(validate::Args),
    /// Validate every document, then write them all to Redis (or push them to a gateway).
    #[command(
        after_help = EXIT_CODES,
        override_usage = "fluxctl apply -f FILE... [-n NS] [--redis URL | --gateway URL [--token TOKEN] | --kube]"
    )]
    Apply(apply::Args),
    /// Show the policies of a namespace held in Redis.
    #[command(
        after_help = EXIT_CODES,
        override_usage = "fluxctl get [NAME] -n NS [--redis URL] [-o table|yaml|json]"
    )]
    Get(get::GetArgs),
    /// Delete a policy from Redis; gateway replicas following the namespace drop it (a
    /// gateway's policy file version of it is in force again there).
    #[command(after_help = EXIT_CODES, override_usage = "fluxctl delete NAME -n NS [--redis URL]")]
    Delete(get::DeleteArgs),
    /// Show what `apply` would change in Redis.
    #[command(after_help = EXIT_CODES, override_usage = "fluxctl diff -f FILE... -n NS [--redis URL]")]
    Diff(diff::Args),
    /// Print the TrafficPolicy CustomResourceDefinition (YAML, for `kubectl apply -f -`).
    #[command(after_help = EXIT_CODES)]
    Crd,
    /// Show the fleet's state (`--redis`) or one gateway's (`--gateway`).
    #[command(
        after_help = EXIT_CODES,
        override_usage = "fluxctl status -n NS --redis URL [NAME] [-o table|json]\n       fluxctl status --gateway URL [--token TOKEN] [-o table|json]"
    )]
    Status(status::Args),
    /// Promote, abort, pause or resume a canary on the whole fleet (`--redis`) or one gateway.
    #[command(
        after_help = EXIT_CODES,
        override_usage = "fluxctl canary promote|abort|pause|resume NAME -n NS --redis URL\n       fluxctl canary promote|abort|pause|resume [NAME] --gateway URL [--token TOKEN]"
    )]
    Canary(canary::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Apply(args) => apply::run(&args),
        Command::Get(args) => get::get(&args),
        Command::Delete(args) => get::delete(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Crd => crd::run(),
        Command::Status(args) => status::run(&args),
        Command::Canary(args) => canary::run(&args),
    }
}
