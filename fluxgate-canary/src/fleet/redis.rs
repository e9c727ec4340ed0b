//! [`RedisFleet`]: the shared store of a fleet in Redis; one script per tick and replica.

use std::sync::{LazyLock, Weak};
use std::time::Duration;

use fluxgate_core::store::{PolicyId, install_tls_provider, redact_url};
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Script, ScriptInvocation, Value};
use tokio::sync::Notify;

use super::counts::SideCounts;
use super::overview::{FleetOverview, PublishedWindow};
use super::state::FleetState;
use super::store::{
    FleetError, FleetFuture, FleetStore, MergedWindow, SyncReply, SyncRequest, WriteResult, unix_ms,
};

/// A heartbeat newer than this counts as a live replica in what operators read.
const HEARTBEAT_LIVE_MS: u64 = 5_000;

/// How long a fleet state lives without any replica following it (7 days).
const STATE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The names of a canary's keys in Redis; every one carries the hash tag `{NS/NAME}`, so a
/// canary's keys share one Redis Cluster slot and each script touches one slot.
pub mod keys {
    use fluxgate_core::store::PolicyId;

    /// `fluxgate:canary:{NS/NAME}`, the prefix of the canary's keys.
    ///
    /// ```
    /// use fluxgate_canary::fleet::keys;
    /// use fluxgate_core::store::PolicyId;
    ///
    /// let id = PolicyId::new("payments", "checkout");
    /// assert_eq!(keys::state(&id), "fluxgate:canary:{payments/checkout}:state");
    /// assert_eq!(keys::bucket(&id, 7), "fluxgate:canary:{payments/checkout}:w:7");
    /// ```
    #[must_use]
    pub fn prefix(id: &PolicyId) -> String {
        format!("fluxgate:canary:{{{}/{}}}", id.namespace(), id.name())
    }

    /// The fleet state: a hash, `v` the version and `s` the JSON record.
    #[must_use]
    pub fn state(id: &PolicyId) -> String {
        format!("{}:state", prefix(id))
    }

    /// The decision lease: the holder's name, with a TTL.
    #[must_use]
    pub fn lease(id: &PolicyId) -> String {
        format!("{}:lease", prefix(id))
    }

    /// The heartbeats: a sorted set of replica names scored by their last beat (Unix ms).
    #[must_use]
    pub fn replicas(id: &PolicyId) -> String {
        format!("{}:replicas", prefix(id))
    }

    /// One bucket of counts: a hash of counters, with a TTL.
    #[must_use]
    pub fn bucket(id: &PolicyId, index: u64) -> String {
        format!("{}:w:{index}", prefix(id))
    }

    /// The window the lease holder last judged: a hash (`by`, `at`, `counts`) that expires with
    /// the holder's heartbeat.
    #[must_use]
    pub fn judged(id: &PolicyId) -> String {
        format!("{}:judged", prefix(id))
    }

    /// The channel where each write of the state announces its version.
    #[must_use]
    pub fn changes(id: &PolicyId) -> String {
        format!("{}:changes", prefix(id))
    }
}

/// One tick: counts, heartbeat, lease, state, and the merged window for the lease holder.
const SYNC: &str = r"
-- KEYS: 1 state, 2 lease, 3 replicas, 4 current bucket, 5 oldest bucket, 6 judged window,
--       7.. middle buckets
-- ARGV: 1 replica, 2 lease ttl, 3 now, 4 heartbeat cutoff, 5 heartbeat ttl, 6 bucket ttl,
--       7 state ttl, 8 this replica's counts in the current bucket ('' for none),
--       9 the window it judged at its last tick ('' for none)
local me = ARGV[1]
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[4], me, ARGV[8])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
redis.call('ZADD', KEYS[3], ARGV[3], me)
redis.call('PEXPIRE', KEYS[3], ARGV[5])
local leader = 0
local holder = redis.call('GET', KEYS[2])
if holder == me then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  leader = 1
elseif not holder then
  redis.call('SET', KEYS[2], me, 'PX', ARGV[2])
  leader = 1
end
local state = redis.call('HGET', KEYS[1], 's')
if leader == 0 then return {0, state} end
-- The holder's chores: dead replicas out, the state kept alive, what it judged published.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[4])
if state then redis.call('PEXPIRE', KEYS[1], ARGV[7]) end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[6], 'by', me, 'at', ARGV[3], 'counts', ARGV[9])
  redis.call('PEXPIRE', KEYS[6], ARGV[5])
