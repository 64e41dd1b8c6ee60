//! Connections: the shared multiplexed connection for ordinary commands ([`Conn`]: a
//! [`ConnectionManager`] on one node, redis-rs's cluster connection on a Redis Cluster;
//! publishes pipeline over it), and a dedicated connection per blocking reader whose
//! client-side timeout exceeds its `BLOCK`, rebuilt with capped exponential backoff after any
//! error (on a cluster: one per node its streams live on, following `MOVED`/`ASK`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::cluster::{self, NodeAddr, Redirect, SharedTopology};

/// The connection for ordinary commands, shared (cheaply cloned) by every part of a bus.
///
/// On a cluster, every command is routed by its key; a pipeline whose keys span slots is sent
/// as one pipeline per slot (see [`cluster::split_pipeline`]).
#[derive(Clone)]
pub(crate) enum Conn {
    /// One Redis.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipe: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipe, offset, count),
            Conn::Cluster(c) => {
                let whole = offset == 0 && count == pipe.len();
                if !whole || pipe.is_transaction() || cluster::single_slot(pipe) {
                    c.req_packed_commands(pipe, offset, count)
                } else {
                    Box::pin(cluster::split_pipeline(c, pipe))
                }
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The manager for ordinary commands: reconnects by itself after Redis restarts.
pub(crate) async fn manager(
    client: &Client,
    response_timeout: Duration,
) -> RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(response_timeout))
        // Few, short reconnection attempts per request: while Redis is down, a publish fails
        // fast and says so, instead of hanging for seconds; the next request tries again.
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client.clone(), config).await
}

/// Capped exponential backoff for reconnecting.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max,
        }
    }

    /// The next delay (jittered down to half at most), doubling up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d / 2 + d.mul_f64(fastrand::f64()) / 2
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Where a blocking connection's commands go.
#[derive(Clone)]
pub(crate) enum Target {
    /// One Redis.
    Single(Box<Client>),
    /// The master of each command's key, on a cluster.
    Cluster(SharedTopology),
}

/// A connection of its own for one blocking reader (on a cluster: one per node its commands
/// go to, usually one).
pub(crate) struct BlockingConnection {
    target: Target,
    config: AsyncConnectionConfig,
    conn: Option<MultiplexedConnection>,
    /// On a cluster: the connection to each node, by address, with when it was last used.
    nodes: BTreeMap<NodeAddr, (MultiplexedConnection, Instant)>,
    /// On a cluster: a node connection unused this long is closed (its streams moved away).
    idle_after: Duration,
    /// On a cluster: the key whose node [`connect`](Self::connect) checks.
    home: Option<Vec<u8>>,
    /// On a cluster: the last `ASK` redirection (the key, the node asked, when), followed
    /// directly by the next commands on that key for [`ASK_FOR`] (a slot being migrated).
    asked: Option<(Vec<u8>, NodeAddr, Instant)>,
}

/// How long commands on a key go straight to the node an `ASK` named, before trying the
/// slot's owner again (which answers `ASK` again while the migration lasts, or `MOVED` once it
/// is over).
const ASK_FOR: Duration = Duration::from_millis(500);

impl std::fmt::Debug for BlockingConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingConnection")
            .field(
                "connected",
                &(self.conn.is_some() || !self.nodes.is_empty()),
            )
            .finish()
    }
}

/// How many redirections one command follows before giving up (for this round).
const MAX_REDIRECTS: usize = 5;

