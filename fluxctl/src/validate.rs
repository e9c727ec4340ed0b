//! `fluxctl validate -f FILE...`: parse and validate policy files, and refuse two documents
//! with the same `namespace/name` (as `apply` and the gateway do).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use fluxgate_core::policy::{KIND, parse_documents};
use fluxgate_core::store::{DEFAULT_NAMESPACE, PolicyId};

/// Arguments of `fluxctl validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Policy files (YAML, several documents separated by `---`, or JSON; `-` reads stdin):
    /// `-f A B` or `-f A -f B`.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
}

/// Validates every file; prints `FILE: ok TrafficPolicy ID` per valid document on stdout and
/// `FILE: ERROR` per error on stderr. A document whose `namespace/name` (`default` without a
/// namespace) an earlier one has is an error, at its file and line.
pub(crate) fn run(args: &Args) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut ok = true;
    let mut seen: HashMap<PolicyId, (String, usize)> = HashMap::new();
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
                    let id = PolicyId::new(
                        policy
                            .metadata
                            .namespace
                            .as_deref()
                            .unwrap_or(DEFAULT_NAMESPACE),
                        policy.metadata.name.as_str(),
                    );
                    if let Some((first, line)) = seen.get(&id) {
                        ok = false;
                        let _ = writeln!(
                            stderr,
                            "{label}: document {} ({id}), line {}: policy {id} appears more than \
                             once (first in {first}, line {line}); apply and the gateway refuse both",
                            document.index + 1,
                            document.line
                        );
                        continue;
                    }
                    seen.insert(id, (label.clone(), document.line));
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
