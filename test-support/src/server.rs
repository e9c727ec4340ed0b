use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::{Error, START_TIMEOUT, TestCa, pause};

/// One `redis-server` process on a free loopback port, killed when dropped.
///
/// ```
/// use fluxgate_test_support::RedisServer;
///
/// let server = RedisServer::builder().password("s3cret").start()?;
/// assert!(server.url().starts_with("redis://:s3cret@127.0.0.1:"));
/// assert!(server.ping());
/// # Ok::<(), fluxgate_test_support::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    extra: Vec<String>,
    tls: Option<Tls>,
    child: Option<Child>,
}

/// A TLS-only server's certificates, and whether it requires client certificates.
#[derive(Debug, Clone)]
struct Tls {
    ca: TestCa,
    auth_clients: bool,
}

/// Options of a [`RedisServer`]: a password, TLS, extra `redis-server` arguments.
///
/// ```
/// use fluxgate_test_support::{RedisServer, TestCa};
///
/// let server = RedisServer::builder().arg("--maxmemory").arg("10mb").start()?;
/// assert!(server.ping());
///
/// let ca = TestCa::generate()?;
/// let tls = RedisServer::builder().password("s3cret").tls(&ca).start()?;
/// assert!(tls.url().starts_with("rediss://:s3cret@127.0.0.1:"));
/// assert!(tls.ping());
/// # Ok::<(), fluxgate_test_support::Error>(())
/// ```
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct RedisServerBuilder {
    password: Option<String>,
    extra: Vec<String>,
    port: Option<u16>,
    tls: Option<Tls>,
}

impl RedisServerBuilder {
    /// Requires clients to authenticate with `password` (`--requirepass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds one argument to the `redis-server` command line.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Serves TLS only (`--port 0 --tls-port PORT`) with `ca`'s server certificate, not asking
    /// clients for certificates; [`url`](RedisServer::url) then starts with `rediss://`.
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(Tls {
            ca: ca.clone(),
            auth_clients: false,
        });
        self
    }

    /// Serves TLS only and requires a client certificate signed by `ca` (mutual TLS).
    pub fn mutual_tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(Tls {
            ca: ca.clone(),
            auth_clients: true,
        });
        self
    }

    /// Uses `port` instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts the server and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// [`Error`] when no port is free, `redis-server` cannot run, or it does not answer in time.
    pub fn start(self) -> Result<RedisServer, Error> {
        let port = match self.port {
            Some(port) => port,
            None => free_port(0)?,
        };
        let mut server = RedisServer {
            port,
            password: self.password,
            extra: self.extra,
            tls: self.tls,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }
}

impl RedisServer {
    /// Starts a server with no password on a free port; see [`builder`](Self::builder) for options.
    ///
    /// # Errors
    ///
    /// As [`RedisServerBuilder::start`].
    pub fn start() -> Result<Self, Error> {
        RedisServerBuilder::default().start()
    }

    /// Options for a server.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The port the server listens on (it keeps it across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:PASSWORD@]127.0.0.1:PORT` (`rediss://` with TLS).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.password {
            Some(password) => format!("{scheme}://:{password}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// The CA whose certificates the server uses, when it serves TLS.
    #[must_use]
    pub fn tls(&self) -> Option<&TestCa> {
        self.tls.as_ref().map(|tls| &tls.ca)
    }

    /// Whether the server answers `PING` now (authenticating first when it has a password;
    /// through `redis-cli --tls` when it serves TLS).
    #[must_use]
    pub fn ping(&self) -> bool {
        match &self.tls {
            Some(tls) => ping_tls(self.port, self.password.as_deref(), &tls.ca),
            None => ping(self.port, self.password.as_deref()),
        }
    }

    /// The server process's id while it runs (for signals such as SIGSTOP/SIGCONT in fault tests).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Its data is lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, then starts a new one on the same port with the same options.
    ///
    /// # Errors
    ///
    /// As [`RedisServerBuilder::start`].
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let mut command = Command::new("redis-server");
        let port = self.port.to_string();
        match &self.tls {
            Some(tls) => {
                let path = |p: std::path::PathBuf| p.display().to_string();
                let auth = if tls.auth_clients { "yes" } else { "no" };
                command
                    .args(["--port", "0", "--tls-port", &port])
                    .args(["--tls-cert-file", &path(tls.ca.server_cert())])
                    .args(["--tls-key-file", &path(tls.ca.server_key())])
                    .args(["--tls-ca-cert-file", &path(tls.ca.ca_cert())])
                    .args(["--tls-auth-clients", auth])
            }
            None => command.args(["--port", &port]),
        };
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        command.args(&self.extra);
        let child = command.spawn().map_err(|source| Error::Spawn {
            program: "redis-server",
            source,
        })?;
        self.child = Some(child);
        if wait_until(|| self.ping()) {
            Ok(())
        } else {
            self.stop();
            Err(Error::NotReady {
                port: self.port,
                timeout: START_TIMEOUT,
            })
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that is free now; with `bus_offset`, `port + bus_offset` is free too.
pub(crate) fn free_port(bus_offset: u16) -> Result<u16, Error> {
    let mut last = None;
    for _ in 0..50 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::NoPort)?;
        let port = listener.local_addr().map_err(Error::NoPort)?.port();
        if bus_offset == 0 {
            return Ok(port);
        }
        match port.checked_add(bus_offset) {
            Some(bus) => match TcpListener::bind((Ipv4Addr::LOCALHOST, bus)) {
                Ok(_) => return Ok(port),
                Err(e) => last = Some(e),
            },
            None => continue,
        }
    }
    Err(Error::NoPort(last.unwrap_or_else(|| {
        std::io::Error::other("no port pair found")
    })))
}

/// Polls `ready` every 20ms until it holds or [`START_TIMEOUT`] passes.
pub(crate) fn wait_until(mut ready: impl FnMut() -> bool) -> bool {
    let start = SystemTime::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed().unwrap_or_default() > START_TIMEOUT {
            return false;
        }
        pause(Duration::from_millis(20));
    }
}

/// Sends `PING` (after `AUTH` when a password is given) and expects `+PONG`.
pub(crate) fn ping(port: u16, password: Option<&str>) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let mut request = String::new();
    if let Some(password) = password {
        request.push_str(&format!(
            "*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n",
            password.len()
        ));
    }
    request.push_str("*1\r\n$4\r\nPING\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if password.is_some() && (reader.read_line(&mut line).is_err() || line != "+OK\r\n") {
        return false;
    }
    line.clear();
    reader.read_line(&mut line).is_ok() && line == "+PONG\r\n"
}

/// `PING` through `redis-cli --tls`, trusting `ca` and showing its client certificate.
fn ping_tls(port: u16, password: Option<&str>, ca: &TestCa) -> bool {
    let dir = ca.dir();
    let mut command = Command::new("redis-cli");
    command
        .args(["--tls", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg("--cacert")
        .arg(ca.ca_cert())
        .arg("--cert")
        .arg(dir.join("client.crt"))
        .arg("--key")
        .arg(dir.join("client.key"))
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    if let Some(password) = password {
        command.args(["--no-auth-warning", "-a", password]);
    }
    command
        .arg("PING")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"PONG"))
}
