use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::record::{Message, policies_key, versions_key};
use super::writer::{CONNECT_TIMEOUT, open, unreachable};
use super::{RedisStoreError, RedisTls, StoredPolicy, changes_channel, redact_url};
use crate::store::{ApplyReport, Change, PolicyId, PolicyStore};

/// How a [`RedisSource`] is doing, for status pages and tests.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RedisSourceStatus {
    /// Whether it is subscribed and has loaded the full set since it last connected.
    pub connected: bool,
    /// How many times it has loaded the full set (once per connection).
    pub syncs: u64,
    /// How many policy changes it has put in force or deleted.
    pub changes: u64,
    /// How many policies the store refused (invalid, or unreadable records).
    pub rejected: u64,
    /// How many connection attempts failed or connections were lost.
    pub failures: u64,
    /// The last connection error; it stays after a reconnect, for status pages.
    pub last_error: Option<RedisStoreError>,
}

/// Follows the policies of one namespace in Redis and applies them to a [`PolicyStore`].
///
/// The follower subscribes to [`changes_channel`], then loads the full set from
/// [`policies_key`] (so that a replica that missed messages while it was away converges), then
/// applies each published change. Every policy is validated by the store: an invalid one is
/// refused and reported (log, the store's [`status`](PolicyStore::status), and
/// [`RedisSourceStatus::rejected`]) and the policy in force stays. A policy deleted in Redis is
/// deleted from the store. Changes carry a version, and a change that is not newer than the
/// version already seen for that policy is ignored, so a late message never undoes a newer one.
/// Redis is the source of truth: after a reconnect, the full set read from Redis replaces what
/// this follower put in the store (including the versions it remembers).
///
/// When Redis goes away the follower reconnects with exponential backoff (50ms doubling up to 2s
/// by default). The work is a future the caller spawns ([`run`](Self::run)), or a task that
/// stops when its [`RedisSourceHandle`] is dropped ([`spawn`](Self::spawn)).
///
/// # Example
///
/// ```no_run
/// use fluxgate_core::store::{PolicyStore, RedisSource};
///
/// # async fn run() -> Result<(), fluxgate_core::store::RedisStoreError> {
/// let store = PolicyStore::new();
/// let mut source = RedisSource::new("redis://127.0.0.1:6379", "payments", store.clone())?;
/// source.load().await?; // refuse to start when Redis is unreachable, or follow regardless
/// let handle = source.spawn();
/// assert!(handle.status().connected || handle.status().failures > 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct RedisSource {
    client: redis::Client,
    url: String,
    namespace: String,
    store: PolicyStore,
    backoff: (Duration, Duration),
    health: Duration,
    known: HashMap<String, u64>,
    owned: BTreeSet<String>,
    status: watch::Sender<RedisSourceStatus>,
}

/// The task of a spawned [`RedisSource`]; dropping it stops the following.
#[must_use = "dropping the handle stops following the policies in Redis"]
#[derive(Debug)]
pub struct RedisSourceHandle {
    task: JoinHandle<()>,
    status: watch::Receiver<RedisSourceStatus>,
}

// === impl RedisSource ===

impl RedisSource {
    /// A follower of `namespace` in Redis at `url`, applying to `store`. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidUrl`].
    pub fn new(url: &str, namespace: &str, store: PolicyStore) -> Result<Self, RedisStoreError> {
        Self::with_tls(url, namespace, store, &RedisTls::new())
    }

