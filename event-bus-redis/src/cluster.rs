//! Redis Cluster: which node serves a key, and the pieces of the runtime that must know.
//!
//! Ordinary commands (publishes, acknowledgements, claims, retention, dead letters, group
//! creation) go through redis-rs's async [`ClusterConnection`], which routes each command by
//! its key's slot and follows `MOVED`/`ASK` by itself. Two things it cannot do for us:
//!
//! - **pipelines across slots**: redis-rs sends a pipeline to the node of its first keyed
//!   command and refuses one whose keys span slots (`CrossSlot`). [`split_pipeline`] sends such
//!   a pipeline as one sub-pipeline per slot, concurrently, and puts the replies back in order
//!   (a command without a key, such as `WAIT`, travels with the keyed command before it);
//! - **blocking reads on connections of their own**: redis-rs multiplexes one connection per
//!   node, which a `BLOCK` would hold up. The readers open their own connections to the node
//!   that owns their stream's slot, found in the [`Topology`] (the `CLUSTER SLOTS` map), which
//!   they refresh after a `MOVED` or a lost connection (a failover, a reshard).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use event_bus_core::StartError;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Client, Cmd, ConnectionAddr, ConnectionInfo, Pipeline, RedisResult, Value};

use crate::config::RedisConfig;
use crate::connection;
use crate::security::{self, RedisUrl};

use crate::partition::SLOTS;

/// The hash slot of `key` (CRC16/XMODEM of the key, or of its hash tag `{...}`, mod 16384):
/// [`crate::admin::slot`] on bytes.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crate::partition::crc16(hashed) % SLOTS
}

/// The key a command of the runtime touches (`None` for keyless commands such as `WAIT` or
/// `PING`). Covers the commands this crate sends: the key is the first argument, except for
/// `XINFO`/`XGROUP` (after the subcommand), `XREAD`/`XREADGROUP` (the first after `STREAMS`)
/// and scripts (the first key, if any).
pub(crate) fn command_key(cmd: &Cmd) -> Option<Vec<u8>> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    let key = match name.as_slice() {
        b"WAIT" | b"PING" | b"ASKING" | b"CLUSTER" | b"SCRIPT" | b"INFO" | b"ROLE" => None,
        b"XINFO" | b"XGROUP" => args.get(2),
        b"XREAD" | b"XREADGROUP" => {
            let streams = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
            args.get(streams + 1)
        }
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" => {
            let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if keys == 0 {
                None
            } else {
                args.get(3)
            }
        }
        _ => args.get(1),
    };
    key.map(|k| k.to_vec())
}

/// Sends a pipeline whose keys may span slots: one sub-pipeline per slot, concurrently through
/// the cluster connection, replies put back in the order of the commands. A keyless command
/// goes with the keyed command before it (or the first one).
pub(crate) async fn split_pipeline(
    conn: &ClusterConnection,
    pipe: &Pipeline,
) -> RedisResult<Vec<Value>> {
    let mut groups: Vec<(Option<u16>, Pipeline, Vec<usize>)> = Vec::new();
    let mut current: Option<u16> = None;
    let slots: Vec<Option<u16>> = pipe
        .cmd_iter()
        .map(|c| command_key(c).map(|k| key_slot(&k)))
        .collect();
    let first = slots.iter().flatten().next().copied();
    for (i, (cmd, slot)) in pipe.cmd_iter().zip(&slots).enumerate() {
        let slot = slot.or(current).or(first);
        current = slot;
        let group = match groups.iter_mut().position(|(s, _, _)| *s == slot) {
            Some(g) => g,
            None => {
                groups.push((slot, redis::pipe(), Vec::new()));
                groups.len() - 1
            }
        };
        groups[group].1.add_command(cmd.clone());
        groups[group].2.push(i);
    }
    let sent = groups.iter().map(|(_, sub, _)| {
        let mut conn = conn.clone();
        async move {
            redis::aio::ConnectionLike::req_packed_commands(&mut conn, sub, 0, sub.len()).await
        }
    });
    let replies = futures_util::future::join_all(sent).await;
    let mut out = vec![Value::Nil; pipe.len()];
    for ((_, _, indices), reply) in groups.iter().zip(replies) {
        for (i, value) in indices.iter().zip(reply?) {
            out[*i] = value;
        }
    }
    Ok(out)
}

/// Whether every keyed command of `pipe` is in one slot (redis-rs can send it as it is).
pub(crate) fn single_slot(pipe: &Pipeline) -> bool {
    let mut slot = None;
    for cmd in pipe.cmd_iter() {
        if let Some(key) = command_key(cmd) {
            let s = key_slot(&key);
            match slot {
                None => slot = Some(s),
                Some(prev) if prev != s => return false,
                Some(_) => {}
            }
        }
    }
    true
}

