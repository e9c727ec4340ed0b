//! [`RedisOptions`]: how a [`RedisStore`](super::RedisStore) decides, syncs and fails.

use std::num::NonZeroU32;
use std::time::Duration;

use fluxgate_core::policy::{StoreFailure, SyncMode};

/// The shortest sync interval.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Whose clock strict decisions use.
///
/// ```
/// use fluxgate_ratelimit::store::RedisClock;
/// assert_eq!(RedisClock::default(), RedisClock::Server);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisClock {
    /// Redis' own `TIME`, read inside the script: replicas' clock skew does not matter (default).
    #[default]
    Server,
    /// This process' tokio clock, sent with each command (tests on a paused clock; replicas'
    /// clocks must agree).
    Local,
}

/// Options of a [`RedisStore`](super::RedisStore); every field has a documented default.
///
/// `rediss://` URLs connect with TLS (rustls), verifying the server against the system's
/// trusted roots, or against [`tls_root_certificate`](Self::tls_root_certificate) when set.
///
/// The defaults follow a policy's `spec.rateLimit.sync` and `onStoreFailure` defaults: synced
/// mode, a 50ms sync interval, a 5ms decision timeout, local fallback. A limit that carries its
/// own settings (a [`LimitSync`](crate::store::LimitSync), as every limit of a policy does)
/// uses those instead; the replica count, clock, prefix and key bound are the store's.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::policy::{StoreFailure, SyncMode};
/// use fluxgate_ratelimit::store::RedisOptions;
///
/// let options = RedisOptions::new()
///     .mode(SyncMode::Strict)
///     .timeout(Duration::from_millis(3))
///     .on_failure(StoreFailure::Local)
///     .replicas(4);
/// assert_eq!(options.interval(), Duration::from_millis(50));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisOptions {
    pub(crate) mode: SyncMode,
    pub(crate) interval: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) on_failure: StoreFailure,
    pub(crate) replicas: Option<NonZeroU32>,
    pub(crate) clock: RedisClock,
    pub(crate) prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_keys: usize,
    pub(crate) probe_min: Duration,
    pub(crate) probe_max: Duration,
    pub(crate) heartbeat: Duration,
    /// Certificates for `rediss://` (a private CA, a client certificate); `Debug` redacts them.
    pub(crate) tls: Option<redis::TlsCertificates>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisOptions {
    /// The defaults: synced, 50ms interval, 5ms timeout (growing with measured round trips),
    /// local fallback, replicas counted by their heartbeats (2s TTL) with no floor.
    pub fn new() -> Self {
        Self {
            mode: SyncMode::Synced,
            interval: Duration::from_millis(50),
            timeout: Some(Duration::from_millis(5)),
            on_failure: StoreFailure::Local,
            replicas: None,
            clock: RedisClock::Server,
            prefix: "fluxgate:rl".to_owned(),
            connect_timeout: Duration::from_secs(1),
            max_keys: super::super::DEFAULT_MAX_KEYS,
            probe_min: Duration::from_millis(50),
            probe_max: Duration::from_millis(250),
            heartbeat: Duration::from_secs(2),
            tls: None,
        }
    }

    /// `strict` (every decision in Redis) or `synced` (local decisions, merged every interval).
    pub fn mode(mut self, mode: SyncMode) -> Self {
        self.mode = mode;
        self
    }

    /// How often the sync task pushes counts and reads them back (at least 10ms; 50ms by default).
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(MIN_INTERVAL);
        self
    }

    /// The shortest a decision waits on Redis before falling back (5ms by default). The wait
    /// grows with the round trips measured (4 × the recent peak, at most 250ms), so scheduling
    /// jitter on a busy machine does not make decisions fall back; a decision that still times
    /// out is decided by the fallback, and Redis' late answer is reconciled with it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Decisions wait on Redis without a timeout, whatever a limit's own timeout (tests on a
    /// paused clock only: a paused clock jumps to the next timer while a command is on the wire).
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// What decisions do while Redis is unreachable (`local` by default).
    pub fn on_failure(mut self, failure: StoreFailure) -> Self {
        self.on_failure = failure;
        self
    }

    /// The fewest replicas assumed to share the limits (a floor on the live count that the
    /// replicas' heartbeats give, see [`heartbeat_ttl`](Self::heartbeat_ttl)). Local fallback
    /// applies `1 / N` of each quota, N being the larger of this floor and the last live count
    /// seen; synced mode gives each replica `1 / N` of what is left between syncs.
    pub fn replicas(mut self, replicas: u32) -> Self {
        self.replicas = NonZeroU32::new(replicas);
        self
    }

    /// Whose clock strict decisions use ([`RedisClock::Server`] by default).
    pub fn clock(mut self, clock: RedisClock) -> Self {
        self.clock = clock;
        self
    }

    /// The prefix of every Redis key (`fluxgate:rl` by default).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long connecting may take (1s by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most keys a limiter tracks locally in synced mode; others are decided strictly
    /// ([`DEFAULT_MAX_KEYS`](super::super::DEFAULT_MAX_KEYS) by default).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(64);
        self
    }

    /// Trusts `pem` (one or more PEM certificates, a private CA's) for `rediss://` servers,
    /// instead of the system's trusted roots. A TLS option with a `redis://` URL is an
    /// [`InvalidUrl`](super::RedisConnectError::InvalidUrl) error when connecting.
    ///
    /// ```
    /// use fluxgate_ratelimit::store::RedisOptions;
    ///
    /// let ca = b"-----BEGIN CERTIFICATE-----\n...".to_vec(); // std::fs::read("ca.crt")
    /// let options = RedisOptions::new().tls_root_certificate(ca);
    /// assert!(!format!("{options:?}").contains("BEGIN"));
    /// ```
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(no_certificates).root_cert = Some(pem.into());
        self
    }

    /// Shows `cert` (a PEM certificate chain) and `key` (its PEM private key) to servers that
    /// require client certificates (mutual TLS, `tls-auth-clients yes`).
    ///
    /// ```
    /// use fluxgate_ratelimit::store::RedisOptions;
    ///
    /// let (cert, key) = (b"-----BEGIN CERTIFICATE-----\n...", b"-----BEGIN PRIVATE KEY-----\n...");
    /// let options = RedisOptions::new().tls_client_certificate(cert.to_vec(), key.to_vec());
    /// assert!(!format!("{options:?}").contains("PRIVATE"));
    /// ```
    pub fn tls_client_certificate(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.get_or_insert_with(no_certificates).client_tls = Some(redis::ClientTlsConfig {
            client_cert: cert.into(),
            client_key: key.into(),
        });
        self
    }

    /// How long a replica's heartbeat lives in Redis (2s by default, at least 100ms): the sync
    /// task renews it every quarter of that and reads the live count back, so a replica that
    /// stops is no longer counted after this long.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_ratelimit::store::RedisOptions;
    ///
    /// let options = RedisOptions::new().heartbeat_ttl(Duration::from_millis(500));
    /// # drop(options);
    /// ```
    pub fn heartbeat_ttl(mut self, ttl: Duration) -> Self {
        self.heartbeat = ttl.max(Duration::from_millis(100));
        self
    }

    /// The sync interval in force.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

fn no_certificates() -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: None,
    }
}
