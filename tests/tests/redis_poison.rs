//! Poison input on Redis: malformed JSON, an entry without an `event` field, another
//! `eventType`, a missing, invalid or nil tenant are dead-lettered at once with their failure
//! kind and reason, never retried, never handed to a handler, and the valid entries behind them
//! are not held up. The dead-letter entry keeps the original fields and adds the seed's and ours.

use event_bus_core::FailureKind;
use event_bus_core::{Bus, RunningBus};
use event_bus_tests::redis_helpers::{pending_count, raw, strings, WAIT};
use event_bus_tests::{wait_dead_letters, BusKind, Probe, TestBus};
use redis::Value;
use uuid::Uuid;

fn envelope_json(event_type: &str, tenant: &str, seq: u64) -> String {
    format!(
        r#"{{"id":"{}","eventType":"{event_type}","timestamp":"2026-11-26T18:00:00.000Z","payload":{{"tenantId":"{tenant}","seq":{seq}}}}}"#,
        Uuid::new_v4()
    )
}

/// What the poison entry is, its fields, and the failure kind expected.
type Poison<'a> = (&'a str, Vec<(&'a str, String)>, FailureKind);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_entries_are_dead_lettered_at_once_and_do_not_block_the_stream() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "poison", &["probe-a"]);
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    let tenant = Uuid::new_v4().to_string();
    let poison: Vec<Poison<'_>> = vec![
        (
            "malformed JSON",
            vec![("event", "{not json".to_owned())],
            FailureKind::Decode,
        ),
        (
            "no event field",
            vec![("channel", stream.clone())],
            FailureKind::Decode,
        ),
        (
            "wrong eventType",
            vec![("event", envelope_json("TICKET_UPDATED", &tenant, 1))],
            FailureKind::Decode,
        ),
        (
            "missing tenant",
            vec![(
                "event",
                envelope_json("PROBE", &tenant, 2)
                    .replace(&format!(r#""tenantId":"{tenant}","#), ""),
            )],
            FailureKind::Decode,
        ),
        (
            "invalid tenant",
            vec![("event", envelope_json("PROBE", "not-a-uuid", 3))],
            FailureKind::Decode,
        ),
        (
            "nil tenant",
            vec![(
                "event",
                envelope_json("PROBE", "00000000-0000-0000-0000-000000000000", 4),
            )],
            FailureKind::Validation,
        ),
    ];
    let mut ids = Vec::new();
    for (_, fields, _) in &poison {
        let mut c = redis::cmd("XADD");
        c.arg(&stream).arg("*");
        for (k, v) in fields {
            c.arg(*k).arg(v);
        }
        let id: String = c.query_async(&mut conn).await.expect("xadd");
        ids.push(id);
    }
    bus.publish(Probe::new(Uuid::new_v4(), 100))
        .await
        .expect("publish");
    assert!(
        t.recorder.wait_handled("probe-a", 1, WAIT).await,
        "the valid event behind the poison was handled"
    );
    let letters = wait_dead_letters(&bus, poison.len(), WAIT).await;
    running.shutdown().await.expect("shutdown");
    assert_eq!(letters.len(), poison.len());
    for ((what, _, kind), id) in poison.iter().zip(&ids) {
        let letter = letters
            .iter()
            .find(|l| &l.source_message_id == id)
            .unwrap_or_else(|| panic!("no dead letter for {what}"));
        assert_eq!(letter.kind, *kind, "{what}: {}", letter.error);
        assert_eq!(letter.deliveries, 1, "{what} was not retried");
        assert!(!letter.error.is_empty());
    }
    let error_of = |id: &str| {
        letters
            .iter()
            .find(|l| l.source_message_id == id)
            .map(|l| l.error.clone())
            .unwrap_or_default()
    };
    let wrong_type = error_of(&ids[2]);
    assert!(wrong_type.contains("TICKET_UPDATED"), "{wrong_type}");
    let no_event = error_of(&ids[1]);
    assert!(no_event.contains("no `event` field"), "{no_event}");
    assert_eq!(t.recorder.attempts().len(), 1, "no handler saw the poison");
    assert_eq!(pending_count(&mut conn, &stream, "probe-a").await, 0);
    // The dead-letter entry keeps the original fields and adds the seed's and ours.
    let dl: Value = redis::cmd("XRANGE")
        .arg(format!("{stream}:dead-letter"))
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("xrange");
    let text = strings(&dl).join(" ");
    for field in [
        "event",
        "sourceStream",
        "sourceMessageId",
        "deliveries",
        "deadLetteredAt",
        "subscriber",
        "error",
        "errorKind",
    ] {
        assert!(text.contains(field), "dead letter lacks {field}: {text}");
    }
    t.cleanup().await;
}