end
local middle = {}
for k = 7, #KEYS do middle[#middle + 1] = redis.call('HGETALL', KEYS[k]) end
return {1, state, redis.call('HGETALL', KEYS[5]), middle, redis.call('HGETALL', KEYS[4])}
";

/// What an operator reads: state, live replicas, lease holder, judged window.
const OVERVIEW: &str = r"
-- KEYS: 1 state, 2 replicas, 3 lease, 4 judged window; ARGV: 1 heartbeat cutoff
return {redis.call('HGET', KEYS[1], 's'), redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf'),
  redis.call('GET', KEYS[3]), redis.call('HGETALL', KEYS[4])}
";

/// Compare-and-set of the state, announced on the changes channel.
const WRITE: &str = r"
-- KEYS: 1 state; ARGV: 1 expected version, 2 record, 3 ttl, 4 channel
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return {0, redis.call('HGET', KEYS[1], 's')} end
redis.call('HSET', KEYS[1], 'v', v + 1, 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], v + 1)
return {1}
";

/// The shared store of a fleet in one Redis server (every replica gives the same URL).
///
/// Each replica sends one script per tick (counts, heartbeat, lease, state: `EVALSHA`), plus
/// one compare-and-set script per decision, on one multiplexed connection that reconnects by
/// itself; it follows writes on a subscription (one more connection per canary). See the
/// [module docs](super) for the keys and the command budget.
///
/// ```no_run
/// use fluxgate_canary::fleet::{Fleet, RedisFleet};
/// use fluxgate_core::store::PolicyId;
///
/// # async fn run() -> Result<(), fluxgate_canary::fleet::FleetError> {
/// let store = RedisFleet::connect("redis://127.0.0.1:6379").await?;
/// let fleet = Fleet::new(store.clone(), PolicyId::new("payments", "checkout"));
/// // Canary::builder(stable, canary, slot).fleet(fleet).build()
/// # let _ = fleet; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisFleet {
    /// For the subscription (none on a cluster: replicas follow by polling).
    client: Option<redis::Client>,
    conn: Conn,
    url: String,
    sync: Script,
    write: Script,
}

impl std::fmt::Debug for RedisFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFleet")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How the fleet's connection reconnects: quickly, and never waiting long on a dead server.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(500))
}

impl RedisFleet {
    /// Connects to Redis at `url` (`redis://` or `rediss://`, the system's roots).
    ///
    /// # Errors
    ///
    /// [`FleetError::Unreachable`] for an invalid URL or a server that does not answer within 2s.
    pub async fn connect(url: &str) -> Result<Self, FleetError> {
        install_tls_provider();
        let client = redis::Client::open(url).map_err(|e| unreachable(url, &e))?;
        Self::with_client(client, url).await
    }

