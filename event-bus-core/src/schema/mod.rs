//! Schemas of the wire format, exported from the registry: a JSON Schema per event type, an
//! AsyncAPI 3.0 document of the whole application, and a check that a change to an event type
//! does not break its consumers.
//!
//! Everything here reads the registry (`#[derive(Event)]` describes each payload as constant
//! data) and never a bus, so it works the same for an application on Redis, on the in-memory
//! bus, or in a test without any bus.
//!
//! - [`json_schema::<E>()`](json_schema), [`json_schema_for`], [`json_schemas`]: the envelope
//!   (`id`, `eventType`, `timestamp`, `payload`) with the payload's fields, their JSON names
//!   (`#[serde(rename_all)]`, `rename`), which are required (not `Option`, no
//!   `#[serde(default)]`), and the validation rules as JSON Schema keywords: `non_empty` and
//!   `length` become `minLength`/`maxLength` (or `minItems`, `minProperties`, ... by the
//!   field's type), `range` becomes `minimum`/`maximum`, `uuid` and a `Uuid` field become
//!   `format: uuid`, the tenant a non-nil UUID. A `custom` rule, which JSON Schema cannot
//!   express, is listed under `x-event-bus-rules`.
//! - [`asyncapi`]: channels are the streams, messages the event types (payload: the envelope
//!   schema), operations the subscribers (`receive`) and the publishes (`send`).
//! - [`check_compatible`] and [`SchemaSnapshot`]: schema evolution against committed
//!   snapshots.
//!
//! ```
//! use event_bus_core::{schema, Event};
//!
//! /// A ticket was closed.
//! #[derive(serde::Serialize, serde::Deserialize, Event)]
//! #[serde(rename_all = "camelCase")]
//! struct TicketClosed {
//!     tenant_id: uuid::Uuid,
//!     #[event(validate(non_empty, length(max = 200)))]
//!     reason: String,
//!     note: Option<String>,
//! }
//!
//! let schema = schema::json_schema::<TicketClosed>();
//! let payload = &schema["properties"]["payload"];
//! assert_eq!(payload["required"], serde_json::json!(["tenantId", "reason"]));
//! assert_eq!(payload["properties"]["reason"]["minLength"], 1);
//! assert_eq!(payload["properties"]["reason"]["maxLength"], 200);
//! assert_eq!(payload["properties"]["tenantId"]["format"], "uuid");
//! assert_eq!(schema["properties"]["eventType"]["const"], "TICKET_CLOSED");
//! ```
//!
//! Field types are read from the source: primitives, `String`, `Uuid`, chrono's types,
//! `Option`, `Vec`, sets, maps and tuples are described directly. Any other type (a nested
//! struct, an alias) is described by its [`Schema`] impl when it has one: every event type has
//! one, `event_bus_core` implements it for the common std, `uuid`, `chrono` and `serde_json`
//! types, and you can implement it for your own. A type without one is any JSON (`{}`), with a
//! note (`x-event-bus-note`) saying so; it is never a compile error.

mod asyncapi;
mod compat;
pub(crate) mod json;
#[doc(hidden)]
pub mod model;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde_json::Value;

use crate::event::Event;
use crate::registry::registered_events;

pub use asyncapi::{asyncapi, AppInfo};
pub use compat::{check_compatible, Incompatibility, IncompatibilityKind};
pub use snapshot::{SchemaSnapshot, SnapshotError, SnapshotProblem, SnapshotReport, UPDATE_ENV};

use model::{EncodedSchema, TypeSchema};

/// A type that describes its JSON form as a JSON Schema: what a field of this type becomes in
/// an event's schema.
///
/// `#[derive(Event)]` implements it for every event (its payload schema), so an event can be
/// nested in another. Implement it for a nested type of your own; a field of a type without it
/// is described as any JSON, with a note.
///
/// ```
/// use event_bus_core::{schema::{self, Schema}, Event};
/// use serde_json::{json, Value};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Address { city: String }
///
/// impl Schema for Address {
///     fn json_schema() -> Value {
///         json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
///     }
/// }
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct SiteAdded { tenant_id: uuid::Uuid, address: Address, tags: Vec<Address> }
///
/// let payload = &schema::json_schema::<SiteAdded>()["properties"]["payload"];
/// assert_eq!(payload["properties"]["address"]["required"], json!(["city"]));
/// assert_eq!(payload["properties"]["tags"]["items"]["type"], "object");
/// ```
pub trait Schema {
    /// The JSON Schema of this type's JSON form (without `$schema`).
    fn json_schema() -> Value;
}

macro_rules! leaf_schema {
    ($($ty:ty => $schema:expr),* $(,)?) => {$(
        impl Schema for $ty {
            fn json_schema() -> Value {
                json::type_schema(&$schema)
            }
        }
    )*};
}

