//! Upstreams named by DNS (a headless Service): every address the name resolves to is an
//! endpoint of the balancer, and the name is resolved again every interval, endpoints joining
//! and leaving while traffic flows.
//!
//! Use it for `--upstream http://checkout.payments.svc.cluster.local:8080`: the balancer sees
//! one endpoint per pod, each with its own health, latency and drains. An upstream whose host
//! is an IP literal is one endpoint, as before.
//!
//! A name that resolves to nothing (an error, or no address) is reported in the log and in
//! [`DiscoveryStatus`] and tried again at the next interval; its endpoints from the last good
//! answer stay (the active health checks drain the ones that are gone). A change reaches the
//! balancer at once, traffic or not: its handle, its health checks and the gateway's readiness
//! see it.
//!
//! The resolver is a [`Resolve`]: [`SystemResolver`] (tokio's `lookup_host`, the system's
//! resolver) by default, or any `Fn(&str, u16) -> Future<Output = io::Result<Vec<SocketAddr>>>`.
//!
//! # Example
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use fluxgate_gateway::discovery::DnsDiscovery;
//! use fluxgate_gateway::upstream::UpstreamSpec;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resolver = |_: &str, port: u16| async move {
//!     Ok(vec![SocketAddr::from(([10, 0, 0, 1], port)), SocketAddr::from(([10, 0, 0, 2], port))])
//! };
//! let discovery = DnsDiscovery::new().resolver(resolver).interval(Duration::from_secs(5));
//! let specs: Vec<UpstreamSpec> = vec!["http://checkout.payments.svc:8080,weight=2".parse()?];
//! discovery.resolve_now(&specs).await;
//! let endpoints = discovery.start(&specs, |upstream| upstream.to_string());
//! let keys: Vec<&str> = endpoints.initial.iter().map(|(key, _, _)| key.as_str()).collect();
//! assert_eq!(keys, ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]);
//! assert_eq!(discovery.status().names["checkout.payments.svc:8080"].addresses.len(), 2);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use fluxgate::stack::BoxError;
use fluxgate_balance::Weighted;
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tower::discover::Change;

use crate::upstream::{Upstream, UpstreamSpec};

/// How often names are resolved again by default.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);

/// What a [`Resolve`] returns.
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Resolves a host name and port to socket addresses.
///
/// ```
/// use fluxgate_gateway::discovery::{Resolve, SystemResolver};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let addresses = SystemResolver.resolve("localhost", 8080).await.unwrap();
/// assert!(addresses.iter().all(|a| a.ip().is_loopback() && a.port() == 8080));
/// # }
/// ```
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` at `port`.
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture;
}

impl<F, Fut> Resolve for F
where
    F: Fn(&str, u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        Box::pin(self(host, port))
    }
}

/// The system's resolver, through [`tokio::net::lookup_host`].
///
/// See [`Resolve`] for an example.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// What discovery knows, by `host:port`.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DiscoveryStatus {
    /// Each name (`host:port`) and its state.
    pub names: BTreeMap<String, NameStatus>,
}

impl DiscoveryStatus {
    /// The names whose last resolution gave nothing, with why.
    #[must_use]
    pub fn unresolved(&self) -> Vec<(&str, &str)> {
        self.names
            .iter()
            .filter_map(|(name, s)| s.last_error.as_deref().map(|e| (name.as_str(), e)))
            .collect()
    }
}

/// One name's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameStatus {
    /// The addresses in use (from the last answer that had any).
    pub addresses: Vec<SocketAddr>,
    /// Why the last resolution gave nothing; `None` when it gave addresses.
    pub last_error: Option<String>,
    /// Resolutions tried.
    pub resolutions: u64,
    /// Resolutions that gave nothing.
    pub failures: u64,
}

/// DNS discovery of upstreams; see the [module docs](self). Cheap to clone: clones share
/// their status and the addresses resolved so far.
#[derive(Clone)]
pub struct DnsDiscovery {
    resolver: Arc<dyn Resolve>,
    interval: Duration,
    status: Arc<watch::Sender<DiscoveryStatus>>,
}

impl fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("interval", &self.interval)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Default for DnsDiscovery {
    fn default() -> Self {
        Self::new()
    }
}

/// The endpoints of one side: those known now, and the changes to come.
#[must_use]
pub struct Endpoints<S> {
    /// `(key, service, weight)` of every endpoint known now: IP-literal upstreams, and the
    /// addresses already resolved (see [`DnsDiscovery::resolve_now`]). The key is the
    /// endpoint's URL (`http://10.0.0.5:8080/prefix`).
    pub initial: Vec<(String, S, u32)>,
    /// The inserts and removals of later resolutions, when some upstream is named by DNS;
    /// resolving stops when this stream is dropped.
    pub changes: Option<EndpointChanges<S>>,
}

