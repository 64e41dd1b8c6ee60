//! [`Envelope`]: an event on the wire, `{"id","eventType","timestamp","payload"}`, exactly as the
//! seed system writes it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::event::Event;
use crate::omit_none::OmitNone;
use crate::trace::{serialize_keys, Lenient, TraceContext, TraceKeys};

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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "EnvelopeRepr<E>", bound(deserialize = "E: Deserialize<'de>"))]
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
    /// The W3C trace context of the code that published it, if it had one: the envelope's
    /// `traceparent` and `tracestate` keys (see [`TraceContext`]). An invalid one reads as
    /// `None`.
    pub trace: Option<TraceContext>,
}

/// What `Envelope`'s `Deserialize` reads: its fields and the trace keys, read leniently.
#[derive(Deserialize)]
#[serde(rename = "Envelope", rename_all = "camelCase")]
struct EnvelopeRepr<E> {
    id: Uuid,
    event_type: String,
    #[serde(with = "js_timestamp")]
    timestamp: DateTime<Utc>,
    payload: E,
    #[serde(default)]
    traceparent: Lenient<TraceContext>,
    #[serde(default)]
    tracestate: Lenient<std::sync::Arc<str>>,
}

impl<E> From<EnvelopeRepr<E>> for Envelope<E> {
    fn from(repr: EnvelopeRepr<E>) -> Self {
        let keys = TraceKeys {
            traceparent: repr.traceparent,
            tracestate: repr.tracestate,
        };
        Self {
            trace: keys.resolve(&repr.id),
            id: repr.id,
            event_type: repr.event_type,
            timestamp: repr.timestamp,
            payload: repr.payload,
        }
    }
}

/// The wire's keys in order, `traceparent` and `tracestate` only when there is a context. A
/// publish also leaves out the payload's `None` fields (unless the type says
/// `#[event(none_as_null)]`).
impl<E: Serialize> Serialize for Envelope<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_envelope(self, &self.payload, self.trace.as_ref(), serializer)
    }
}

impl<E: Event> Envelope<E> {
    /// Wraps `payload` with a fresh id and the current time.
    pub fn new(payload: E) -> Self {
        Self {
            id: Uuid::new_v4(),
            event_type: E::EVENT_TYPE.to_owned(),
            timestamp: Utc::now(),
            payload,
            trace: None,
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

    /// Sets (or, with `None`, removes) the trace context a publish of this envelope writes,
    /// instead of the current span's: to continue a trace that came from elsewhere (an HTTP
    /// request's `traceparent` header), or without the `opentelemetry` feature.
    ///
    /// ```
    /// use event_bus_core::{Envelope, Event, TraceContext};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Event)]
    /// #[serde(rename_all = "camelCase")]
    /// struct TicketClosed { tenant_id: uuid::Uuid }
    ///
    /// let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let envelope = Envelope::new(TicketClosed { tenant_id: uuid::Uuid::new_v4() })
    ///     .with_trace(TraceContext::parse(incoming).ok());
    /// // `bus.publish_envelope(&envelope).await?` writes it; the handler's span records
    /// // trace_id=4bf92f3577b34da6a3ce929d0e0e4736 parent_id=00f067aa0ba902b7.
    /// let json = serde_json::to_string(&envelope).unwrap();
    /// assert!(json.ends_with(r#","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#));
    /// let read: Envelope<TicketClosed> = serde_json::from_str(&json).unwrap();
    /// assert_eq!(read.trace, envelope.trace);
    /// ```
    pub fn with_trace(mut self, trace: Option<TraceContext>) -> Self {
        self.trace = trace;
        self
    }
}

/// An envelope as the wire has it: what [`Envelope`]'s `Serialize` writes, except that the
/// payload's own `None` fields are left out unless the event type says `#[event(none_as_null)]`
/// ([`Event::OMIT_NONE`]), and that the trace context written is the one given (the envelope's
/// own, or the current span's). This is what a publish writes.
pub(crate) struct WireEnvelope<'a, E>(
    pub(crate) &'a Envelope<E>,
    pub(crate) Option<&'a TraceContext>,
);

impl<E: Event> Serialize for WireEnvelope<'_, E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let envelope = self.0;
        if E::OMIT_NONE {
            serialize_envelope(envelope, &OmitNone(&envelope.payload), self.1, serializer)
        } else {
            serialize_envelope(envelope, &envelope.payload, self.1, serializer)
        }
    }
}

/// `{"id","eventType","timestamp","payload"}`, then `traceparent` and `tracestate` when there
/// is a context.
fn serialize_envelope<E, P: Serialize + ?Sized, S: Serializer>(
    envelope: &Envelope<E>,
    payload: &P,
    trace: Option<&TraceContext>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;

    /// The timestamp, written by `js_timestamp`.
    struct Timestamp<'a>(&'a DateTime<Utc>);
    impl Serialize for Timestamp<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            js_timestamp::serialize(self.0, serializer)
        }
    }

    let len = 4
        + usize::from(trace.is_some())
        + usize::from(trace.and_then(TraceContext::tracestate).is_some());
    let mut out = serializer.serialize_struct("Envelope", len)?;
    out.serialize_field("id", &envelope.id)?;
    out.serialize_field("eventType", &envelope.event_type)?;
    out.serialize_field("timestamp", &Timestamp(&envelope.timestamp))?;
    out.serialize_field("payload", payload)?;
    serialize_keys(trace, &mut out)?;
    out.end()
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
        d.deserialize_str(Rfc3339)
    }

    /// Reads the text where it lies: no `String` per envelope.
    struct Rfc3339;

    impl serde::de::Visitor<'_> for Rfc3339 {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
            use chrono::Datelike;
            let ts = DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| E::custom(format_args!("invalid timestamp {text:?}: {e}")))?;
            // `0000-01-01T00:30:00+01:00` is valid RFC 3339, but in UTC it falls in year -1.
            if !YEARS.contains(&ts.year()) {
                return Err(E::custom(format_args!(
                    "invalid timestamp {text:?}: outside the years 0000 to 9999 in UTC"
                )));
            }
            Ok(ts)
        }
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
