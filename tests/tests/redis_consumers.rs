//! Consumers of one group on Redis: competing consumers split a subscriber's work and handle
//! each event once; idle consumers without pending entries are removed from the group, and one
//! that still holds entries is kept. Every test asserts exact counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::bus::SharedRecorder;
use event_bus_tests::redis_helpers::{create_group, raw, read_as, strings, WAIT};
use event_bus_tests::{BusKind, Probe, Recorder, TestBus};
use redis::Value;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_split_the_work_and_handle_each_event_once() {
    event_bus_tests::init_tracing();
    let t1 = TestBus::new(BusKind::Redis, "competing", &["probe-concurrent"]);
    let mut t2 = t1.clone();
    t2.recorder = Arc::new(Recorder::default());
    let (b1, b2) = (t1.redis().await, t2.redis().await);
    let (r1, r2) = (
        b1.start().await.expect("start 1"),
        b2.start().await.expect("start 2"),
    );
    let tenant = Uuid::new_v4();
    for seq in 0..200 {
        let mut p = Probe::new(tenant, seq);
        p.sleep_ms = 2;
        b1.publish(p).await.expect("publish");
    }
    let both = |t1: &TestBus, t2: &TestBus| {
        t1.recorder.handled("probe-concurrent").len()
            + t2.recorder.handled("probe-concurrent").len()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while both(&t1, &t2) < 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r1.shutdown().await.expect("shutdown 1");
    r2.shutdown().await.expect("shutdown 2");
    let (h1, h2) = (
        t1.recorder.handled("probe-concurrent"),
        t2.recorder.handled("probe-concurrent"),
    );
    assert!(
        !h1.is_empty() && !h2.is_empty(),
        "both consumers took work: {} / {}",
        h1.len(),
        h2.len()
    );
    let mut all: HashMap<u64, usize> = h1.clone();
    for (seq, n) in h2 {
        *all.entry(seq).or_insert(0) += n;
    }
    assert_eq!(all.len(), 200);
    assert!(all.values().all(|n| *n == 1), "an event was handled twice");
    t1.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_consumers_without_pending_entries_are_removed_others_kept() {
    event_bus_tests::init_tracing();
    let prefix = event_bus_tests::unique_prefix("idle-consumers");
    let url = event_bus_tests::redis_url();
    let stream = format!("{prefix}:PROBE");
    let mut conn = raw(&url).await;
    create_group(&mut conn, &stream, "probe-a").await;
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&stream)
        .arg("probe-a")
        .arg("ghost")
        .query_async(&mut conn)
        .await
        .expect("create");
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("event")
        .arg("{}")
        .query_async(&mut conn)
        .await
        .expect("xadd");
    read_as(&mut conn, &stream, "probe-a", "holder").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recorder = Arc::new(Recorder::default());
    let bus = RedisBus::builder()
        .url(&url)
        .prefix(&prefix)
        .only(["probe-a"])
        .state(SharedRecorder(recorder))
        .consumer_idle_timeout(Duration::from_millis(200))
        .claim_idle(Duration::from_secs(60))
        .claim_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    tokio::time::sleep(Duration::from_millis(600)).await;
    running.shutdown().await.expect("shutdown");
    let v: Value = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&stream)
        .arg("probe-a")
        .query_async(&mut conn)
        .await
        .expect("xinfo");
    let text = strings(&v).join(" ");
    assert!(
        !text.contains("ghost"),
        "the idle consumer without pending entries was removed: {text}"
    );
    assert!(
        text.contains("holder"),
        "the consumer with a pending entry was kept: {text}"
    );
    let _ = event_bus_tests::delete_prefix(&url, &prefix).await;
}

/// A group on the bus's stream that no subscriber of this binary owns (here: the old name of a
/// renamed subscriber, with a backlog) is reported at start with its lag and pending count;
/// the groups of this binary's subscribers are not, running here or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_no_subscriber_owns_are_reported_at_start() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "foreign", &["probe-a"]);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    create_group(&mut conn, &stream, "old-name").await;
    create_group(&mut conn, &stream, "probe-b").await;
    let bus = t.redis().await;
    for seq in 0..3 {
        bus.publish(Probe::new(Uuid::new_v4(), seq))
            .await
            .expect("publish");
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("old-name")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("read one as the old group");
    let running = bus.start().await.expect("start");
    let foreign = running.foreign_groups();
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert_eq!(foreign[0].stream, stream);
    assert_eq!(foreign[0].group, "old-name");
    assert_eq!(foreign[0].pending, 1);
    assert_eq!(foreign[0].lag, Some(2));
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}