impl<S> fmt::Debug for Endpoints<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.initial.iter().map(|(k, _, _)| k.as_str()).collect();
        f.debug_struct("Endpoints")
            .field("initial", &keys)
            .field("changes", &self.changes.is_some())
            .finish()
    }
}

/// The changes of a side's endpoints, as the stack's balancer takes them.
pub type EndpointChanges<S> =
    Pin<Box<dyn Stream<Item = Result<Change<String, Weighted<S>>, BoxError>> + Send>>;

// === impl DnsDiscovery ===

impl DnsDiscovery {
    /// Discovery with the [`SystemResolver`], every [`RESOLVE_INTERVAL`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            resolver: Arc::new(SystemResolver),
            interval: RESOLVE_INTERVAL,
            status: Arc::new(watch::Sender::new(DiscoveryStatus::default())),
        }
    }

    /// Resolves with `resolver` instead.
    #[must_use]
    pub fn resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Resolves every `interval` (at least 10ms).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// What discovery knows now.
    #[must_use]
    pub fn status(&self) -> DiscoveryStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change of the [`DiscoveryStatus`].
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<DiscoveryStatus> {
        self.status.subscribe()
    }

    /// Resolves every DNS name among `specs` once, so that [`start`](Self::start) begins with
    /// their addresses (a gateway does this before it binds, to start with its endpoints).
    pub async fn resolve_now(&self, specs: &[UpstreamSpec]) {
        let names: BTreeSet<String> = specs.iter().filter_map(dns_name).map(|n| n.0).collect();
        for name in names {
            self.resolve_name(&name).await;
        }
    }

    /// The endpoints of one side over `specs`, `make` turning each endpoint (a spec whose URL
    /// names one address; protocol and weight as given) into its service. With a DNS name among them, a task (spawned here: call it inside a tokio
    /// runtime) resolves the names every interval and sends the changes; it stops when the
    /// changes are dropped.
    pub fn start<S, M>(&self, specs: &[UpstreamSpec], make: M) -> Endpoints<S>
    where
        S: Send + 'static,
        M: Fn(&UpstreamSpec) -> S + Send + 'static,
    {
        let dns: Vec<UpstreamSpec> = specs
            .iter()
            .filter(|s| dns_name(s).is_some())
            .cloned()
            .collect();
        let fixed = specs.iter().filter(|s| dns_name(s).is_none());
        let mut initial: Vec<(String, S, u32)> = fixed
            .map(|s| (s.upstream.to_string(), make(s), s.weight.get()))
            .collect();
        if dns.is_empty() {
            return Endpoints {
                initial,
                changes: None,
            };
        }
        let known = self.targets(&dns);
        for (key, spec) in &known {
            if initial.iter().all(|(k, _, _)| k != key) {
                initial.push((key.clone(), make(spec), spec.weight.get()));
            }
        }
        let (tx, rx) = mpsc::unbounded();
        let task = Follow {
            discovery: self.clone(),
            specs: dns,
            make,
            current: known
                .into_iter()
                .map(|(k, spec)| (k, spec.weight.get()))
                .collect(),
            tx,
        };
        tokio::spawn(task.run());
        Endpoints {
            initial,
            changes: Some(rx.map(Ok).boxed()),
        }
    }

    /// Resolves `name` (`host:port`) and records the outcome.
    async fn resolve_name(&self, name: &str) {
        let Some((host, port)) = split_name(name) else {
            return;
        };
        let outcome = match self.resolver.resolve(host, port).await {
            Ok(addresses) if addresses.is_empty() => Err("no address".to_owned()),
            Ok(mut addresses) => {
                addresses.sort_unstable();
                addresses.dedup();
                Ok(addresses)
            }
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = &outcome {
            tracing::warn!(name, %error, "an upstream name resolves to nothing; retrying");
        }
        self.status.send_modify(|status| {
            let entry = status.names.entry(name.to_owned()).or_default();
            entry.resolutions += 1;
            match outcome {
                Ok(addresses) => {
                    if entry.addresses != addresses {
                        tracing::info!(name, ?addresses, "upstream addresses changed");
                    }
                    entry.addresses = addresses;
                    entry.last_error = None;
                }
                Err(error) => {
                    entry.failures += 1;
                    entry.last_error = Some(error);
                }
            }
        });
    }

    /// The endpoints `specs` stand for now: URL → the spec at that address; the first spec of
    /// an address gives its weight and protocol.
    fn targets(&self, specs: &[UpstreamSpec]) -> BTreeMap<String, UpstreamSpec> {
        let status = self.status.borrow();
        let mut targets = BTreeMap::new();
        for spec in specs {
            let Some((name, _)) = dns_name(spec) else {
                continue;
            };
            let addresses = status.names.get(&name).map(|s| s.addresses.as_slice());
            for address in addresses.unwrap_or_default() {
                if let Some(upstream) = at_address(&spec.upstream, *address) {
                    let mut resolved = spec.clone();
                    resolved.upstream = upstream;
                    targets
                        .entry(resolved.upstream.to_string())
                        .or_insert(resolved);
                }
            }
        }
        targets
    }
}

