//! `None` is absent, not `null`, on the wire: the seed's zod schemas accept a missing optional
//! key and refuse `null` (the refused event is dropped). What a publish writes
//! (`encode`/`encode_envelope`) leaves the payload's `None` fields out, whatever serde
//! attributes the type has; `#[event(none_as_null)]` keeps them as `null`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use event_bus_core::transport::{decode, encode, encode_envelope};
use event_bus_core::{Envelope, Event};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The README's example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
pub struct TicketUpdated {
    pub tenant_id: Uuid,
    pub ticket_id: Uuid,
    #[event(validate(length(max = 64)))]
    pub changes: Option<Map<String, Value>>,
}

/// The same, opted out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_UPDATED_NULLS", none_as_null)]
pub struct TicketUpdatedNulls {
    pub tenant_id: Uuid,
    pub ticket_id: Uuid,
    pub changes: Option<Map<String, Value>>,
}

fn payload_text(json: &str) -> Value {
    let envelope: Value = serde_json::from_str(json).unwrap();
    envelope["payload"].clone()
}

fn ticket(changes: Option<Map<String, Value>>) -> TicketUpdated {
    TicketUpdated {
        tenant_id: Uuid::new_v4(),
        ticket_id: Uuid::new_v4(),
        changes,
    }
}

#[test]
fn omitting_none_is_the_default() {
    const { assert!(TicketUpdated::OMIT_NONE) };
    const { assert!(!TicketUpdatedNulls::OMIT_NONE) };
}

#[test]
fn a_none_field_is_absent() {
    let event = ticket(None);
    let encoded = encode(event.clone()).unwrap();
    assert!(!encoded.json.contains("changes"), "{}", encoded.json);
    assert!(!encoded.json.contains("null"), "{}", encoded.json);
    assert_eq!(
        payload_text(&encoded.json),
        json!({ "tenantId": event.tenant_id, "ticketId": event.ticket_id })
    );
    // The envelope keeps its keys and their order.
    let keys_in_order = [
        "\"id\":",
        "\"eventType\":",
        "\"timestamp\":",
        "\"payload\":",
    ]
    .map(|key| encoded.json.find(key).unwrap());
    assert!(keys_in_order.is_sorted(), "{}", encoded.json);
    assert!(
        encoded.json.ends_with(&format!(
            r#""payload":{{"tenantId":"{}","ticketId":"{}"}}}}"#,
            event.tenant_id, event.ticket_id
        )),
        "{}",
        encoded.json
    );
}

