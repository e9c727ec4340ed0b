//! What the soak watches of the Redis the replicas share: its memory (`INFO memory`) and keys
//! (`DBSIZE`) every second, and at the start and the end the memory of its keys by pattern.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

/// One reading of the shared Redis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RedisSample {
    /// Seconds since the start of the soak.
    pub(crate) at: f64,
    /// `used_memory`, in bytes.
    pub(crate) used_memory: u64,
    /// `used_memory_dataset`: the keys and values, in bytes.
    pub(crate) dataset: u64,
    /// `used_memory_vm_eval`: the Lua interpreter, in bytes.
    pub(crate) lua: u64,
    /// `mem_clients_normal`: the clients' buffers, in bytes.
    pub(crate) clients: u64,
    /// `DBSIZE`: keys in the database.
    pub(crate) keys: u64,
}

/// A connection to Redis at `url`, if it answers.
pub(crate) async fn connect(url: &str) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    client.get_multiplexed_async_connection().await.ok()
}

/// Reads Redis through `connection` now; `None` when it does not answer.
pub(crate) async fn sample(connection: &mut MultiplexedConnection, at: f64) -> Option<RedisSample> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(connection)
        .await
        .ok()?;
    let keys: u64 = redis::cmd("DBSIZE").query_async(connection).await.ok()?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(RedisSample {
        at,
        used_memory: field("used_memory")?,
        dataset: field("used_memory_dataset").unwrap_or(0),
        lua: field("used_memory_vm_eval")
            .or_else(|| field("used_memory_lua"))
            .unwrap_or(0),
        clients: field("mem_clients_normal").unwrap_or(0),
        keys,
    })
}

/// Reads Redis at `url` every second from `start` until `end` (nothing if it cannot connect).
pub(crate) async fn every_second(url: String, start: Instant, end: Instant) -> Vec<RedisSample> {
    let Some(mut connection) = connect(&url).await else {
        eprintln!("soak: cannot connect to Redis: no Redis readings");
        return Vec::new();
    };
    let mut ticks = interval_at(start, Duration::from_secs(1));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut samples = Vec::new();
    loop {
        let now = ticks.tick().await;
        if now > end {
            return samples;
        }
        let at = (now - start).as_secs_f64();
        samples.extend(sample(&mut connection, at).await);
    }
}

/// A key's pattern: every run of digits replaced by `#`.
fn pattern(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Keys and bytes (`MEMORY USAGE`) per key pattern, over the whole database.
pub(crate) async fn by_pattern(
    connection: &mut MultiplexedConnection,
) -> BTreeMap<String, (u64, u64)> {
    let mut patterns: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut cursor = 0u64;
    loop {
        let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(500)
            .query_async(connection)
            .await
        else {
            return patterns;
        };
        for key in keys {
            let bytes: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .query_async(connection)
                .await
                .ok();
            let entry = patterns.entry(pattern(&key)).or_default();
            entry.0 += 1;
            entry.1 += bytes.unwrap_or(0);
        }
        if next == 0 {
            return patterns;
        }
        cursor = next;
    }
}
