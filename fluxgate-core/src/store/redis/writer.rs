use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::record::{policies_key, policy_json, versions_key};
use super::scripts::{APPLY_SCRIPT, DELETE_SCRIPT};
use super::{RedisStoreError, RedisTls, StoredPolicy, changes_channel, redact_url};
use crate::policy::TrafficPolicy;
use crate::store::{Change, PolicyId, PolicyStore};

/// How long connecting to Redis may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a write did to one policy, and the version Redis holds after it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyVersion {
    /// Created, configured or unchanged (`kubectl`'s words; its `Display` is the `fluxctl` line).
    pub change: Change,
    /// The policy's version in Redis after the write.
    pub version: u64,
}

/// Writes the policies that [`RedisSource`](super::RedisSource) followers apply: what
/// `fluxctl apply` and an admin endpoint use.
///
/// Every write runs as one Lua script: it validates nothing itself (the writer validates every
/// policy first, exactly as a [`PolicyStore`] would, and writes nothing if one is invalid),
/// then bumps each changed policy's version, stores it and publishes the change, atomically.
/// Cloning is cheap and shares the connection. The connection does not reconnect by itself:
/// make a new writer after [`RedisStoreError::is_unreachable`] errors.
///
/// # Example
///
/// ```no_run
/// use fluxgate_core::policy::TrafficPolicy;
/// use fluxgate_core::store::RedisPolicies;
///
/// # async fn run() -> Result<(), fluxgate_core::store::RedisStoreError> {
/// let redis = RedisPolicies::connect("redis://127.0.0.1:6379").await?;
/// let written = redis.apply("payments", &[TrafficPolicy::new(None, "checkout")]).await?;
/// println!("{} (version {})", written[0].change, written[0].version);
/// assert_eq!(redis.get("payments", "checkout").await?.unwrap().version, written[0].version);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisPolicies {
    conn: MultiplexedConnection,
    url: String,
}

impl std::fmt::Debug for RedisPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPolicies")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RedisPolicies {
    /// Connects to Redis at `url` (`redis://[:PASSWORD@]HOST:PORT[/DB]`, or `rediss://` for TLS).
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidUrl`], or [`RedisStoreError::Unreachable`] after 2 seconds.
    pub async fn connect(url: &str) -> Result<Self, RedisStoreError> {
        Self::connect_with_tls(url, &RedisTls::new()).await
    }

    /// Connects like [`connect`](Self::connect), with certificates for a `rediss://` URL (a
    /// private CA, a client certificate).
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidUrl`], or [`RedisStoreError::Unreachable`] after 2 seconds
    /// (an untrusted server included).
    pub async fn connect_with_tls(url: &str, tls: &RedisTls) -> Result<Self, RedisStoreError> {
        let client = open(url, tls)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| unreachable(url, &e))?;
        Ok(Self {
            conn,
            url: redact_url(url),
        })
    }

    /// Validates `policies`, then writes them all in `namespace`, or none.
    ///
    /// A policy without a namespace gets `namespace`; one naming another is refused. A policy
    /// whose content is already in Redis is reported unchanged and keeps its version.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::Invalid`] when a policy does not validate (nothing is written), or a
    /// connection or command error.
    pub async fn apply(
        &self,
        namespace: &str,
        policies: &[TrafficPolicy],
    ) -> Result<Vec<PolicyVersion>, RedisStoreError> {
        let items: Vec<_> = policies.iter().map(|p| (p, None)).collect();
        self.write(namespace, &items).await
    }

    /// Writes `policy` only if Redis holds version `expected` of it (0: only if it never existed).
    ///
    /// This is how a writer makes sure an older version never overwrites a newer one.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::Conflict`] when Redis holds another version (nothing is written), or as
    /// [`apply`](Self::apply).
    pub async fn apply_if_version(
        &self,
        namespace: &str,
        policy: &TrafficPolicy,
        expected: u64,
    ) -> Result<PolicyVersion, RedisStoreError> {
        let mut written = self.write(namespace, &[(policy, Some(expected))]).await?;
        written.pop().ok_or_else(|| RedisStoreError::Corrupt {
            id: PolicyId::new(namespace, policy.metadata.name.as_str()),
            message: "the apply script returned nothing".to_owned(),
        })
    }

    /// The policy `name` of `namespace`, if Redis holds it.
    ///
    /// # Errors
    ///
    /// A connection or command error, or [`RedisStoreError::Corrupt`].
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredPolicy>, RedisStoreError> {
        let value: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(policies_key(namespace))
            .arg(name)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error("get", e))?;
        value
            .map(|json| StoredPolicy::from_json(namespace, name, &json))
            .transpose()
    }

    /// Every policy of `namespace`, ordered by name.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn list(&self, namespace: &str) -> Result<Vec<StoredPolicy>, RedisStoreError> {
        let all: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(policies_key(namespace))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error("list", e))?;
        let mut list = all
            .iter()
            .map(|(name, json)| StoredPolicy::from_json(namespace, name, json))
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by(|a, b| a.policy.metadata.name.cmp(&b.policy.metadata.name));
        Ok(list)
    }

    /// Deletes the policy `name` of `namespace`; returns the version of the delete, or `None`
    /// when there was no such policy.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn delete(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<u64>, RedisStoreError> {
        let reply: Vec<String> = DELETE_SCRIPT
            .key(policies_key(namespace))
            .key(versions_key(namespace))
            .arg(changes_channel(namespace))
            .arg(name)
            .arg("")
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error("delete", e))?;
        match reply.as_slice() {
            [status, version] if status == "deleted" => {
                Ok(Some(parse_version(namespace, name, version)?))
            }
            _ => Ok(None),
        }
    }

    async fn write(
        &self,
        namespace: &str,
        items: &[(&TrafficPolicy, Option<u64>)],
    ) -> Result<Vec<PolicyVersion>, RedisStoreError> {
        let policies: Vec<TrafficPolicy> = items.iter().map(|(p, _)| (*p).clone()).collect();
        // A scratch store validates and compiles exactly as the followers will.
        PolicyStore::new().apply_all(&policies, Some(namespace))?;
        let mut invocation = APPLY_SCRIPT.prepare_invoke();
        invocation
            .key(policies_key(namespace))
            .key(versions_key(namespace))
            .arg(changes_channel(namespace));
        let mut ids = Vec::with_capacity(items.len());
        for (policy, expected) in items {
            let mut policy = (*policy).clone();
            policy.metadata.namespace = Some(namespace.to_owned());
            let name = policy.metadata.name.clone();
            invocation
                .arg(&name)
                .arg(expected.map(|v| v.to_string()).unwrap_or_default())
                .arg(policy_json(&policy)?);
            ids.push(PolicyId::new(namespace, name));
        }
        let reply: Vec<String> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error("apply", e))?;
        parse_apply_reply(namespace, items, ids, &reply)
    }

    fn error(&self, context: &'static str, error: redis::RedisError) -> RedisStoreError {
        RedisStoreError::command(context, &self.url, error)
    }
}

