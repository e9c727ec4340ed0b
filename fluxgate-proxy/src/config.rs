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
    ///
    /// On the proxy's own HTTP/1.1 exchange ([`ProxyConfig::http1_pool`], a request without a
    /// body) the deadline is coarse: each connection holds one deadline slot that a task per
    /// pool sweeps every tenth of the timeout (between 10 ms and 1 s), so the `504` comes
    /// between the timeout and one tick after it, never before, and a request costs no tokio
    /// timer.
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
    /// Whether a plain `http://` upstream is reached over the proxy's own HTTP/1.1 connections
    /// instead of the [`ProxyClient`](crate::ProxyClient): one pool per serving worker holding
    /// only this upstream's idle connections (the most recently used first, closed after 90s
    /// idle), with no per-request hashing of a pool key and no connect-or-checkout race.
    /// Requests without a body, or with a small one already in memory, are exchanged by the
    /// proxy itself on the caller's task (see the [crate docs](crate)); requests whose body
    /// streams go over hyper's HTTP/1 client connections. A
    /// request that a reused connection could not take is sent again on another, as the
    /// client does.
    ///
    /// Off by default, because only the caller knows that the upstream speaks HTTP/1.1: a
    /// cleartext HTTP/2 or gRPC upstream (whose client speaks HTTP/2 by prior knowledge) must
    /// keep it off. `https://` upstreams always use the client.
    pub http1_pool: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            preserve_host: true,
            forwarded: false,
            http1_pool: false,
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

    /// Sets [`ProxyConfig::http1_pool`].
    ///
    /// ```
    /// let config = fluxgate_proxy::ProxyConfig::default().http1_pool(true);
    /// assert!(config.http1_pool);
    /// ```
    #[must_use]
    pub fn http1_pool(mut self, on: bool) -> Self {
        self.http1_pool = on;
        self
    }
}
