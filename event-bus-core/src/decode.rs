//! Decoding a delivery: an envelope of `E` read from JSON in one pass, its `eventType` checked,
//! its payload validated.
//!
//! What each event type adds is kept small, since an application may have hundreds: the
//! envelope's own fields (`id`, `eventType`, `timestamp`, the trace keys, unknown keys) are read
//! by code compiled once, here ([`Head::read`]), and only the payload is read as `E`, in place,
//! as the map is walked. The bytes are read once: the payload is not first skimmed as raw JSON
//! and then parsed again.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use uuid::Uuid;

use crate::dispatch::{Failure, FailureKind};
use crate::envelope::{js_timestamp, Envelope};
use crate::event::Event;
use crate::trace::{Lenient, TraceContext, TraceKeys};

/// Decodes an envelope of `E` from JSON, checks its `eventType`, validates the payload.
///
/// A malformed envelope, another `eventType` and a payload that is not an `E` are
/// [`FailureKind::Decode`]; a payload that fails its rules is [`FailureKind::Validation`].
///
/// ```
/// use event_bus_core::{transport::decode, Event, FailureKind};
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed { tenant_id: uuid::Uuid }
///
/// let json = br#"{"id":"6f1d9a4e-8a8e-4c39-9d63-1f0b3f6c2a10","eventType":"TICKET_CLOSED",
///   "timestamp":"2026-11-26T18:00:00.123Z",
///   "payload":{"tenantId":"0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d"}}"#;
/// let envelope = decode::<TicketClosed>(json).unwrap();
/// assert_eq!(envelope.event_type, "TICKET_CLOSED");
///
/// let other = br#"{"id":"6f1d9a4e-8a8e-4c39-9d63-1f0b3f6c2a10","eventType":"TICKET_OPENED",
///   "timestamp":"2026-11-26T18:00:00.123Z",
///   "payload":{"tenantId":"0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d"}}"#;
/// assert_eq!(decode::<TicketClosed>(other).unwrap_err().kind, FailureKind::Decode);
/// ```
#[allow(clippy::question_mark)] // `match`, not `?`: no `Try` instantiations per event type
pub fn decode<E: Event>(bytes: &[u8]) -> Result<Envelope<E>, Failure> {
    let mut head = Head::default();
    let payload = match read(bytes, EnvelopeSeed::<E>(&mut head, PhantomData)) {
        Ok(payload) => payload,
        Err(error) => return Err(not_an_envelope(E::EVENT_TYPE, &error)),
    };
    let head = match head.check(E::EVENT_TYPE, payload.validate()) {
        Ok(head) => head,
        Err(failure) => return Err(failure),
    };
    Ok(Envelope {
        id: head.id,
        event_type: head.event_type,
        timestamp: head.timestamp,
        payload,
        trace: head.trace,
    })
}

/// Reads all of `bytes` as one JSON value with `seed` (as `serde_json::from_slice` does).
fn read<'de, S: DeserializeSeed<'de>>(bytes: &'de [u8], seed: S) -> serde_json::Result<S::Value> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value = seed.deserialize(&mut json)?;
    json.end()?;
    Ok(value)
}

/// Reads an envelope's map: the payload as `E`, everything else into the [`Head`].
struct EnvelopeSeed<'a, E>(&'a mut Head, PhantomData<E>);

impl<'de, E: Deserialize<'de>> DeserializeSeed<'de> for EnvelopeSeed<'_, E> {
    type Value = E;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<E, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, E: Deserialize<'de>> Visitor<'de> for EnvelopeSeed<'_, E> {
    type Value = E;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct Envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<E, A::Error> {
        let mut payload = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Payload if payload.is_some() => {
                    return Err(de::Error::duplicate_field("payload"))
                }
                Key::Payload => payload = Some(map.next_value::<E>()?),
                key => self.0.read(key, &mut map)?,
            }
        }
        // Missing fields are named in the order of the envelope's fields.
        self.0.missing_before_payload()?;
        match payload {
            Some(payload) => Ok(payload),
            None => Err(de::Error::missing_field("payload")),
        }
    }
}

