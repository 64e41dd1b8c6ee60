//! Partitioned streams on Redis (`RedisBusBuilder::partitions`): each tenant's events on one
//! partition, every partition read, competing consumers in several processes sharing the
//! partitions with each tenant's order kept, a dead owner's partition taken over with its
//! pending entries claimed, and dead letters, replays and retention per partition. Exact counts.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::admin::{partition_of, partition_stream, partition_tag};
use event_bus_redis::{RedisBus, Retention};
use event_bus_tests::redis_helpers::{pending_count, raw, read_as, xlen};
use event_bus_tests::{BusKind, Probe, TestBus};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const PARTITIONS: u16 = 4;

/// A test bus on PROBE partitioned [`PARTITIONS`] ways, with quick leases and rounds.
fn partitioned(test: &str, only: &[&str]) -> TestBus {
    let mut t = TestBus::new(BusKind::Redis, test, only);
    t.partitions = vec![("PROBE".to_owned(), PARTITIONS)];
    t.claim_idle = Duration::from_secs(2);
    t.claim_interval = Duration::from_millis(100);
    t
}

/// The key of partition `i` of PROBE under `prefix`.
fn partition(prefix: &str, i: u16) -> String {
    partition_stream(&format!("{prefix}:PROBE"), &partition_tag(i, PARTITIONS))
}

/// `per` tenants on each partition.
fn tenants_per_partition(per: usize) -> Vec<Uuid> {
    let mut counts = vec![0; usize::from(PARTITIONS)];
    let mut out = Vec::new();
    while counts.iter().any(|c| *c < per) {
        let t = Uuid::new_v4();
        let p = usize::from(partition_of(t, PARTITIONS));
        if counts[p] < per {
            counts[p] += 1;
            out.push(t);
        }
    }
    out
}

/// Every successful run of `subscriber`, per tenant, in the order they ran.
fn order_by_tenant(t: &TestBus, subscriber: &str) -> HashMap<Uuid, Vec<u64>> {
    let mut out: HashMap<Uuid, Vec<u64>> = HashMap::new();
    for a in t.recorder.attempts() {
        if a.ok && a.subscriber == subscriber {
            out.entry(a.tenant).or_default().push(a.seq);
        }
    }
    out
}

/// The owner of each partition of `group` (on a cluster, each read from its master).
async fn owners(t: &TestBus, group: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for i in 0..PARTITIONS {
        let mut get = redis::cmd("GET");
        get.arg(format!("{}:owner:{group}", partition(&t.prefix, i)));
        out.push(t.command(&get).await.expect("GET"));
    }
    out
}

/// `XLEN stream` (on a cluster, on its master).
async fn stream_len(t: &TestBus, stream: &str) -> u64 {
    let mut len = redis::cmd("XLEN");
    len.arg(stream);
    t.command(&len).await.expect("XLEN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_order_holds_across_partitions_with_competing_consumers() {
    event_bus_tests::init_tracing();
    competing_consumers_keep_each_tenants_order(partitioned(
        "partitions-order",
        &["probe-a", "probe-tenant-ordered"],
    ))
    .await;
}

/// The same with shared readers: each process reads its two subscribers' eight partition
/// streams on one connection (see `max_reader_connections`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_order_holds_with_shared_readers_too() {
    event_bus_tests::init_tracing();
    let mut t = partitioned("partitions-shared", &["probe-a", "probe-tenant-ordered"]);
    t.max_reader_connections = Some(1);
    competing_consumers_keep_each_tenants_order(t).await;
}

/// The same on a Redis Cluster of 3 masters: the four partitions lie on distinct slots spread
/// over the masters (see `admin::partition_tag`), each read on a connection to its master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_order_holds_across_partitions_on_a_cluster() {
    event_bus_tests::init_tracing();
    let cluster = event_bus_tests::cluster::shared().await;
    let mut t = partitioned("partitions-cluster", &["probe-a", "probe-tenant-ordered"]);
    t.cluster = Some(cluster.urls());
    let masters: BTreeSet<usize> = (0..PARTITIONS)
        .map(|i| cluster.master_of_key(&partition(&t.prefix, i)))
        .collect();
    assert!(masters.len() > 1, "the partitions are spread over masters");
    competing_consumers_keep_each_tenants_order(t).await;
    drop(cluster);
}

