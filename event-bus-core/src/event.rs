//! The [`Event`] trait: what `#[derive(Event)]` implements for a payload struct.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::dispatch::Failure;
use crate::envelope::Envelope;
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
/// assert_eq!(TicketClosed::stream("event"), "event:TICKET_CLOSED");
/// assert_eq!(TicketClosed::CHANNELS, ["global"]);
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

    /// The tenant this event belongs to, as a UUID: what per-tenant ordering keys on.
    ///
    /// - A `Uuid` tenant field: its value.
    /// - A `String` tenant field (UUID rule, the default): the UUID it holds; nil when it holds
    ///   none ([`Event::validate`] rejects that).
    /// - A `String` tenant field marked `#[event(tenant(any_string))]`: the UUID it holds when
    ///   it is one, else [`tenant_uuid`] of the text, a name-based UUID (v5) under
    ///   [`TENANT_NAMESPACE`], the same for the same text in every process. The text itself is
    ///   [`Event::tenant`].
    fn tenant_id(&self) -> Uuid;

    /// The tenant as written in the payload: the tenant field's text for a `String` field
    /// (`"acme"`, or a UUID as the publisher spelled it), the hyphenated UUID for a `Uuid` field.
    ///
    /// ```
    /// use event_bus_core::Event;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Event)]
    /// #[serde(rename_all = "camelCase")]
    /// struct TicketClosed {
    ///     #[event(tenant(any_string))]
    ///     tenant_id: String,
    /// }
    ///
    /// let event = TicketClosed { tenant_id: "acme".to_owned() };
    /// assert_eq!(event.tenant(), "acme");
    /// assert_eq!(event.tenant_id(), event_bus_core::tenant_uuid("acme"));
    /// ```
    fn tenant(&self) -> Cow<'_, str> {
        Cow::Owned(self.tenant_id().hyphenated().to_string())
    }

    /// Whether an `Option` field that is `None` is left out of the encoded payload (`true`, the
    /// default: the seed's schemas refuse `null` for an optional field) or written as `null`
    /// (`#[event(none_as_null)]`). Only the payload's own fields are concerned; `Some(null)`
    /// and values inside nested objects are written as serde writes them. Decoding reads a
    /// missing `Option` field as `None` either way.
    const OMIT_NONE: bool = true;

    /// The payload's description for [`crate::schema`]: fields, types, rules. Not public API:
    /// `#[derive(Event)]` writes it.
    #[doc(hidden)]
    const __SCHEMA: &'static crate::schema::model::EncodedSchema =
        &crate::schema::model::EncodedSchema::UNDESCRIBED;

    /// Checks the tenant and every field rule, and reports all failures at once.
    fn validate(&self) -> Result<(), ValidationErrors>;

    /// The channels a publish writes to by default (`#[event(channels("global", ...))]`;
    /// default: [`DEFAULT_CHANNEL`] alone). A channel is a named audience: a subscriber reads
    /// one channel. With [`StreamLayout::PerChannel`] each channel is its own stream.
    const CHANNELS: &'static [&'static str] = &[DEFAULT_CHANNEL];

    /// The stream carrying this event type under `prefix` in the default layout:
    /// `{prefix}:{EVENT_TYPE}`.
    fn stream(prefix: &str) -> String {
        stream_name(prefix, Self::EVENT_TYPE)
    }

    /// Decodes an envelope of this type from JSON, checks its `eventType` and validates the
    /// payload ([`crate::transport::decode`]). Not public API: `#[derive(Event)]` implements it
    /// as a plain function of the type's own crate, so that the decoding code is compiled there,
    /// once, and every crate with a subscriber of the type calls it instead of compiling its own
    /// copy.
    #[doc(hidden)]
    fn __decode_envelope(bytes: &[u8]) -> Result<Envelope<Self>, Failure> {
        crate::decode::decode::<Self>(bytes)
    }

    /// Decodes `bytes` as an envelope of this type and binds a subscriber's `run` to it. Not
    /// public API: what `#[subscriber]`'s generated thunk calls with its own `run` (which calls
    /// the handler and boxes its future). Generic over the event type only, so that it is
    /// compiled once per event type in the crate of its subscribers, and shared by them.
    #[doc(hidden)]
    #[allow(clippy::question_mark)] // a `match`, not `?`: no `Try` instantiations per type
    fn __prepare(
        bytes: &[u8],
        run: fn(Envelope<Self>, crate::Context) -> crate::dispatch::HandlerFuture,
    ) -> Result<crate::dispatch::Prepared, Failure> {
        match Self::__decode_envelope(bytes) {
            Ok(envelope) => Ok(crate::dispatch::Prepared::new(
                crate::dispatch::meta_of(&envelope),
                envelope.trace.clone(),
                Box::new(move |ctx| run(envelope, ctx)),
            )),
            Err(failure) => Err(failure),
        }
    }
}

