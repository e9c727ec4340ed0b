//! One multiplexed connection to Redis or a Redis Cluster, shared by every request.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};

use super::RedisOptions;
use super::error::{RedisConnectError, connect_error};

/// A connection that reconnects by itself (with backoff); cloning shares it, and concurrent
/// commands on clones are pipelined on one socket per node.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Conn::Single",
            Self::Cluster(_) => "Conn::Cluster",
        })
    }
}

/// The password in `url`, to scrub it from messages.
pub(crate) fn password_of(url: &str) -> Option<String> {
    url.into_connection_info()
        .ok()
        .and_then(|info| info.redis_settings().password().map(str::to_owned))
}

impl Conn {
    /// Connects to one server and checks it answers (and accepts the credentials).
    pub(crate) async fn single(
        url: &str,
        options: &RedisOptions,
    ) -> Result<Self, RedisConnectError> {
        let timeout = options.connect_timeout;
        let secret = password_of(url);
        let fail = |e: &redis::RedisError| connect_error(url, secret.as_deref(), e);
        let (client, config) = Self::client(url, options).map_err(|e| fail(&e))?;
        let connecting = ConnectionManager::new_with_config(client, config);
        let manager = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| unreachable(url, timeout))?
            .map_err(|e| fail(&e))?;
        let mut conn = Self::Single(manager);
        conn.ping(url, secret.as_deref(), timeout).await?;
        Ok(conn)
    }

    /// A connection to one server made on first use (and again after each failure): no error
    /// when the server does not answer yet.
    pub(crate) fn single_lazy(
        url: &str,
        options: &RedisOptions,
    ) -> Result<Self, RedisConnectError> {
        let fail = |e: &redis::RedisError| connect_error(url, password_of(url).as_deref(), e);
        let (client, config) = Self::client(url, options).map_err(|e| fail(&e))?;
        let manager =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| fail(&e))?;
        Ok(Self::Single(manager))
    }

    fn client(
        url: &str,
        options: &RedisOptions,
    ) -> redis::RedisResult<(redis::Client, ConnectionManagerConfig)> {
        fluxgate_core::store::install_tls_provider();
        let client = match &options.tls {
            Some(certs) => redis::Client::build_with_tls(url, certs.clone()),
            None => redis::Client::open(url),
        }?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(None)
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_secs(1));
        Ok((client, config))
    }

    /// Connects to a cluster through `urls` (seed nodes); the password comes from the URLs.
    pub(crate) async fn cluster(
        urls: &[String],
        options: &RedisOptions,
    ) -> Result<Self, RedisConnectError> {
        let timeout = options.connect_timeout;
        let first = urls.first().map_or("", String::as_str);
        let secret = password_of(first);
        let fail = |e: &redis::RedisError| connect_error(first, secret.as_deref(), e);
        fluxgate_core::store::install_tls_provider();
        let mut builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .connection_timeout(timeout)
            .retries(2);
        if let Some(certs) = &options.tls {
            builder = builder.certs(certs.clone());
        }
        let client = builder.build().map_err(|e| fail(&e))?;
        let connection = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| unreachable(first, timeout))?
            .map_err(|e| fail(&e))?;
        let mut conn = Self::Cluster(connection);
        conn.ping(first, secret.as_deref(), timeout).await?;
        Ok(conn)
    }

    async fn ping(
        &mut self,
        url: &str,
        secret: Option<&str>,
        timeout: Duration,
    ) -> Result<(), RedisConnectError> {
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(self);
        tokio::time::timeout(timeout, ping)
            .await
            .map_err(|_| unreachable(url, timeout))?
            .map(drop)
            .map_err(|e| connect_error(url, secret, &e))
    }
}

fn unreachable(url: &str, timeout: Duration) -> RedisConnectError {
    RedisConnectError::Unreachable {
        url: fluxgate_core::store::redact_url(url),
        message: format!("no answer within {timeout:?}"),
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
