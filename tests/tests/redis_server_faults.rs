//! Redis itself failing, and the connections the bus keeps to it: every publish acknowledged
//! before a Redis kill and restart (append-only file) is handled; a black-holed read connection
//! is detected and rebuilt; a lost stream (and with it the group) is recreated; a publish
//! returns the error when Redis is unreachable; a builder without a URL is a configuration
//! error; concurrent publishes share one multiplexed connection. Private `redis-server`s and a
//! black-holing proxy stand in for the faults. Every test asserts exact counts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::bus::SharedRecorder;
use event_bus_tests::proxy::Proxy;
use event_bus_tests::redis_helpers::{raw, WAIT};
use event_bus_tests::server::RedisServer;
use event_bus_tests::{BusKind, Probe, TestBus};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_publish_is_handled_across_a_redis_restart() {
    event_bus_tests::init_tracing();
    let mut server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut t = TestBus::new(BusKind::Redis, "restart", &["probe-concurrent"]);
    t.url = server.url();
    t.claim_idle = Duration::from_secs(1);
    t.claim_interval = Duration::from_millis(300);
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let mut accepted: Vec<u64> = Vec::new();
    let mut refused = 0;
    let started = std::time::Instant::now();
    for seq in 0..10_000u64 {
        if seq == 3_000 {
            server.kill();
        }
        // Down until a few publishes have failed, then back with its append-only file.
        if refused == 10 && !accepted.is_empty() && *accepted.last().unwrap_or(&0) < 3_000 {
            server.restart();
        }
        match bus.publish(Probe::new(tenant, seq)).await {
            Ok(_) => accepted.push(seq),
            Err(e) => {
                assert!(e.is_retryable(), "a transport error: {e}");
                refused += 1;
            }
        }
    }
    println!("published in {:?}", started.elapsed());
    assert!(refused > 0, "some publishes failed while Redis was down");
    let ok = t
        .recorder
        .wait_until(Duration::from_secs(60), |r| {
            let h = r.handled("probe-concurrent");
            accepted.iter().all(|s| h.contains_key(s))
        })
        .await;
    running.shutdown().await.expect("shutdown");
    let handled = t.recorder.handled("probe-concurrent");
    let missing: Vec<_> = accepted
        .iter()
        .filter(|s| !handled.contains_key(s))
        .take(10)
        .collect();
    assert!(
        ok,
        "publishes that returned Ok but were never handled: {missing:?}"
    );
    let unexpected: Vec<_> = handled.keys().filter(|s| !accepted.contains(s)).collect();
    // A publish can fail on the client side after Redis wrote it (the reply was lost).
    assert!(
        unexpected.len() <= refused,
        "unexpected events: {unexpected:?}"
    );
    let duplicates = handled.values().filter(|n| **n > 1).count();
    assert!(
        duplicates <= 300,
        "duplicates bounded by what was in flight: {duplicates}"
    );
    println!(
        "accepted {}, refused {refused}, duplicates {duplicates}",
        accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_read_connection_is_detected_and_rebuilt() {
    event_bus_tests::init_tracing();
    let proxy = Proxy::to_shared_redis().await.expect("proxy");
    let direct = TestBus::new(BusKind::Redis, "blackhole", &["probe-a"]);
    let mut through = direct.clone();
    through.url = proxy.url();
    let publisher = direct.redis().await;
    let bus = RedisBus::builder()
        .url(proxy.url())
        .prefix(&through.prefix)
        .only(["probe-a"])
        .state(SharedRecorder(Arc::clone(&through.recorder)))
        .block(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..10 {
        publisher
            .publish(Probe::new(tenant, seq))
            .await
            .expect("publish");
    }
    assert!(through.recorder.wait_handled("probe-a", 10, WAIT).await);
    proxy.blackhole(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for seq in 10..20 {
        publisher
            .publish(Probe::new(tenant, seq))
            .await
            .expect("publish");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        through.recorder.handled("probe-a").len(),
        10,
        "nothing gets through a black hole"
    );
    proxy.blackhole(false);
    assert!(
        through.recorder.wait_handled("probe-a", 20, WAIT).await,
        "the reader noticed the dead socket and reconnected"
    );
    assert!(bus.stats().reconnects >= 1);
    running.shutdown().await.expect("shutdown");
    let handled = through.recorder.handled("probe-a");
    assert_eq!(handled.len(), 20);
    assert!(handled.values().all(|n| *n == 1));
    direct.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stream_recreates_the_group_and_continues() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "nogroup", &["probe-a"]);
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..5 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    assert!(t.recorder.wait_handled("probe-a", 5, WAIT).await);
    let mut conn = raw(&t.url).await;
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}:PROBE", t.prefix))
        .query_async(&mut conn)
        .await
        .expect("del");
    for seq in 5..10 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    assert!(
        t.recorder.wait_handled("probe-a", 10, WAIT).await,
        "events after the loss were handled"
    );
    running.shutdown().await.expect("shutdown");
    assert!(bus.stats().groups_recreated >= 1);
    let handled = t.recorder.handled("probe-a");
    assert_eq!(handled.len(), 10);
    assert!(handled.values().all(|n| *n == 1));
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_returns_the_error_when_redis_is_unreachable() {
    let mut server = RedisServer::start(&[]);
    let bus = RedisBus::builder()
        .url(server.url())
        .response_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("bus");
    bus.publish(Probe::new(Uuid::new_v4(), 1))
        .await
        .expect("publish while up");
    server.kill();
    let err = bus
        .publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect_err("down");
    assert!(err.is_retryable(), "{err}");
    let refused = RedisBus::builder().url(server.url()).build().await;
    assert!(refused.is_err(), "build reports an unreachable server");
}

#[tokio::test]
async fn a_builder_without_a_url_is_a_configuration_error() {
    let err = RedisBus::builder().build().await.expect_err("no url");
    assert!(
        matches!(err, event_bus_core::StartError::Config(_)),
        "{err}"
    );
    assert!(err.to_string().contains(".url("), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_share_one_multiplexed_connection() {
    let server = RedisServer::start(&[]);
    let mut conn = raw(&server.url()).await;
    let bus = RedisBus::builder()
        .url(server.url())
        .build()
        .await
        .expect("bus");
    let tenant = Uuid::new_v4();
    let publishes = (0..500).map(|seq| {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(Probe::new(tenant, seq)).await })
    });
    let mut ids = HashSet::new();
    for handle in publishes.collect::<Vec<_>>() {
        let published = handle.await.expect("task").expect("publish");
        ids.insert(published.entry_id);
    }
    assert_eq!(ids.len(), 500);
    let len: u64 = redis::cmd("XLEN")
        .arg("event:PROBE")
        .query_async(&mut conn)
        .await
        .expect("xlen");
    assert_eq!(len, 500);
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("client list");
    assert_eq!(
        clients.lines().count(),
        2,
        "this test's connection and the bus's one: {clients}"
    );
}

/// A Redis at its `maxclients` accepts a connection and then refuses it: `start()` fails, and
/// its error says that is what happened, instead of starting with subscribers that never read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reader_connection_fails_the_start_and_says_why() {
    event_bus_tests::init_tracing();
    let server = RedisServer::start(&["--maxclients", "3"]);
    let mut t = TestBus::new(
        BusKind::Redis,
        "maxclients",
        &[
            "probe-a",
            "probe-b",
            "probe-concurrent",
            "probe-retry3",
            "probe-tenant-ordered",
        ],
    );
    t.url = server.url();
    let bus = t.redis().await;
    let err = bus.start().await.expect_err("more readers than maxclients");
    let text = err.to_string();
    assert!(
        text.contains("max number of clients reached") && text.contains("maxclients"),
        "the error names the limit: {text}"
    );
    assert!(text.contains("reader connection of subscriber"), "{text}");
    // Within the limit, the same bus starts.
    let mut t = TestBus::new(BusKind::Redis, "maxclients-ok", &["probe-a"]);
    t.url = server.url();
    let bus = t.redis().await;
    let running = bus.start().await.expect("one reader fits");
    assert!(running.health().ready);
    running.shutdown().await.expect("shutdown");
}

/// The readiness report names the subscribers that are not reading, and why, while Redis does
/// not answer, and is ready again once it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_subscribers_that_are_not_reading() {
    event_bus_tests::init_tracing();
    let server = RedisServer::start(&[]);
    let mut t = TestBus::new(BusKind::Redis, "health", &["probe-a", "probe-b"]);
    t.url = server.url();
    t.block = Duration::from_millis(100);
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let health = running.health();
    assert!(health.ready, "{health:?}");
    assert_eq!(health.subscribers.len(), 2);

    let paused = server.pause();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut health = running.health();
    while health.not_reading().count() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = running.health();
    }
    assert!(!health.ready);
    assert_eq!(
        health.not_reading().collect::<Vec<_>>(),
        ["probe-a", "probe-b"]
    );
    assert!(health.subscribers.iter().all(|s| s.last_error.is_some()));
    paused.resume();

    let deadline = tokio::time::Instant::now() + WAIT;
    while !running.health().ready && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(running.health().ready, "{:?}", running.health());
    running.shutdown().await.expect("shutdown");
}
