//! `fluxctl status --gateway URL [-o table|json]`: what one gateway is doing, from its
//! `GET /api/status`.
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
    /// The gateway's admin endpoint (`http://HOST:PORT[/PREFIX]`).
    #[arg(long, value_name = "URL")]
    gateway: String,
    /// The bearer token of the gateway's admin endpoint (sent if given).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLUXGATE_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// The output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Fetches `GET URL/api/status` and prints it.
pub(crate) fn run(args: &Args) -> ExitCode {
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let get = Call {
        method: Method::GET,
        url: &args.gateway,
        path: "/api/status".to_owned(),
        token: args.token.as_deref(),
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