/// The channel of a subscriber that names none, and of an event type that declares none:
/// `global`, as in the seed system.
pub const DEFAULT_CHANNEL: &str = "global";

/// How stream keys are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StreamLayout {
    /// `{prefix}:{EVENT_TYPE}`: one stream per event type, every channel in it (the default,
    /// and the seed document's first generation). The entry's `channel` field still names the
    /// channel.
    #[default]
    PerEventType,
    /// `{prefix}:{channel}:{EVENT_TYPE}`: one stream per channel and event type (the seed as
    /// it runs today).
    PerChannel,
}

impl StreamLayout {
    /// The stream of `event_type` on `channel` under `prefix`.
    ///
    /// ```
    /// use event_bus_core::StreamLayout;
    ///
    /// let prefix = "alga-psa:event-stream";
    /// assert_eq!(
    ///     StreamLayout::PerChannel.stream(prefix, "emailservice::v7", "TICKET_UPDATED"),
    ///     "alga-psa:event-stream:emailservice::v7:TICKET_UPDATED",
    /// );
    /// assert_eq!(
    ///     StreamLayout::PerEventType.stream(prefix, "global", "TICKET_UPDATED"),
    ///     "alga-psa:event-stream:TICKET_UPDATED",
    /// );
    /// ```
    pub fn stream(self, prefix: &str, channel: &str, event_type: &str) -> String {
        match self {
            StreamLayout::PerEventType => stream_name(prefix, event_type),
            StreamLayout::PerChannel => {
                let mut name =
                    String::with_capacity(prefix.len() + channel.len() + event_type.len() + 2);
                name.push_str(prefix);
                name.push(':');
                name.push_str(channel);
                name.push(':');
                name.push_str(event_type);
                name
            }
        }
    }

    /// The channels a publish to `channels` writes, one per stream: all of them per channel;
    /// only the first in the per-event-type layout, where they share one stream.
    pub fn distinct_streams<'a>(self, channels: &'a [&'a str]) -> &'a [&'a str] {
        match self {
            StreamLayout::PerChannel => channels,
            StreamLayout::PerEventType => &channels[..channels.len().min(1)],
        }
    }
}

/// The namespace of the name-based tenant UUIDs: [`tenant_uuid`] of a tenant that is not a UUID
/// is `Uuid::new_v5(&TENANT_NAMESPACE, text)`.
///
/// It is itself the v5 UUID of the URL `https://github.com/event-bus/event-bus#tenant` under
/// the URL namespace (RFC 9562), so any language can recompute it; it never changes, since
/// per-tenant ordering and anything stored by tenant id depend on it.
///
/// ```
/// use uuid::Uuid;
///
/// assert_eq!(
///     event_bus_core::TENANT_NAMESPACE,
///     Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://github.com/event-bus/event-bus#tenant"),
/// );
/// ```
pub const TENANT_NAMESPACE: Uuid = Uuid::from_u128(0x84ba_d376_d404_5b4b_a262_d008_60f1_7a9b);

/// The tenant id of a tenant written as text: the UUID it holds when it is one, else the v5 UUID
/// of the text under [`TENANT_NAMESPACE`]. This is [`Event::tenant_id`] for a tenant field
/// marked `#[event(tenant(any_string))]`.
///
/// ```
/// use event_bus_core::tenant_uuid;
///
/// let acme = tenant_uuid("acme");
/// assert_eq!(acme, tenant_uuid("acme"));
/// assert_eq!(acme.to_string(), "ee203e89-c389-5a54-90a4-dbc8593fe042");
/// assert_eq!(
///     tenant_uuid("0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d").to_string(),
///     "0b9a4a55-3f3e-4c8e-8f3a-6a3f2a1b7c9d",
/// );
/// ```
pub fn tenant_uuid(tenant: &str) -> Uuid {
    Uuid::parse_str(tenant).unwrap_or_else(|_| Uuid::new_v5(&TENANT_NAMESPACE, tenant.as_bytes()))
}

/// Whether `name` is a valid channel name: not empty, and without whitespace or control
/// characters (what `#[event(channels(...))]` and `#[subscriber(channel = ...)]` accept).
///
/// ```
/// use event_bus_core::is_valid_channel;
///
/// assert!(is_valid_channel("emailservice::v7"));
/// assert!(!is_valid_channel(""));
/// assert!(!is_valid_channel("internal notifications"));
/// ```
pub fn is_valid_channel(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The stream of an event type under a prefix in the default layout: `{prefix}:{event_type}`.
///
/// ```
/// assert_eq!(
///     event_bus_core::stream_name("alga-psa:event-stream:global", "TICKET_UPDATED"),
///     "alga-psa:event-stream:global:TICKET_UPDATED",
/// );
/// ```
pub fn stream_name(prefix: &str, event_type: &str) -> String {
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
