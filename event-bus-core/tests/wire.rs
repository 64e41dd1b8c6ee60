//! The wire format, byte for byte: envelopes in the seed's format decode, and what we write is
//! exactly what the seed writes (field order, camelCase, `toISOString()` timestamps).

use chrono::{DateTime, Utc};
use event_bus_core::transport::{decode, encode_envelope};
use event_bus_core::{Envelope, Event, FailureKind};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Event)]
#[serde(rename_all = "camelCase")]
struct TicketUpdated {
    tenant_id: Uuid,
    ticket_id: Uuid,
    user_id: Uuid,
    changes: Option<serde_json::Map<String, serde_json::Value>>,
}

const SEED: &str = r#"{"id":"5b0f2f3e-9d1c-4f5e-8a9b-2c3d4e5f6a7b","eventType":"TICKET_UPDATED","timestamp":"2026-11-26T18:00:00.123Z","payload":{"tenantId":"0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d","ticketId":"1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f","userId":"2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a","changes":{"status":"in_progress","priority":2}}}"#;

#[test]
fn the_seeds_envelope_decodes() {
    let envelope: Envelope<TicketUpdated> = decode(SEED.as_bytes()).expect("decodes");
    assert_eq!(
        envelope.id.to_string(),
        "5b0f2f3e-9d1c-4f5e-8a9b-2c3d4e5f6a7b"
    );
    assert_eq!(envelope.event_type, "TICKET_UPDATED");
    assert_eq!(envelope.timestamp.timestamp_millis() % 1000, 123);
    assert_eq!(envelope.payload.changes.as_ref().map(|c| c.len()), Some(2));
}

#[test]
fn we_write_the_seeds_bytes() {
    let envelope: Envelope<TicketUpdated> = serde_json::from_str(SEED).expect("decodes");
    let encoded = encode_envelope(&envelope).expect("encodes");
    assert_eq!(encoded.json, SEED);
    assert_eq!(encoded.event_type, "TICKET_UPDATED");
    assert_eq!(encoded.event_id, envelope.id);
}

#[test]
fn timestamps_are_written_like_to_iso_string_and_read_in_any_rfc3339() {
    let t: DateTime<Utc> = "2026-11-26T18:00:00Z".parse().expect("time");
    let envelope = Envelope::new(TicketUpdated {
        tenant_id: Uuid::new_v4(),
        ticket_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        changes: None,
    })
    .with_timestamp(t);
    let json = serde_json::to_string(&envelope).expect("json");
    assert!(
        json.contains(r#""timestamp":"2026-11-26T18:00:00.000Z""#),
        "{json}"
    );
    // serde's own view of the envelope writes `null`; the wire does not (the seed refuses
    // `null` for an optional field): `None` is absent.
    assert!(json.contains(r#""changes":null"#), "{json}");
    let wire = encode_envelope(&envelope).expect("encodes").json;
    assert!(!wire.contains("null"), "{wire}");
    assert!(!wire.contains("changes"), "{wire}");
    assert!(
        wire.contains(r#""timestamp":"2026-11-26T18:00:00.000Z""#),
        "{wire}"
    );
    assert_eq!(envelope.id.get_version_num(), 4);
    for other in [
        "2026-11-26T19:00:00+01:00",
        "2026-11-26T18:00:00.000000Z",
        "2026-11-26t18:00:00z",
    ] {
        let text = SEED.replace("2026-11-26T18:00:00.123Z", other);
        let e: Envelope<TicketUpdated> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{other}: {e}"));
        assert_eq!(e.timestamp, t, "{other}");
    }
}

#[test]
fn bad_input_is_a_typed_failure_never_a_panic() {
    let cases: [(&str, String, FailureKind); 6] = [
        ("not JSON", "{not json".to_owned(), FailureKind::Decode),
        (
            "wrong eventType",
            SEED.replace("TICKET_UPDATED", "TICKET_CLOSED"),
            FailureKind::Decode,
        ),
        (
            "bad timestamp",
            SEED.replace("2026-11-26T18:00:00.123Z", "yesterday"),
            FailureKind::Decode,
        ),
        (
            "no tenant",
            SEED.replace(r#""tenantId":"0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d","#, ""),
            FailureKind::Decode,
        ),
        (
            "invalid tenant",
            SEED.replace("0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d", "tenant-1"),
            FailureKind::Decode,
        ),
        (
            "nil tenant",
            SEED.replace(
                "0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d",
                "00000000-0000-0000-0000-000000000000",
            ),
            FailureKind::Validation,
        ),
    ];
    for (what, json, kind) in cases {
        let failure = decode::<TicketUpdated>(json.as_bytes()).expect_err(what);
        assert_eq!(failure.kind, kind, "{what}: {failure}");
        assert!(failure.permanent, "{what} is never retried");
    }
    let nil = SEED.replace(
        "0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d",
        "00000000-0000-0000-0000-000000000000",
    );
    let failure = decode::<TicketUpdated>(nil.as_bytes()).expect_err("nil");
    assert!(
        failure.message.starts_with("payload.tenantId:"),
        "{}",
        failure.message
    );
}

#[test]
fn a_payload_error_names_its_place_in_the_whole_envelope() {
    // The payload is decoded on its own; its errors still give the line and column in the
    // envelope, as decoding the whole envelope at once does.
    let multi_line = SEED
        .replace(r#","payload":{"#, ",\n  \"payload\": {\n    ")
        .replace(r#","ticketId""#, ",\n    \"ticketId\"");
    let cases = [
        SEED.replace("1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "ticket-1"),
        SEED.replace(r#""tenantId":"0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d","#, ""),
        SEED.replace(r#""priority":2"#, r#""priority":2,"priority":3"#),
        multi_line.replace("1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "ticket-1"),
        multi_line.replace(r#""tenantId":"0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d","#, ""),
        SEED.replace(r#""userId""#, r#""userId":7,"x""#),
    ];
    for json in cases {
        let whole = serde_json::from_slice::<Envelope<TicketUpdated>>(json.as_bytes());
        let failure = decode::<TicketUpdated>(json.as_bytes());
        match (whole, failure) {
            (Err(whole), Err(failure)) => assert_eq!(
                failure.message,
                format!("not a valid TICKET_UPDATED envelope: {whole}"),
                "{json}"
            ),
            (whole, failure) => assert_eq!(whole.is_ok(), failure.is_ok(), "{json}"),
        }
    }
}
