//! Acknowledgements on Redis: a concurrency-1 subscriber acknowledges with its next read, also
//! when nothing follows; an acknowledgement lost with its (black-holed) connection is sent again
//! on the new one, so the entry is not handled twice; a slow batch does not hold back the
//! acknowledgements of the entries it finished. Every test asserts exact counts.

use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::bus::SharedRecorder;
use event_bus_tests::proxy::Proxy;
use event_bus_tests::redis_helpers::{
    pending_count, raw, wait_handled_stat, wait_no_pending, WAIT,
};
use event_bus_tests::{BusKind, Probe, TestBus};
use uuid::Uuid;

/// A concurrency-1 subscriber handles on its reader's task and acknowledges with its next
/// read: entries are acknowledged as soon as their batch is done, also when nothing follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_handled_in_place_are_acknowledged_without_more_traffic() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "ack-in-place", &["probe-a"]);
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..50 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    assert!(t.recorder.wait_handled("probe-a", 50, WAIT).await);
    let mut conn = raw(&t.url).await;
    let stream = format!("{}:PROBE", t.prefix);
    let within = Duration::from_secs(5);
    assert_eq!(
        wait_no_pending(&mut conn, &stream, "probe-a", within).await,
        0
    );
    // Counted when the reply to the acknowledgement arrives.
    assert_eq!(wait_handled_stat(&bus, 50).await, 50);
    running.shutdown().await.expect("shutdown");
    let handled = t.recorder.handled("probe-a");
    assert_eq!(handled.len(), 50);
    assert!(handled.values().all(|n| *n == 1), "each handled once");
    t.cleanup().await;
}

/// The acknowledgement rides on the next read; when that round trip is lost with its
/// connection, it is sent again on the new one: the entry is not left pending (to be claimed
/// and handled twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_lost_with_its_connection_is_sent_again() {
    event_bus_tests::init_tracing();
    let proxy = Proxy::to_shared_redis().await.expect("proxy");
    let direct = TestBus::new(BusKind::Redis, "ack-lost", &["probe-a"]);
    let publisher = direct.redis().await;
    let bus = RedisBus::builder()
        .url(proxy.url())
        .prefix(&direct.prefix)
        .only(["probe-a"])
        .state(SharedRecorder(Arc::clone(&direct.recorder)))
        .block(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    // Quick enough for its acknowledgement to wait for the next read (under 100 ms).
    p.sleep_ms = 50;
    publisher.publish(p).await.expect("publish");
    assert!(direct.recorder.wait_until(WAIT, |r| r.starts() == 1).await);
    // The handler finishes inside the black hole: its acknowledgement goes nowhere.
    proxy.blackhole(true);
    assert!(direct.recorder.wait_handled("probe-a", 1, WAIT).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut conn = raw(&direct.url).await;
    let stream = format!("{}:PROBE", direct.prefix);
    assert_eq!(
        pending_count(&mut conn, &stream, "probe-a").await,
        1,
        "not acknowledged through the black hole"
    );
    proxy.blackhole(false);
    let within = Duration::from_secs(10);
    assert_eq!(
        wait_no_pending(&mut conn, &stream, "probe-a", within).await,
        0
    );
    assert!(bus.stats().reconnects >= 1);
    assert_eq!(wait_handled_stat(&bus, 1).await, 1);
    running.shutdown().await.expect("shutdown");
    let handled = direct.recorder.handled("probe-a");
    assert_eq!(handled.get(&1), Some(&1), "handled exactly once");
    direct.cleanup().await;
}

/// A batch handled in place acknowledges as it goes once it is slow: an entry it finished is
/// not left pending (claimable by another consumer) while a later one still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_batch_does_not_hold_back_acknowledgements() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "slow-batch", &["probe-a"]);
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let quick = Probe::new(tenant, 1);
    let mut slow = Probe::new(tenant, 2);
    slow.sleep_ms = 3_000;
    // Both in one transaction, so the blocked reader gets them in one batch.
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    let mut tx = redis::pipe();
    tx.atomic();
    for p in [quick, slow] {
        let json = serde_json::to_string(&event_bus_core::Envelope::new(p)).expect("json");
        tx.cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("event")
            .arg(json)
            .ignore();
    }
    let _: () = tx.query_async(&mut conn).await.expect("xadd");
    assert!(t.recorder.wait_until(WAIT, |r| r.starts() == 2).await);
    assert_eq!(
        t.recorder.handled("probe-a").len(),
        1,
        "the slow one still runs"
    );
    // Well before the slow handler ends, only it is pending.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_500);
    let mut n = pending_count(&mut conn, &stream, "probe-a").await;
    while n != 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n = pending_count(&mut conn, &stream, "probe-a").await;
    }
    assert_eq!(
        n, 1,
        "the quick entry was acknowledged while the slow one ran"
    );
    assert_eq!(
        t.recorder.handled("probe-a").len(),
        1,
        "the slow one still runs"
    );
    running.shutdown().await.expect("shutdown");
    assert_eq!(pending_count(&mut conn, &stream, "probe-a").await, 0);
    t.cleanup().await;
}

/// `stats()` counts a delivery handled when the acknowledgement's reply arrives, not when the
/// read sent with it returns: with a 10 s `BLOCK` and nothing more to read, the counts are
/// there long before that read ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_follow_the_acknowledgements_not_the_next_read() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "stats-now", &["probe-a"]);
    t.block = Duration::from_secs(10);
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..20 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    assert!(t.recorder.wait_handled("probe-a", 20, WAIT).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while bus.stats().handled < 20 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        bus.stats().handled,
        20,
        "counted before the blocking read that carried the XACK returned"
    );
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}
