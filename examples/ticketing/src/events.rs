//! The seed application's ten event types, as payload structs.
//!
//! Field names go on the wire in camelCase, exactly like the TypeScript system
//! (`{"tenantId": ..., "ticketId": ..., "userId": ..., "changes": {...}}`), so a Rust service
//! and the seed can read each other's streams. `#[derive(Event)]` checks the tenant (a
//! non-nil UUID in `tenantId`) and the rules in `#[event(validate(...))]` before a publish
//! touches the bus, and again when an event is read.

use chrono::{DateTime, NaiveDate, Utc};
use event_bus_core::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The seed's `changes: z.record(z.unknown()).optional()`: free-form, but bounded.
pub type Changes = Map<String, Value>;

// ---------------------------------------------------------------------------------------------
// Tickets: the seed's `TicketEventPayloadSchema` (tenantId, ticketId, userId, changes?).
// The seed's ticket publishers write each ticket event to three channels, and so do these:
// `global`, `internal-notifications` and `emailservice::v7` (the e-mail service reads only its
// own). In the demo's layout, one stream per event type, the channels share that stream; in
// the seed's (`seed.rs`), each is a stream of its own.

/// A ticket was opened. `changes` carries the new row: `title`, `priority`, `entered_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_CREATED")]
#[event(channels("global", "internal-notifications", "emailservice::v7"))]
pub struct TicketCreated {
    pub tenant_id: Uuid,
    pub ticket_id: Uuid,
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[event(validate(length(max = 64), custom = crate::events::ticket_changes))]
    pub changes: Option<Changes>,
}

/// A ticket was edited. `changes` holds the updated columns (`status`, `priority`, `updated_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_UPDATED")]
#[event(channels("global", "internal-notifications", "emailservice::v7"))]
pub struct TicketUpdated {
    pub tenant_id: Uuid,
    pub ticket_id: Uuid,
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[event(validate(length(max = 64), custom = crate::events::ticket_changes))]
    pub changes: Option<Changes>,
}

/// A ticket moved to a closed status. `changes` carries `closed_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_CLOSED")]
#[event(channels("global", "internal-notifications", "emailservice::v7"))]
pub struct TicketClosed {
    pub tenant_id: Uuid,
    pub ticket_id: Uuid,
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[event(validate(length(max = 64), custom = crate::events::ticket_changes))]
    pub changes: Option<Changes>,
}

// ---------------------------------------------------------------------------------------------
// Projects.

/// A project was set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "PROJECT_CREATED")]
pub struct ProjectCreated {
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    #[event(validate(non_empty, length(max = 120)))]
    pub name: String,
    /// The hours sold; absent for time-and-materials projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[event(validate(range(min = 1, max = 100_000)))]
    pub budget_hours: Option<u32>,
}

/// A project's settings changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "PROJECT_UPDATED")]
pub struct ProjectUpdated {
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[event(validate(non_empty, length(max = 64)))]
    pub changes: Option<Changes>,
}

/// A project was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "PROJECT_CLOSED")]
pub struct ProjectClosed {
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
}

// ---------------------------------------------------------------------------------------------
// Time entries.

/// A technician logged time, against a ticket or a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TIME_ENTRY_SUBMITTED")]
pub struct TimeEntrySubmitted {
    pub tenant_id: Uuid,
    pub time_entry_id: Uuid,
    pub user_id: Uuid,
    /// What the time was spent on: a ticket or a project id, as text (the seed stores both).
    #[event(validate(uuid))]
    pub work_item_id: String,
    pub work_date: NaiveDate,
    /// At most a day.
    #[event(validate(range(min = 1, max = 1440)))]
    pub minutes: u32,
    #[event(validate(non_empty, length(max = 500)))]
    pub notes: String,
}