/// An envelope's key.
enum Key {
    Id,
    EventType,
    Timestamp,
    Payload,
    Traceparent,
    Tracestate,
    /// Any other key: ignored, as the seed ignores keys it does not know.
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "id" => Key::Id,
            "eventType" => Key::EventType,
            "timestamp" => Key::Timestamp,
            "payload" => Key::Payload,
            "traceparent" => Key::Traceparent,
            "tracestate" => Key::Tracestate,
            _ => Key::Other,
        })
    }
}

/// The envelope's fields other than the payload, as they are read.
#[derive(Default)]
struct Head {
    id: Option<Uuid>,
    event_type: Option<String>,
    timestamp: Option<DateTime<Utc>>,
    traceparent: Lenient<TraceContext>,
    tracestate: Lenient<Arc<str>>,
}

/// A timestamp as the wire writes it (see [`js_timestamp`]).
struct Timestamp(DateTime<Utc>);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        js_timestamp::deserialize(deserializer).map(Timestamp)
    }
}

/// The envelope's fields, checked.
struct Checked {
    id: Uuid,
    event_type: String,
    timestamp: DateTime<Utc>,
    trace: Option<TraceContext>,
}

impl Head {
    /// Reads the value of `key` (any key but the payload's).
    fn read<'de, A: MapAccess<'de>>(&mut self, key: Key, map: &mut A) -> Result<(), A::Error> {
        fn once<T, E: de::Error>(
            slot: &mut Option<T>,
            name: &'static str,
            value: T,
        ) -> Result<(), E> {
            if slot.is_some() {
                return Err(E::duplicate_field(name));
            }
            *slot = Some(value);
            Ok(())
        }
        match key {
            Key::Id => once(&mut self.id, "id", map.next_value::<Uuid>()?),
            Key::EventType => once(&mut self.event_type, "eventType", map.next_value()?),
            Key::Timestamp => {
                let Timestamp(at) = map.next_value()?;
                once(&mut self.timestamp, "timestamp", at)
            }
            Key::Traceparent => {
                self.traceparent = map.next_value()?;
                Ok(())
            }
            Key::Tracestate => {
                self.tracestate = map.next_value()?;
                Ok(())
            }
            Key::Payload | Key::Other => map.next_value::<IgnoredAny>().map(|_| ()),
        }
    }

    /// The first missing field of those written before the payload, as an error.
    fn missing_before_payload<E: de::Error>(&self) -> Result<(), E> {
        if self.id.is_none() {
            Err(E::missing_field("id"))
        } else if self.event_type.is_none() {
            Err(E::missing_field("eventType"))
        } else if self.timestamp.is_none() {
            Err(E::missing_field("timestamp"))
        } else {
            Ok(())
        }
    }

    /// Once the payload is read: the `eventType` must be `event_type` and the payload must be
    /// valid (`validated`, the outcome of `E::validate`); then the trace keys are resolved.
    fn check(
        self,
        event_type: &str,
        validated: Result<(), crate::ValidationErrors>,
    ) -> Result<Checked, Failure> {
        let (Some(id), Some(actual), Some(timestamp)) = (self.id, self.event_type, self.timestamp)
        else {
            // `missing_before_payload` ran before the payload was returned.
            return Err(not_an_envelope(event_type, &"missing field"));
        };
        if actual != event_type {
            return Err(Failure::new(
                FailureKind::Decode,
                format!("eventType is {actual:?}, but this stream carries {event_type}"),
            ));
        }
        if let Err(errors) = validated {
            return Err(Failure::new(
                FailureKind::Validation,
                errors.with_prefix("payload").to_string(),
            ));
        }
        let trace = TraceKeys {
            traceparent: self.traceparent,
            tracestate: self.tracestate,
        }
        .resolve(&id);
        Ok(Checked {
            id,
            event_type: actual,
            timestamp,
            trace,
        })
    }
}

fn not_an_envelope(event_type: &str, error: &dyn fmt::Display) -> Failure {
    Failure::new(
        FailureKind::Decode,
        format!("not a valid {event_type} envelope: {error}"),
    )
}
