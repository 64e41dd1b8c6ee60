//! The bus on a Redis Cluster (3 masters, 3 replicas, `--cluster-node-timeout 1000`), with
//! exact counts: a master SIGKILLed mid-run (with replica waits, every publish that returned
//! `Ok` is handled by every subscriber; without them, what was lost is counted against what
//! the stream holds, as the docs promise), a live reshard of the slot of a stream being read
//! (nothing lost, nothing left pending), and 660 subscribers on 330 streams spread over every
//! master with a bounded number of reader connections per master. The behaviour suite runs on
//! a cluster too (`behaviour.rs`, `on_redis_cluster!`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus_core::{Bus, PublishError, RunningBus};
use event_bus_redis::{Durability, NotReplicated, RedisBus};
use event_bus_tests::cluster::RedisCluster;
use event_bus_tests::redis_helpers::{info_number, raw};
use event_bus_tests::{BusKind, Probe, SharedRecorder, TestBus};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const SUBSCRIBERS: [&str; 2] = ["probe-a", "probe-b"];

async fn start_cluster() -> RedisCluster {
    match tokio::task::spawn_blocking(RedisCluster::start).await {
        Ok(cluster) => cluster,
        Err(e) => panic!("starting the cluster panicked: {e}"),
    }
}

/// A bus on `cluster` running `probe-a` and `probe-b`, claiming quickly (a failover can lose
/// acknowledgements, whose entries are then claimed again).
async fn cluster_bus(
    t: &TestBus,
    cluster: &RedisCluster,
    durability: Durability,
    readers: usize,
) -> RedisBus {
    RedisBus::builder()
        .max_reader_connections(readers)
        .cluster_nodes(cluster.urls())
        .prefix(&t.prefix)
        .only(t.only.clone())
        .state(SharedRecorder(Arc::clone(&t.recorder)))
        .retry_policy(t.retry)
        .claim_idle(Duration::from_secs(1))
        .claim_interval(Duration::from_millis(200))
        .block(Duration::from_millis(200))
        .durability(durability)
        .build()
        .await
        .expect("bus on the cluster")
}

/// What a publisher saw: the seqs whose publish returned `Ok`, and those that failed.
#[derive(Debug, Default)]
struct Published {
    acknowledged: BTreeSet<u64>,
    failed: Vec<(u64, String)>,
    not_replicated: usize,
}

