//! The seed's workflow stream: every publish on the default channel is also written to
//! `workflow:events:global`, the one stream the seed's workflow runtime reads, as flat string
//! fields in the seed's order. Written only when the bus joins a seed deployment
//! ([`RedisBusBuilder::workflow_stream`](crate::RedisBusBuilder::workflow_stream)).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The stream the seed's workflow runtime reads.
pub const WORKFLOW_STREAM: &str = "workflow:events:global";

#[derive(Deserialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "eventType")]
    event_type: &'a str,
    timestamp: &'a str,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// The workflow entry of an envelope, field by field in the seed's order: `event_id`,
/// `execution_id` (empty), `event_name` (`payload.eventName`, else the event type),
/// `event_type`, `tenant` (`payload.tenantId`), `timestamp`, `user_id` (`payload.actorUserId`,
/// else `payload.userId`, else empty), `from_state` and `to_state` (empty), `payload_json` (the
/// payload as compact JSON, as `JSON.stringify` writes it).
pub(crate) fn fields(
    envelope_json: &str,
) -> Result<Vec<(&'static str, String)>, serde_json::Error> {
    let envelope: Envelope<'_> = serde_json::from_str(envelope_json)?;
    let payload: Map<String, Value> = serde_json::from_str(envelope.payload.get())?;
    let text = |key: &str| match payload.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    Ok(vec![
        ("event_id", envelope.id.to_owned()),
        ("execution_id", String::new()),
        (
            "event_name",
            text("eventName").unwrap_or_else(|| envelope.event_type.to_owned()),
        ),
        ("event_type", envelope.event_type.to_owned()),
        ("tenant", text("tenantId").unwrap_or_default()),
        ("timestamp", envelope.timestamp.to_owned()),
        (
            "user_id",
            text("actorUserId")
                .or_else(|| text("userId"))
                .unwrap_or_default(),
        ),
        ("from_state", String::new()),
        ("to_state", String::new()),
        ("payload_json", envelope.payload.get().to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_the_seeds_order() {
        let json = r#"{"id":"e1","eventType":"TICKET_UPDATED","timestamp":"2026-11-26T18:00:00.000Z","payload":{"tenantId":"t1","userId":"u1","changes":{"status":"open"}}}"#;
        let f = fields(json).expect("fields");
        let names: Vec<&str> = f.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "event_id",
                "execution_id",
                "event_name",
                "event_type",
                "tenant",
                "timestamp",
                "user_id",
                "from_state",
                "to_state",
                "payload_json"
            ]
        );
        assert_eq!(f[2].1, "TICKET_UPDATED");
        assert_eq!(f[4].1, "t1");
        assert_eq!(f[6].1, "u1");
        assert_eq!(
            f[9].1,
            r#"{"tenantId":"t1","userId":"u1","changes":{"status":"open"}}"#
        );
    }

    #[test]
    fn event_name_and_actor_win() {
        let json = r#"{"id":"e1","eventType":"TICKET_UPDATED","timestamp":"t","payload":{"tenantId":"t1","eventName":"Ticket Updated","actorUserId":"a1","userId":"u1"}}"#;
        let f = fields(json).expect("fields");
        assert_eq!(f[2].1, "Ticket Updated");
        assert_eq!(f[6].1, "a1");
    }
}
