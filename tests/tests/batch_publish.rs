//! Batch publishing (`Bus::publish_all`, `Bus::publish_envelopes`), on both buses, with exact
//! per-event results: every event written in order, a batch with an invalid event writing
//! nothing, envelopes keeping their ids, a batch published before start; and on Redis, an
//! error reply in the middle of a batch failing only the events it hit, the workflow stream's
//! double write, and a batch longer than one pipeline.

use std::time::Duration;

use event_bus_core::transport::{encode, Channels};
use event_bus_core::{Bus, Envelope, PublishError, RunningBus, StreamLayout};
use event_bus_redis::RedisBus;
use event_bus_tests::redis_helpers::{raw, xlen, xrange_strings};
use event_bus_tests::{BusKind, Probe, TestBus, TestTransport};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

event_bus_tests::on_both_buses!(
    a_batch_is_written_in_order_with_one_result_per_event,
    one_invalid_event_writes_nothing_of_its_batch,
    publish_envelopes_keeps_each_envelopes_id,
    a_batch_published_before_start_is_delivered_once_started,
);

// On a Redis Cluster, a batch's pipeline is split by slot and each part sent to its master.
event_bus_tests::on_redis_cluster!(
    a_batch_is_written_in_order_with_one_result_per_event,
    one_invalid_event_writes_nothing_of_its_batch,
    publish_envelopes_keeps_each_envelopes_id,
    a_batch_published_before_start_is_delivered_once_started,
);

async fn a_batch_is_written_in_order_with_one_result_per_event<B: TestTransport>() {
    let t = TestBus::of::<B>("batch-order", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenants = [Uuid::new_v4(), Uuid::new_v4()];
    let probes: Vec<Probe> = (0..250)
        .map(|seq| Probe::new(tenants[(seq % 2) as usize], seq))
        .collect();
    let results = bus.publish_all(probes).await;
    assert_eq!(results.len(), 250);
    let published: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every event written"))
        .collect();
    let mut ids: Vec<Uuid> = published.iter().map(|p| p.event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "a fresh envelope id per event");
    for p in &published {
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].channel, "global");
    }
    if B::KIND == BusKind::Redis {
        let entry_ids: Vec<(u64, u64)> = published.iter().map(|p| parse(&p.entry_id)).collect();
        assert!(
            entry_ids.windows(2).all(|w| w[0] < w[1]),
            "entries appended in batch order"
        );
    }
    assert!(t.recorder.wait_handled("probe-a", 250, WAIT).await);
    assert_eq!(bus.stats().published, 250);
    // An empty batch writes nothing and reports nothing.
    assert!(bus.publish_all(Vec::<Probe>::new()).await.is_empty());
    running.shutdown().await.expect("shutdown");
    assert_eq!(t.recorder.order("probe-a"), (0..250).collect::<Vec<_>>());
    assert_eq!(t.recorder.attempts().len(), 250);
    let after = bus
        .publish_all([Probe::new(tenants[0], 900), Probe::new(tenants[1], 901)])
        .await;
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|r| matches!(r, Err(PublishError::Closed))));
    assert_eq!(bus.stats().published, 250);
    t.cleanup().await;
}

