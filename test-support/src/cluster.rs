use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::server::{free_port, wait_until};
use crate::{Error, RedisServer};

/// The offset of a cluster node's bus port from its client port (Redis' default).
const BUS_OFFSET: u16 = 10_000;

/// A Redis Cluster on free loopback ports, killed when dropped: masters only
/// ([`start`](Self::start)), or masters with replicas that take over when their master dies
/// ([`start_with_replicas`](Self::start_with_replicas), [`kill_master_of`](Self::kill_master_of)).
///
/// Every slot is assigned (`redis-cli --cluster create … --cluster-replicas N`) and starting
/// returns once every node reports `cluster_state:ok` (and every replica is linked to its master).
///
/// ```
/// use fluxgate_test_support::RedisCluster;
///
/// let cluster = RedisCluster::start(3)?;
/// assert_eq!(cluster.urls().len(), 3);
/// assert!(cluster.nodes().iter().all(|node| node.ping()));
/// # Ok::<(), fluxgate_test_support::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: PathBuf,
    replicas: usize,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3, as Redis requires) and forms a cluster of them.
    ///
    /// # Errors
    ///
    /// [`Error::Cluster`] when fewer than 3 masters are asked for or the cluster does not form;
    /// otherwise as [`RedisServer::start`].
    pub fn start(masters: usize) -> Result<Self, Error> {
        Self::launch(masters, 0, 2000)
    }

    /// Starts `masters` masters (at least 3) with `replicas` replicas each, and a node timeout of
    /// 500ms, so that when a master dies (see [`kill_master_of`](Self::kill_master_of)) one of
    /// its replicas is promoted within a second or two (replicas may fail over however old their
    /// data: `cluster-replica-validity-factor 0`).
    ///
    /// ```no_run
    /// use fluxgate_test_support::RedisCluster;
    ///
    /// let mut cluster = RedisCluster::start_with_replicas(3, 1)?;
    /// assert_eq!(cluster.nodes().len(), 6);
    /// let dead = cluster.kill_master_of("some-key")?;
    /// assert!(!cluster.nodes()[dead].ping());
    /// // Within a few seconds a replica serves the key's slot.
    /// # Ok::<(), fluxgate_test_support::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with_replicas(masters: usize, replicas: usize) -> Result<Self, Error> {
        Self::launch(masters, replicas, 500)
    }

    fn launch(masters: usize, replicas: usize, node_timeout_ms: u32) -> Result<Self, Error> {
        if masters < 3 {
            return Err(Error::Cluster(format!(
                "a cluster needs at least 3 masters, not {masters}"
            )));
        }
        let dir = std::env::temp_dir().join(format!(
            "fluxgate-redis-cluster-{}-{}",
            std::process::id(),
            free_port(0)?
        ));
        std::fs::create_dir_all(&dir).map_err(|e| Error::Cluster(e.to_string()))?;
        let count = masters * (1 + replicas);
        let mut cluster = Self {
            nodes: Vec::with_capacity(count),
            dir,
            replicas,
        };
        for _ in 0..count {
            let port = free_port(BUS_OFFSET)?;
            let config = cluster.dir.join(format!("nodes-{port}.conf"));
            let node = RedisServer::builder()
                .port(port)
                .arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-config-file")
                .arg(config.display().to_string())
                .arg("--cluster-node-timeout")
                .arg(node_timeout_ms.to_string())
                .arg("--cluster-replica-validity-factor")
                .arg("0")
                .arg("--dir")
                .arg(cluster.dir.display().to_string())
                .start()?;
            cluster.nodes.push(node);
        }
        cluster.create()?;
        Ok(cluster)
    }

    /// The nodes, to inspect, stop or restart one of them.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, mutably (for [`RedisServer::stop`] and [`RedisServer::restart`]).
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// `redis://127.0.0.1:PORT` of every node, the seed list a cluster client takes.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The index (in [`nodes`](Self::nodes)) of the running node that is master of `key`'s
    /// slot now, as the running nodes see it; `None` while no running master serves it.
    #[must_use]
    pub fn master_of(&self, key: &str) -> Option<usize> {
        let asked = self.nodes.iter().find(|n| n.pid().is_some())?;
        let slot: u16 = redis_cli(asked.port(), &["cluster", "keyslot", key])?
            .trim()
            .parse()
            .ok()?;
        let nodes = redis_cli(asked.port(), &["cluster", "nodes"])?;
        let port = nodes.lines().find_map(|line| serves(line, slot))?;
        self.nodes
            .iter()
            .position(|n| n.port() == port && n.pid().is_some())
    }

    /// Kills (SIGKILL) the master of `key`'s slot; returns its index in [`nodes`](Self::nodes).
    /// With replicas, one of them takes the slot over after the node timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Cluster`] when no running master serves the slot.
    pub fn kill_master_of(&mut self, key: &str) -> Result<usize, Error> {
        let index = self
            .master_of(key)
            .ok_or_else(|| Error::Cluster(format!("no running master serves {key:?}")))?;
        self.nodes[index].stop();
        Ok(index)
    }

    /// Whether every running node reports `cluster_state:ok` now (after a failover: once the
    /// replica promoted serves the dead master's slots).
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .all(|n| cluster_ok(n.port()))
    }

    fn create(&self) -> Result<(), Error> {
        let mut command = Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        let replicas = self.replicas.to_string();
        command.args(["--cluster-replicas", &replicas, "--cluster-yes"]);
        let output = crate::output("redis-cli", &mut command)?;
        if !output.status.success() {
            return Err(Error::Cluster(
                String::from_utf8_lossy(&output.stdout).into_owned(),
            ));
        }
        let linked = |port: u16| {
            redis_cli(port, &["info", "replication"]).is_some_and(|info| {
                info.contains("role:master") || info.contains("master_link_status:up")
            })
        };
        let ok = wait_until(|| {
            self.nodes
                .iter()
                .all(|node| cluster_ok(node.port()) && linked(node.port()))
        });
        if ok {
            Ok(())
        } else {
            Err(Error::Cluster("cluster_state did not become ok".to_owned()))
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the node on `port` reports `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    redis_cli(port, &["cluster", "info"]).is_some_and(|info| info.contains("cluster_state:ok"))
}

/// What `redis-cli -p PORT ARGS…` printed, when it ran.
fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The port of the node of a `CLUSTER NODES` line when it is a live master serving `slot`
/// (`ID HOST:PORT@BUS FLAGS MASTER PING PONG EPOCH LINK SLOT…`, slots as `N` or `A-B`).
fn serves(line: &str, slot: u16) -> Option<u16> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (address, flags) = (fields.get(1)?, fields.get(2)?);
    if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
        return None;
    }
    let has = fields.iter().skip(8).any(|range| {
        let mut ends = range.splitn(2, '-').map(str::parse::<u16>);
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
            (Some(Ok(a)), None) => a == slot,
            _ => false,
        }
    });
    let port = address
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    has.then_some(port)
}

#[cfg(test)]
mod tests {
    use super::serves;

    #[test]
    fn reads_the_master_of_a_slot() {
        let line = "07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 7000";
        assert_eq!(serves(line, 42), Some(30001));
        assert_eq!(serves(line, 7000), Some(30001));
        assert_eq!(serves(line, 6000), None);
        let failed = "07c3 127.0.0.1:30001@40001 master,fail - 0 0 1 disconnected 0-5460";
        assert_eq!(serves(failed, 42), None);
        let replica = "9a1b 127.0.0.1:30004@40004 slave 07c3 0 0 1 connected";
        assert_eq!(serves(replica, 42), None);
    }
}