    /// A follower like [`new`](Self::new), with certificates for a `rediss://` URL (a private
    /// CA, a client certificate).
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidUrl`].
    pub fn with_tls(
        url: &str,
        namespace: &str,
        store: PolicyStore,
        tls: &RedisTls,
    ) -> Result<Self, RedisStoreError> {
        Ok(Self {
            client: open(url, tls)?,
            url: redact_url(url),
            namespace: namespace.to_owned(),
            store,
            backoff: (Duration::from_millis(50), Duration::from_secs(2)),
            health: Duration::from_secs(5),
            known: HashMap::new(),
            owned: BTreeSet::new(),
            status: watch::Sender::new(RedisSourceStatus::default()),
        })
    }

    /// The first and the largest delay between reconnection attempts (50ms and 2s by default).
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = (first, max.max(first));
        self
    }

    /// How often the subscription is checked with a `PING` (5s by default); a connection that
    /// does not answer within this time is dropped and made again.
    pub fn health_interval(mut self, every: Duration) -> Self {
        self.health = every.max(Duration::from_millis(10));
        self
    }

    /// A receiver of the follower's [`RedisSourceStatus`].
    #[must_use]
    pub fn status(&self) -> watch::Receiver<RedisSourceStatus> {
        self.status.subscribe()
    }

    /// Loads the full set of the namespace from Redis now and applies it.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::Unreachable`] when Redis cannot be reached within 2 seconds, or a
    /// command error. Invalid policies are not errors here: they are refused one by one and
    /// counted in [`RedisSourceStatus::rejected`].
    pub async fn load(&mut self) -> Result<ApplyReport, RedisStoreError> {
        let mut conn = self.connection().await?;
        self.reload(&mut conn).await
    }

    /// The following future: it runs until it is dropped. Spawn it.
    #[allow(clippy::manual_async_fn)] // the signature promises `Send + 'static` to spawners
    pub fn run(mut self) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let mut delay = self.backoff.0;
            loop {
                let Err(error) = self.session(&mut delay).await;
                tracing::warn!(namespace = %self.namespace, %error, retry_in = ?delay, "Redis policy source disconnected");
                self.status.send_modify(|s| {
                    s.connected = false;
                    s.failures += 1;
                    s.last_error = Some(error);
                });
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.backoff.1);
            }
        }
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn(self) -> RedisSourceHandle {
        let status = self.status();
        RedisSourceHandle {
            task: tokio::spawn(self.run()),
            status,
        }
    }

    /// One connection's life: subscribe, load everything, apply changes until it fails.
    async fn session(&mut self, delay: &mut Duration) -> Result<Infallible, RedisStoreError> {
        let url = self.url.clone();
        let lost = |what: &str| RedisStoreError::Unreachable {
            url: url.clone(),
            message: what.to_owned(),
        };
        let mut pubsub = timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| lost("connection timed out"))?
            .map_err(|e| unreachable(&self.url, &e))?;
        timeout(
            CONNECT_TIMEOUT,
            pubsub.subscribe(changes_channel(&self.namespace)),
        )
        .await
        .map_err(|_| lost("SUBSCRIBE timed out"))?
        .map_err(|e| RedisStoreError::command("subscribe", &self.url, e))?;
        // Subscribed first, loaded second: a change published in between is not missed.
        let mut conn = self.connection().await?;
        self.reload(&mut conn).await?;
        drop(conn);
        *delay = self.backoff.0;
        let (mut sink, mut stream) = pubsub.split();
        let mut health = tokio::time::interval(self.health);
        health.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.on_message(message.get_payload_bytes()),
                    None => return Err(lost("connection lost")),
                },
                _ = health.tick() => {
                    match timeout(self.health, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        _ => return Err(lost("no answer to PING")),
                    }
                }
            }
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisStoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| unreachable(&self.url, &e))
    }

    /// Reads the namespace's policies and versions in one transaction and makes the store agree.
    async fn reload(
        &mut self,
        conn: &mut MultiplexedConnection,
    ) -> Result<ApplyReport, RedisStoreError> {
        let (records, versions): (HashMap<String, Vec<u8>>, HashMap<String, u64>) = redis::pipe()
            .atomic()
            .cmd("HGETALL")
            .arg(policies_key(&self.namespace))
            .cmd("HGETALL")
            .arg(versions_key(&self.namespace))
            .query_async(conn)
            .await
            .map_err(|e| RedisStoreError::command("reload", &self.url, e))?;
        self.known = versions;
        let mut changes = Vec::new();
        let mut names: Vec<&String> = records.keys().collect();
        names.sort();
        for name in names {
            let Some(json) = records.get(name) else {
                continue;
            };
            match StoredPolicy::from_json(&self.namespace, name, json) {
                Ok(stored) => {
                    let result = self
                        .store
                        .apply_all(&[stored.policy], Some(&self.namespace));
                    changes.extend(self.applied(name, result.map(|r| r.changes)));
                }
                Err(error) => {
                    tracing::warn!(%error, "policy record in Redis not applied");
                    self.status.send_modify(|s| s.rejected += 1);
                }
            }
        }
        let gone: Vec<String> = self
            .owned
            .iter()
            .filter(|name| !records.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            changes.extend(self.delete(&name));
        }
        self.status.send_modify(|s| {
            s.connected = true;
            s.syncs += 1;
        });
        tracing::debug!(namespace = %self.namespace, policies = records.len(), "Redis policies loaded");
        Ok(ApplyReport {
            generation: self.store.generation(),
            changes,
        })
    }

    fn on_message(&mut self, payload: &[u8]) {
        let message: Message = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "unreadable policy change message ignored");
                self.status.send_modify(|s| s.rejected += 1);
                return;
            }
        };
        let known = self.known.get(&message.name).copied().unwrap_or(0);
        if message.version <= known {
            tracing::debug!(name = %message.name, version = message.version, known, "stale policy change ignored");
            return;
        }
        self.known.insert(message.name.clone(), message.version);
        if message.deleted {
            let _ = self.delete(&message.name);
            return;
        }
        let Some(mut policy) = message.policy else {
            return;
        };
        if let Some(meta) = policy.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.insert("generation".to_owned(), message.version.into());
        }
        let bytes = serde_json::to_vec(&policy).unwrap_or_default();
        let result = self.store.apply_bytes(&bytes, Some(&self.namespace));
        let _ = self.applied(&message.name, result.map(|r| r.changes));
    }

    fn applied(
        &mut self,
        name: &str,
        result: Result<Vec<Change>, crate::store::ApplyError>,
    ) -> Vec<Change> {
        match result {
            Ok(changes) => {
                let changed = changes.iter().filter(|c| c.is_change()).count() as u64;
                for change in changes.iter().filter(|c| c.is_change()) {
                    tracing::info!(source = "redis", "{change}");
                }
                self.owned.insert(name.to_owned());
                self.status.send_modify(|s| s.changes += changed);
                changes
            }
            // The store has logged and recorded the refusal; the policy in force stays.
            Err(_) => {
                self.status.send_modify(|s| s.rejected += 1);
                Vec::new()
            }
        }
    }

    fn delete(&mut self, name: &str) -> Vec<Change> {
        self.owned.remove(name);
        let report = self
            .store
            .delete(&PolicyId::new(self.namespace.as_str(), name));
        let n = report.changes.len() as u64;
        self.status.send_modify(|s| s.changes += n);
        report.changes
    }
}

// === impl RedisSourceHandle ===

impl RedisSourceHandle {
    /// The follower's status now.
    #[must_use]
    pub fn status(&self) -> RedisSourceStatus {
        self.status.borrow().clone()
    }

    /// Waits until the follower has loaded the full set at least `syncs` times in all.
    pub async fn wait_synced(&mut self, syncs: u64) {
        let _ = self
            .status
            .wait_for(|s| s.connected && s.syncs >= syncs)
            .await;
    }
}

impl Drop for RedisSourceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