/// A node of the cluster, as `CLUSTER SLOTS` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl NodeAddr {
    /// Parses `host:port` (as in a `MOVED`/`ASK` error).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (host, port) = text.rsplit_once(':')?;
        Some(Self {
            host: host.to_owned(),
            port: port.parse().ok()?,
        })
    }
}

/// A slot range and the master that serves it.
#[derive(Debug, Clone)]
struct SlotRange {
    start: u16,
    end: u16,
    master: NodeAddr,
}

/// The cluster's slot map, refreshed on demand (after a `MOVED` or a lost connection), at most
/// every [`MIN_REFRESH`].
pub(crate) struct Topology {
    conn: ClusterConnection,
    /// Credentials, TLS and protocol of every node connection (the first seed's, with the
    /// node's address).
    base: ConnectionInfo,
    ranges: RwLock<Vec<SlotRange>>,
    refreshed: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("ranges", &self.ranges.read().map(|r| r.len()).unwrap_or(0))
            .finish_non_exhaustive()
    }
}

/// The shortest time between two refreshes of the slot map: after a failover every reader
/// notices at once, and one `CLUSTER SLOTS` serves them all.
const MIN_REFRESH: Duration = Duration::from_millis(100);

impl Topology {
    /// Reads the slot map now.
    pub(crate) async fn new(conn: ClusterConnection, base: ConnectionInfo) -> RedisResult<Self> {
        let topology = Self {
            conn,
            base,
            ranges: RwLock::new(Vec::new()),
            refreshed: tokio::sync::Mutex::new(None),
        };
        topology.refresh().await?;
        Ok(topology)
    }

    /// The master serving `slot`, as last read.
    pub(crate) fn master_of(&self, slot: u16) -> Option<NodeAddr> {
        let ranges = self
            .ranges
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ranges
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map(|r| r.master.clone())
    }

    /// The master serving `key`'s slot, as last read.
    pub(crate) fn master_of_key(&self, key: &[u8]) -> Option<NodeAddr> {
        self.master_of(key_slot(key))
    }

    /// Records that `slot` moved to `node` (a `MOVED` reply), until the next refresh.
    pub(crate) fn moved(&self, slot: u16, node: NodeAddr) {
        let mut ranges = self
            .ranges
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Split the range holding the slot, so that only this slot changes owner.
        if let Some(i) = ranges.iter().position(|r| r.start <= slot && slot <= r.end) {
            let r = ranges.remove(i);
            if r.start < slot {
                ranges.push(SlotRange {
                    start: r.start,
                    end: slot - 1,
                    master: r.master.clone(),
                });
            }
            if slot < r.end {
                ranges.push(SlotRange {
                    start: slot + 1,
                    end: r.end,
                    master: r.master,
                });
            }
        }
        ranges.push(SlotRange {
            start: slot,
            end: slot,
            master: node,
        });
    }

    /// Reads the slot map again (`CLUSTER SLOTS`), unless it was read less than
    /// [`MIN_REFRESH`] ago.
    pub(crate) async fn refresh(&self) -> RedisResult<()> {
        let mut refreshed = self.refreshed.lock().await;
        if refreshed.is_some_and(|at| at.elapsed() < MIN_REFRESH) {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let reply = conn
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let ranges = parse_slots(reply, &self.base);
        tracing::debug!(masters = ?ranges.iter().map(|r| r.master.to_string()).collect::<std::collections::BTreeSet<_>>(), "read the cluster's slot map");
        if ranges.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "CLUSTER SLOTS named no slot",
            )));
        }
        *self
            .ranges
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ranges;
        *refreshed = Some(Instant::now());
        Ok(())
    }

    /// A client for `node`: the seed's credentials and TLS, the node's address.
    pub(crate) fn client_for(&self, node: &NodeAddr) -> RedisResult<Client> {
        let addr = match self.base.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: node.host.clone(),
                port: node.port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(node.host.clone(), node.port),
        };
        Client::open(self.base.clone().set_addr(addr))
    }
}

/// The masters of a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ...], replicas...], ...]`.
/// A master that reports an empty host is the seed's host (Redis does that when it does not
/// know its own address).
fn parse_slots(reply: Value, base: &ConnectionInfo) -> Vec<SlotRange> {
    let default_host = match base.addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let int = |v: &Value| match v {
        Value::Int(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(start), Some(end)) = (fields.first().and_then(int), fields.get(1).and_then(int))
        else {
            continue;
        };
        let Some(Value::Array(master)) = fields.get(2) else {
            continue;
        };
        let (Some(host), Some(port)) = (master.first().and_then(text), master.get(1).and_then(int))
        else {
            continue;
        };
        let host = if host.is_empty() || host == "?" {
            default_host.clone()
        } else {
            host
        };
        out.push(SlotRange {
            start,
            end,
            master: NodeAddr { host, port },
        });
    }
    out
}

