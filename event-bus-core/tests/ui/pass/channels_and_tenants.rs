//! Channels, `channel =`, `tenant(any_string)` and `none_as_null` compile without a warning.
#![deny(warnings)]

use std::collections::BTreeMap;

use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// On the seed's three ticket channels, with a string tenant.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(
    name = "TICKET_UPDATED",
    channels("global", "internal-notifications", "emailservice::v7")
)]
pub struct TicketUpdated {
    #[event(tenant(any_string), validate(length(max = 64)))]
    pub tenant_id: String,
    pub ticket_id: Uuid,
    pub changes: Option<BTreeMap<String, serde_json::Value>>,
}

/// A marked tenant of another name, any string, `None` written as `null`.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(none_as_null, channels("global"))]
pub struct OrgRenamed {
    #[event(tenant(any_string))]
    pub org: std::string::String,
    pub new_name: Option<String>,
}

/// A `Uuid` tenant marked plainly, and a `String` one holding a UUID.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct OrgCreated {
    #[event(tenant)]
    pub org: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct OrgDeleted {
    pub tenant_id: String,
}

#[subscriber("TICKET_UPDATED", channel = "emailservice::v7", name = "ticket-email")]
async fn email_on_update(event: Envelope<TicketUpdated>, ctx: Context) -> Result<(), HandlerError> {
    let _ = (event.payload.tenant(), ctx.tenant_id());
    Ok(())
}

#[subscriber("ORG_RENAMED", channel = "internal-notifications")]
async fn notify_rename(_event: Envelope<OrgRenamed>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {
    const _: () = assert!(TicketUpdated::OMIT_NONE && !OrgRenamed::OMIT_NONE);
    assert_eq!(TicketUpdated::CHANNELS.len(), 3);
    assert_eq!(OrgCreated::CHANNELS, ["global"]);
    let created = OrgCreated { org: Uuid::nil() };
    assert_eq!(created.tenant(), Uuid::nil().hyphenated().to_string());
    let deleted = OrgDeleted {
        tenant_id: "x".to_owned(),
    };
    assert_eq!(deleted.tenant(), "x");
}