leaf_schema!(
    bool => TypeSchema::Bool,
    i8 => TypeSchema::Integer("i8"),
    i16 => TypeSchema::Integer("i16"),
    i32 => TypeSchema::Integer("i32"),
    i64 => TypeSchema::Integer("i64"),
    i128 => TypeSchema::Integer("i128"),
    isize => TypeSchema::Integer("isize"),
    u8 => TypeSchema::Integer("u8"),
    u16 => TypeSchema::Integer("u16"),
    u32 => TypeSchema::Integer("u32"),
    u64 => TypeSchema::Integer("u64"),
    u128 => TypeSchema::Integer("u128"),
    usize => TypeSchema::Integer("usize"),
    f32 => TypeSchema::Number,
    f64 => TypeSchema::Number,
    char => TypeSchema::Char,
    String => TypeSchema::String,
    str => TypeSchema::String,
    uuid::Uuid => TypeSchema::Uuid,
    chrono::NaiveDate => TypeSchema::Date,
    chrono::NaiveDateTime => TypeSchema::NaiveDateTime,
    chrono::NaiveTime => TypeSchema::NaiveTime,
);

impl<Tz: chrono::TimeZone> Schema for chrono::DateTime<Tz> {
    fn json_schema() -> Value {
        json::type_schema(&TypeSchema::DateTime)
    }
}

impl Schema for Value {
    fn json_schema() -> Value {
        Value::Object(serde_json::Map::new())
    }
}

impl Schema for serde_json::Map<String, Value> {
    fn json_schema() -> Value {
        serde_json::json!({ "type": "object" })
    }
}

impl<T: Schema> Schema for Option<T> {
    fn json_schema() -> Value {
        json::nullable(T::json_schema())
    }
}

impl<T: Schema + ?Sized> Schema for Box<T> {
    fn json_schema() -> Value {
        T::json_schema()
    }
}

impl<T: Schema + ?Sized> Schema for std::sync::Arc<T> {
    fn json_schema() -> Value {
        T::json_schema()
    }
}

fn array_of(item: Value, unique: bool) -> Value {
    let mut out = serde_json::json!({ "type": "array" });
    if !json::is_any(&item) {
        out["items"] = item;
    }
    if unique {
        out["uniqueItems"] = true.into();
    }
    out
}

fn map_of(value: Value) -> Value {
    let mut out = serde_json::json!({ "type": "object" });
    if !json::is_any(&value) {
        out["additionalProperties"] = value;
    }
    out
}

impl<T: Schema> Schema for Vec<T> {
    fn json_schema() -> Value {
        array_of(T::json_schema(), false)
    }
}

impl<T: Schema> Schema for [T] {
    fn json_schema() -> Value {
        array_of(T::json_schema(), false)
    }
}

impl<T: Schema> Schema for VecDeque<T> {
    fn json_schema() -> Value {
        array_of(T::json_schema(), false)
    }
}

impl<T: Schema, S> Schema for HashSet<T, S> {
    fn json_schema() -> Value {
        array_of(T::json_schema(), true)
    }
}

impl<T: Schema> Schema for BTreeSet<T> {
    fn json_schema() -> Value {
        array_of(T::json_schema(), true)
    }
}

impl<K, V: Schema, S> Schema for HashMap<K, V, S> {
    fn json_schema() -> Value {
        map_of(V::json_schema())
    }
}

impl<K, V: Schema> Schema for BTreeMap<K, V> {
    fn json_schema() -> Value {
        map_of(V::json_schema())
    }
}

/// The payload schema of a derived event (what generated `Schema` impls return).
#[doc(hidden)]
pub fn payload_schema(payload: &EncodedSchema) -> Value {
    json::payload_schema(&payload.decode())
}

/// The JSON Schema of `E`'s envelope as the wire carries it: `{id, eventType, timestamp,
/// payload}`, the payload described field by field. A standalone schema (`$schema`: draft
/// 2020-12).
pub fn json_schema<E: Event>() -> Value {
    json::envelope(E::EVENT_TYPE, &E::__SCHEMA.decode(), true)
}

/// The JSON Schema of the envelope of the registered event type `event_type` (see
/// [`json_schema`]); `None` when no such type is registered.
///
/// ```
/// # #[derive(serde::Serialize, serde::Deserialize, event_bus_core::Event)]
/// # #[serde(rename_all = "camelCase")]
/// # struct TicketClosed { tenant_id: uuid::Uuid }
/// let schema = event_bus_core::schema::json_schema_for("TICKET_CLOSED").unwrap();
/// assert_eq!(schema["title"], "TICKET_CLOSED");
/// assert!(event_bus_core::schema::json_schema_for("NO_SUCH_EVENT").is_none());
/// ```
pub fn json_schema_for(event_type: &str) -> Option<Value> {
    registered_events()
        .find(|e| e.event_type == event_type)
        .map(|e| json::envelope(e.event_type, &e.schema.decode(), true))
}

/// The JSON Schema of every registered event type, by name (see [`json_schema`]).
pub fn json_schemas() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for event in registered_events() {
        out.entry(event.event_type.to_owned())
            .or_insert_with(|| json::envelope(event.event_type, &event.schema.decode(), true));
    }
    out
}
