//! The rate-limit script's call: one `EVALSHA` command built straight into one buffer (no
//! argument copied twice), loading the script when Redis answers `NOSCRIPT`.

use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind};

use super::Shared;
use super::conn::Conn;
use super::strict::Item;

/// A prepared call of the script.
pub(crate) struct Invocation {
    cmd: Cmd,
    script: &'static redis::Script,
}

impl Invocation {
    /// Sends the call; on `NOSCRIPT` (a restarted or flushed Redis), loads the script and sends
    /// it again.
    pub(crate) async fn invoke_async<T: FromRedisValue>(&self, conn: &mut Conn) -> RedisResult<T> {
        match self.cmd.query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(conn).await?;
                self.cmd.query_async(conn).await
            }
            result => result,
        }
    }
}

/// The script's call for `groups` (each the items of one request and its time) with operation
/// `op`; `carry`: send the items' synced units.
pub(crate) fn invocation(
    shared: &Shared,
    groups: &[(&[Item], u64)],
    op: &str,
    carry: bool,
) -> Invocation {
    let items = || groups.iter().flat_map(|(items, _)| items.iter());
    let keys = items().count();
    let names: usize = items().map(|item| item.name.len()).sum();
    // EVALSHA, the hash, the key count, op, the group count; 2 per group, 1 key + 7 per item.
    let args = 5 + 2 * groups.len() + 8 * keys;
    let mut cmd = Cmd::with_capacity(args, 64 + names + 16 * args);
    cmd.arg("EVALSHA").arg(shared.script.get_hash()).arg(keys);
    for item in items() {
        cmd.arg(&item.name);
    }
    cmd.arg(op).arg(groups.len());
    for (items, now) in groups {
        cmd.arg(shared.now_arg(*now)).arg(items.len());
    }
    for item in items() {
        let (algo, a, b) = item.limiter.params.script_args();
        let (tag, dp, dc) = item.deltas.filter(|_| carry).unwrap_or_default();
        cmd.arg(algo)
            .arg(a)
            .arg(b)
            .arg(if item.shadow { "1" } else { "0" })
            .arg(tag)
            .arg(dp)
            .arg(dc);
    }
    Invocation {
        cmd,
        script: shared.script,
    }
}