impl BlockingConnection {
    /// `block` is the longest `BLOCK` sent on it; its response timeout is `block + margin`.
    /// On a cluster, `home` is a key its commands touch (its stream).
    pub(crate) fn new(
        target: Target,
        block: Duration,
        margin: Duration,
        home: Option<&str>,
    ) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(block + margin))
            .set_connection_timeout(Some(margin));
        Self {
            target,
            config,
            conn: None,
            nodes: BTreeMap::new(),
            // Every reader sends at least one command per `BLOCK` to each node it reads from.
            idle_after: (block + margin) * 2,
            home: home.map(|h| h.as_bytes().to_vec()),
            asked: None,
        }
    }

    /// Whether this connection is to a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Sends `cmd`, connecting first if needed. After an error the connection is dropped, so
    /// the next call builds a fresh one.
    pub(crate) async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        if let Target::Cluster(topology) = &self.target {
            let topology = topology.clone();
            return self.query_cluster(&topology, cmd).await;
        }
        let fresh = self.conn.is_none();
        let result = match self.connection().await {
            Ok(conn) => {
                let result = cmd.query_async::<Value>(conn).await;
                self.check(result)
            }
            Err(e) => Err(e),
        };
        match result {
            // A fresh connection that breaks at once may have been refused: say so.
            Err(e) if fresh && !is_server_reply(&e) => {
                let Target::Single(client) = &self.target else {
                    return Err(e);
                };
                Err(refusal(client).await.unwrap_or(e))
            }
            other => other,
        }
    }

    /// Sends a pipeline (built with `ignore_errors`), connecting first if needed; each
    /// command's reply is its own result. An error of the round trip itself is the error.
    pub(crate) async fn query_pipeline(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        if let Target::Cluster(topology) = &self.target {
            let topology = topology.clone();
            return self.query_pipeline_cluster(&topology, pipe).await;
        }
        let conn = self.connection().await?;
        let result = pipe.query_async::<Vec<RedisResult<Value>>>(conn).await;
        self.check(result)
    }

    /// Sends `first` and `then` in one pipeline (one round trip; neither may block) and
    /// returns both replies, each its own result. An error of the round trip itself is the
    /// error. On a cluster the two commands must touch one slot: a command redirected is sent
    /// again, alone, where it belongs.
    pub(crate) async fn query_pair(
        &mut self,
        first: Cmd,
        then: Cmd,
    ) -> RedisResult<(RedisResult<Value>, RedisResult<Value>)> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors().add_command(first).add_command(then);
        let mut replies = self.query_pipeline(&pipe).await?.into_iter();
        let mut next = || {
            replies.next().unwrap_or_else(|| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "a pipeline of two commands returned fewer replies",
                )))
            })
        };
        let first = next();
        Ok((first, next()))
    }

    /// Connects now (if not connected) and checks that Redis serves the connection with a
    /// `PING`: a server at its `maxclients` accepts the socket, then refuses it. On a cluster,
    /// to the master of the home key.
    pub(crate) async fn connect(&mut self) -> RedisResult<()> {
        match (&self.target, self.home.clone()) {
            (Target::Cluster(topology), Some(home)) => {
                let topology = topology.clone();
                let node = match topology.master_of_key(&home) {
                    Some(node) => node,
                    None => {
                        topology.refresh().await?;
                        topology.master_of_key(&home).ok_or_else(no_master)?
                    }
                };
                let conn = self.node_connection(&node).await?;
                let result = redis::cmd("PING").query_async::<Value>(conn).await;
                if let Err(e) = &result {
                    self.cluster_error(&topology, &node, e).await;
                }
                result.map(|_| ())
            }
            _ => self.query(&redis::cmd("PING")).await.map(|_| ()),
        }
    }

    async fn connection(&mut self) -> RedisResult<&mut MultiplexedConnection> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let Target::Single(client) = &self.target else {
                    return Err(no_master());
                };
                client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?
            }
        };
        Ok(self.conn.insert(conn))
    }

    /// Drops the connection after an error that was not the server's reply.
    fn check<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            if !is_server_reply(e) {
                self.conn = None;
            }
        }
        result
    }

    // --- Redis Cluster ---

    /// The connection to `node`, opened if needed.
    async fn node_connection(
        &mut self,
        node: &NodeAddr,
    ) -> RedisResult<&mut MultiplexedConnection> {
        // Close the connections to nodes no longer read from (a reshard or failover moved
        // their slots): the count per node stays bounded.
        let idle_after = self.idle_after;
        self.nodes
            .retain(|n, (_, used)| n == node || used.elapsed() < idle_after);
        if !self.nodes.contains_key(node) {
            let Target::Cluster(topology) = &self.target else {
                return Err(no_master());
            };
            let conn = topology
                .client_for(node)?
                .get_multiplexed_async_connection_with_config(&self.config)
                .await?;
            self.nodes.insert(node.clone(), (conn, Instant::now()));
        }
        let (conn, used) = self.nodes.get_mut(node).ok_or_else(no_master)?;
        *used = Instant::now();
        Ok(conn)
    }

    /// The node an `ASK` named for `cmd`'s key less than [`ASK_FOR`] ago.
    fn asking_for(&self, cmd: &Cmd) -> Option<NodeAddr> {
        let (key, node, at) = self.asked.as_ref()?;
        if at.elapsed() >= ASK_FOR {
            return None;
        }
        let own = cluster::command_key(cmd)?;
        (own == *key).then(|| node.clone())
    }

    /// The master of `cmd`'s key (the home key's for a keyless command).
    async fn route(&mut self, topology: &SharedTopology, cmd: &Cmd) -> RedisResult<NodeAddr> {
        let key = cluster::command_key(cmd)
            .or_else(|| self.home.clone())
            .ok_or_else(no_master)?;
        if let Some(node) = topology.master_of_key(&key) {
            return Ok(node);
        }
        topology.refresh().await?;
        topology.master_of_key(&key).ok_or_else(no_master)
    }

    /// After an error on `node`: a redirection updates the slot map; a broken connection is
    /// dropped; a broken connection or a reconfiguring cluster (a failover) refreshes the map.
    async fn cluster_error(
        &mut self,
        topology: &SharedTopology,
        node: &NodeAddr,
        e: &redis::RedisError,
    ) {
        match cluster::redirect_of(e) {
            Some(Redirect::Moved(slot, to)) => {
                topology.moved(slot, to);
                // The whole map may have changed (a reshard moves many slots): read it again,
                // at most every so often; the MOVED address serves until then.
                if let Err(e) = topology.refresh().await {
                    tracing::debug!(error = %e, "could not refresh the cluster's slot map");
                }
            }
            Some(Redirect::Ask(_)) => {}
            None => {
                if !is_server_reply(e) {
                    self.nodes.remove(node);
                }
                if !is_server_reply(e) || cluster::is_reconfiguring(e) {
                    if let Err(e) = topology.refresh().await {
                        tracing::debug!(error = %e, "could not refresh the cluster's slot map");
                    }
                }
            }
        }
    }

    /// Sends `cmd` to the master of its key, following `MOVED` (the slot map is updated) and
    /// `ASK` (`ASKING` then the command, on the node asked).
    async fn query_cluster(&mut self, topology: &SharedTopology, cmd: &Cmd) -> RedisResult<Value> {
        let (mut node, mut asking) = match self.asking_for(cmd) {
            Some(node) => (node, true),
            None => (self.route(topology, cmd).await?, false),
        };
        for _ in 0..MAX_REDIRECTS {
            let conn = self.node_connection(&node).await;
            let result = match conn {
                Ok(conn) if asking => {
                    let mut pipe = redis::pipe();
                    pipe.cmd("ASKING").ignore().add_command(cmd.clone());
                    pipe.query_async::<(Value,)>(conn).await.map(|(v,)| v)
                }
                Ok(conn) => cmd.query_async::<Value>(conn).await,
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            self.cluster_error(topology, &node, &e).await;
            match cluster::redirect_of(&e) {
                Some(Redirect::Moved(_, to)) => {
                    self.asked = None;
                    node = to;
                    asking = false;
                }
                Some(Redirect::Ask(to)) => {
                    if let Some(key) = cluster::command_key(cmd) {
                        self.asked = Some((key, to.clone(), Instant::now()));
                    }
                    node = to;
                    asking = true;
                }
                // A read blocked on a stream that a reshard just moved away (`UNBLOCKED the
                // stream key no longer exists`): ask again, where the slot map now says.
                None if e.code() == Some("UNBLOCKED") => {
                    self.asked = None;
                    node = self.route(topology, cmd).await?;
                    asking = false;
                }
                // A node lost (a failover): if the slot map, read again, names another
                // master, try it at once.
                None if !is_server_reply(&e) || cluster::is_reconfiguring(&e) => {
                    self.asked = None;
                    let Ok(to) = self.route(topology, cmd).await else {
                        return Err(e);
                    };
                    if to == node {
                        return Err(e);
                    }
                    node = to;
                    asking = false;
                }
                None => {
                    self.asked = None;
                    return Err(e);
                }
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "too many cluster redirections",
        )))
    }

    /// Sends a pipeline as one sub-pipeline per node (each command to the master of its key,
    /// a keyless one with the command before it); a command redirected (`MOVED`/`ASK`) is sent
    /// again alone, where it belongs.
    async fn query_pipeline_cluster(
        &mut self,
        topology: &SharedTopology,
        pipe: &redis::Pipeline,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let before = self.nodes_of(topology, pipe).await?;
        match self.try_pipeline_cluster(topology, pipe).await {
            // A node lost (a failover): if the slot map, read again, names other masters,
            // send it again at once.
            Err(e)
                if self
                    .nodes_of(topology, pipe)
                    .await
                    .is_ok_and(|now| now != before) =>
            {
                tracing::debug!(error = %e, "cluster topology changed; sending the reads again");
                self.try_pipeline_cluster(topology, pipe).await
            }
            other => other,
        }
    }

    /// The masters `pipe`'s commands go to now.
    async fn nodes_of(
        &mut self,
        topology: &SharedTopology,
        pipe: &redis::Pipeline,
    ) -> RedisResult<std::collections::BTreeSet<NodeAddr>> {
        let mut nodes = std::collections::BTreeSet::new();
        for cmd in pipe.cmd_iter() {
            if cluster::command_key(cmd).is_some() {
                nodes.insert(self.route(topology, cmd).await?);
            }
        }
        Ok(nodes)
    }

    async fn try_pipeline_cluster(
        &mut self,
        topology: &SharedTopology,
        pipe: &redis::Pipeline,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let mut by_node: Vec<(NodeAddr, redis::Pipeline, Vec<usize>)> = Vec::new();
        let mut previous: Option<NodeAddr> = None;
        for (i, cmd) in pipe.cmd_iter().enumerate() {
            let node = match (cluster::command_key(cmd), &previous) {
                (None, Some(prev)) => prev.clone(),
                _ => self.route(topology, cmd).await?,
            };
            previous = Some(node.clone());
            let group = match by_node.iter().position(|(n, _, _)| *n == node) {
                Some(g) => g,
                None => {
                    by_node.push((node, redis::pipe(), Vec::new()));
                    by_node.len() - 1
                }
            };
            by_node[group].1.add_command(cmd.clone());
            by_node[group].2.push(i);
        }
        let mut conns = Vec::with_capacity(by_node.len());
        for (node, _, _) in &by_node {
            match self.node_connection(node).await {
                Ok(conn) => conns.push(conn.clone()),
                Err(e) => {
                    let node = node.clone();
                    self.cluster_error(topology, &node, &e).await;
                    return Err(e);
                }
            }
        }
        let sent = by_node
            .iter()
            .zip(conns)
            .map(|((_, sub, _), mut conn)| async move {
                conn.req_packed_commands(sub, 0, sub.len()).await
            });
        let replies = futures_util::future::join_all(sent).await;
        let mut out: Vec<Option<RedisResult<Value>>> = (0..pipe.len()).map(|_| None).collect();
        let mut again = Vec::new();
        let mut failed = None;
        for ((node, _, indices), reply) in by_node.iter().zip(replies) {
            match reply {
                Ok(values) => {
                    for (&i, value) in indices.iter().zip(values) {
                        let value = value.extract_error();
                        if let Err(e) = &value {
                            if cluster::redirect_of(e).is_some() || cluster::is_reconfiguring(e) {
                                self.cluster_error(topology, node, e).await;
                                again.push(i);
                            }
                        }
                        out[i] = Some(value);
                    }
                }
                Err(e) => {
                    self.cluster_error(topology, node, &e).await;
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        for i in again {
            if let Some(cmd) = cmds.get(i) {
                out[i] = Some(self.query_cluster(topology, cmd).await);
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or(Ok(Value::Nil)))
            .collect())
    }
}

fn no_master() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "no master known for the key's slot",
    ))
}

