//! A private Redis Cluster of 3 masters and 3 replicas, each a `redis-server
//! --cluster-enabled yes --cluster-node-timeout 1000` on a free port (its cluster bus port,
//! +10000, free too) in a temporary directory, joined with `redis-cli --cluster create
//! --cluster-replicas 1`. Each node is checked to be our process (`INFO server`'s
//! `process_id`); all are stopped by pid when dropped. Helpers kill a master (SIGKILL) and
//! wait for its replica to take over, and move a slot between masters as `redis-cli --cluster
//! reshard` does (`CLUSTER SETSLOT IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT NODE`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// The cluster the tests running at once share: started by the first, stopped when the last
/// one holding it drops it (a later test starts a new one). Tests that kill or reshard nodes
/// start a [`RedisCluster`] of their own instead.
pub async fn shared() -> Arc<RedisCluster> {
    static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
    let started = tokio::task::spawn_blocking(|| {
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(RedisCluster::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    })
    .await;
    match started {
        Ok(cluster) => cluster,
        Err(e) => panic!("starting the shared cluster panicked: {e}"),
    }
}

/// One node of a [`RedisCluster`].
#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A local Redis Cluster of 3 masters and 3 replicas, stopped (by pid) when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    for _ in 0..200 {
        let Ok(port) = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
        else {
            continue;
        };
        if port < 55_000 && !taken.contains(&port) && port_is_free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair (port, port + 10000) found");
}

/// A synchronous connection to `127.0.0.1:port`.
fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    client.get_connection_with_timeout(Duration::from_secs(2))
}

/// `INFO replication` of the node at `port` (empty when it does not answer).
fn replication_info(port: u16) -> String {
    connect(port)
        .and_then(|mut c| {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut c)
        })
        .unwrap_or_default()
}

fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

impl RedisCluster {
    /// Starts six nodes and joins them: the first three are masters, each with one replica.
    /// Returns once every node reports `cluster_state:ok` with all slots, and every replica's
    /// link to its master is up.
    pub fn start() -> Self {
        let mut ports = Vec::new();
        for _ in 0..6 {
            let port = free_cluster_port(&ports);
            ports.push(port);
        }
        let mut cluster = Self {
            nodes: ports
                .iter()
                .map(|&port| Node {
                    port,
                    dir: std::env::temp_dir().join(format!(
                        "event-bus-cluster-{}",
                        uuid::Uuid::new_v4().simple()
                    )),
                    child: None,
                })
                .collect(),
        };
        for i in 0..cluster.nodes.len() {
            let node = &mut cluster.nodes[i];
            if let Err(e) = std::fs::create_dir_all(&node.dir) {
                panic!("cannot create {}: {e}", node.dir.display());
            }
            // A port free when chosen may be taken before `redis-server` binds it (by another
            // test starting a cluster): then another port.
            let mut tries = 0;
            loop {
                node.spawn();
                if node.wait_ours() {
                    break;
                }
                node.stop();
                tries += 1;
                assert!(
                    tries < 10,
                    "no free port for a cluster node after {tries} tries"
                );
                node.port = free_cluster_port(&ports);
                ports[i] = node.port;
            }
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => panic!("redis-cli --cluster create failed: {other:?}"),
        }
        cluster.wait_ok(&[0, 1, 2, 3, 4, 5], Duration::from_secs(20));
        cluster.wait_replicas_linked(Duration::from_secs(20));
        cluster
    }

    /// The seed URLs of every node (`redis://127.0.0.1:port`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// The node (index) that serves `slot` as master, as a live node sees it.
    pub fn master_of_slot(&self, slot: u16) -> usize {
        for node in self.live() {
            let Ok(mut conn) = connect(self.nodes[node].port) else {
                continue;
            };
            let Ok(ranges) = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query::<Vec<redis::Value>>(&mut conn)
            else {
                continue;
            };
            let slots = parse_slots(&ranges);
            for (start, end, (_, port), _) in slots {
                if start <= slot && slot <= end {
                    if let Some(i) = self.nodes.iter().position(|n| n.port == port) {
                        return i;
                    }
                }
            }
        }
        panic!("no live node knows the master of slot {slot}");
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        let node = self.live().next().unwrap_or(0);
        let mut conn = match connect(self.nodes[node].port) {
            Ok(conn) => conn,
            Err(e) => panic!("cannot connect to node {node}: {e}"),
        };
        match redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
        {
            Ok(slot) => slot,
            Err(e) => panic!("CLUSTER KEYSLOT {key}: {e}"),
        }
    }

