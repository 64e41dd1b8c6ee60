//! Trimming by someone else: the seed's every `XADD ... MAXLEN ~ 1000` trims the stream, and a
//! subscriber more than ~1000 entries behind loses entries without Redis telling its group.
//! The maintenance round finds them from the stream's and the group's counters, counts each
//! once in `trimmed_unhandled` (not again in later rounds, nor after a restart) and warns;
//! `idle()` still returns, though Redis 7.0 then reports the group's lag above zero for good.

use std::collections::HashSet;
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::redis_helpers::{raw, xadd_probes, xlen, WAIT};
use event_bus_tests::{BusKind, Probe, TestBus};
use redis::aio::MultiplexedConnection;
use uuid::Uuid;

/// Waits until the bus's `probe-a` counted `handled` and `trimmed`; returns what it counted.
async fn wait_counts(bus: &RedisBus, handled: u64, trimmed: u64) -> (u64, u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = bus.stats();
        let got = s
            .subscriber("probe-a")
            .map_or((0, 0), |s| (s.handled, s.trimmed_unhandled));
        if got == (handled, trimmed) || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes `n` probes (seqs from `first`) while the subscriber is down, then one more as the
/// seed does, trimming the stream; returns the stream's length after the trim.
async fn publish_then_seed_trims(
    conn: &mut MultiplexedConnection,
    stream: &str,
    first: u64,
    n: u64,
) -> u64 {
    xadd_probes(conn, stream, first..first + n, None).await;
    let before = xlen(conn, stream).await;
    xadd_probes(conn, stream, first + n..first + n + 1, Some(1000)).await;
    let after = xlen(conn, stream).await;
    assert!(
        after < before,
        "the seed's XADD MAXLEN ~ 1000 trimmed ({before} then {after})"
    );
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_trimmed_by_another_publisher_before_the_group_read_them_are_counted_once() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "foreign-trim", &["probe-a"]);
    t.claim_interval = Duration::from_millis(100);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;

    // The subscriber's group exists (created as the bus creates it), then the subscriber stops.
    let bus = t.redis().await;
    bus.start()
        .await
        .expect("start")
        .shutdown()
        .await
        .expect("shutdown");

    // 3,000 events while it is down, then the seed's next publish trims the stream.
    let total = 3001;
    let left = publish_then_seed_trims(&mut conn, &stream, 0, 3000).await;
    let trimmed = total - left;
    assert!(trimmed >= 1900, "{trimmed}");

    // Started again: it handles what is left and counts exactly what was trimmed.
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let (handled, counted) = wait_counts(&bus, left, trimmed).await;
    assert_eq!(counted, trimmed, "trimmed_unhandled is the entries removed");
    assert_eq!(handled, left);
    assert_eq!(
        handled + counted,
        total,
        "every published entry is accounted for"
    );
    let seqs: HashSet<u64> = t.recorder.handled("probe-a").into_keys().collect();
    assert_eq!(seqs, (trimmed..total).collect::<HashSet<u64>>());
    // Redis 7.0 reports a lag of `trimmed` from now on; the group has caught up all the same.
    assert!(
        tokio::time::timeout(WAIT, running.idle()).await.is_ok(),
        "idle() returns once the group read the stream's last entry"
    );

    // Later rounds (ten or so) do not count it again, nor do more events.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for seq in 0..10 {
        bus.publish(Probe::new(Uuid::new_v4(), 10_000 + seq))
            .await
            .expect("publish");
    }
    assert_eq!(
        wait_counts(&bus, left + 10, trimmed).await,
        (left + 10, trimmed)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bus.stats().trimmed_unhandled, trimmed, "counted once");
    running.shutdown().await.expect("shutdown");

    // A restart does not count it again either.
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        bus.stats().trimmed_unhandled,
        0,
        "reported by the previous run"
    );
    running.shutdown().await.expect("shutdown");

    // Down again, 1,500 more, trimmed again: only the new gap is counted. Every entry left
    // after the trim is one of the new ones, so the new ones it removed are the difference.
    let before = xlen(&mut conn, &stream).await;
    let left = publish_then_seed_trims(&mut conn, &stream, 20_000, 1500).await;
    assert!(left <= 1501 && before + 1501 > left);
    let trimmed = 1501 - left;
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let (handled, counted) = wait_counts(&bus, left, trimmed).await;
    assert_eq!((handled, counted), (left, trimmed));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bus.stats().trimmed_unhandled, trimmed, "counted once");
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}
