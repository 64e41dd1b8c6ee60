//! Retention on Redis: `Retention::TrimHandled` deletes only what every group handled, and
//! `Retention::MaxLen` counts every entry its cap drops before a group handled it; nothing
//! unhandled is trimmed silently.

use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::{RedisBus, Retention};
use event_bus_tests::bus::SharedRecorder;
use event_bus_tests::redis_helpers::{create_group, raw, WAIT};
use event_bus_tests::{Probe, Recorder};
use uuid::Uuid;

/// Runs `probe-a` under `retention` until it handled 20 events and maintenance ran; returns the
/// stream's length and what the bus reported trimming unhandled.
async fn run_with_retention(url: &str, prefix: &str, retention: Retention) -> (u64, u64) {
    let recorder = Arc::new(Recorder::default());
    let bus = RedisBus::builder()
        .url(url)
        .prefix(prefix)
        .only(["probe-a"])
        .state(SharedRecorder(Arc::clone(&recorder)))
        .retention(retention)
        .claim_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    for seq in 0..20 {
        bus.publish(Probe::new(Uuid::new_v4(), seq))
            .await
            .expect("publish");
    }
    assert!(recorder.wait_handled("probe-a", 20, WAIT).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.shutdown().await.expect("shutdown");
    let mut conn = raw(url).await;
    let len: u64 = redis::cmd("XLEN")
        .arg(format!("{prefix}:PROBE"))
        .query_async(&mut conn)
        .await
        .expect("xlen");
    (len, bus.stats().trimmed_unhandled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_never_trims_unhandled_entries_silently() {
    event_bus_tests::init_tracing();
    let url = event_bus_tests::redis_url();
    let mut conn = raw(&url).await;
    for (retention, expect_len, expect_dropped) in [
        (Retention::TrimHandled, 20u64, 0u64),
        (Retention::MaxLen(5), 5, 15),
    ] {
        let prefix = event_bus_tests::unique_prefix("retention");
        // A second group that never reads: nothing it has not handled may go silently.
        create_group(&mut conn, &format!("{prefix}:PROBE"), "lagging").await;
        let (len, dropped) = run_with_retention(&url, &prefix, retention).await;
        assert_eq!(len, expect_len, "{retention:?}");
        assert_eq!(
            dropped, expect_dropped,
            "{retention:?} reports what it dropped"
        );
        let _ = event_bus_tests::delete_prefix(&url, &prefix).await;
    }
    // Without a lagging group, TrimHandled removes what every group handled.
    let prefix = event_bus_tests::unique_prefix("retention-handled");
    let (len, dropped) = run_with_retention(&url, &prefix, Retention::TrimHandled).await;
    assert_eq!((len, dropped), (0, 0), "handled entries were trimmed");
    let _ = event_bus_tests::delete_prefix(&url, &prefix).await;
}
