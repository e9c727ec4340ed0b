//! TLS with rustls (the `ring` provider): the client side of `https://` upstreams and the
//! server side of `--tls-cert/--tls-key`.
//!
//! - [`client_config`]: the roots an `https://` upstream is verified with, the system's
//!   (`rustls-native-certs`: `/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`) or a private CA
//!   given as PEM; [`ProxyClients`](crate::proxy::ProxyClients) sets the ALPN protocols.
//! - [`TlsAcceptor`]: a certificate chain and its key (PEM) offering ALPN `h2` and `http/1.1`;
//!   put it in [`ServerConfig::tls`](crate::server::ServerConfig::tls) and the server does the
//!   handshake on each accepted connection, then serves HTTP/2 or HTTP/1.1 as ALPN chose.
//!   Requests that came over TLS carry the [`ClientTls`] extension (the proxy then sends
//!   `X-Forwarded-Proto: https`).
//!
//! # Example
//!
//! ```no_run
//! # fn run() -> Result<(), fluxgate_gateway::tls::TlsError> {
//! use fluxgate_gateway::server::ServerConfig;
//! use fluxgate_gateway::tls::TlsAcceptor;
//!
//! let cert = std::fs::read("server.crt").map_err(fluxgate_gateway::tls::TlsError::Io)?;
//! let key = std::fs::read("server.key").map_err(fluxgate_gateway::tls::TlsError::Io)?;
//! let mut config = ServerConfig::default();
//! config.tls = Some(TlsAcceptor::new(&cert, &key)?);
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{0}")]
    Io(std::io::Error),
    /// The PEM text holds no certificate.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// The PEM text holds no private key (PKCS#8, PKCS#1 or SEC1).
    #[error("no PEM private key found")]
    NoKey,
    /// A certificate or key could not be parsed.
    #[error("bad PEM: {0}")]
    Pem(String),
    /// rustls refused the configuration (a key that does not match the certificate, ...).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The `ring` crypto provider, whatever the process-wide default is.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM text.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem(error.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// The system's trusted roots, loaded once per process (unreadable ones are skipped).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::debug!(%error, "a system root certificate could not be loaded");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
        tracing::debug!(added, ignored, "system root certificates");
        Arc::new(roots)
    }))
}

/// A client configuration verifying servers with `ca` (PEM, one or more certificates) or, when
/// `None`, the system's roots; no ALPN protocols yet, no client certificate.
///
/// ```
/// let config = fluxgate_gateway::tls::client_config(None).unwrap();
/// assert!(config.alpn_protocols.is_empty());
/// assert!(fluxgate_gateway::tls::client_config(Some(b"not pem")).is_err());
/// ```
///
/// # Errors
///
/// [`TlsError`] when `ca` holds no certificate or one that cannot be parsed.
pub fn client_config(ca: Option<&[u8]>) -> Result<ClientConfig, TlsError> {
    let roots = match ca {
        None => system_roots(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(pem)? {
                roots
                    .add(cert)
                    .map_err(|error| TlsError::Pem(error.to_string()))?;
            }
            Arc::new(roots)
        }
    };
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Marks a request that came over TLS (inserted by the server with [`ServerConfig::tls`](crate::server::ServerConfig::tls)).
///
/// ```
/// use fluxgate_gateway::tls::ClientTls;
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(ClientTls);
/// assert!(request.extensions().get::<ClientTls>().is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTls;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of TLS: a certificate chain and key, ALPN `h2` and `http/1.1`; cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// An acceptor presenting the chain `cert` (PEM, leaf first) with its private key `key` (PEM).
    ///
    /// ```
    /// use fluxgate_gateway::tls::{TlsAcceptor, TlsError};
    /// assert!(matches!(TlsAcceptor::new(b"", b""), Err(TlsError::NoCertificate)));
    /// ```
    ///
    /// # Errors
    ///
    /// [`TlsError`] when either cannot be parsed or the key does not fit the certificate.
    pub fn new(cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = certificates(cert)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|error| match error {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey,
            other => TlsError::Pem(other.to_string()),
        })?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the chain and key from PEM files.
    ///
    /// # Errors
    ///
    /// [`TlsError::Io`] naming the file that cannot be read, or as [`TlsAcceptor::new`].
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, TlsError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|error| {
                TlsError::Io(std::io::Error::new(
                    error.kind(),
                    format!("{}: {error}", path.display()),
                ))
            })
        };
        Self::new(&read(cert)?, &read(key)?)
    }

    /// Does the handshake on `stream` (bounded by 10s); `None` when it fails (logged at `debug`:
    /// scanners and wrong clients are common).
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.inner.accept(stream)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                None
            }
            Err(_elapsed) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}

/// A hyper service that marks each request with [`ClientTls`] before calling the inner one.
#[derive(Debug, Clone)]
pub(crate) struct MarkTls<S>(pub(crate) S);

impl<S, B> hyper::service::Service<http::Request<B>> for MarkTls<S>
where
    S: hyper::service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(ClientTls);
        self.0.call(request)
    }
}