/// Publishes seq 0, 1, ... (one tenant, a short pause between) until `stop`.
fn publish_until(
    bus: RedisBus,
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Published> {
    tokio::spawn(async move {
        let tenant = Uuid::new_v4();
        let mut out = Published::default();
        while !stop.load(Ordering::SeqCst) {
            let seq = next.fetch_add(1, Ordering::SeqCst);
            match bus.publish(Probe::new(tenant, seq)).await {
                Ok(_) => {
                    out.acknowledged.insert(seq);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => {
                    if let PublishError::Transport { source, .. } = &e {
                        if source.downcast_ref::<NotReplicated>().is_some() {
                            out.not_replicated += 1;
                        }
                    }
                    out.failed.push((seq, e.to_string()));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        out
    })
}

/// The seqs of the probes the stream holds now (`XRANGE - +`, on its master).
async fn seqs_in_stream(t: &TestBus, stream: &str) -> BTreeSet<u64> {
    let mut xrange = redis::cmd("XRANGE");
    xrange.arg(stream).arg("-").arg("+");
    let entries: Vec<(String, HashMap<String, String>)> = t.command(&xrange).await.expect("XRANGE");
    entries
        .iter()
        .filter_map(|(_, fields)| fields.get("event"))
        .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .filter_map(|envelope| envelope["payload"]["seq"].as_u64())
        .collect()
}

fn test_bus(cluster: &RedisCluster, name: &str) -> TestBus {
    let mut t = TestBus::new(BusKind::Redis, name, &SUBSCRIBERS);
    t.cluster = Some(cluster.urls());
    t
}

/// Runs publishes, kills the master of the stream's slot mid-run (SIGKILL), waits for its
/// replica to take over, starts the old master again (it rejoins as a replica) and publishes
/// some more; returns what the publisher saw, once every
/// subscriber caught up and the bus shut down with nothing pending.
async fn publish_through_a_failover(
    t: &TestBus,
    cluster: RedisCluster,
    durability: Durability,
    readers: usize,
) -> (Published, BTreeSet<u64>) {
    let began = std::time::Instant::now();
    let stream = format!("{}:PROBE", t.prefix);
    let bus = cluster_bus(t, &cluster, durability, readers).await;
    let running = bus.start().await.expect("start");
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let publisher = publish_until(
        bus.clone(),
        Arc::clone(&stop),
        Arc::clone(&next),
        Arc::clone(&acked),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;

    let master = cluster.master_of_key(&stream);
    let replica = cluster.replica_of(master);
    let restart = durability != Durability::Master;
    eprintln!(
        "before the kill: the replica holds {} entries of {}",
        cluster.replica_len(replica, &stream),
        next.load(Ordering::SeqCst)
    );
    let cluster = Arc::new(Mutex::new(cluster));
    let killed = Arc::clone(&cluster);
    let seqs = Arc::clone(&next);
    let (killed_at, promoted_at) = tokio::task::spawn_blocking(move || {
        let mut cluster = killed.lock().expect("cluster");
        cluster.kill(master);
        let killed = std::time::Instant::now();
        let killed_at = seqs.load(Ordering::SeqCst);
        cluster.wait_promoted(replica, Duration::from_secs(20));
        eprintln!("replica promoted {:?} after the kill", killed.elapsed());
        let promoted_at = seqs.load(Ordering::SeqCst);
        // With replica waits, the old master comes back, as the new master's replica, so that
        // `WAIT 1` can succeed again.
        if restart {
            cluster.restart(master, Duration::from_secs(20));
        }
        (killed_at, promoted_at)
    })
    .await
    .expect("failover");
    eprintln!(
        "killed at seq {killed_at}, replica promoted at {promoted_at}, recovered at {} ({:?})",
        next.load(Ordering::SeqCst),
        began.elapsed()
    );
    // The bus recovers by itself: publishes are acknowledged again.
    let recovered_from = next.load(Ordering::SeqCst);
    let recovery = tokio::time::timeout(WAIT, async {
        while acked.load(Ordering::SeqCst) < 100 + recovered_from {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let published = publisher.await.expect("publisher");
    assert!(
        recovery.is_ok(),
        "the bus did not recover by itself: {published:?}"
    );
    eprintln!(
        "100 publishes acknowledged after the failover ({:?})",
        began.elapsed()
    );
    let held = seqs_in_stream(t, &stream).await;
    // Every acknowledged seq the stream holds is handled by every subscriber.
    let expected: BTreeSet<u64> = published
        .acknowledged
        .iter()
        .copied()
        .filter(|s| held.contains(s))
        .collect();
    for sub in SUBSCRIBERS {
        let all = t
            .recorder
            .wait_until(WAIT, |r| {
                let handled = r.handled(sub);
                expected.iter().all(|s| handled.contains_key(s))
            })
            .await;
        assert!(
            all,
            "{sub} did not handle every acknowledged event the stream holds"
        );
    }
    eprintln!("handled ({:?})", began.elapsed());
    tokio::time::timeout(WAIT, running.idle())
        .await
        .expect("every subscriber caught up");
    running.shutdown().await.expect("shutdown");
    eprintln!("idle and shut down ({:?})", began.elapsed());
    for sub in SUBSCRIBERS {
        assert_eq!(
            t.pending(&stream, sub).await,
            0,
            "{sub}: nothing left pending"
        );
    }
    drop(cluster);
    (published, held)
}

/// With `Durability::replicas(1, ..)`, a publish returns `Ok` only once the replica has the
/// entry: the replica that replaces the killed master holds every acknowledged entry, and
/// every subscriber handles each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_loses_no_publish_that_waited_for_its_replica() {
    event_bus_tests::init_tracing();
    let cluster = start_cluster().await;
    let t = test_bus(&cluster, "failover-wait");
    let (published, held) = publish_through_a_failover(
        &t,
        cluster,
        Durability::replicas(1, Duration::from_millis(500)),
        8,
    )
    .await;
    let lost: Vec<u64> = published.acknowledged.difference(&held).copied().collect();
    assert_eq!(lost, Vec::<u64>::new(), "acknowledged and lost");
    for sub in SUBSCRIBERS {
        let handled = t.recorder.handled(sub);
        for seq in &published.acknowledged {
            assert!(handled.contains_key(seq), "{sub} never handled {seq}");
        }
    }
    eprintln!(
        "failover with replica waits: {} acknowledged, {} failed ({} not replicated), 0 lost",
        published.acknowledged.len(),
        published.failed.len(),
        published.not_replicated
    );
}

/// With the default durability, an entry the master acknowledged but had not replicated yet
/// when it was killed is lost, as the docs say: each acknowledged publish is either handled
/// by every subscriber or missing from the stream (counted; it may be 0). The subscribers
/// share one reader, which follows the failover as their own readers do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_loses_at_most_what_it_had_not_replicated() {
    event_bus_tests::init_tracing();
    let cluster = start_cluster().await;
    let t = test_bus(&cluster, "failover-nowait");
    // The two subscribers share one reader here (`max_reader_connections(1)`).
    let (published, held) = publish_through_a_failover(&t, cluster, Durability::Master, 1).await;
    let lost: BTreeSet<u64> = published.acknowledged.difference(&held).copied().collect();
    let handled_by_all = published
        .acknowledged
        .iter()
        .filter(|s| {
            SUBSCRIBERS
                .iter()
                .all(|sub| t.recorder.handled(sub).contains_key(s))
        })
        .count();
    let handled_and_held = published
        .acknowledged
        .iter()
        .filter(|s| held.contains(s))
        .count();
    // handled + lost == acknowledged: whatever the stream still holds was handled by everyone.
    assert_eq!(handled_and_held + lost.len(), published.acknowledged.len());
    assert!(handled_by_all >= handled_and_held);
    // Only the last entries before the kill can be lost: everything after the failover is held.
    if let Some(first_lost) = lost.first() {
        let last_lost = lost.last().copied().unwrap_or(*first_lost);
        assert!(
            last_lost - first_lost < 1000,
            "lost entries are not one window before the kill: {lost:?}"
        );
    }
    eprintln!(
        "failover without replica waits: {} acknowledged, {} failed, {} lost: {:?}",
        published.acknowledged.len(),
        published.failed.len(),
        lost.len(),
        lost
    );
}

/// The slot of a stream being read and written moves to another master (`SETSLOT
/// IMPORTING/MIGRATING`, `MIGRATE`, half a second of `ASK` redirections, `SETSLOT NODE`):
/// every publish succeeds, every subscriber handles every event exactly once, nothing is left
/// pending. Each subscriber has a reader of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_reshard_of_a_read_stream_loses_nothing() {
    reshard_while_reading(8).await;
}

/// The same, the two subscribers sharing one reader (`max_reader_connections(1)`), whose
/// blocking `XREAD` and pipelined polls follow the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_reshard_of_a_stream_read_by_a_shared_reader_loses_nothing() {
    reshard_while_reading(1).await;
}

async fn reshard_while_reading(readers: usize) {
    event_bus_tests::init_tracing();
    let cluster = start_cluster().await;
    let t = test_bus(&cluster, "reshard");
    let stream = format!("{}:PROBE", t.prefix);
    let bus = cluster_bus(&t, &cluster, Durability::Master, readers).await;
    let running = bus.start().await.expect("start");
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = publish_until(
        bus.clone(),
        Arc::clone(&stop),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let slot = cluster.slot_of(&stream);
    let from = cluster.master_of_slot(slot);
    let to = cluster
        .masters()
        .into_iter()
        .find(|&m| m != from)
        .expect("another master");
    let cluster = Arc::new(cluster);
    let moving = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || {
        moving.move_slot(slot, to, || std::thread::sleep(Duration::from_millis(500)));
    })
    .await
    .expect("reshard");
    assert_eq!(cluster.master_of_slot(slot), to, "the slot moved");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let published = publisher.await.expect("publisher");
    assert_eq!(published.failed, Vec::new(), "no publish failed");
    let n = published.acknowledged.len();
    assert!(n > 100, "too few publishes: {n}");
    for sub in SUBSCRIBERS {
        assert!(
            t.recorder.wait_handled(sub, n, WAIT).await,
            "{sub} did not handle every event"
        );
    }
    tokio::time::timeout(WAIT, running.idle())
        .await
        .expect("every subscriber caught up");
    running.shutdown().await.expect("shutdown");
    for sub in SUBSCRIBERS {
        let handled = t.recorder.handled(sub);
        assert_eq!(handled.len(), n, "{sub}: distinct events handled");
        let twice: Vec<_> = handled.iter().filter(|(_, c)| **c != 1).collect();
        assert!(twice.is_empty(), "{sub} handled more than once: {twice:?}");
        assert_eq!(
            t.pending(&stream, sub).await,
            0,
            "{sub}: nothing left pending"
        );
    }
    assert_eq!(
        seqs_in_stream(&t, &stream).await.len(),
        n,
        "the stream holds every event"
    );
}

async fn connected_clients(port: u16) -> u64 {
    let mut conn = raw(&format!("redis://127.0.0.1:{port}")).await;
    info_number(&mut conn, "clients", "connected_clients").await
}

/// 660 subscribers on 330 streams, spread over the slots of every master, with
/// `max_reader_connections(2)`: each master gets at most 2 reader connections from the process
/// (plus the cluster client's one), shared by the subscribers whose streams it serves, and
/// every subscriber receives its event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_every_master_share_a_bounded_number_of_readers_per_master() {
    use many_types::{Seen, EVENT_TYPES};
    const READERS: u64 = 2;
    event_bus_tests::init_tracing();
    // A cluster of its own: connections are counted on it.
    let cluster = start_cluster().await;
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let mut before = Vec::new();
    for &m in &masters {
        before.push(connected_clients(cluster.port(m)).await);
    }
    let seen = Seen::default();
    let prefix = event_bus_tests::unique_prefix("many-cluster");
    let bus = RedisBus::builder()
        .cluster_nodes(cluster.urls())
        .prefix(&prefix)
        .only(many_types::subscriber_names())
        .expect_subscribers(many_types::subscriber_names())
        .state(seen.clone())
        .block(Duration::from_millis(200))
        .max_reader_connections(READERS as usize)
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    assert_eq!(running.subscribers().len(), 2 * EVENT_TYPES);
    for (&m, before) in masters.iter().zip(&before) {
        // Our own connection is counted in both.
        let added = connected_clients(cluster.port(m)).await - before;
        eprintln!("master {m}: {added} connections from the bus");
        assert_eq!(
            added,
            READERS + 1,
            "master {m}: connections from the bus: {READERS} shared readers + the cluster client's"
        );
    }
    many_types::publish_each(&bus, Uuid::new_v4(), 7)
        .await
        .expect("publish");
    tokio::time::timeout(Duration::from_secs(60), running.idle())
        .await
        .expect("every subscriber caught up");
    let seen = seen.snapshot();
    assert_eq!(
        seen.len(),
        2 * EVENT_TYPES,
        "every subscriber received something"
    );
    for name in many_types::subscriber_names() {
        assert_eq!(seen.get(name.as_str()), Some(&vec![7]), "{name}");
    }
    assert_eq!(running.stats().handled, 2 * EVENT_TYPES as u64);
    // With MEASURE_IDLE set (and `--nocapture`), report the commands the idle process sends
    // each master, over 10 s: the figure the README gives. Not asserted (timing varies).
    if std::env::var("MEASURE_IDLE").is_ok() {
        let mut before = Vec::new();
        for &m in &masters {
            before.push(commands_processed(cluster.port(m)).await);
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        for (&m, before) in masters.iter().zip(before) {
            let per_second = (commands_processed(cluster.port(m)).await - before) as f64 / 10.0;
            eprintln!("IDLE master {m}: {per_second:.1} commands/s");
        }
    }
    running.shutdown().await.expect("shutdown");
    drop(cluster);
}

async fn commands_processed(port: u16) -> u64 {
    let mut conn = raw(&format!("redis://127.0.0.1:{port}")).await;
    info_number(&mut conn, "stats", "total_commands_processed").await
}

/// Asking for more replicas than a master has: the publish fails with [`NotReplicated`],
/// saying how many acknowledged (its one replica), and the entry is on the master (and
/// delivered), as the error says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_falls_short_is_a_typed_error_and_the_entry_stays() {
    event_bus_tests::init_tracing();
    let cluster = event_bus_tests::cluster::shared().await;
    let t = TestBus {
        cluster: Some(cluster.urls()),
        ..TestBus::new(BusKind::Redis, "wait-short", &["probe-a"])
    };
    let stream = format!("{}:PROBE", t.prefix);
    let bus = RedisBus::builder()
        .cluster_nodes(cluster.urls())
        .prefix(&t.prefix)
        .only(t.only.clone())
        .state(SharedRecorder(Arc::clone(&t.recorder)))
        .block(Duration::from_millis(200))
        .durability(Durability::replicas(2, Duration::from_millis(100)))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let e = bus
        .publish(Probe::new(Uuid::new_v4(), 0))
        .await
        .expect_err("only one replica");
    let PublishError::Transport { source, .. } = &e else {
        panic!("not a transport error: {e}");
    };
    let short = source
        .downcast_ref::<NotReplicated>()
        .unwrap_or_else(|| panic!("not NotReplicated: {source}"));
    assert_eq!((short.acknowledged, short.wanted), (1, 2));
    assert_eq!(short.stream, stream);
    assert!(e.is_retryable());
    assert_eq!(seqs_in_stream(&t, &stream).await, BTreeSet::from([0]));
    assert!(t.recorder.wait_handled("probe-a", 1, WAIT).await);
    assert_eq!(bus.stats().published, 0, "a failed publish is not counted");
    running.shutdown().await.expect("shutdown");
    assert_eq!(t.recorder.handled("probe-a"), HashMap::from([(0, 1)]));
    t.cleanup().await;
    drop(cluster);
}

/// Runs `command` on node `port` (no credentials: the test's own `default` user).
async fn on_node<T: redis::FromRedisValue>(port: u16, command: &redis::Cmd) -> T {
    let mut conn = event_bus_tests::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect("node connection");
    match command.query_async(&mut conn).await {
        Ok(reply) => reply,
        Err(e) => panic!("{command:?} on port {port}: {e}"),
    }
}

/// The bus's credentials reach every connection it opens on a cluster: the cluster client's
/// connections to each node it discovers (the seed list names one node only) and the readers'
/// connections to each master. Every node has an ACL user for the bus; after a round trip, each
/// master serves the bus's commands as that user and none as `default`. A wrong password fails
/// `build`, naming the cause, and never shows the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_reach_every_connection_on_a_cluster() {
    event_bus_tests::init_tracing();
    let cluster = start_cluster().await;
    let password = format!("pw-{}", Uuid::new_v4().simple());
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("bus-user")
        .arg("on")
        .arg(format!(">{password}"))
        .arg("~*")
        .arg("&*")
        .arg("+@all");
    for i in 0..6 {
        let () = on_node(cluster.port(i), &setuser).await;
    }
    let t = TestBus {
        cluster: Some(cluster.urls()),
        ..TestBus::new(BusKind::Redis, "cluster-acl", &["probe-a", "probe-b"])
    };
    let seed = vec![cluster.urls()[0].clone()];
    let builder = |password: &str| {
        RedisBus::builder()
            .cluster_nodes(seed.clone())
            .credentials("bus-user", password)
            .prefix(&t.prefix)
            .only(t.only.clone())
            .state(SharedRecorder(Arc::clone(&t.recorder)))
            .block(Duration::from_millis(200))
    };

    let wrong = format!("wrong-{}", Uuid::new_v4().simple());
    let e = builder(&wrong)
        .build()
        .await
        .expect_err("a wrong password is refused");
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("refused the credentials"),
        "the cause is named: {text}"
    );
    assert!(!text.contains(&wrong), "the password is not shown: {text}");

    let bus = builder(&password).build().await.expect("bus");
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..20 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    for name in ["probe-a", "probe-b"] {
        assert!(t.recorder.wait_handled(name, 20, WAIT).await, "{name}");
    }
    let bus_commands = ["xadd", "xreadgroup", "xread", "xack", "xautoclaim", "xinfo"];
    for master in 0..3 {
        let clients: String = on_node(cluster.port(master), redis::cmd("CLIENT").arg("LIST")).await;
        let lines: Vec<&str> = clients.lines().collect();
        assert!(
            lines.iter().any(|l| l.contains(" user=bus-user ")),
            "master {master} serves the bus as bus-user: {clients}"
        );
        for line in &lines {
            let cmd = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("cmd="))
                .unwrap_or_default();
            let is_bus_command = bus_commands.iter().any(|c| cmd.starts_with(c));
            assert!(
                !(is_bus_command && line.contains(" user=default ")),
                "master {master}: a bus command ran as the default user: {line}"
            );
        }
    }
    running.shutdown().await.expect("shutdown");
    for name in ["probe-a", "probe-b"] {
        let handled = t.recorder.handled(name);
        assert_eq!(handled.len(), 20, "{name}");
        assert!(handled.values().all(|&n| n == 1), "{name}: {handled:?}");
    }
    t.cleanup().await;
}
