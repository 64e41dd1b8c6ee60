//! `Durability::replicas` on one Redis with a replica (not only on a cluster): a publish
//! returns `Ok` once the replica has the entry, and fails with `NotReplicated` (the entry on
//! the master all the same) once the replica is gone; `publish_all` the same, event by event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_bus_core::{Bus, PublishError, RunningBus};
use event_bus_redis::{Durability, NotReplicated, RedisBus};
use event_bus_tests::server::RedisServer;
use event_bus_tests::{BusKind, Probe, SharedRecorder, TestBus};
use uuid::Uuid;

fn linked(replica: &RedisServer) -> bool {
    let Ok(client) = replica.admin_client() else {
        return false;
    };
    let Ok(mut conn) = client.get_connection() else {
        return false;
    };
    redis::cmd("INFO")
        .arg("replication")
        .query::<String>(&mut conn)
        .is_ok_and(|info| info.contains("master_link_status:up"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_wait_for_the_replica_and_fail_typed_without_it() {
    event_bus_tests::init_tracing();
    let master = RedisServer::start(&[]);
    let port = master.port().to_string();
    let mut replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !linked(&replica) {
        assert!(Instant::now() < deadline, "the replica did not link up");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A private server: only the prefix and the recorder of the test bus are used.
    let t = TestBus::new(BusKind::Redis, "durability", &["probe-a"]);
    let bus = RedisBus::builder()
        .url(master.url())
        .prefix(&t.prefix)
        .only(t.only.clone())
        .state(SharedRecorder(Arc::clone(&t.recorder)))
        .block(Duration::from_millis(200))
        .durability(Durability::replicas(1, Duration::from_millis(200)))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..10 {
        bus.publish(Probe::new(tenant, seq))
            .await
            .expect("the replica acknowledges");
    }
    // A batch promises the same: every event waited for the replica.
    let batch = bus
        .publish_all(
            (10..15)
                .map(|seq| Probe::new(tenant, seq))
                .collect::<Vec<_>>(),
        )
        .await;
    assert!(batch.iter().all(Result::is_ok), "{batch:?}");
    replica.kill();
    let e = bus
        .publish(Probe::new(tenant, 15))
        .await
        .expect_err("no replica left");
    assert_eq!(not_replicated(&e).acknowledged, 0);
    assert_eq!(not_replicated(&e).wanted, 1);
    let batch = bus
        .publish_all(
            (16..18)
                .map(|seq| Probe::new(tenant, seq))
                .collect::<Vec<_>>(),
        )
        .await;
    for result in &batch {
        let e = result.as_ref().expect_err("no replica left");
        assert_eq!(not_replicated(e).acknowledged, 0);
    }
    // The entries are on the master: delivered like the others.
    assert!(
        t.recorder
            .wait_handled("probe-a", 18, Duration::from_secs(10))
            .await
    );
    assert_eq!(bus.stats().published, 15);
    running.shutdown().await.expect("shutdown");
    let handled = t.recorder.handled("probe-a");
    assert_eq!(handled.len(), 18);
    assert!(handled.values().all(|&n| n == 1));
}

fn not_replicated(e: &PublishError) -> &NotReplicated {
    let PublishError::Transport { source, .. } = e else {
        panic!("not a transport error: {e}");
    };
    source
        .downcast_ref::<NotReplicated>()
        .unwrap_or_else(|| panic!("not NotReplicated: {source}"))
}
