//! The pooled hyper-util clients of the proxy: HTTP/1.1, HTTP/2 with prior knowledge, and TLS
//! (rustls, ALPN) for `https://` upstreams.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use crate::ProxyBody;
use crate::tls::{TlsError, client_config};
use crate::upstream::{Protocol, UpstreamSpec};

/// How long connecting to an upstream may take (TCP; the TLS handshake is within the proxy's
/// timeout or the call's deadline).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled client [`Proxy`](crate::Proxy) services share; clone it freely. It speaks plain
/// `http://` and, through rustls, `https://`; [`ProxyClients`] holds one per protocol.
pub type ProxyClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// The HTTP/1.1 [`ProxyClient`] (with ALPN `h2`/`http/1.1` for `https://`, verified with the
/// system's roots): TCP_NODELAY, a 10s connect timeout, a 90s idle timeout for pooled
/// connections.
///
/// ```
/// let _client = fluxgate_proxy::proxy_client();
/// ```
#[must_use]
pub fn proxy_client() -> ProxyClient {
    ProxyClients::system().sets[0].auto.clone()
}

/// One [`ProxyClient`] per way of speaking to an upstream, sharing one TLS configuration;
/// cheap to clone. With [`workers`](Self::workers), one such set per serving worker as well
/// (each with its own connection pool), for thread-per-core serving.
///
/// ```
/// use fluxgate_proxy::{ProxyClients, UpstreamSpec};
///
/// let clients = ProxyClients::system();
/// let grpc: UpstreamSpec = "http://127.0.0.1:50051,protocol=grpc".parse().unwrap();
/// let _client = clients.for_upstream(&grpc);
/// ```
#[derive(Debug, Clone)]
pub struct ProxyClients {
    /// The set of threads outside the serving workers, then one per worker.
    sets: Arc<[ClientSet]>,
    tls: Arc<ClientConfig>,
}

#[derive(Debug, Clone)]
struct ClientSet {
    /// HTTP/1.1; ALPN `h2` then `http/1.1` over TLS.
    auto: ProxyClient,
    /// HTTP/1.1 only (ALPN `http/1.1` over TLS).
    http1: ProxyClient,
    /// HTTP/2 only: prior knowledge in cleartext, ALPN `h2` over TLS.
    http2: ProxyClient,
}

impl ClientSet {
    fn get(&self, protocol: Protocol) -> &ProxyClient {
        match protocol {
            Protocol::H2c | Protocol::Grpc => &self.http2,
            Protocol::Http1 => &self.http1,
            _ => &self.auto,
        }
    }
}

impl ProxyClients {
    /// Clients verifying `https://` upstreams with the system's roots.
    #[must_use]
    pub fn system() -> Self {
        let config = client_config(None).unwrap_or_else(|error| {
            // Only when rustls refuses its own defaults: use the process-wide provider instead.
            tracing::warn!(%error, "TLS client configuration refused, using rustls' defaults");
            // An error only means a provider is installed already.
            // rustls 0.23.48 deprecates ring's provider (it has no post-quantum key exchange); FluxGate
            // keeps ring, which builds with a C compiler alone (aws-lc-rs needs cmake).
            #[allow(deprecated)]
            let _ = rustls::crypto::ring::default_provider().install_default();
            ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
        Self::new(&config)
    }

    /// Clients verifying `https://` upstreams with the CA certificates of `pem` (with `None`,
    /// the system's roots).
    ///
    /// # Errors
    ///
    /// [`TlsError`] when `pem` holds no certificate or a bad one.
    pub fn with_ca(pem: Option<&[u8]>) -> Result<Self, TlsError> {
        Ok(Self::new(&client_config(pem)?))
    }

    /// Clients over `tls` (its ALPN protocols are replaced with each client's own).
    #[must_use]
    pub fn new(tls: &ClientConfig) -> Self {
        Self {
            sets: Arc::from([ClientSet::new(tls)]),
            tls: Arc::new(tls.clone()),
        }
    }

    /// The same clients, plus one set (one connection pool) per serving worker (threads `1..=workers`
    /// of [`worker_index`](crate::worker::worker_index)): a proxy picks its worker's, so that
    /// an upstream connection is only ever used by the thread that made it.
    ///
    /// ```
    /// let clients = fluxgate_proxy::ProxyClients::system().workers(2);
    /// # let _ = clients;
    /// ```
    #[must_use]
    pub fn workers(self, workers: usize) -> Self {
        let mut sets = vec![self.sets[0].clone()];
        sets.extend((0..workers).map(|_| ClientSet::new(&self.tls)));
        Self {
            sets: sets.into(),
            tls: self.tls,
        }
    }

    /// The client `spec` asks for: HTTP/2 only for `h2c` and `grpc`, HTTP/1.1 only for `http1`,
    /// otherwise HTTP/1.1 (ALPN for `https://`); the one of threads outside the workers.
    #[must_use]
    pub fn for_upstream(&self, spec: &UpstreamSpec) -> &ProxyClient {
        self.for_protocol(spec.protocol)
    }

    /// The client of `protocol`, of threads outside the workers.
    #[must_use]
    pub fn for_protocol(&self, protocol: Protocol) -> &ProxyClient {
        self.sets[0].get(protocol)
    }

    /// The client `spec` asks for, one per set: outside the workers first, then each worker's.
    #[must_use]
    pub fn each_for_upstream(&self, spec: &UpstreamSpec) -> Vec<ProxyClient> {
        self.sets
            .iter()
            .map(|set| set.get(spec.protocol).clone())
            .collect()
    }
}

impl ClientSet {
    fn new(tls: &ClientConfig) -> Self {
        let client = |http1: bool, http2: bool| {
            let mut tls = tls.clone();
            tls.alpn_protocols.clear();
            let builder = HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http();
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            // gRPC calls wait for their answer without the proxy's timeout: bound the connect.
            http.set_connect_timeout(Some(CONNECT_TIMEOUT));
            http.enforce_http(false);
            let connector = match (http1, http2) {
                (true, true) => builder.enable_http1().enable_http2().wrap_connector(http),
                (true, false) => builder.enable_http1().wrap_connector(http),
                _ => builder.enable_http2().wrap_connector(http),
            };
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .timer(TokioTimer::new())
                .http2_only(!http1)
                .build(connector)
        };
        Self {
            auto: client(true, true),
            http1: client(true, false),
            http2: client(false, true),
        }
    }
}