async fn one_invalid_event_writes_nothing_of_its_batch<B: TestTransport>() {
    let t = TestBus::of::<B>("batch-invalid", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let batch = vec![
        Probe::new(tenant, 0),
        Probe::new(tenant, 1),
        Probe::new(Uuid::nil(), 2),
        Probe::new(tenant, 3),
        Probe::new(Uuid::nil(), 4),
    ];
    let results = bus.publish_all(batch).await;
    assert_eq!(results.len(), 5);
    for i in [0, 1, 3] {
        match &results[i] {
            Err(PublishError::BatchRejected {
                event_type,
                rejected,
            }) => {
                assert_eq!(*event_type, "PROBE");
                assert_eq!(*rejected, 2);
            }
            other => panic!("event {i}: expected BatchRejected, got {other:?}"),
        }
    }
    for i in [2, 4] {
        match &results[i] {
            Err(PublishError::Invalid { errors, .. }) => {
                assert_eq!(errors.issues()[0].path, "tenantId");
            }
            other => panic!("event {i}: expected Invalid, got {other:?}"),
        }
    }
    assert!(results
        .iter()
        .all(|r| !r.as_ref().err().is_some_and(PublishError::is_retryable)));
    assert_eq!(bus.stats().published, 0, "nothing of the batch written");
    // The fixed batch goes through whole.
    let results = bus
        .publish_all([Probe::new(tenant, 10), Probe::new(tenant, 11)])
        .await;
    assert!(results.iter().all(Result::is_ok));
    assert!(t.recorder.wait_handled("probe-a", 2, WAIT).await);
    running.shutdown().await.expect("shutdown");
    assert_eq!(t.recorder.order("probe-a"), vec![10, 11]);
    assert_eq!(
        t.recorder.attempts().len(),
        2,
        "the rejected batch reached no handler"
    );
    assert_eq!(bus.stats().published, 2);
    t.cleanup().await;
}

async fn publish_envelopes_keeps_each_envelopes_id<B: TestTransport>() {
    let t = TestBus::of::<B>("batch-envelopes", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let envelopes: Vec<Envelope<Probe>> = (0..20)
        .map(|seq| Envelope::new(Probe::new(tenant, seq)))
        .collect();
    let results = bus.publish_envelopes(&envelopes).await;
    let ids: Vec<Uuid> = results
        .into_iter()
        .map(|r| r.expect("written").event_id)
        .collect();
    assert_eq!(
        ids,
        envelopes.iter().map(|e| e.id).collect::<Vec<_>>(),
        "each result names its envelope's id, in order"
    );
    assert!(t.recorder.wait_handled("probe-a", 20, WAIT).await);
    running.shutdown().await.expect("shutdown");
    assert_eq!(t.recorder.order("probe-a"), (0..20).collect::<Vec<_>>());
    t.cleanup().await;
}

async fn a_batch_published_before_start_is_delivered_once_started<B: TestTransport>() {
    let t = TestBus::of::<B>("batch-early", &["probe-a", "probe-b"]);
    let bus = t.build::<B>().await;
    let tenant = Uuid::new_v4();
    let results = bus
        .publish_all((0..30).map(|seq| Probe::new(tenant, seq)))
        .await;
    assert!(results.iter().all(Result::is_ok));
    let running = bus.start().await.expect("start");
    for sub in ["probe-a", "probe-b"] {
        assert!(t.recorder.wait_handled(sub, 30, WAIT).await, "{sub}");
    }
    running.shutdown().await.expect("shutdown");
    for sub in ["probe-a", "probe-b"] {
        assert_eq!(t.recorder.order(sub), (0..30).collect::<Vec<_>>(), "{sub}");
    }
    assert_eq!(t.recorder.attempts().len(), 60);
    t.cleanup().await;
}

fn parse(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("an entry id");
    (
        ms.parse().expect("milliseconds"),
        seq.parse().expect("sequence"),
    )
}

/// A Redis error reply in the middle of a batch (a stream key holding a string: `WRONGTYPE`)
/// fails exactly the events written to that key; the others are written, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_error_mid_batch_fails_only_the_events_it_hit() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "batch-wrongtype", &["probe-a"]);
    t.layout = StreamLayout::PerChannel;
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let mut conn = raw(&t.url).await;
    let broken = format!("{}:broken:PROBE", t.prefix);
    let _: () = redis::cmd("SET")
        .arg(&broken)
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let tenant = Uuid::new_v4();
    let channels: [&[&str]; 6] = [
        &["global"],
        &["global"],
        &["broken"],
        &["global"],
        &["global", "broken"],
        &["global"],
    ];
    let batch = channels
        .iter()
        .enumerate()
        .map(|(seq, channels)| {
            let mut e = encode(Probe::new(tenant, seq as u64)).expect("valid");
            e.channels = Channels::Named(channels.iter().map(|c| (*c).to_owned()).collect());
            e
        })
        .collect();
    let results = bus.publish_encoded_all(batch).await;
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().enumerate() {
        match (i, r) {
            (2 | 4, Err(e @ PublishError::Transport { .. })) => {
                assert!(e.to_string().contains("WRONGTYPE"), "{e}");
                assert!(e.is_retryable());
            }
            (0 | 1 | 3 | 5, Ok(p)) => assert_eq!(p.entries.len(), 1),
            (i, other) => panic!("event {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(bus.stats().published, 4);
    // Event 4 reached its `global` entry before its `broken` one failed (as a single publish
    // to two channels would): the subscriber of `global` receives it.
    assert!(t.recorder.wait_handled("probe-a", 5, WAIT).await);
    running.shutdown().await.expect("shutdown");
    assert_eq!(t.recorder.order("probe-a"), vec![0, 1, 3, 4, 5]);
    assert_eq!(
        xlen(&mut conn, &format!("{}:global:PROBE", t.prefix)).await,
        5
    );
    t.cleanup().await;
}

/// With a workflow stream (the seed's double write), every event of a batch on the default
/// channel gets its workflow entry too, in batch order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_writes_the_workflow_stream_too() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "batch-workflow", &[]);
    let workflow = format!("{}:workflow", t.prefix);
    let bus = RedisBus::builder()
        .url(&t.url)
        .prefix(&t.prefix)
        .discover(false)
        .allow_no_subscribers(true)
        .workflow_stream(&workflow)
        .build()
        .await
        .expect("build");
    let tenant = Uuid::new_v4();
    let results = bus
        .publish_all((0..5).map(|seq| Probe::new(tenant, seq)))
        .await;
    let ids: Vec<String> = results
        .into_iter()
        .map(|r| r.expect("written").event_id.to_string())
        .collect();
    let mut conn = raw(&t.url).await;
    assert_eq!(xlen(&mut conn, &format!("{}:PROBE", t.prefix)).await, 5);
    let strings = xrange_strings(&mut conn, &workflow, "-", "+").await;
    let event_ids: Vec<String> = strings
        .windows(2)
        .filter(|w| w[0] == "event_id")
        .map(|w| w[1].clone())
        .collect();
    assert_eq!(event_ids, ids);
    t.cleanup().await;
    let _: i64 = redis::cmd("DEL")
        .arg(&workflow)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

/// A batch longer than one pipeline (2,500 events: three pipelines, sent concurrently) is
/// written whole, in batch order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_longer_than_a_pipeline_is_written_in_order() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "batch-long", &[]);
    let bus = RedisBus::builder()
        .url(&t.url)
        .prefix(&t.prefix)
        .discover(false)
        .allow_no_subscribers(true)
        .build()
        .await
        .expect("build");
    let tenant = Uuid::new_v4();
    let results = bus
        .publish_all((0..2_500).map(|seq| Probe::new(tenant, seq)))
        .await;
    let entry_ids: Vec<(u64, u64)> = results
        .iter()
        .map(|r| parse(&r.as_ref().expect("written").entry_id))
        .collect();
    assert_eq!(entry_ids.len(), 2_500);
    assert!(entry_ids.windows(2).all(|w| w[0] < w[1]), "batch order");
    let mut conn = raw(&t.url).await;
    assert_eq!(xlen(&mut conn, &format!("{}:PROBE", t.prefix)).await, 2_500);
    assert_eq!(bus.stats().published, 2_500);
    t.cleanup().await;
}
