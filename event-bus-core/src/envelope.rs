//! [`Envelope`]: an event on the wire, `{"id","eventType","timestamp","payload"}`, exactly as the
//! seed system writes it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::event::Event;
use crate::omit_none::OmitNone;

/// An event with its identity: what handlers receive and what goes on a stream.
///
/// Serialised as the seed system does, with the timestamp written like JavaScript's
/// `toISOString()`; any RFC 3339 timestamp is accepted on read.
///
/// ```
/// use event_bus_core::{Envelope, Event};
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed { tenant_id: uuid::Uuid }
///
/// let json = r#"{"id":"6f1d9a4e-8a8e-4c39-9d63-1f0b3f6c2a10","eventType":"TICKET_CLOSED",
///   "timestamp":"2026-11-26T18:00:00.123+01:00",
///   "payload":{"tenantId":"0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d"}}"#;
/// let envelope: Envelope<TicketClosed> = serde_json::from_str(json).unwrap();
/// assert_eq!(envelope.timestamp.to_rfc3339(), "2026-11-26T17:00:00.123+00:00");
/// let written = serde_json::to_string(&envelope).unwrap();
/// assert!(written.contains(r#""timestamp":"2026-11-26T17:00:00.123Z""#));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Envelope<E> {
    /// The event's id (UUID v4), stable across retries and replays.
    pub id: Uuid,
    /// The event-type name, `E::EVENT_TYPE` for a typed envelope.
    pub event_type: String,
    /// When the event was created, in UTC.
    #[serde(with = "js_timestamp")]
    pub timestamp: DateTime<Utc>,
    /// The event itself.
    pub payload: E,
}

impl<E: Event> Envelope<E> {
    /// Wraps `payload` with a fresh id and the current time.
    pub fn new(payload: E) -> Self {
        Self {
            id: Uuid::new_v4(),
            event_type: E::EVENT_TYPE.to_owned(),
            timestamp: Utc::now(),
            payload,
        }
    }

    /// The tenant of the payload.
    pub fn tenant_id(&self) -> Uuid {
        self.payload.tenant_id()
    }
}

impl<E> Envelope<E> {
    /// Replaces the id (for tests and for re-publishing an event under its original identity).
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Replaces the timestamp.
    pub fn with_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// An envelope as the wire has it: what [`Envelope`]'s `Serialize` writes, except that the
/// payload's own `None` fields are left out unless the event type says `#[event(none_as_null)]`
/// ([`Event::OMIT_NONE`]). This is what a publish writes.
pub(crate) struct WireEnvelope<'a, E>(pub(crate) &'a Envelope<E>);

impl<E: Event> Serialize for WireEnvelope<'_, E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        /// The timestamp, written by `js_timestamp`.
        struct Timestamp<'a>(&'a DateTime<Utc>);
        impl Serialize for Timestamp<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                js_timestamp::serialize(self.0, serializer)
            }
        }

        let envelope = self.0;
        // The fields and their order are `Envelope`'s derived ones.
        let mut out = serializer.serialize_struct("Envelope", 4)?;
        out.serialize_field("id", &envelope.id)?;
        out.serialize_field("eventType", &envelope.event_type)?;
        out.serialize_field("timestamp", &Timestamp(&envelope.timestamp))?;
        if E::OMIT_NONE {
            out.serialize_field("payload", &OmitNone(&envelope.payload))?;
        } else {
            out.serialize_field("payload", &envelope.payload)?;
        }
        out.end()
    }
}

/// The timestamp format of the wire: JavaScript's `Date.prototype.toISOString()`.
pub(crate) mod js_timestamp {
    use super::*;

    /// The years RFC 3339 and `toISOString()` write with four digits: a time outside them
    /// would be written in a form neither this crate nor the seed reads back.
    const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

    pub(crate) fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        use chrono::Datelike;
        if !YEARS.contains(&ts.year()) {
            return Err(serde::ser::Error::custom(format_args!(
                "timestamp {ts} is outside the years 0000 to 9999 the wire format can write"
            )));
        }
        s.serialize_str(&format(ts))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        use chrono::Datelike;
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let ts = DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                serde::de::Error::custom(format_args!("invalid timestamp {text:?}: {e}"))
            })?;
        // `0000-01-01T00:30:00+01:00` is valid RFC 3339, but in UTC it falls in year -1.
        if !YEARS.contains(&ts.year()) {
            return Err(serde::de::Error::custom(format_args!(
                "invalid timestamp {text:?}: outside the years 0000 to 9999 in UTC"
            )));
        }
        Ok(ts)
    }

    pub(crate) fn format(ts: &DateTime<Utc>) -> String {
        ts.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Formats a time the way the wire does (`2026-11-26T18:00:00.123Z`).
///
/// ```
/// let t = chrono::DateTime::parse_from_rfc3339("2026-11-26T18:00:00.1234Z").unwrap();
/// assert_eq!(event_bus_core::format_timestamp(&t.to_utc()), "2026-11-26T18:00:00.123Z");
/// ```
pub fn format_timestamp(ts: &DateTime<Utc>) -> String {
    js_timestamp::format(ts)
}

/// The parts of an envelope every runtime needs without knowing the payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventMeta {
    /// The event's id.
    pub id: Uuid,
    /// The tenant of the payload.
    pub tenant_id: Uuid,
    /// When the event was created.
    pub timestamp: DateTime<Utc>,
}
