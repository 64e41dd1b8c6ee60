//! The [`Event`] trait: what `#[derive(Event)]` implements for a payload struct.

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::validation::ValidationErrors;

/// A typed event payload: its wire name, its tenant and its validation rules.
///
/// Implement it with `#[derive(Event)]`, never by hand: the derive also registers the type so a
/// runtime can decode and validate raw JSON of it by name.
///
/// ```
/// use event_bus_core::Event;
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// pub struct TicketClosed {
///     pub tenant_id: uuid::Uuid,
///     #[event(validate(non_empty, length(max = 200)))]
///     pub reason: String,
/// }
///
/// assert_eq!(TicketClosed::EVENT_TYPE, "TICKET_CLOSED");
/// assert_eq!(TicketClosed::channel("event"), "event:TICKET_CLOSED");
///
/// let bad = TicketClosed { tenant_id: uuid::Uuid::nil(), reason: String::new() };
/// let issues = bad.validate().unwrap_err();
/// assert_eq!(issues.len(), 2); // nil tenant and empty reason, both reported
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event type",
    label = "`{Self}` does not implement `Event`",
    note = "add `#[derive(Event)]` to the definition of `{Self}`"
)]
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event-type name on the wire (`"TICKET_UPDATED"`): `[A-Z][A-Z0-9_]*`.
    const EVENT_TYPE: &'static str;

    /// The tenant this event belongs to (nil when the tenant field holds no valid UUID;
    /// [`Event::validate`] rejects that).
    fn tenant_id(&self) -> Uuid;

    /// Checks the tenant and every field rule, and reports all failures at once.
    fn validate(&self) -> Result<(), ValidationErrors>;

    /// The stream (channel) carrying this event type under `prefix`: `{prefix}:{EVENT_TYPE}`.
    fn channel(prefix: &str) -> String {
        channel_name(prefix, Self::EVENT_TYPE)
    }
}

/// The stream (channel) name of an event type under a prefix: `{prefix}:{event_type}`.
///
/// ```
/// assert_eq!(
///     event_bus_core::channel_name("alga-psa:event-stream:global", "TICKET_UPDATED"),
///     "alga-psa:event-stream:global:TICKET_UPDATED",
/// );
/// ```
pub fn channel_name(prefix: &str, event_type: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + 1 + event_type.len());
    name.push_str(prefix);
    name.push(':');
    name.push_str(event_type);
    name
}

/// Whether `name` is a valid event-type name: `[A-Z][A-Z0-9_]*`.
///
/// ```
/// assert!(event_bus_core::is_valid_event_type("TICKET_UPDATED"));
/// assert!(!event_bus_core::is_valid_event_type("ticketUpdated"));
/// ```
pub const fn is_valid_event_type(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_uppercase() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
}