fn parse_apply_reply(
    namespace: &str,
    items: &[(&TrafficPolicy, Option<u64>)],
    ids: Vec<PolicyId>,
    reply: &[String],
) -> Result<Vec<PolicyVersion>, RedisStoreError> {
    match reply {
        [status, name, current] if status == "conflict" => {
            let expected = items
                .iter()
                .find(|(p, _)| p.metadata.name == *name)
                .and_then(|(_, e)| *e)
                .unwrap_or_default();
            Err(RedisStoreError::Conflict {
                id: PolicyId::new(namespace, name.as_str()),
                expected,
                current: parse_version(namespace, name, current)?,
            })
        }
        [status, rest @ ..] if status == "ok" && rest.len() == 2 * ids.len() => ids
            .into_iter()
            .zip(rest.chunks(2))
            .map(|(id, pair)| {
                let version = parse_version(namespace, id.name(), &pair[1])?;
                let change = match pair[0].as_str() {
                    "created" => Change::Created(id),
                    "configured" => Change::Configured(id),
                    _ => Change::Unchanged(id),
                };
                Ok(PolicyVersion { change, version })
            })
            .collect(),
        _ => Err(RedisStoreError::Corrupt {
            id: PolicyId::new(namespace, ""),
            message: format!("unexpected reply from the apply script: {reply:?}"),
        }),
    }
}

fn parse_version(namespace: &str, name: &str, text: &str) -> Result<u64, RedisStoreError> {
    text.parse().map_err(|_| RedisStoreError::Corrupt {
        id: PolicyId::new(namespace, name),
        message: format!("version {text:?} is not a number"),
    })
}

/// A client for `url` (`rediss://`: TLS, see [`install_tls_provider`](super::install_tls_provider)),
/// or [`RedisStoreError::InvalidUrl`].
pub(super) fn open(url: &str, tls: &RedisTls) -> Result<redis::Client, RedisStoreError> {
    tls.client(url)
        .map_err(|source| RedisStoreError::InvalidUrl {
            url: redact_url(url),
            source,
        })
}

pub(super) fn unreachable(url: &str, error: &redis::RedisError) -> RedisStoreError {
    RedisStoreError::Unreachable {
        url: redact_url(url),
        message: error.to_string(),
    }
}
