//! TLS with rustls (the `ring` provider), client side: the roots an `https://` upstream is
//! verified with, and the [`ClientTls`] marker of requests that came over TLS.
//!
//! - [`client_config`]: the system's roots (`rustls-native-certs`: `/etc/ssl/certs`, or
//!   `SSL_CERT_FILE`/`SSL_CERT_DIR`) or a private CA given as PEM;
//!   [`ProxyClients`](crate::ProxyClients) sets the ALPN protocols.
//! - [`ClientTls`]: a server that terminates TLS inserts it into each request's extensions; the
//!   proxy then sends `X-Forwarded-Proto: https` (and `proto=https` in `Forwarded`).
//!
//! # Example
//!
//! ```
//! use fluxgate_proxy::ProxyClients;
//! use fluxgate_proxy::tls::{TlsError, client_config};
//!
//! let config = client_config(None)?;
//! let _clients = ProxyClients::new(&config);
//! # Ok::<(), TlsError>(())
//! ```

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Why a TLS configuration could not be made: the roots of a client here, the certificate and
/// key of a server in the gateway (`fluxgate-gateway`'s `TlsAcceptor`).
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
    // rustls 0.23.48 deprecates ring's provider (it has no post-quantum key exchange); FluxGate
    // keeps ring, which builds with a C compiler alone (aws-lc-rs needs cmake).
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// Every certificate of a PEM text (for a server's chain, or the roots of [`client_config`]).
///
/// ```
/// use fluxgate_proxy::tls::{TlsError, pem_certificates};
/// assert!(matches!(pem_certificates(b""), Err(TlsError::NoCertificate)));
/// ```
///
/// # Errors
///
/// [`TlsError::NoCertificate`] when there is none, [`TlsError::Pem`] for one that cannot be parsed.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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
/// let config = fluxgate_proxy::tls::client_config(None).unwrap();
/// assert!(config.alpn_protocols.is_empty());
/// assert!(fluxgate_proxy::tls::client_config(Some(b"not pem")).is_err());
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
            for cert in pem_certificates(pem)? {
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

/// Marks a request that came over TLS: a server terminating TLS inserts it (the gateway's does).
///
/// ```
/// use fluxgate_proxy::ClientTls;
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(ClientTls);
/// assert!(request.extensions().get::<ClientTls>().is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTls;
