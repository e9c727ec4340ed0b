//! `fluxctl`: the command line for FluxGate policies.
//!
//! Run with `cargo run -p fluxctl -- validate -f examples/policies/checkout-service-policy.yaml`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod validate;

const EXIT_CODES: &str = "Exit status:
  0  success (for validate: every document is a valid TrafficPolicy)
  1  failure (an invalid document, or a file that cannot be read)
  2  usage error";

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
    #[command(after_help = EXIT_CODES)]
    Validate(validate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(&args),
    }
}