/// Whether the error is a reply from the server (the connection itself is fine).
pub(crate) fn is_server_reply(e: &redis::RedisError) -> bool {
    !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal())
        && e.code().is_some()
}

/// Whether the error is `NOGROUP` (the stream or the group is gone).
pub(crate) fn is_nogroup(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

/// Whether the error is `BUSYGROUP` (the group exists already).
pub(crate) fn is_busygroup(e: &redis::RedisError) -> bool {
    e.code() == Some("BUSYGROUP")
}

/// Whether the error says the key does not exist (`XINFO` on a missing stream).
pub(crate) fn is_no_such_key(e: &redis::RedisError) -> bool {
    e.to_string().contains("no such key")
}

/// Why a fresh connection broke, when Redis said why: a server at its `maxclients` writes
/// `-ERR max number of clients reached` and closes the socket, which the client then sees as a
/// broken pipe. A raw connection reads that line.
async fn refusal(client: &Client) -> Option<redis::RedisError> {
    use tokio::io::AsyncReadExt;

    let redis::ConnectionAddr::Tcp(host, port) = client.get_connection_info().addr() else {
        return None;
    };
    let read = async {
        let mut socket = tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .ok()?;
        let mut buf = [0u8; 128];
        let n = socket.read(&mut buf).await.ok()?;
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        line.contains("max number of clients reached").then(|| {
            redis::RedisError::from((
                redis::ErrorKind::Io,
                "max number of clients reached",
                line.trim().to_owned(),
            ))
        })
    };
    tokio::time::timeout(Duration::from_millis(500), read)
        .await
        .ok()
        .flatten()
}

/// Whether Redis refused a connection because it serves `maxclients` already.
pub(crate) fn is_max_clients(e: &redis::RedisError) -> bool {
    e.to_string().contains("max number of clients reached")
}

/// An error as a log line, a health report or a start error names it: a refused connection is
/// said to be one, and errors of access (authentication, ACL permissions, TLS trust) say what
/// to check.
pub(crate) fn describe(e: &redis::RedisError) -> String {
    if is_max_clients(e) {
        return format!(
            "Redis refused the connection: max number of clients reached (its `maxclients`): \
             raise `maxclients`, or run fewer connections per process ({e})"
        );
    }
    match access_hint(e) {
        Some(hint) => format!("{e} ({hint})"),
        None => e.to_string(),
    }
}

/// What to check after an error of access.
fn access_hint(e: &redis::RedisError) -> Option<&'static str> {
    let text = e.to_string();
    if e.code() == Some("NOPERM") || text.contains("NOPERM") {
        Some(
            "NOPERM: the Redis ACL user lacks a permission the bus needs: \
             see the ACL rules in the README's \"TLS, credentials and ACLs\"",
        )
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
        // The cluster client wraps the failure of its first connections in an I/O error.
        || text.contains("AuthenticationFailed")
    {
        Some(
            "Redis refused the credentials: check the user name and password \
             (the URL's `user:password@`, or the builder's `credentials`/`password`)",
        )
    } else if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") {
        Some(
            "the server's TLS certificate is not trusted: give its CA with the builder's \
             `tls_root_certificates`, and check that it names the host of the URL",
        )
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        Some(
            "the server requires a client certificate (`tls-auth-clients`): give one with \
             the builder's `tls_client_certificate`",
        )
    } else {
        None
    }
}
