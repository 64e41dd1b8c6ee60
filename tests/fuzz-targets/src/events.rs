//! The event types the `envelope` target decodes through the registry: the seed's first
//! generation of `TICKET_UPDATED`, the poison tests' `PROBE`, and types that use every
//! validation rule `#[derive(Event)]` supports (also the subjects of the property tests).

use event_bus_core::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The seed's `TICKET_UPDATED`, first generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_UPDATED")]
pub struct TicketUpdated {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The ticket.
    pub ticket_id: Uuid,
    /// Who changed it.
    pub user_id: Uuid,
    /// What changed.
    #[event(validate(length(max = 64)))]
    pub changes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The fault tests' probe (`PROBE`), as its envelopes are written there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "PROBE")]
pub struct Probe {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The test's sequence number.
    pub seq: u64,
    /// Fail the first attempts.
    #[serde(default)]
    pub fail_first: u32,
    /// Fail in this subscriber only.
    #[serde(default)]
    pub fail_in: Option<String>,
}

/// Every rule on one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "FUZZ_RULES")]
pub struct Rules {
    /// The tenant: a non-nil UUID.
    pub tenant_id: Uuid,
    /// `non_empty`.
    #[event(validate(non_empty))]
    pub name: String,
    /// `length(min = 2, max = 8)`, in characters.
    #[event(validate(length(min = 2, max = 8)))]
    pub code: String,
    /// `length(max = 3)` on a list.
    #[event(validate(length(max = 3)))]
    pub tags: Vec<u32>,
    /// `non_empty` and `length(max = 2)` on an optional map.
    #[event(validate(non_empty, length(max = 2)))]
    pub labels: Option<serde_json::Map<String, serde_json::Value>>,
    /// `range(min = -5, max = 5)`.
    #[event(validate(range(min = -5, max = 5)))]
    pub level: i64,
    /// `range(min = 0.0, max = 1.0)`.
    #[event(validate(range(min = 0.0, max = 1.0)))]
    pub ratio: f64,
    /// `range(min = 1)` on an optional number.
    #[serde(rename = "priority")]
    #[event(validate(range(min = 1)))]
    pub prio: Option<u8>,
    /// `uuid` on text.
    #[event(validate(uuid))]
    pub reference: String,
    /// `uuid` on optional text.
    #[event(validate(uuid))]
    pub parent: Option<String>,
    /// `custom`: lower-case ASCII only.
    #[event(validate(custom = crate::events::lower_ascii))]
    pub slug: String,
}

/// The `custom` rule of [`Rules::slug`] (it is handed the field as it is).
#[allow(clippy::ptr_arg)]
pub fn lower_ascii(value: &String) -> Result<(), String> {
    if value.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err("must be lower-case ASCII letters".to_owned())
    }
}

/// A tenant of any non-empty string, with `None` written as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "FUZZ_ANY_TENANT", none_as_null)]
pub struct AnyTenant {
    /// The tenant, any non-empty string.
    #[event(tenant(any_string))]
    pub tenant_id: String,
    /// Optional text.
    pub note: Option<String>,
}

/// The event types above, and the fixture crate's, as registered: naming the fixture crate
/// links its registrations (see the README's linking rule).
pub fn linked() -> [&'static str; 5] {
    [
        TicketUpdated::EVENT_TYPE,
        Probe::EVENT_TYPE,
        Rules::EVENT_TYPE,
        AnyTenant::EVENT_TYPE,
        ticket_events::CrossTicketUpdated::EVENT_TYPE,
    ]
}
