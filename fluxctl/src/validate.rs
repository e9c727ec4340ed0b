//! `fluxctl validate -f FILE...`: parse and validate policy files.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use fluxgate_core::policy::{KIND, parse_documents};

/// Arguments of `fluxctl validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A policy file (YAML, several documents separated by `---`, or JSON); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

/// Validates every file; prints `FILE: ok TrafficPolicy ID` per valid document on stdout and
/// `FILE: ERROR` per error on stderr.
pub(crate) fn run(args: &Args) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut ok = true;
    for file in &args.files {
        let label = file.display().to_string();
        let input = match crate::common::read_input(file) {
            Ok(input) => input,
            Err(e) => {
                ok = false;
                let _ = writeln!(stderr, "{label}: cannot read: {e}");
                continue;
            }
        };
        for document in parse_documents(&input).documents {
            match document.result {
                Ok(policy) => {
                    let _ = writeln!(stdout, "{label}: ok {KIND} {}", policy.id());
                }
                Err(errors) => {
                    ok = false;
                    for error in errors.iter() {
                        let _ = writeln!(stderr, "{label}: {error}");
                    }
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