/// Three processes run `t`'s two subscribers, the second and third joining while events are
/// handled; every event is handled once per subscriber, each tenant's in publish order, every
/// partition read to its end, and the partitions shared by the three.
async fn competing_consumers_keep_each_tenants_order(t: TestBus) {
    let subs = ["probe-a", "probe-tenant-ordered"];
    // Three processes running both subscribers, sharing their groups: the second and the
    // third join while events are being handled, and the partitions are handed over to them.
    let mut buses: Vec<RedisBus> = Vec::new();
    let mut running = Vec::new();
    let tenants = tenants_per_partition(3);
    let n = 600u64;
    let probes: Vec<Probe> = (0..n)
        .map(|seq| {
            let mut p = Probe::new(tenants[(seq as usize) % tenants.len()], seq);
            // Uneven handler times would reorder a tenant's events without its partition's
            // single owner.
            p.sleep_ms = (seq * 7) % 3;
            p
        })
        .collect();
    for (i, chunk) in probes.chunks(50).enumerate() {
        if i % 4 == 0 && buses.len() < 3 {
            let bus = t.redis().await;
            running.push(bus.start().await.expect("start"));
            buses.push(bus);
        }
        let results = buses[0].publish_all(chunk.to_vec()).await;
        assert!(results.iter().all(Result::is_ok));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for sub in subs {
        assert!(
            t.recorder.wait_handled(sub, n as usize, WAIT).await,
            "{sub} did not finish"
        );
    }
    // The partitions are shared: with three processes, every one owns some (4 = 2 + 1 + 1).
    let deadline = tokio::time::Instant::now() + WAIT;
    for sub in subs {
        loop {
            let owners = owners(&t, sub).await;
            let distinct: BTreeSet<_> = owners.iter().flatten().collect();
            if owners.iter().all(Option::is_some) && distinct.len() == 3 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{sub}: partitions not shared by the three processes: {owners:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for r in running {
        r.shutdown().await.expect("shutdown");
    }
    for sub in subs {
        let handled = t.recorder.handled(sub);
        assert_eq!(handled.len() as u64, n, "{sub}: distinct events handled");
        assert!(handled.values().all(|c| *c == 1), "{sub}: handled twice");
        let by_tenant = order_by_tenant(&t, sub);
        assert_eq!(by_tenant.len(), tenants.len());
        for (i, tenant) in tenants.iter().enumerate() {
            let expected: Vec<u64> = (0..n)
                .filter(|seq| (*seq as usize) % tenants.len() == i)
                .collect();
            assert_eq!(by_tenant[tenant], expected, "{sub}: tenant {i}'s order");
        }
    }
    // Every partition got its tenants' events and was read to the end by both groups.
    for i in 0..PARTITIONS {
        let stream = partition(&t.prefix, i);
        assert_eq!(stream_len(&t, &stream).await, n / u64::from(PARTITIONS));
        for sub in subs {
            assert_eq!(t.pending(&stream, sub).await, 0);
        }
    }
    assert_eq!(stream_len(&t, &format!("{}:PROBE", t.prefix)).await, 0);
    let stats: u64 = buses
        .iter()
        .map(|b| b.stats().subscriber("probe-a").map_or(0, |s| s.handled))
        .sum();
    assert_eq!(stats, n, "handled counted once, over the processes");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owners_partition_is_taken_over_and_its_pending_entries_claimed() {
    event_bus_tests::init_tracing();
    let t = partitioned("partitions-claim", &["probe-a"]);
    let bus = t.redis().await;
    let tenant = Uuid::new_v4();
    let p = partition_of(tenant, PARTITIONS);
    let stream = partition(&t.prefix, p);
    // Published before start: the groups exist, every partition's.
    let results = bus
        .publish_all((0..10).map(|seq| Probe::new(tenant, seq)))
        .await;
    assert!(results.iter().all(Result::is_ok));
    // A consumer that died holding the partition: its lease runs 1.5 s more, and it read the
    // ten entries without acknowledging them.
    let mut conn = raw(&t.url).await;
    assert_eq!(
        read_as(&mut conn, &stream, "probe-a", "dead").await.len(),
        10
    );
    let _: () = redis::cmd("SET")
        .arg(format!("{stream}:owner:probe-a"))
        .arg("dead")
        .arg("PX")
        .arg(1500)
        .query_async(&mut conn)
        .await
        .expect("SET");
    let running = bus.start().await.expect("start");
    // Published while the dead consumer's lease runs: handled after the claimed ten.
    let results = bus
        .publish_all((10..15).map(|seq| Probe::new(tenant, seq)))
        .await;
    assert!(results.iter().all(Result::is_ok));
    assert!(t.recorder.wait_handled("probe-a", 15, WAIT).await);
    running.idle().await;
    let stats = bus.stats();
    running.shutdown().await.expect("shutdown");
    assert_eq!(t.recorder.order("probe-a"), (0..15).collect::<Vec<_>>());
    assert_eq!(stats.subscriber("probe-a").map(|s| s.claimed), Some(10));
    assert_eq!(stats.subscriber("probe-a").map(|s| s.handled), Some(15));
    assert_eq!(pending_count(&mut conn, &stream, "probe-a").await, 0);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_replays_and_retention_work_per_partition() {
    event_bus_tests::init_tracing();
    let t = partitioned("partitions-dead", &["probe-a"]);
    let bus = RedisBus::builder()
        .url(&t.url)
        .prefix(&t.prefix)
        .only(["probe-a"])
        .state(event_bus_tests::SharedRecorder(t.recorder.clone()))
        .partitions("PROBE", PARTITIONS)
        .claim_idle(t.claim_idle)
        .claim_interval(t.claim_interval)
        .block(t.block)
        .retention(Retention::TrimHandled)
        .build()
        .await
        .expect("build");
    let running = bus.start().await.expect("start");
    let tenants = tenants_per_partition(1);
    let mut probes = Vec::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let mut failing = Probe::new(*tenant, i as u64 * 10);
        failing.permanent = true;
        probes.push(failing);
        probes.push(Probe::new(*tenant, i as u64 * 10 + 1));
    }
    assert!(bus.publish_all(probes).await.iter().all(Result::is_ok));
    let letters = event_bus_tests::wait_dead_letters(&bus, tenants.len(), WAIT).await;
    assert_eq!(
        letters.len(),
        tenants.len(),
        "one dead letter per partition"
    );
    let sources: BTreeSet<String> = letters.iter().map(|l| l.source_stream.clone()).collect();
    let partitions: BTreeSet<String> = (0..PARTITIONS).map(|i| partition(&t.prefix, i)).collect();
    assert_eq!(
        sources, partitions,
        "each in its partition's dead-letter stream"
    );
    // Replayed to the partition's consumer: handled now, and each letter deleted.
    t.recorder.heal();
    let summary = bus.replay_all_dead_letters().await.expect("replay");
    assert_eq!(summary.replayed, tenants.len());
    let deadline = tokio::time::Instant::now() + WAIT;
    while !bus.dead_letters().await.expect("list").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replayed letters not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Retention trims what was handled, in every partition.
    let mut conn = raw(&t.url).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    for stream in &partitions {
        while xlen(&mut conn, stream).await != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{stream} not trimmed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    running.shutdown().await.expect("shutdown");
    let handled = t.recorder.handled("probe-a");
    assert_eq!(handled.len(), 2 * tenants.len());
    assert!(handled.values().all(|c| *c == 1));
    t.cleanup().await;
}
