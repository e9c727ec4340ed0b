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
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
