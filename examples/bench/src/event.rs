//! The benchmark's event, exactly as WORKLOADS.md defines it: `TICKET_UPDATED` on
//! `{prefix}:TICKET_UPDATED`, envelope
//! `{"id","eventType","timestamp","payload":{"tenantId","ticketId","userId","changes":{..}}}`.

use chrono::{DateTime, Utc};
use event_bus_core::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The event type name on the wire.
pub const EVENT_TYPE: &str = "TICKET_UPDATED";

/// The payload of the benchmark event.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_UPDATED")]
pub struct TicketUpdated {
    pub tenant_id: Uuid,
    pub ticket_id: Uuid,
    pub user_id: Uuid,
    pub changes: Changes,
}

/// `{"status": "in_progress", "priority": 2, "assignedTo": uuid}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    pub status: String,
    pub priority: u32,
    pub assigned_to: Uuid,
}

/// A random v4 UUID from a fast thread-local PRNG: the payload's ids are test data, and
/// `Uuid::new_v4` costs a `getrandom` syscall each (it dominated the publish profile). The
/// envelope id is still made by `Uuid::new_v4`, on both sides.
fn test_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

/// A fresh payload: random ids, the fixed changes of the workload.
pub fn payload() -> TicketUpdated {
    TicketUpdated {
        tenant_id: test_uuid(),
        ticket_id: test_uuid(),
        user_id: test_uuid(),
        changes: Changes {
            status: "in_progress".to_owned(),
            priority: 2,
            assigned_to: test_uuid(),
        },
    }
}

/// The envelope as the floor writes it (the same JSON the framework writes).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WireOut<'a> {
    id: Uuid,
    event_type: &'static str,
    timestamp: &'a str,
    payload: &'a TicketUpdated,
}

/// The envelope as the floor reads it: a plain serde decode into typed fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireIn {
    pub id: Uuid,
    #[allow(dead_code)] // decoded as part of the workload, not looked at
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    #[allow(dead_code)]
    pub payload: TicketUpdated,
}

/// A fresh envelope JSON (new id, now, new payload), written by hand with serde: the floor's
/// publish side.
pub fn envelope_json() -> String {
    envelope_json_and_tenant().0
}

/// [`envelope_json`] and the payload's tenant (the floor's partitioned publisher picks the
/// tenant's partition, as the framework does).
pub fn envelope_json_and_tenant() -> (String, Uuid) {
    let payload = payload();
    let timestamp = event_bus_core::format_timestamp(&Utc::now());
    let json = serde_json::to_string(&WireOut {
        id: Uuid::new_v4(),
        event_type: EVENT_TYPE,
        timestamp: &timestamp,
        payload: &payload,
    })
    .expect("the benchmark envelope always serialises");
    (json, payload.tenant_id)
}

/// The stream of the benchmark event under `prefix`.
pub fn stream_key(prefix: &str) -> String {
    format!("{prefix}:{EVENT_TYPE}")
}

/// The dead-letter stream of [`stream_key`].
pub fn dead_letter_key(prefix: &str) -> String {
    format!("{prefix}:{EVENT_TYPE}:dead-letter")
}