/// A manager approved a time entry; it becomes billable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TIME_ENTRY_APPROVED")]
pub struct TimeEntryApproved {
    pub tenant_id: Uuid,
    pub time_entry_id: Uuid,
    /// The approver.
    pub user_id: Uuid,
    #[event(validate(range(min = 1, max = 1440)))]
    pub minutes: u32,
}

// ---------------------------------------------------------------------------------------------
// Invoices.

/// A draft invoice was generated from approved time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "INVOICE_GENERATED")]
pub struct InvoiceGenerated {
    pub tenant_id: Uuid,
    pub invoice_id: Uuid,
    pub user_id: Uuid,
    #[event(validate(non_empty, length(max = 32)))]
    pub invoice_number: String,
    #[event(validate(range(min = 0)))]
    pub total_cents: i64,
    /// ISO 4217 (`USD`).
    #[event(validate(length(min = 3, max = 3)))]
    pub currency: String,
}

/// An invoice was finalized: numbered, locked, and announced to the customer's systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "INVOICE_FINALIZED")]
pub struct InvoiceFinalized {
    pub tenant_id: Uuid,
    pub invoice_id: Uuid,
    pub user_id: Uuid,
    #[event(validate(non_empty, length(max = 32)))]
    pub invoice_number: String,
    #[event(validate(range(min = 0)))]
    pub total_cents: i64,
    #[event(validate(length(min = 3, max = 3)))]
    pub currency: String,
}

// ---------------------------------------------------------------------------------------------
// Custom rules and helpers.

/// The ten event types, in the seed's `EventTypeEnum` order.
pub const EVENT_TYPES: [&str; 10] = [
    TicketCreated::EVENT_TYPE,
    TicketUpdated::EVENT_TYPE,
    TicketClosed::EVENT_TYPE,
    ProjectCreated::EVENT_TYPE,
    ProjectUpdated::EVENT_TYPE,
    ProjectClosed::EVENT_TYPE,
    TimeEntrySubmitted::EVENT_TYPE,
    TimeEntryApproved::EVENT_TYPE,
    InvoiceGenerated::EVENT_TYPE,
    InvoiceFinalized::EVENT_TYPE,
];

/// Ticket priorities, and how long each may stay open (the SLA's resolution target).
pub const PRIORITIES: [(&str, i64); 4] = [("urgent", 4), ("high", 8), ("medium", 24), ("low", 72)];

/// `custom` rule for the seed's free-form `changes`: column names are `snake_case`, a
/// `priority` is one we know, and the `*_at` columns hold RFC 3339 times.
pub fn ticket_changes(changes: &Option<Changes>) -> Result<(), String> {
    let Some(changes) = changes else {
        return Ok(());
    };
    for (key, value) in changes {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!("{key:?} is not a snake_case column name"));
        }
        if key == "priority" {
            let known = value
                .as_str()
                .is_some_and(|p| PRIORITIES.iter().any(|(name, _)| *name == p));
            if !known {
                return Err(format!("unknown priority {value}"));
            }
        }
        if key.ends_with("_at") && value.as_str().and_then(parse_time).is_none() {
            return Err(format!("{key} must be an RFC 3339 time, got {value}"));
        }
    }
    Ok(())
}

/// A `changes` column read as a time.
pub fn change_time(changes: &Option<Changes>, key: &str) -> Option<DateTime<Utc>> {
    changes.as_ref()?.get(key)?.as_str().and_then(parse_time)
}

