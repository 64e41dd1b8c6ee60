//! Dead letters shared with the seed system: the seed writes its own letters to the same
//! `{stream}:dead-letter`, with only its fields (no subscriber, error or kind). They are listed,
//! flagged foreign; never replayed here (`replay_all_dead_letters` skips them and says how many);
//! and a purge deletes exactly the letters its filter selects, by id: purging ours leaves the
//! seed's byte for byte, and the stream is never deleted.

use std::time::Duration;

use event_bus_core::{Bus, DeadLetterError, DeadLetterFilter, FailureKind, RunningBus};
use event_bus_tests::redis_helpers::{
    probe_envelope, raw, xadd_seed_dead_letter, xlen, xrange_strings, WAIT,
};
use event_bus_tests::{wait_dead_letters, BusKind, Probe, TestBus};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_dead_letters_are_listed_flagged_never_replayed_and_kept_by_our_purge() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "shared-dl", &["probe-a"]);
    let stream = format!("{}:PROBE", t.prefix);
    let dl = format!("{stream}:dead-letter");
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();

    // Two letters of ours, then two of the seed's in the same stream.
    for seq in 1..=2 {
        let mut p = Probe::new(tenant, seq);
        p.permanent = true;
        bus.publish(p).await.expect("publish");
    }
    assert_eq!(wait_dead_letters(&bus, 2, WAIT).await.len(), 2);
    let mut conn = raw(&t.url).await;
    let seed_events = [probe_envelope(tenant, 101), probe_envelope(tenant, 102)];
    let mut seed_ids = Vec::new();
    for (i, event) in seed_events.iter().enumerate() {
        let source_id = format!("1732665600000-{i}");
        seed_ids.push(xadd_seed_dead_letter(&mut conn, &stream, event, &source_id, 10).await);
    }
    let mut seed_raw = Vec::new();
    for id in &seed_ids {
        seed_raw.extend(xrange_strings(&mut conn, &dl, id, id).await);
    }

    // Listed, both kinds; the seed's flagged foreign, with what the seed recorded.
    let letters = bus.dead_letters().await.expect("list");
    assert_eq!(letters.len(), 4, "{letters:?}");
    let (foreign, ours): (Vec<_>, Vec<_>) = letters.into_iter().partition(|l| l.is_foreign());
    assert_eq!(
        foreign.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
        seed_ids
    );
    for (i, letter) in foreign.iter().enumerate() {
        assert!(letter.foreign);
        assert_eq!(letter.subscriber, "");
        assert_eq!(letter.error, "");
        assert_eq!(letter.runs, 0);
        assert_eq!(letter.deliveries, 10);
        assert_eq!(letter.kind, FailureKind::Crashed);
        assert!(
            letter.reason.contains("another implementation"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.event_type, "PROBE");
        assert_eq!(letter.source_stream, stream);
        assert_eq!(letter.source_message_id, format!("1732665600000-{i}"));
        assert_eq!(letter.payload_str(), seed_events[i]);
        assert_eq!(
            letter.dead_lettered_at.to_rfc3339(),
            "2026-11-26T18:00:00+00:00"
        );
    }
    assert_eq!(ours.len(), 2);
    assert!(ours
        .iter()
        .all(|l| !l.foreign && l.subscriber == "probe-a" && l.kind == FailureKind::Handler));

    // A foreign letter cannot be replayed here, and says why.
    match bus.replay_dead_letter(&foreign[0]).await {
        Err(e @ DeadLetterError::Foreign { .. }) => {
            assert!(matches!(&e, DeadLetterError::Foreign { id } if *id == seed_ids[0]));
            assert!(e.to_string().contains("own tooling"), "{e}");
        }
        other => panic!("expected DeadLetterError::Foreign, got {other:?}"),
    }

    // Replaying all: ours go to probe-a (handled once the cause is fixed), the seed's are
    // skipped and counted.
    t.recorder.heal();
    let summary = bus.replay_all_dead_letters().await.expect("replay all");
    assert_eq!((summary.replayed, summary.skipped_foreign), (2, 2));
    assert!(t.recorder.wait_handled("probe-a", 2, WAIT).await);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut left: Vec<String>;
    loop {
        left = bus
            .dead_letters()
            .await
            .expect("list")
            .into_iter()
            .map(|l| l.id)
            .collect();
        if left == seed_ids || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        left, seed_ids,
        "our replayed letters are deleted, the seed's stay"
    );
    assert_eq!(running.stats().handled, 2);
    assert_eq!(
        xrange_strings(&mut conn, &dl, "-", "+").await,
        seed_raw,
        "the replay left the seed's letters as they were"
    );

    // Two new letters of ours (a panic fails even once healed).
    for seq in 3..=4 {
        let mut p = Probe::new(tenant, seq);
        p.panic = true;
        bus.publish(p).await.expect("publish");
    }
    assert_eq!(wait_dead_letters(&bus, 4, WAIT).await.len(), 4);

    // Purging ours deletes exactly ours: the seed's letters stay, byte for byte.
    assert_eq!(
        bus.purge_dead_letters(DeadLetterFilter::ours())
            .await
            .expect("purge ours"),
        2
    );
    assert_eq!(xrange_strings(&mut conn, &dl, "-", "+").await, seed_raw);
    assert!(bus
        .dead_letters()
        .await
        .expect("list")
        .iter()
        .all(|l| l.foreign));
    assert_eq!(
        bus.purge_dead_letters(DeadLetterFilter::ours())
            .await
            .expect("purge ours again"),
        0
    );

    // Purging foreign letters deletes the seed's, by id: the stream itself stays.
    assert_eq!(
        bus.purge_dead_letters(DeadLetterFilter::foreign())
            .await
            .expect("purge foreign"),
        2
    );
    assert!(bus.dead_letters().await.expect("list").is_empty());
    assert_eq!(xlen(&mut conn, &dl).await, 0);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&dl)
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert_eq!(
        exists, 1,
        "deleted entry by entry (XDEL), never the stream (DEL)"
    );

    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}
