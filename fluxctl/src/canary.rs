//! `fluxctl canary promote|abort|pause|resume [NAME] --gateway URL [--token TOKEN]`.

use std::process::ExitCode;

use fluxgate_core::api::CanaryStatus;
use http::Method;

use crate::common;
use crate::gateway::{self, Call};

/// What to do with a canary.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Action {
    /// Send all traffic to the canary and stop analysing.
    Promote,
    /// Roll back: all traffic to the stable side.
    Abort,
    /// Hold the weight where it is; analyses stop moving it.
    Pause,
    /// Let analyses move the weight again.
    Resume,
}

impl Action {
    fn path(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Abort => "abort",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

/// Arguments of `fluxctl canary`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The action.
    #[arg(value_enum)]
    action: Action,
    /// The canary (as named in `fluxctl status`); may be left out when the gateway has one.
    name: Option<String>,
    /// The gateway's admin endpoint (`http://HOST:PORT[/PREFIX]`).
    #[arg(long, value_name = "URL")]
    gateway: String,
    /// The bearer token of the gateway's admin endpoint.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLUXGATE_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

/// Sends `POST URL/api/canary/ACTION[?name=NAME]` and prints the canary's new state.
pub(crate) fn run(args: &Args) -> ExitCode {
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let query = args
        .name
        .as_deref()
        .map_or_else(String::new, |n| format!("?name={}", gateway::encode(n)));
    let post = Call {
        method: Method::POST,
        url: &args.gateway,
        path: format!("/api/canary/{}{query}", args.action.path()),
        token: args.token.as_deref(),
        body: None,
    };
    let answer = match runtime.block_on(gateway::call(post)) {
        Ok(answer) => answer,
        Err(code) => return code,
    };
    if let Some(code) = gateway::refused(&answer) {
        return code;
    }
    let name = args.name.as_deref().unwrap_or("(the only one)");
    let done = format!("canary {name}: {} done", args.action.path());
    match serde_json::from_str::<CanaryStatus>(&answer.body) {
        Ok(canary) => {
            let (phase, weight) = (canary.phase, canary.weight);
            println!("{done}: phase {phase}, weight {weight}%");
        }
        Err(_) if answer.body.trim().is_empty() => println!("{done}"),
        Err(_) => println!("{done}: {}", answer.body.trim_end()),
    }
    ExitCode::SUCCESS
}
