//! The real `fluxgate` binary as a child process: started on ephemeral ports, its addresses read
//! from the banner, its logs kept in a file, `/api/status` and `/metrics` read, signals sent, and
//! killed when dropped.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::support::gateway::get;

/// A policy document named `test/shop` with `spec` (YAML flow or block text after `spec:`).
pub fn policy(spec: &str) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: shop, namespace: test}}\nspec: {spec}\n"
    )
}

/// A policy limiting each `X-Client-Id` to a burst of `burst` (and almost no refill).
pub fn limited_policy(burst: u32) -> String {
    policy(&format!(
        "\n  rateLimit: {{requestsPerSecond: 0.001, burstSize: {burst}, keyExtractor: header.X-Client-Id}}"
    ))
}

/// The gateway process, killed when dropped.
pub struct Process {
    pub child: Child,
    pub proxy: String,
    pub admin: String,
    pub log: PathBuf,
    pub policy: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts the binary with `policy_text` in `dir/policy.yaml`, `upstream` and `extra` arguments.
    pub fn start(dir: &Path, policy_text: &str, upstream: &str, extra: &[&str]) -> Self {
        let policy = dir.join("policy.yaml");
        std::fs::write(&policy, policy_text).unwrap();
        let log = dir.join("gateway.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fluxgate"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--policy",
            ])
            .arg(&policy)
            .args(["--upstream", upstream])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut proxy, mut admin) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let url = line.split_whitespace().nth(1).map(str::to_owned);
                if line.trim_start().starts_with("proxy") {
                    proxy = url;
                } else if line.trim_start().starts_with("admin") {
                    admin = url;
                }
                if let (Some(p), Some(a)) = (&proxy, &admin) {
                    let _ = tx.send((p.clone(), a.clone()));
                    proxy = None;
                }
            }
        });
        let mut process = Self {
            child,
            proxy: String::new(),
            admin: String::new(),
            log,
            policy,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok((proxy, admin)) => (process.proxy, process.admin) = (proxy, admin),
            Err(_) => {
                let exit = process.child.try_wait().unwrap();
                panic!("the gateway did not start ({exit:?}):\n{}", process.log());
            }
        }
        process
    }

    /// The proxy URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.proxy)
    }

    /// `/api/status` as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let answer = get(&format!("{}/api/status", self.admin), &[]).await;
        serde_json::from_str(&answer.body).unwrap()
    }

    /// The sum of the samples of `family` whose labels contain every `labels` pair (`k="v"`).
    pub async fn metric(&self, family: &str, labels: &[&str]) -> f64 {
        let text = get(&format!("{}/metrics", self.admin), &[]).await.body;
        text.lines()
            .filter(|line| {
                line.strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter(|line| labels.iter().all(|l| line.contains(l)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (such as `-HUP`) to the process.
    pub fn signal(&self, signal: &str) {
        kill(signal, self.child.id());
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits (bounded) for the process to exit, returning whether it did.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Sends `signal` to process `pid` with `kill(1)`.
pub fn kill(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {signal} {pid}");
}

/// Polls `check` every 50ms until it holds, failing with `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
