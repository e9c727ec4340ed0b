//! The real `fluxgate` binary as a child process: started with arguments and environment, its
//! addresses read from the banner, its output collected, killed when dropped.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every wait of these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A running `fluxgate`.
pub struct Fluxgate {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

/// Arguments for ephemeral loopback ports.
pub const LOOPBACK: [&str; 4] = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];

/// A `fluxgate` command with `args`, and `env` added to a clean log environment.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fluxgate"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Collects the lines of `pipe` in a thread.
fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Fluxgate {
    /// Starts `command` and waits for its whole banner.
    pub async fn start(mut command: Command) -> Self {
        let mut child = command.spawn().expect("the fluxgate binary starts");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let started = async move {
            loop {
                // The banner is on stdout, or on stderr when stdout has the access log.
                let mut lines = stdout.lock().unwrap().clone();
                lines.extend(stderr.lock().unwrap().iter().cloned());
                let find = |label: &str| {
                    lines.iter().find_map(|line| {
                        let rest = line.trim_start().strip_prefix(label)?;
                        let url = rest.split_whitespace().next()?;
                        url.strip_prefix("http://")?.parse::<SocketAddr>().ok()
                    })
                };
                // The whole banner: its upstream lines and its grace period come after the
                // addresses, and a test may read them as soon as this returns (the banner's
                // last line says how the gateway stops).
                let whole = lines
                    .iter()
                    .any(|line| line.starts_with("Ctrl-C or SIGTERM stops it gracefully"));
                if let (Some(proxy), Some(admin), true) = (find("proxy"), find("admin"), whole) {
                    return Self {
                        child,
                        stdout,
                        stderr,
                        proxy,
                        admin,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "fluxgate exited with {status} before its banner: {:?}",
                        stderr.lock().unwrap()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(LIMIT, started)
            .await
            .expect("no banner from fluxgate")
    }

    /// The lines written to stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The lines written to stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` (`TERM`, `INT`) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("the kill command runs");
        assert!(status.success());
    }

    /// Waits for the process to exit (at most [`LIMIT`]).
    pub async fn wait(&mut self) -> ExitStatus {
        let exited = async {
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    break status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let status = tokio::time::timeout(LIMIT, exited)
            .await
            .expect("fluxgate did not exit");
        // Let the reader threads take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        status
    }
}

impl Drop for Fluxgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `fluxgate` with `args` to its end (for `--help` and refused arguments): status, stdout
/// and stderr. A process still running after [`LIMIT`] is killed and fails the test.
pub async fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut command = tokio::process::Command::from(command(args, env));
    command.kill_on_drop(true);
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("fluxgate {args:?} {env:?} did not exit"))
        .expect("the fluxgate binary runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `text` without ANSI colour sequences (the log lines are coloured).
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
