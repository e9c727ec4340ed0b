//! TLS with rustls (the `ring` provider): the client side of `https://` upstreams and the
//! server side of `--tls-cert/--tls-key`.
//!
//! - [`client_config`]: the roots an `https://` upstream is verified with, the system's
//!   (`rustls-native-certs`: `/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`) or a private CA
//!   given as PEM; [`ProxyClients`](crate::proxy::ProxyClients) sets the ALPN protocols. It lives
//!   in `fluxgate-proxy` ([`fluxgate_proxy::tls`]) with [`ClientTls`] and [`TlsError`].
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
use std::sync::Arc;
use std::time::Duration;

pub use fluxgate_proxy::tls::{ClientTls, TlsError, client_config, pem_certificates};
use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;

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
        let chain = pem_certificates(cert)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|error| match error {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey,
            other => TlsError::Pem(other.to_string()),
        })?;
        // rustls 0.23.48 deprecates ring's provider (it has no post-quantum key exchange); FluxGate
        // keeps ring, which builds with a C compiler alone (aws-lc-rs needs cmake).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
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