    /// The node (index) that is master of `key`'s slot.
    pub fn master_of_key(&self, key: &str) -> usize {
        self.master_of_slot(self.slot_of(key))
    }

    /// The replica (index) of master `master`.
    pub fn replica_of(&self, master: usize) -> usize {
        let id = self.node_id(master);
        for i in self.live() {
            if i == master {
                continue;
            }
            let Ok(mut conn) = connect(self.nodes[i].port) else {
                continue;
            };
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .unwrap_or_default();
            let port = info_field(&info, "master_port").and_then(|p| p.parse::<u16>().ok());
            if port == Some(self.nodes[master].port) {
                return i;
            }
        }
        panic!("master {master} ({id}) has no live replica");
    }

    /// Node `i`'s cluster id (`CLUSTER MYID`).
    pub fn node_id(&self, i: usize) -> String {
        let mut conn = match connect(self.nodes[i].port) {
            Ok(conn) => conn,
            Err(e) => panic!("cannot connect to node {i}: {e}"),
        };
        match redis::cmd("CLUSTER").arg("MYID").query(&mut conn) {
            Ok(id) => id,
            Err(e) => panic!("CLUSTER MYID on node {i}: {e}"),
        }
    }

    /// The length of `stream` on replica `i` (`READONLY`, `XLEN`).
    pub fn replica_len(&self, i: usize, stream: &str) -> u64 {
        let Ok(mut conn) = connect(self.nodes[i].port) else {
            return 0;
        };
        let _ = redis::cmd("READONLY").query::<redis::Value>(&mut conn);
        redis::cmd("XLEN").arg(stream).query(&mut conn).unwrap_or(0)
    }

