//! `fluxctl status --gateway URL [-o table|json]`: what one gateway is doing, from its
//! `GET /api/status`; `fluxctl status -n NS --redis URL [NAME]`: what the fleet sharing that
//! Redis is doing (live replicas, each canary's shared state and the merged window it was last
//! judged on).
//!
//! The document is read into [`fluxgate_core::api::Status`], the types the gateway's admin API
//! writes it with: a section or field that is missing is shown as absent, never as an error, and
//! sections this version does not know are shown one line each.

use std::process::ExitCode;

use fluxgate_core::api::Status;
use http::Method;

use crate::common::{self, FAILED};
use crate::gateway::{self, Call};

mod canary;
mod fleet;
mod render;
mod units;

/// How `status` prints the gateway's state.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum Output {
    /// A summary: policies, a table per balancer, canaries, rate limits.
    #[default]
    Table,
    /// The gateway's JSON document, as it answered it.
    Json,
}

/// Arguments of `fluxctl status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// One canary of the fleet (with `--redis`); every canary of the namespace when absent.
    #[arg(requires = "redis")]
    name: Option<String>,
    #[command(flatten)]
    target: common::Target,
    /// The output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Prints the fleet's state (`--redis`) or one gateway's (`GET URL/api/status`).
pub(crate) fn run(args: &Args) -> ExitCode {
    let (Some(gateway), None) = (&args.target.gateway, &args.target.redis) else {
        return run_fleet(args);
    };
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let get = Call {
        method: Method::GET,
        url: gateway,
        path: "/api/status".to_owned(),
        token: args.target.token.as_deref(),
        body: None,
    };
    let answer = match runtime.block_on(gateway::call(get)) {
        Ok(answer) => answer,
        Err(code) => return code,
    };
    if let Some(code) = gateway::refused(&answer) {
        return code;
    }
    let document: Status = match serde_json::from_str(&answer.body) {
        Ok(document) => document,
        Err(error) => {
            eprintln!("error: the gateway's status is not JSON of a status document: {error}");
            return ExitCode::from(FAILED);
        }
    };
    match args.output {
        Output::Json => {
            print!("{}", answer.body);
            if !answer.body.ends_with('\n') {
                println!();
            }
        }
        Output::Table => print!("{}", render::summary(&document)),
    }
    ExitCode::SUCCESS
}

/// `status -n NS --redis URL [NAME]`.
fn run_fleet(args: &Args) -> ExitCode {
    let (Some(url), Some(namespace)) = (&args.target.redis, &args.target.namespace) else {
        eprintln!("error: give --gateway URL, or --redis URL with --namespace NS");
        return ExitCode::from(common::USAGE);
    };
    let fleet = match crate::fleet::read(url, namespace, args.name.as_deref()) {
        Ok(fleet) => fleet,
        Err(code) => return code,
    };
    match args.output {
        Output::Json => println!("{:#}", fleet::json(&fleet)),
        Output::Table => print!("{}", fleet::summary(&fleet)),
    }
    ExitCode::SUCCESS
}
