//! TLS for `rediss://` URLs: rustls with the `ring` crypto provider and the system's roots.

use std::sync::Once;

/// Makes `ring` rustls' process-wide crypto provider, unless the process installed one already.
///
/// rustls needs a process-wide provider before it makes a TLS connection (`rediss://`); without
/// one, connecting would panic. [`RedisSource`](super::RedisSource),
/// [`RedisPolicies`](super::RedisPolicies) and the rate limiter's Redis store call this before
/// they connect, so call it yourself only when you build `redis` clients of your own. A provider
/// installed earlier (by you, or another library) is kept.
///
/// Servers are verified against the system's trusted roots (`/etc/ssl/certs` on Debian, from
/// the `ca-certificates` package); the environment variables `SSL_CERT_FILE` or `SSL_CERT_DIR`
/// replace them, for a private CA.
///
/// ```
/// fluxgate_core::store::install_tls_provider();
/// fluxgate_core::store::install_tls_provider(); // any number of times
/// ```
pub fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error only means a provider is installed already.
        // rustls 0.23.48 deprecates ring's provider (it has no post-quantum key exchange); FluxGate
        // keeps ring, which builds with a C compiler alone (aws-lc-rs needs cmake).
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Certificates for a `rediss://` connection of the policy store: a private CA to verify the
/// server with (instead of the system's roots), and a client certificate for servers that
/// require one (`tls-auth-clients yes`). Neither is printed by `Debug`.
///
/// ```
/// use fluxgate_core::store::RedisTls;
///
/// let ca = b"-----BEGIN CERTIFICATE-----\n...".to_vec();
/// let tls = RedisTls::new().root_certificate(ca);
/// assert!(format!("{tls:?}").contains("root_certificate: true"));
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct RedisTls {
    root: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("root_certificate", &self.root.is_some())
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

impl RedisTls {
    /// No certificates: the system's roots verify the server, no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies servers against this CA (PEM) instead of the system's roots.
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root = Some(pem.into());
        self
    }

    /// Presents this certificate and private key (both PEM) to servers that ask for one.
    pub fn client_certificate(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.client = Some((cert.into(), key.into()));
        self
    }

    /// A client for `url` with these certificates (the system's roots without any).
    pub(super) fn client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        install_tls_provider();
        if self.root.is_none() && self.client.is_none() {
            return redis::Client::open(url);
        }
        let certificates = redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.root.clone(),
        };
        redis::Client::build_with_tls(url, certificates)
    }
}