#[test]
fn some_is_kept_with_its_nested_nulls() {
    let mut changes = Map::new();
    changes.insert(
        "status".to_owned(),
        json!({ "previous": null, "new": "open" }),
    );
    changes.insert("assignee".to_owned(), Value::Null);
    let event = ticket(Some(changes.clone()));
    let encoded = encode(event.clone()).unwrap();
    assert_eq!(
        payload_text(&encoded.json)["changes"],
        Value::Object(changes)
    );
    assert!(
        encoded
            .json
            .contains(r#""changes":{"status":{"previous":null,"new":"open"},"assignee":null}"#),
        "{}",
        encoded.json
    );
    // An empty map is a value, not None.
    let empty = encode(ticket(Some(Map::new()))).unwrap();
    assert!(empty.json.contains(r#""changes":{}"#), "{}", empty.json);
}

#[test]
fn what_is_written_decodes_back() {
    for changes in [None, Some(Map::from_iter([("a".to_owned(), json!(1))]))] {
        let envelope = Envelope::new(ticket(changes));
        let encoded = encode_envelope(&envelope).unwrap();
        let decoded: Envelope<TicketUpdated> = decode(encoded.json.as_bytes()).unwrap();
        assert_eq!(decoded.payload, envelope.payload);
        assert_eq!(decoded.id, envelope.id);
        assert_eq!(decoded.event_type, envelope.event_type);
    }
}

#[test]
fn none_as_null_keeps_null() {
    let event = TicketUpdatedNulls {
        tenant_id: Uuid::new_v4(),
        ticket_id: Uuid::new_v4(),
        changes: None,
    };
    let envelope = Envelope::new(event.clone());
    let encoded = encode_envelope(&envelope).unwrap();
    assert!(
        encoded.json.contains(r#""changes":null"#),
        "{}",
        encoded.json
    );
    // Exactly what serde writes for the envelope.
    assert_eq!(encoded.json, serde_json::to_string(&envelope).unwrap());
    let decoded: Envelope<TicketUpdatedNulls> = decode(encoded.json.as_bytes()).unwrap();
    assert_eq!(decoded.payload, event);
}

/// Serde attributes do not change the rule: `None` is absent whatever they say, and what they
/// write themselves (`Some(null)`, a renamed field, a value written by `serialize_with`) stays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
pub struct TicketShapes {
    pub tenant_id: Uuid,
    #[serde(rename = "note")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u32>,
    #[serde(default)]
    pub some_null: Option<Value>,
    pub bare_null: Value,
    #[serde(serialize_with = "as_none_when_zero")]
    pub count: u32,
    pub tags: Vec<Option<String>>,
    pub last: Option<bool>,
}

fn as_none_when_zero<S: serde::Serializer>(count: &u32, s: S) -> Result<S::Ok, S::Error> {
    if *count == 0 {
        s.serialize_none()
    } else {
        s.serialize_u32(*count)
    }
}

#[test]
fn whatever_serde_attributes_say() {
    let event = TicketShapes {
        tenant_id: Uuid::new_v4(),
        comment: None,
        skipped: None,
        some_null: Some(Value::Null),
        bare_null: Value::Null,
        count: 0,
        tags: vec![None, Some("x".to_owned())],
        last: None,
    };
    let encoded = encode(event.clone()).unwrap();
    assert_eq!(
        payload_text(&encoded.json),
        json!({
            "tenantId": event.tenant_id,
            "someNull": null,
            "bareNull": null,
            "tags": [null, "x"],
        }),
        "{}",
        encoded.json
    );
    let some = TicketShapes {
        comment: Some("hi".to_owned()),
        count: 3,
        last: Some(false),
        ..event
    };
    let encoded = encode(some).unwrap();
    let payload = payload_text(&encoded.json);
    assert_eq!(payload["note"], "hi");
    assert_eq!(payload["count"], 3);
    assert_eq!(payload["last"], false);
}

/// A struct with flattened fields is written by serde as a map: its entries follow the same rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub actor_user_id: Option<Uuid>,
    pub actor_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
pub struct TicketMoved {
    pub tenant_id: Uuid,
    pub board: Option<String>,
    #[serde(flatten)]
    pub actor: Actor,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Option<Value>>,
}

#[test]
fn flattened_fields_and_entries_are_absent_when_none() {
    let actor = Uuid::new_v4();
    let mut extra = BTreeMap::new();
    extra.insert("gone".to_owned(), None);
    extra.insert("kept".to_owned(), Some(Value::Null));
    extra.insert("value".to_owned(), Some(json!(1)));
    let event = TicketMoved {
        tenant_id: Uuid::new_v4(),
        board: None,
        actor: Actor {
            actor_user_id: Some(actor),
            actor_name: None,
        },
        extra,
    };
    let envelope = Envelope::new(event.clone());
    let encoded = encode_envelope(&envelope).unwrap();
    assert_eq!(
        payload_text(&encoded.json),
        json!({
            "tenantId": event.tenant_id,
            "actorUserId": actor,
            "kept": null,
            "value": 1,
        }),
        "{}",
        encoded.json
    );
    // Back in: absent fields are `None`; a flattened map only gets the keys that are there
    // (`kept` was written `null`, which reads back as `None`).
    let decoded: Envelope<TicketMoved> = decode(encoded.json.as_bytes()).unwrap();
    assert_eq!(decoded.payload.board, None);
    assert_eq!(decoded.payload.actor, event.actor);
    assert_eq!(
        decoded.payload.extra.keys().collect::<Vec<_>>(),
        ["kept", "value"]
    );
}
