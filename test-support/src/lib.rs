//! Test helpers for FluxGate: real `redis-server` processes on free loopback ports.
//!
//! Use [`RedisServer`] in tests that need one Redis (and may kill or restart it), and
//! [`RedisCluster`] where Redis Cluster behaviour is tested. [`TestCa`] makes throwaway
//! certificates (with the `openssl` command line) for a TLS-only server
//! ([`RedisServerBuilder::tls`]). Both start the `redis-server` found on
//! `PATH` (and `redis-cli` for the cluster), never touch the system Redis on port 6379, keep no
//! data on disk (`--save "" --appendonly no`), and kill their processes when dropped.
//!
//! The API is blocking (starting waits until the server answers, at most a few seconds), so it
//! can be used from plain `#[test]`s and from `#[tokio::test(flavor = "multi_thread")]` alike.
//!
//! # Example
//!
//! ```
//! use fluxgate_test_support::RedisServer;
//!
//! let mut server = RedisServer::start()?;
//! assert!(server.url().starts_with("redis://127.0.0.1:"));
//! assert!(server.ping());
//! server.stop();
//! assert!(!server.ping());
//! server.restart()?; // same port, empty data
//! assert!(server.ping());
//! # Ok::<(), fluxgate_test_support::Error>(())
//! ```

mod cluster;
mod server;
mod tls;

pub use cluster::RedisCluster;
pub use server::{RedisServer, RedisServerBuilder};
pub use tls::TestCa;

use std::time::Duration;

/// How long starting a server or forming a cluster may take before it is an error.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Redis process or cluster could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `redis-server` or `redis-cli` could not be run.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// No free loopback port was found.
    #[error("no free loopback port: {0}")]
    NoPort(#[source] std::io::Error),
    /// The server did not answer `PING` in time.
    #[error("redis-server on port {port} did not answer PING within {timeout:?}")]
    NotReady {
        /// The port.
        port: u16,
        /// How long it was given.
        timeout: Duration,
    },
    /// `openssl` could not make the test certificates.
    #[error("cannot make test certificates: {0}")]
    Tls(String),
    /// `redis-cli --cluster create` failed, or the cluster did not reach `cluster_state:ok`.
    #[error("cannot form the cluster: {0}")]
    Cluster(String),
}

/// Runs `command` (`program`) to its end with no input; its output whatever the exit status.
fn output(
    program: &'static str,
    command: &mut std::process::Command,
) -> Result<std::process::Output, Error> {
    command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| Error::Spawn { program, source })
}

/// Sleeps the current thread; these helpers are blocking by design.
#[allow(clippy::disallowed_methods)] // test helpers, blocking by design (see the crate docs)
fn pause(duration: Duration) {
    std::thread::sleep(duration);
}
