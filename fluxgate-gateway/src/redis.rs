//! The gateway's link to Redis: the policies it follows there and the rate limits it shares,
//! made whether or not Redis answers at startup.
//!
//! A gateway restarted during a Redis outage must not turn the outage into its own: when Redis
//! does not answer, [`RedisLink::start`] logs so and the gateway starts with its policy file and
//! local rate limits (each replica at its share of the rate, as during any outage); the link
//! joins Redis when it answers (its policies are followed, the counters shared) and logs that.
//! [`RedisLink::status`] is the `redis` section of the admin API's `/api/status`.
//! A bad URL or refused credentials stay errors: they do not fix themselves.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use fluxgate_core::store::{PolicyStore, RedisTls};
//! use fluxgate_gateway::redis::RedisLink;
//! use fluxgate_ratelimit::store::RedisOptions;
//!
//! let store = PolicyStore::new();
//! let link = RedisLink::start("redis://127.0.0.1:6379", "payments", &store, RedisOptions::new(), &RedisTls::new()).await?;
//! let _limits = link.rate_limit_store(); // for StackConfig::rate_limit_store
//! println!("{}", link.status()["joined"]);
//! # Ok(()) }
//! ```

use fluxgate_core::store::{
    PolicyStore, RedisSource, RedisSourceHandle, RedisSourceStatus, RedisStoreError, RedisTls,
    redact_url,
};
use fluxgate_ratelimit::store::{RedisConnectError, RedisOptions, RedisStore, SyncHandle};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the link to Redis could not be made (never because Redis does not answer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisLinkError {
    /// The policy source refused the URL.
    #[error(transparent)]
    Policies(#[from] RedisStoreError),
    /// The rate-limit store refused the URL, the credentials or the TLS setup.
    #[error(transparent)]
    RateLimits(#[from] RedisConnectError),
}

/// Policies followed in Redis and rate limits shared through it; see the [module docs](self).
/// Dropping it stops the following, the syncing and the logging.
#[must_use = "dropping the link stops following policies and sharing limits through Redis"]
#[derive(Debug)]
pub struct RedisLink {
    url: String,
    namespace: String,
    store: RedisStore,
    started_down: bool,
    policies: RedisSourceHandle,
    _sync: SyncHandle,
    announcer: JoinHandle<()>,
}

impl RedisLink {
    /// Follows the policies of `namespace` in the Redis at `url` into `policies`, and makes the
    /// rate-limit store on it (`options`); a Redis that does not answer is joined later.
    ///
    /// # Errors
    ///
    /// [`RedisLinkError`] for a bad URL, refused credentials or a failed TLS handshake.
    pub async fn start(
        url: &str,
        namespace: &str,
        policies: &PolicyStore,
        options: RedisOptions,
        tls: &RedisTls,
    ) -> Result<Self, RedisLinkError> {
        let source = RedisSource::with_tls(url, namespace, policies.clone(), tls)?;
        let redacted = redact_url(url);
        let (store, started_down) = match RedisStore::connect(url, options.clone()).await {
            Ok(store) => (store, false),
            Err(RedisConnectError::Unreachable { message, .. }) => {
                tracing::warn!(
                    redis = %redacted, %message,
                    "Redis does not answer: starting with the policy file and local rate limits; \
                     the gateway joins Redis when it answers"
                );
                (RedisStore::connect_lazy(url, options)?, true)
            }
            Err(error) => return Err(error.into()),
        };
        let status = source.status();
        let policies = source.spawn();
        let announcer = tokio::spawn(announce(status, redacted.clone(), namespace.to_owned()));
        Ok(Self {
            url: redacted,
            namespace: namespace.to_owned(),
            _sync: store.spawn_sync(),
            store,
            started_down,
            policies,
            announcer,
        })
    }

    /// The rate-limit store to build the stack with (a clone shares it).
    #[must_use]
    pub fn rate_limit_store(&self) -> RedisStore {
        self.store.clone()
    }

    /// The policy follower's status.
    #[must_use]
    pub fn policies(&self) -> RedisSourceStatus {
        self.policies.status()
    }

    /// Whether the gateway follows Redis now: its policies are loaded and the rate-limit store
    /// is not known to be down.
    #[must_use]
    pub fn joined(&self) -> bool {
        self.policies().connected && !self.store.stats().down
    }

    /// The link as the admin API's `/api/status` shows it (`redis` section).
    #[must_use]
    pub fn status(&self) -> Value {
        let policies = self.policies();
        json!({
            "url": self.url,
            "namespace": self.namespace,
            "joined": self.joined(),
            "startedWithoutRedis": self.started_down,
            "policies": {
                "connected": policies.connected,
                "syncs": policies.syncs,
                "failures": policies.failures,
                "lastError": policies.last_error.map(|e| e.to_string()),
            },
            "rateLimits": limits_status(&self.store),
        })
    }
}

/// The `rateLimits` part of a link's status.
fn limits_status(store: &RedisStore) -> Value {
    let limits = store.stats();
    json!({
        "down": limits.down,
        "faults": limits.faults,
        "syncs": limits.syncs,
        "fallbackDecisions": limits.fallback_decisions,
    })
}

/// Rate limits shared through a Redis Cluster (`--redis-cluster`): no policies are followed
/// there (they come from the file or Kubernetes). Dropping it stops the syncing.
///
/// A master that dies is an outage of the keys in its slots until a replica takes over: the
/// store falls back to local limits (each replica at its share, from what the keys had used),
/// and shares them again once the promoted replica answers.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use fluxgate_gateway::redis::RedisClusterLink;
/// use fluxgate_ratelimit::store::RedisOptions;
///
/// let seeds = ["redis://127.0.0.1:7000".to_owned(), "redis://127.0.0.1:7001".to_owned()];
/// let link = RedisClusterLink::start(&seeds, RedisOptions::new()).await?;
/// let _limits = link.rate_limit_store(); // for StackConfig::rate_limit_store
/// println!("{}", link.status()["joined"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisClusterLink {
    seeds: Vec<String>,
    store: RedisStore,
    _sync: SyncHandle,
}

impl RedisClusterLink {
    /// Connects the rate-limit store to the cluster through its seed nodes `urls`.
    ///
    /// # Errors
    ///
    /// [`RedisLinkError::RateLimits`]: a bad URL, refused credentials, or no answer within
    /// [`RedisOptions::connect_timeout`].
    pub async fn start(urls: &[String], options: RedisOptions) -> Result<Self, RedisLinkError> {
        let store = RedisStore::connect_cluster(urls, options).await?;
        Ok(Self {
            seeds: urls.iter().map(|u| redact_url(u)).collect(),
            _sync: store.spawn_sync(),
            store,
        })
    }

    /// The rate-limit store to build the stack with (a clone shares it).
    #[must_use]
    pub fn rate_limit_store(&self) -> RedisStore {
        self.store.clone()
    }

    /// The link as the admin API's `/api/status` shows it (`redis` section): the seeds, whether
    /// the store shares the limits now (`joined`), and its counts.
    #[must_use]
    pub fn status(&self) -> Value {
        json!({
            "cluster": self.seeds,
            "joined": !self.store.stats().down,
            "rateLimits": limits_status(&self.store),
        })
    }
}

impl Drop for RedisLink {
    fn drop(&mut self) {
        self.announcer.abort();
    }
}

/// Logs each time the policy follower (re)joins Redis.
async fn announce(mut status: watch::Receiver<RedisSourceStatus>, url: String, namespace: String) {
    loop {
        if status.wait_for(|s| s.connected).await.is_err() {
            return;
        }
        tracing::info!(
            redis = %url, %namespace,
            "joined Redis: following its policies and sharing rate limits"
        );
        if status.wait_for(|s| !s.connected).await.is_err() {
            return;
        }
    }
}