    /// Kills node `i` with SIGKILL (no shutdown, no final replication).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Starts killed node `i` again: it rejoins the cluster, as a replica of the node that
    /// replaced it. Returns once its replication link is up.
    pub fn restart(&mut self, i: usize, timeout: Duration) {
        assert!(self.nodes[i].child.is_none(), "node {i} is running");
        self.nodes[i].spawn();
        assert!(
            self.nodes[i].wait_ours(),
            "node {i} could not start again on port {}",
            self.nodes[i].port
        );
        let deadline = Instant::now() + timeout;
        loop {
            let info = replication_info(self.nodes[i].port);
            if info_field(&info, "role").as_deref() == Some("slave")
                && info_field(&info, "master_link_status").as_deref() == Some("up")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not rejoin as a replica within {timeout:?}: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `replica` is a master and every live node reports `cluster_state:ok`.
    pub fn wait_promoted(&self, replica: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let role = connect(self.nodes[replica].port)
                .and_then(|mut c| {
                    redis::cmd("INFO")
                        .arg("replication")
                        .query::<String>(&mut c)
                })
                .ok()
                .and_then(|info| info_field(&info, "role"));
            if role.as_deref() == Some("master") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {replica} was not promoted within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let live: Vec<usize> = self.live().collect();
        self.wait_ok(&live, deadline.saturating_duration_since(Instant::now()));
    }

    /// Moves `slot` to master `to`, as `redis-cli --cluster reshard` does: `SETSLOT IMPORTING`
    /// on `to`, `SETSLOT MIGRATING` on the owner, `MIGRATE` of every key of the slot, then
    /// `SETSLOT NODE` on both and on every other master. `between` runs after the keys moved
    /// and before the slot is handed over (while the owner answers `ASK` for them).
    pub fn move_slot(&self, slot: u16, to: usize, between: impl FnOnce()) {
        let from = self.master_of_slot(slot);
        assert_ne!(from, to, "slot {slot} is on node {to} already");
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let mut src = connect(self.nodes[from].port).expect("connect to the slot's owner");
        let mut dst = connect(self.nodes[to].port).expect("connect to the target");
        let ok = |r: redis::RedisResult<redis::Value>, what: &str| {
            if let Err(e) = r {
                panic!("{what}: {e}");
            }
        };
        ok(
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("IMPORTING")
                .arg(&from_id)
                .query(&mut dst),
            "SETSLOT IMPORTING",
        );
        ok(
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("MIGRATING")
                .arg(&to_id)
                .query(&mut src),
            "SETSLOT MIGRATING",
        );
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut src)
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            ok(
                redis::cmd("MIGRATE")
                    .arg("127.0.0.1")
                    .arg(self.nodes[to].port)
                    .arg("")
                    .arg(0)
                    .arg(5000)
                    .arg("KEYS")
                    .arg(&keys)
                    .query(&mut src),
                "MIGRATE",
            );
        }
        between();
        for node in [to, from] {
            let mut conn = connect(self.nodes[node].port).expect("connect");
            ok(
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&to_id)
                    .query(&mut conn),
                "SETSLOT NODE",
            );
        }
        for node in self.live() {
            if node == to || node == from || !self.is_master(node) {
                continue;
            }
            if let Ok(mut conn) = connect(self.nodes[node].port) {
                let _ = redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&to_id)
                    .query::<redis::Value>(&mut conn);
            }
        }
    }

    /// Whether node `i` is a master.
    pub fn is_master(&self, i: usize) -> bool {
        connect(self.nodes[i].port)
            .and_then(|mut c| {
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut c)
            })
            .ok()
            .and_then(|info| info_field(&info, "role"))
            .as_deref()
            == Some("master")
    }

    /// The live masters (indices).
    pub fn masters(&self) -> Vec<usize> {
        self.live().filter(|&i| self.is_master(i)).collect()
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].child.is_some())
    }

    fn wait_ok(&self, nodes: &[usize], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &i in nodes {
            loop {
                let info = connect(self.nodes[i].port)
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .unwrap_or_default();
                let ok = info_field(&info, "cluster_state").as_deref() == Some("ok")
                    && info_field(&info, "cluster_slots_ok").as_deref() == Some("16384");
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {i} did not reach cluster_state:ok within {timeout:?}: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn wait_replicas_linked(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for i in 0..self.nodes.len() {
            loop {
                let info = replication_info(self.nodes[i].port);
                let role = info_field(&info, "role");
                let linked = match role.as_deref() {
                    Some("master") => info_field(&info, "connected_slaves").as_deref() == Some("1"),
                    Some("slave") => {
                        info_field(&info, "master_link_status").as_deref() == Some("up")
                    }
                    _ => false,
                };
                if linked {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {i}'s replication link is not up within {timeout:?}: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// `CLUSTER SLOTS` ranges as `(start, end, (host, port), rest)` (the host left empty).
fn parse_slots(ranges: &[redis::Value]) -> Vec<(u16, u16, (String, u16), redis::Value)> {
    let mut out = Vec::new();
    for range in ranges {
        let redis::Value::Array(fields) = range else {
            continue;
        };
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        let (Some(start), Some(end)) = (int(fields.first()), int(fields.get(1))) else {
            continue;
        };
        let Some(redis::Value::Array(master)) = fields.get(2) else {
            continue;
        };
        let Some(port) = int(master.get(1)) else {
            continue;
        };
        out.push((start, end, (String::new(), port), redis::Value::Nil));
    }
    out
}

impl Node {
    /// Starts `redis-server` on the node's port and directory (its `nodes.conf` there: a node
    /// started again rejoins the cluster as it left it).
    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .arg("--cluster-config-file")
            .arg(self.dir.join("nodes.conf"))
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!("cannot start redis-server (is it on PATH?): {e}"),
        }
    }

    /// Waits until the node answers and checks that it is the process we started; `false`
    /// when our process exited (its port was taken) or another process answers there.
    fn wait_ours(&mut self) -> bool {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            panic!("node on port {} is not running", self.port);
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return false;
                }
            }
            if let Ok(mut conn) = connect(self.port) {
                if let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut conn) {
                    return info_field(&info, "process_id") == Some(pid.to_string());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    /// Stops the node's process (SIGKILL), if it runs.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
            let _ = std::fs::remove_dir_all(&node.dir);
        }
    }
}
