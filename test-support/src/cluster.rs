use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::server::{free_port, wait_until};
use crate::{Error, RedisServer};

/// The offset of a cluster node's bus port from its client port (Redis' default).
const BUS_OFFSET: u16 = 10_000;

/// A Redis Cluster of masters without replicas, on free loopback ports, killed when dropped.
///
/// Every slot is assigned (`redis-cli --cluster create … --cluster-replicas 0`) and
/// [`start`](Self::start) returns once every node reports `cluster_state:ok`.
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
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3, as Redis requires) and forms a cluster of them.
    ///
    /// # Errors
    ///
    /// [`Error::Cluster`] when fewer than 3 masters are asked for or the cluster does not form;
    /// otherwise as [`RedisServer::start`].
    pub fn start(masters: usize) -> Result<Self, Error> {
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
        let mut cluster = Self {
            nodes: Vec::with_capacity(masters),
            dir,
        };
        for _ in 0..masters {
            let port = free_port(BUS_OFFSET)?;
            let node = RedisServer::builder()
                .port(port)
                .arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-config-file")
                .arg(
                    cluster
                        .dir
                        .join(format!("nodes-{port}.conf"))
                        .display()
                        .to_string(),
                )
                .arg("--cluster-node-timeout")
                .arg("2000")
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

    fn create(&self) -> Result<(), Error> {
        let mut command = Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        command.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = crate::output("redis-cli", &mut command)?;
        if !output.status.success() {
            return Err(Error::Cluster(
                String::from_utf8_lossy(&output.stdout).into_owned(),
            ));
        }
        let ok = wait_until(|| self.nodes.iter().all(|node| cluster_ok(node.port())));
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
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "cluster", "info"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"))
}
