//! [`ProxyConfig`]: how a [`Proxy`](crate::Proxy) forwards.

use std::time::Duration;

/// How a [`Proxy`](crate::Proxy) forwards; `ProxyConfig::default()` is a 15s timeout, the
/// client's `Host`, and `X-Forwarded-*` headers without `Forwarded`.
///
/// ```
/// use fluxgate_proxy::ProxyConfig;
/// use std::time::Duration;
///
/// let config = ProxyConfig::default()
///     .timeout(Duration::from_secs(5))
///     .preserve_host(false)
///     .forwarded(true);
/// assert_eq!(config.timeout, Duration::from_secs(5));
/// assert!(!config.preserve_host && config.forwarded);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// How long the upstream has to answer with response headers, connecting included, before
    /// the proxy answers `504 Gateway Timeout` (not for gRPC requests: their `grpc-timeout`, if
    /// any, is their deadline). 15 seconds by default.
    pub timeout: Duration,
    /// Whether the client's `Host` header is sent upstream (otherwise the upstream's authority).
    /// On by default: virtual hosts, redirects and cookies upstream see the name clients used.
    pub preserve_host: bool,
    /// Whether a `for=…;proto=…;host=…` element is appended to the RFC 7239 `Forwarded` header
    /// (`X-Forwarded-For`, `-Proto` and `-Host` are written either way).
    ///
    /// Off by default: most upstreams and frameworks read `X-Forwarded-For` only, and an
    /// upstream that prefers `Forwarded` would trust a list that starts at this proxy whenever
    /// the hops in front of it only wrote `X-Forwarded-For`, losing the clients they named.
    /// Turn it on when every proxy in front writes `Forwarded` too, or none is in front.
    pub forwarded: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            preserve_host: true,
            forwarded: false,
        }
    }
}

impl ProxyConfig {
    /// Sets [`ProxyConfig::timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`ProxyConfig::preserve_host`].
    #[must_use]
    pub fn preserve_host(mut self, preserve: bool) -> Self {
        self.preserve_host = preserve;
        self
    }

    /// Sets [`ProxyConfig::forwarded`].
    #[must_use]
    pub fn forwarded(mut self, forwarded: bool) -> Self {
        self.forwarded = forwarded;
        self
    }
}