/// The task that resolves one side's names and sends the changes.
struct Follow<S, M> {
    discovery: DnsDiscovery,
    specs: Vec<UpstreamSpec>,
    make: M,
    /// The endpoints the balancer has (or will have once it applies the changes sent).
    current: BTreeMap<String, u32>,
    tx: mpsc::UnboundedSender<Change<String, Weighted<S>>>,
}

impl<S, M> Follow<S, M>
where
    M: Fn(&UpstreamSpec) -> S,
{
    async fn run(mut self) {
        let names: BTreeSet<String> = self
            .specs
            .iter()
            .filter_map(dns_name)
            .map(|n| n.0)
            .collect();
        let unresolved = names
            .iter()
            .any(|n| !self.discovery.status.borrow().names.contains_key(n));
        let mut tick = tokio::time::interval(self.discovery.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if !unresolved {
            tick.tick().await;
        }
        loop {
            tick.tick().await;
            if self.tx.is_closed() {
                return;
            }
            for name in &names {
                self.discovery.resolve_name(name).await;
            }
            if !self.send_changes() {
                return;
            }
        }
    }

    /// Sends the removals and inserts since the last round; `false` once the balancer is gone.
    fn send_changes(&mut self) -> bool {
        let targets = self.discovery.targets(&self.specs);
        let gone: Vec<String> = self
            .current
            .keys()
            .filter(|k| !targets.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            tracing::info!(endpoint = %key, "an upstream address leaves the balancer");
            self.current.remove(&key);
            if self.tx.unbounded_send(Change::Remove(key)).is_err() {
                return false;
            }
        }
        for (key, spec) in targets {
            let weight = spec.weight.get();
            if self.current.get(&key) == Some(&weight) {
                continue;
            }
            tracing::info!(endpoint = %key, "an upstream address joins the balancer");
            self.current.insert(key.clone(), weight);
            let endpoint = Weighted::new((self.make)(&spec), weight);
            if self
                .tx
                .unbounded_send(Change::Insert(key, endpoint))
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

/// `host:port` and the port, when `spec`'s host is a DNS name (not an IP literal).
fn dns_name(spec: &UpstreamSpec) -> Option<(String, u16)> {
    let authority = spec.upstream.authority();
    let host = authority.host();
    if host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
    {
        return None;
    }
    let default = if spec.upstream.scheme().as_str() == "https" {
        443
    } else {
        80
    };
    let port = authority.port_u16().unwrap_or(default);
    Some((format!("{host}:{port}"), port))
}

fn split_name(name: &str) -> Option<(&str, u16)> {
    let (host, port) = name.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// `upstream` with its host and port replaced by `address`.
fn at_address(upstream: &Upstream, address: SocketAddr) -> Option<Upstream> {
    format!(
        "{}://{address}{}",
        upstream.scheme(),
        upstream.path_prefix()
    )
    .parse()
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_literals() {
        let spec = |s: &str| s.parse::<UpstreamSpec>().unwrap();
        assert_eq!(dns_name(&spec("http://10.0.0.1:80")), None);
        assert_eq!(dns_name(&spec("http://[::1]:81")), None);
        assert_eq!(
            dns_name(&spec("http://checkout.svc:8080/v1")),
            Some(("checkout.svc:8080".to_owned(), 8080))
        );
        assert_eq!(dns_name(&spec("http://localhost")).unwrap().1, 80);
        let v6 = at_address(&spec("http://a:1/v1").upstream, "[::1]:9".parse().unwrap());
        assert_eq!(v6.unwrap().to_string(), "http://[::1]:9/v1");
    }
}