    /// Connects like [`connect`](Self::connect), verifying a `rediss://` server with a private
    /// CA (PEM) instead of the system's roots.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with_root_certificate(url: &str, ca: Vec<u8>) -> Result<Self, FleetError> {
        install_tls_provider();
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        };
        let client =
            redis::Client::build_with_tls(url, certificates).map_err(|e| unreachable(url, &e))?;
        Self::with_client(client, url).await
    }

    /// Like [`connect`](Self::connect) (with a private CA when `ca` is given), but without
    /// waiting for the server: the connection is made on first use and again after every
    /// failure, so a replica started while Redis is down joins the fleet when it answers
    /// (until then it keeps its local state, as in any outage).
    ///
    /// # Errors
    ///
    /// [`FleetError::Unreachable`] for an invalid URL only.
    pub fn connect_lazy(url: &str, ca: Option<Vec<u8>>) -> Result<Self, FleetError> {
        install_tls_provider();
        let client = match ca {
            Some(ca) => {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                };
                redis::Client::build_with_tls(url, certificates)
            }
            None => redis::Client::open(url),
        }
        .map_err(|e| unreachable(url, &e))?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
            .map_err(|e| unreachable(url, &e))?;
        Ok(Self::from_parts(client, conn, url))
    }

    async fn with_client(client: redis::Client, url: &str) -> Result<Self, FleetError> {
        let connecting = ConnectionManager::new_with_config(client.clone(), manager_config());
        let conn = tokio::time::timeout(Duration::from_secs(2), connecting)
            .await
            .map_err(|_| FleetError::Timeout)?
            .map_err(|e| unreachable(url, &e))?;
        Ok(Self::from_parts(client, conn, url))
    }

    fn from_parts(client: redis::Client, conn: ConnectionManager, url: &str) -> Self {
        Self {
            client: Some(client),
            conn: Conn::Single(conn),
            url: redact_url(url),
            sync: Script::new(SYNC),
            write: Script::new(WRITE),
        }
    }

    /// Connects to a Redis Cluster through `urls` (seed nodes). Each canary's keys live in one
    /// slot, so each script runs on one node. There is no subscription on a cluster: replicas
    /// follow the state by polling, every tick.
    ///
    /// # Errors
    ///
    /// [`FleetError::Unreachable`] for invalid URLs or a cluster that does not answer within 2s.
    pub async fn connect_cluster(urls: &[String]) -> Result<Self, FleetError> {
        install_tls_provider();
        let first = urls.first().map_or("", String::as_str);
        let client = redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .connection_timeout(Duration::from_secs(1))
            .retries(1)
            .build()
            .map_err(|e| unreachable(first, &e))?;
        let conn = tokio::time::timeout(Duration::from_secs(2), client.get_async_connection())
            .await
            .map_err(|_| FleetError::Timeout)?
            .map_err(|e| unreachable(first, &e))?;
        Ok(Self {
            client: None,
            conn: Conn::Cluster(conn),
            url: redact_url(first),
            sync: Script::new(SYNC),
            write: Script::new(WRITE),
        })
    }

    /// The fleet state of the canary of policy `namespace/name`, if any: what `fluxctl status
    /// --redis` shows.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn state(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FleetState>, FleetError> {
        self.load_now(&PolicyId::new(namespace, name)).await
    }

    /// The replicas of that canary with a live heartbeat (a beat in the last 5 seconds), sorted.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn live_replicas(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<String>, FleetError> {
        self.replicas_now(&PolicyId::new(namespace, name)).await
    }

    /// Everything an operator reads about the fleet of the canary of policy `namespace/name`:
    /// what `fluxctl status --redis` shows.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn overview(&self, namespace: &str, name: &str) -> Result<FleetOverview, FleetError> {
        self.overview_now(&PolicyId::new(namespace, name)).await
    }

    /// The names of the policies of `namespace` that have a fleet canary state, sorted.
    ///
    /// # Errors
    ///
    /// A store error; [`FleetError::Refused`] on a cluster (name the policy instead: its keys
    /// live on one node, but a listing would have to ask every node).
    pub async fn canaries(&self, namespace: &str) -> Result<Vec<String>, FleetError> {
        let Conn::Single(conn) = &self.conn else {
            return Err(FleetError::Refused(
                "listing canaries needs a single Redis server; name the policy".to_owned(),
            ));
        };
        let escaped: String = namespace
            .chars()
            .flat_map(|c| {
                let escape = matches!(c, '*' | '?' | '[' | ']' | '\\');
                escape.then_some('\\').into_iter().chain([c])
            })
            .collect();
        let head = format!("fluxgate:canary:{{{namespace}/");
        let pattern = format!("fluxgate:canary:{{{escaped}/*}}:state");
        let mut names = Vec::new();
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500);
            let (next, found): (u64, Vec<String>) = cmd
                .query_async(&mut conn.clone())
                .await
                .map_err(|e| self.error(&e))?;
            names.extend(found.iter().filter_map(|key| {
                let name = key.strip_prefix(&head)?.strip_suffix("}:state")?;
                Some(name.to_owned())
            }));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Promotes, aborts, pauses or resumes that canary on every replica (see
    /// [`request`](super::request)); `by` names the tool in the state's `decidedBy`.
    ///
    /// # Errors
    ///
    /// As [`request`](super::request).
    pub async fn act(
        &self,
        namespace: &str,
        name: &str,
        action: crate::Action,
        by: &str,
    ) -> Result<FleetState, FleetError> {
        super::request(self, &PolicyId::new(namespace, name), action, by).await
    }

    fn error(&self, error: &redis::RedisError) -> FleetError {
        if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
        {
            unreachable(&self.url, error)
        } else {
            FleetError::Command(error.to_string())
        }
    }

    /// Runs a script whose reply is an array (`what` names it in the error).
    async fn array(
        &self,
        invocation: &ScriptInvocation<'_>,
        what: &str,
    ) -> Result<Vec<Value>, FleetError> {
        let value = self
            .conn
            .invoke(invocation)
            .await
            .map_err(|e| self.error(&e))?;
        match value {
            Value::Array(items) => Ok(items),
            _ => Err(FleetError::Corrupt(format!("{what} reply is not an array"))),
        }
    }

    async fn sync_now(&self, request: &SyncRequest) -> Result<SyncReply, FleetError> {
        let id = &request.id;
        let current = request.bucket_index();
        let n = u64::from(request.buckets.max(1));
        let mut invocation = self.sync.prepare_invoke();
        invocation
            .key(keys::state(id))
            .key(keys::lease(id))
            .key(keys::replicas(id))
            .key(keys::bucket(id, current))
            .key(keys::bucket(id, current.saturating_sub(n)))
            .key(keys::judged(id));
        for b in (current.saturating_sub(n) + 1)..current {
            invocation.key(keys::bucket(id, b));
        }
        let heartbeat_ms = millis(request.heartbeat_ttl);
        invocation
            .arg(&request.replica)
            .arg(millis(request.lease_ttl))
            .arg(request.now_ms)
            .arg(request.now_ms.saturating_sub(heartbeat_ms))
            .arg(heartbeat_ms)
            .arg(millis(request.bucket_ttl()))
            .arg(millis(STATE_TTL));
        if request.counts.is_empty() {
            invocation.arg("");
        } else {
            invocation.arg(request.counts.encode());
        }
        invocation.arg(
            request
                .judged
                .as_ref()
                .map(SideCounts::encode)
                .unwrap_or_default(),
        );
        let items = self.array(&invocation, "sync").await?;
        let leader = matches!(items.first(), Some(Value::Int(1)));
        let state = items.get(1).map(parse_state).transpose()?.flatten();
        let window = (leader && items.len() >= 5).then(|| {
            MergedWindow::new(
                parse_counts(&items[2], false),
                parse_counts(&items[3], true),
                parse_counts(&items[4], false),
            )
        });
        Ok(SyncReply::new(state, leader, window))
    }

    async fn write_now(
        &self,
        id: &PolicyId,
        state: &FleetState,
    ) -> Result<WriteResult, FleetError> {
        let record =
            serde_json::to_string(state).map_err(|e| FleetError::Corrupt(e.to_string()))?;
        let mut invocation = self.write.key(keys::state(id));
        invocation
            .arg(state.version.saturating_sub(1))
            .arg(record)
            .arg(millis(STATE_TTL))
            .arg(keys::changes(id));
        let value = self
            .conn
            .invoke(&invocation)
            .await
            .map_err(|e| self.error(&e))?;
        match value {
            Value::Array(items) if matches!(items.first(), Some(Value::Int(1))) => {
                Ok(WriteResult::Written)
            }
            Value::Array(items) => {
                let stored = items.get(1).map(parse_state).transpose()?.flatten();
                Ok(WriteResult::Conflict(stored))
            }
            _ => Err(FleetError::Corrupt(
                "write reply is not an array".to_owned(),
            )),
        }
    }

    async fn load_now(&self, id: &PolicyId) -> Result<Option<FleetState>, FleetError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(keys::state(id)).arg("s");
        let value = self.conn.query(&cmd).await.map_err(|e| self.error(&e))?;
        parse_state(&value)
    }

    async fn overview_now(&self, id: &PolicyId) -> Result<FleetOverview, FleetError> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(OVERVIEW));
        let mut invocation = SCRIPT.prepare_invoke();
        invocation
            .key(keys::state(id))
            .key(keys::replicas(id))
            .key(keys::lease(id))
            .key(keys::judged(id))
            .arg(unix_ms().saturating_sub(HEARTBEAT_LIVE_MS));
        let items = self.array(&invocation, "overview").await?;
        let mut overview = FleetOverview {
            state: items.first().map(parse_state).transpose()?.flatten(),
            ..FleetOverview::default()
        };
        if let Some(Value::Array(replicas)) = items.get(1) {
            overview.replicas = replicas.iter().filter_map(text).collect();
            overview.replicas.sort();
        }
        overview.leader = items.get(2).and_then(text);
        if let Some(Value::Array(fields)) = items.get(3) {
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|pair| text(&pair[0]).as_deref() == Some(name))
                    .and_then(|pair| pair.get(1).and_then(text))
            };
            if let (Some(by), Some(at), Some(counts)) = (field("by"), field("at"), field("counts"))
            {
                let at_ms = at.parse().unwrap_or(0);
                let counts = SideCounts::decode(&counts).ok_or_else(|| {
                    FleetError::Corrupt(format!("judged window of {id} is not readable"))
                })?;
                overview.window = Some(PublishedWindow::new(by, at_ms, counts));
            }
        }
        Ok(overview)
    }

    async fn replicas_now(&self, id: &PolicyId) -> Result<Vec<String>, FleetError> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(keys::replicas(id))
            .arg(unix_ms().saturating_sub(HEARTBEAT_LIVE_MS))
            .arg("+inf");
        let value = self.conn.query(&cmd).await.map_err(|e| self.error(&e))?;
        let mut live: Vec<String> =
            redis::from_redis_value(value).map_err(|e| FleetError::Corrupt(e.to_string()))?;
        live.sort();
        Ok(live)
    }
}