/// A `MOVED` or `ASK` redirection: the slot and the node to ask.
#[derive(Debug, Clone)]
pub(crate) enum Redirect {
    Moved(u16, NodeAddr),
    Ask(NodeAddr),
}

/// The redirection an error carries, if any.
pub(crate) fn redirect_of(e: &redis::RedisError) -> Option<Redirect> {
    let code = e.code()?;
    let (node, slot) = e.redirect_node()?;
    let node = NodeAddr::parse(node)?;
    match code {
        "MOVED" => Some(Redirect::Moved(slot, node)),
        "ASK" => Some(Redirect::Ask(node)),
        _ => None,
    }
}

/// Whether the error says the cluster is reconfiguring (`CLUSTERDOWN`, `TRYAGAIN`) or that the
/// node is no longer a master (`READONLY` after a failover): wait, refresh and try again.
pub(crate) fn is_reconfiguring(e: &redis::RedisError) -> bool {
    matches!(
        e.code(),
        Some("CLUSTERDOWN" | "TRYAGAIN" | "READONLY" | "MASTERDOWN" | "LOADING")
    )
}

/// A shared handle on the topology.
pub(crate) type SharedTopology = Arc<Topology>;

/// Connects to the cluster through the configured seed nodes: the cluster connection for
/// ordinary commands, and the slot map the readers route by.
pub(crate) async fn connect(
    config: &RedisConfig,
) -> Result<(ClusterConnection, SharedTopology), StartError> {
    let mut infos = Vec::with_capacity(config.cluster_nodes.len());
    for url in &config.cluster_nodes {
        let client = security::client(url, &config.security)?;
        infos.push(client.get_connection_info().clone());
    }
    let shown = config
        .cluster_nodes
        .iter()
        .map(RedisUrl::redacted)
        .collect::<Vec<_>>()
        .join(", ");
    let Some(base) = infos.first().cloned() else {
        return Err(StartError::Config(
            "`cluster_nodes` names no node: give at least one `redis://host:port`".to_owned(),
        ));
    };
    let secrets: Vec<String> = config
        .security
        .secrets(config.cluster_nodes.first(), Some(&base))
        .into_iter()
        .map(str::to_owned)
        .collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let failed = |what: &str, e: redis::RedisError| StartError::Transport {
        what: format!("{what} (nodes {shown}): {}", connection::describe(&e)),
        source: security::scrub(e, &secrets),
    };
    let builder = redis::cluster::ClusterClientBuilder::new(infos)
        .response_timeout(config.response_timeout)
        .connection_timeout(config.response_timeout);
    // The builder's own CA and client certificate, for every node the client discovers (the
    // seeds' clients carry them, but the cluster client opens its connections itself).
    #[cfg(feature = "tls")]
    let builder = match config.security.tls_certificates() {
        Some(certificates) => builder.certs(certificates),
        None => builder,
    };
    let client = builder
        .build()
        .map_err(|e| failed("a Redis Cluster client", e))?;
    let conn = client
        .get_async_connection()
        .await
        .map_err(|e| failed("a connection to the Redis Cluster", e))?;
    let topology = Topology::new(conn.clone(), base)
        .await
        .map_err(|e| failed("the Redis Cluster's slot map", e))?;
    Ok((conn, Arc::new(topology)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(
            key_slot(b"{}foo"),
            crate::partition::crc16(b"{}foo") % SLOTS
        );
        assert_eq!(key_slot(b"123456789"), 0x31C3 % SLOTS);
    }

    #[test]
    fn keys_of_commands() {
        let key = |c: &Cmd| command_key(c).map(|k| String::from_utf8(k).unwrap_or_default());
        assert_eq!(key(redis::cmd("XADD").arg("s").arg("*")), Some("s".into()));
        assert_eq!(
            key(redis::cmd("XINFO").arg("GROUPS").arg("s")),
            Some("s".into())
        );
        assert_eq!(
            key(redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("STREAMS")
                .arg("s")
                .arg(">")),
            Some("s".into())
        );
        assert_eq!(
            key(redis::cmd("EVALSHA").arg("abc").arg(1).arg("k")),
            Some("k".into())
        );
        assert_eq!(key(redis::cmd("EVAL").arg("abc").arg(0)), None);
        assert_eq!(key(redis::cmd("WAIT").arg(1).arg(100)), None);
    }

    #[test]
    fn pipelines_by_slot() {
        let mut pipe = redis::pipe();
        pipe.cmd("XADD").arg("foo").cmd("WAIT").arg(1).arg(0);
        assert!(single_slot(&pipe));
        pipe.cmd("XADD").arg("bar");
        assert!(!single_slot(&pipe));
    }
}
