//! `fluxctl canary promote|abort|pause|resume [NAME] --gateway URL [--token TOKEN]` (one
//! gateway) and `fluxctl canary ACTION NAME -n NS --redis URL` (every replica of the fleet).

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

    fn fleet(self) -> fluxgate_canary::Action {
        match self {
            Self::Promote => fluxgate_canary::Action::Promote,
            Self::Abort => fluxgate_canary::Action::Abort,
            Self::Pause => fluxgate_canary::Action::Pause,
            Self::Resume => fluxgate_canary::Action::Resume,
        }
    }
}

/// Arguments of `fluxctl canary`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The action.
    #[arg(value_enum)]
    action: Action,
    /// The canary: its policy's name (as `fluxctl status` shows it); with `--gateway`, may be
    /// left out when the gateway has one canary.
    #[arg(required_unless_present = "gateway")]
    name: Option<String>,
    #[command(flatten)]
    target: common::Target,
}

/// Acts through the fleet's Redis, or sends `POST URL/api/canary/ACTION[?name=NAME]` to one
/// gateway, and prints the canary's new state.
pub(crate) fn run(args: &Args) -> ExitCode {
    let gateway = match (
        &args.target.gateway,
        &args.target.redis,
        &args.target.namespace,
        &args.name,
    ) {
        (Some(gateway), None, _, _) => gateway,
        (None, Some(redis), Some(namespace), Some(name)) => {
            return crate::fleet::act(redis, namespace, name, args.action.fleet());
        }
        _ => {
            eprintln!("error: give --gateway URL, or NAME with --redis URL and --namespace NS");
            return ExitCode::from(common::USAGE);
        }
    };
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
        url: gateway,
        path: format!("/api/canary/{}{query}", args.action.path()),
        token: args.target.token.as_deref(),
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