/// A `changes` column read as text.
pub fn change_str<'a>(changes: &'a Option<Changes>, key: &str) -> Option<&'a str> {
    changes.as_ref()?.get(key)?.as_str()
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(value: Value) -> Option<Changes> {
        match value {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    fn tenant() -> Uuid {
        Uuid::from_u128(0x0b9a_4a55_3f3e_4c8e_8f3a_6a3f_2a1b_7c9d)
    }

    #[test]
    fn ticket_events_use_the_seed_wire_format() {
        let event = TicketUpdated {
            tenant_id: tenant(),
            ticket_id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            changes: changes(json!({"status": "in_progress"})),
        };
        let value = serde_json::to_value(&event).expect("serialises");
        assert_eq!(
            value,
            json!({
                "tenantId": "0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d",
                "ticketId": "00000000-0000-0000-0000-000000000001",
                "userId": "00000000-0000-0000-0000-000000000002",
                "changes": {"status": "in_progress"},
            })
        );
        assert_eq!(TicketUpdated::EVENT_TYPE, "TICKET_UPDATED");
        assert_eq!(
            TicketUpdated::stream("alga-psa:event-stream:global"),
            "alga-psa:event-stream:global:TICKET_UPDATED"
        );
        // The seed's channels for every ticket event, in its order.
        let seed = ["global", "internal-notifications", "emailservice::v7"];
        assert_eq!(TicketCreated::CHANNELS, seed);
        assert_eq!(TicketUpdated::CHANNELS, seed);
        assert_eq!(TicketClosed::CHANNELS, seed);
        assert_eq!(ProjectCreated::CHANNELS, ["global"]);
        // The seed omits `changes` freely.
        let back: TicketUpdated = serde_json::from_value(json!({
            "tenantId": tenant(), "ticketId": Uuid::from_u128(1), "userId": Uuid::from_u128(2),
        }))
        .expect("decodes without changes");
        assert!(back.validate().is_ok());
    }

    #[test]
    fn the_seeds_ten_event_types() {
        let seed = [
            "TICKET_CREATED",
            "TICKET_UPDATED",
            "TICKET_CLOSED",
            "PROJECT_CREATED",
            "PROJECT_UPDATED",
            "PROJECT_CLOSED",
            "TIME_ENTRY_SUBMITTED",
            "TIME_ENTRY_APPROVED",
            "INVOICE_GENERATED",
            "INVOICE_FINALIZED",
        ];
        assert_eq!(EVENT_TYPES, seed);
    }

    #[test]
    fn ticket_changes_are_checked() {
        let mut event = TicketCreated {
            tenant_id: tenant(),
            ticket_id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            changes: changes(json!({"priority": "high", "entered_at": "2026-11-26T08:00:00Z"})),
        };
        assert!(event.validate().is_ok());

        event.changes = changes(json!({"priority": "whenever"}));
        let issues = event.validate().expect_err("unknown priority");
        assert_eq!(issues.len(), 1);
        assert_eq!(issues.issues()[0].path, "changes");
        assert!(issues.to_string().contains("whenever"), "{issues}");

        event.changes = changes(json!({"closedAt": "yesterday"}));
        assert!(event.validate().is_err());
    }

    #[test]
    fn every_failed_rule_is_reported_at_once() {
        let entry = TimeEntrySubmitted {
            tenant_id: Uuid::nil(),
            time_entry_id: Uuid::from_u128(3),
            user_id: Uuid::from_u128(2),
            work_item_id: "TCK-1042".to_owned(),
            work_date: NaiveDate::from_ymd_opt(2026, 11, 26).expect("a date"),
            minutes: 0,
            notes: String::new(),
        };
        let issues = entry.validate().expect_err("four rules fail");
        let paths: Vec<&str> = issues.issues().iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["tenantId", "workItemId", "minutes", "notes"]);
    }

    #[test]
    fn invoices_have_sane_amounts() {
        let mut invoice = InvoiceGenerated {
            tenant_id: tenant(),
            invoice_id: Uuid::from_u128(4),
            user_id: Uuid::from_u128(2),
            invoice_number: "INV-0001".to_owned(),
            total_cents: 125_000,
            currency: "USD".to_owned(),
        };
        assert!(invoice.validate().is_ok());
        invoice.total_cents = -1;
        invoice.currency = "dollars".to_owned();
        assert_eq!(invoice.validate().expect_err("two rules fail").len(), 2);
    }
}
