//! The upstream failures of the soak: one upstream killed (SIGKILL) at a time, once or every
//! period, and restarted on the same address a while after each kill.

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, sleep_until};

/// What to kill, when, and how to bring it back.
#[derive(Debug, Clone)]
pub(crate) struct Chaos {
    /// The process serving the upstream at the start (the script started it).
    pub(crate) pid: u32,
    /// The upstream's address (`host:port`), where a restarted one listens again.
    pub(crate) address: String,
    /// The first kill, after the start of the soak.
    pub(crate) first: Duration,
    /// Time between two kills; `None`: one kill only.
    pub(crate) every: Option<Duration>,
    /// Time from a kill to the restart; `None`: never restarted.
    pub(crate) restart_after: Option<Duration>,
    /// The restart: a program and its arguments.
    pub(crate) restart: Vec<String>,
    /// A file the pid of each restarted upstream is written to (so the script can stop it).
    pub(crate) pid_file: Option<PathBuf>,
}

/// One kill, in seconds since the start of the soak.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kill {
    /// When the SIGKILL was sent.
    pub(crate) at: f64,
    /// Whether `kill` succeeded.
    pub(crate) killed: bool,
    /// When the restarted upstream accepted a connection, if it was restarted and did.
    pub(crate) back_at: Option<f64>,
}

/// Runs `chaos` from `start` for `duration` (no kill at or after its end) and returns the kills
/// at `end`, when the restarted upstream still running is stopped.
pub(crate) async fn run(
    chaos: Chaos,
    start: Instant,
    duration: Duration,
    end: Instant,
) -> Vec<Kill> {
    let mut kills = Vec::new();
    let mut pid = chaos.pid;
    let mut child: Option<Child> = None;
    let mut next = chaos.first;
    while next < duration {
        sleep_until(start + next).await;
        let at = start.elapsed().as_secs_f64();
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success());
        if let Some(mut old) = child.take() {
            let _ = old.wait().await;
        }
        eprintln!("soak: killed upstream pid {pid} at {at:.3}s: {killed}");
        let mut kill = Kill {
            at,
            killed,
            back_at: None,
        };
        if let Some(after) = chaos.restart_after {
            sleep_until(start + next + after).await;
            match restart(&chaos).await {
                Some(restarted) => {
                    pid = restarted.id().unwrap_or(0);
                    child = Some(restarted);
                    kill.back_at = Some(start.elapsed().as_secs_f64());
                    eprintln!(
                        "soak: restarted upstream (pid {pid}) listening at {:.3}s",
                        start.elapsed().as_secs_f64()
                    );
                }
                None => eprintln!("soak: the upstream did not come back"),
            }
        }
        kills.push(kill);
        let Some(every) = chaos.every else { break };
        next += every;
    }
    sleep_until(end).await;
    if let Some(mut last) = child {
        let _ = last.kill().await;
    }
    kills
}

/// Starts the upstream again and waits (up to 5s) until it accepts a connection.
async fn restart(chaos: &Chaos) -> Option<Child> {
    let (program, args) = chaos.restart.split_first()?;
    let mut child = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    if let (Some(file), Some(pid)) = (&chaos.pid_file, child.id()) {
        let _ = std::fs::write(file, pid.to_string());
    }
    for _ in 0..100 {
        if TcpStream::connect(&chaos.address).await.is_ok() {
            return Some(child);
        }
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        sleep(Duration::from_millis(50)).await;
    }
    None
}