impl FleetStore for RedisFleet {
    fn sync<'a>(&'a self, request: &'a SyncRequest) -> FleetFuture<'a, SyncReply> {
        Box::pin(self.sync_now(request))
    }

    fn write<'a>(
        &'a self,
        id: &'a PolicyId,
        state: &'a FleetState,
    ) -> FleetFuture<'a, WriteResult> {
        Box::pin(self.write_now(id, state))
    }

    fn load<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, Option<FleetState>> {
        Box::pin(self.load_now(id))
    }

    fn replicas<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, Vec<String>> {
        Box::pin(self.replicas_now(id))
    }

    fn overview<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, FleetOverview> {
        Box::pin(self.overview_now(id))
    }

    /// Subscribes to the canary's changes channel on a connection of its own (made again after
    /// a failure, every 500ms at most), until `wake` is dropped.
    fn watch(&self, id: &PolicyId, wake: Weak<Notify>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let channel = keys::changes(id);
        tokio::spawn(async move {
            while wake.strong_count() > 0 {
                let second = Duration::from_secs(1);
                if let Ok(Ok(mut pubsub)) =
                    tokio::time::timeout(second, client.get_async_pubsub()).await
                    && let Ok(Ok(())) =
                        tokio::time::timeout(second, pubsub.subscribe(&channel)).await
                {
                    let mut messages = pubsub.on_message();
                    loop {
                        let next = tokio::time::timeout(Duration::from_secs(1), messages.next());
                        match next.await {
                            Ok(Some(_)) => match wake.upgrade() {
                                Some(wake) => wake.notify_one(),
                                None => return,
                            },
                            Ok(None) => break,
                            Err(_) if wake.strong_count() == 0 => return,
                            Err(_) => {}
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

/// A connection to one server (reconnecting by itself) or to a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn invoke(&self, invocation: &ScriptInvocation<'_>) -> redis::RedisResult<Value> {
        match self.clone() {
            Self::Single(mut c) => invocation.invoke_async(&mut c).await,
            Self::Cluster(mut c) => invocation.invoke_async(&mut c).await,
        }
    }

    async fn query(&self, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
        match self.clone() {
            Self::Single(mut c) => cmd.query_async(&mut c).await,
            Self::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }
}

fn unreachable(url: &str, error: &redis::RedisError) -> FleetError {
    FleetError::Unreachable(format!("{}: {error}", redact_url(url)))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The sum of the replicas' counts in one bucket (an `HGETALL`: replica, counts, …);
/// unreadable entries are skipped. With `nested`, a list of such buckets.
fn parse_counts(value: &Value, nested: bool) -> SideCounts {
    let mut sum = SideCounts::default();
    let Value::Array(items) = value else {
        return sum;
    };
    if nested {
        for bucket in items {
            sum.merge(&parse_counts(bucket, false));
        }
        return sum;
    }
    for pair in items.chunks_exact(2) {
        if let Some(counts) = text(&pair[1]).as_deref().and_then(SideCounts::decode) {
            sum.merge(&counts);
        }
    }
    sum
}

fn parse_state(value: &Value) -> Result<Option<FleetState>, FleetError> {
    match value {
        Value::Nil => Ok(None),
        other => {
            let json = text(other).ok_or_else(|| FleetError::Corrupt("state".to_owned()))?;
            serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| FleetError::Corrupt(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_add_up() {
        let mut a = SideCounts::default();
        a.canary.record(true, Duration::from_millis(30));
        let mut b = SideCounts::default();
        b.stable.record(false, Duration::from_millis(2));
        let entry = |name: &str, c: &SideCounts| {
            [
                Value::BulkString(name.as_bytes().to_vec()),
                Value::BulkString(c.encode().into_bytes()),
            ]
        };
        let bucket = Value::Array([entry("a", &a), entry("b", &b)].concat());
        let mut both = a.clone();
        both.merge(&b);
        assert_eq!(parse_counts(&bucket, false), both);
        let nested = Value::Array(vec![bucket.clone(), bucket]);
        both.merge(&both.clone());
        assert_eq!(parse_counts(&nested, true), both);
    }
}
