//! Publishing: turning a typed event into the bytes a transport writes, and the [`Publisher`]
//! seam through which handlers publish follow-up events on whichever bus runs them.

use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::envelope::{Envelope, WireEnvelope};
use crate::error::PublishError;
use crate::event::Event;

/// What a successful publish returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The envelope's id.
    pub event_id: Uuid,
    /// The transport's id of the written entry (the stream entry id on Redis, `N-0` in memory);
    /// on the first channel when the event went to several.
    pub entry_id: String,
    /// Every entry written, by channel, the first one included (one per stream: in the
    /// per-event-type layout, channels share one stream and one entry).
    pub entries: Vec<ChannelEntry>,
}

/// One entry a publish wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelEntry {
    /// The channel.
    pub channel: String,
    /// The entry's id.
    pub entry_id: String,
}

impl Published {
    /// A receipt for one entry on `channel`.
    pub fn new(event_id: Uuid, channel: &str, entry_id: String) -> Self {
        Self::of(event_id, vec![(channel.to_owned(), entry_id)])
    }

    /// A receipt for entries on several channels, in order (at least one).
    pub fn of(event_id: Uuid, entries: Vec<(String, String)>) -> Self {
        let entries: Vec<ChannelEntry> = entries
            .into_iter()
            .map(|(channel, entry_id)| ChannelEntry { channel, entry_id })
            .collect();
        Self {
            event_id,
            entry_id: entries
                .first()
                .map(|e| e.entry_id.clone())
                .unwrap_or_default(),
            entries,
        }
    }
}

/// A validated event, serialised as its envelope, ready to be written.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EncodedEvent {
    /// The event type.
    pub event_type: &'static str,
    /// The envelope's id.
    pub event_id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The envelope as JSON.
    pub json: String,
    /// The channels to write it to (the event type's [`Event::CHANNELS`] unless the caller
    /// named others).
    pub channels: Channels,
}

/// The channels a publish writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channels {
    /// The event type's own ([`Event::CHANNELS`]).
    Declared(&'static [&'static str]),
    /// Named by the caller.
    Named(Vec<String>),
}

impl Channels {
    /// Whether no channel is named.
    pub fn is_empty(&self) -> bool {
        match self {
            Channels::Declared(names) => names.is_empty(),
            Channels::Named(names) => names.is_empty(),
        }
    }

    /// The channel names, in order (declared ones borrowed, without an allocation).
    pub fn names(&self) -> std::borrow::Cow<'_, [&str]> {
        match self {
            Channels::Declared(names) => std::borrow::Cow::Borrowed(names),
            Channels::Named(names) => names.iter().map(String::as_str).collect(),
        }
    }
}

/// The buffer an envelope is encoded into starts this large.
const ENCODE_CAPACITY: usize = 512;

/// Validates `event`, wraps it in a fresh envelope and serialises it: everything a publish does
/// before any I/O.
///
/// ```
/// use event_bus_core::transport::encode;
/// use event_bus_core::Event;
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed { tenant_id: uuid::Uuid }
///
/// let tenant = uuid::Uuid::new_v4();
/// let encoded = encode(TicketClosed { tenant_id: tenant }).unwrap();
/// assert!(encoded.json.starts_with(r#"{"id":""#));
/// assert!(encode(TicketClosed { tenant_id: uuid::Uuid::nil() }).is_err());
/// ```
pub fn encode<E: Event>(event: E) -> Result<EncodedEvent, PublishError> {
    encode_envelope(&Envelope::new(event))
}

/// Like [`encode`], for an envelope built by the caller (its id and timestamp are kept).
///
/// The JSON carries the envelope's trace context ([`Envelope::trace`]) if it has one, else,
/// with the `opentelemetry` feature, the current span's ([`TraceContext::current`](crate::TraceContext)),
/// as the `traceparent` and `tracestate` keys; with neither, no trace key at all.
pub fn encode_envelope<E: Event>(envelope: &Envelope<E>) -> Result<EncodedEvent, PublishError> {
    envelope
        .payload
        .validate()
        .map_err(|errors| PublishError::Invalid {
            event_type: E::EVENT_TYPE,
            errors,
        })?;
    let encode_error = |source| PublishError::Encode {
        event_type: E::EVENT_TYPE,
        source,
    };
    // Room for a typical envelope up front: growing the buffer from serde_json's default
    // (reallocating and copying twice for a 400-byte event) cost more than the rest of the
    // encoding's allocations together.
    let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
    // The envelope's own trace context, else the current span's (`opentelemetry` feature).
    #[cfg(feature = "opentelemetry")]
    let current = match envelope.trace {
        Some(_) => None,
        None => crate::trace::TraceContext::current(),
    };
    #[cfg(not(feature = "opentelemetry"))]
    let current = None;
    let trace = envelope.trace.as_ref().or(current.as_ref());
    // The payload's `None` fields are left out unless the type opts out (`Event::OMIT_NONE`).
    serde_json::to_writer(&mut buf, &WireEnvelope(envelope, trace)).map_err(encode_error)?;
    let json = String::from_utf8(buf)
        .map_err(|e| encode_error(serde::ser::Error::custom(format!("not UTF-8: {e}"))))?;
    Ok(EncodedEvent {
        event_type: E::EVENT_TYPE,
        event_id: envelope.id,
        tenant_id: envelope.payload.tenant_id(),
        json,
        channels: Channels::Declared(E::CHANNELS),
    })
}

/// The outcome of a batch publish: one result per event, in the order the events were given.
pub type BatchResults = Vec<Result<Published, PublishError>>;

/// The check every bus runs on a batch before any I/O: each event's encoding (validation
/// included) must have succeeded and each must name a channel. `Ok` with the events when all
/// pass; otherwise the batch's results, nothing written: each failure as it is, and every other
/// event [`PublishError::BatchRejected`].
///
/// ```
/// use event_bus_core::transport::{check_batch, encode};
/// use event_bus_core::{Event, PublishError};
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed { tenant_id: uuid::Uuid }
///
/// let ok = encode(TicketClosed { tenant_id: uuid::Uuid::new_v4() });
/// let bad = encode(TicketClosed { tenant_id: uuid::Uuid::nil() });
/// let results = check_batch(vec![ok, bad]).unwrap_err();
/// assert!(matches!(results[0], Err(PublishError::BatchRejected { rejected: 1, .. })));
/// assert!(matches!(results[1], Err(PublishError::Invalid { .. })));
/// ```
pub fn check_batch(
    encoded: Vec<Result<EncodedEvent, PublishError>>,
) -> Result<Vec<EncodedEvent>, BatchResults> {
    let rejected = encoded
        .iter()
        .filter(|e| match e {
            Ok(event) => event.channels.is_empty(),
            Err(_) => true,
        })
        .count();
    if rejected == 0 {
        return Ok(encoded.into_iter().flatten().collect());
    }
    Err(encoded
        .into_iter()
        .map(|e| match e {
            Ok(event) if event.channels.is_empty() => Err(PublishError::NoChannel {
                event_type: event.event_type,
            }),
            Ok(event) => Err(PublishError::BatchRejected {
                event_type: event.event_type,
                rejected,
            }),
            Err(e) => Err(e),
        })
        .collect())
}

/// Writes encoded events: implemented by each bus, used by [`Context::publish`](crate::Context::publish).
pub trait Publisher: Send + Sync + 'static {
    /// Writes one event.
    fn publish_encoded(
        &self,
        event: EncodedEvent,
    ) -> BoxFuture<'_, Result<Published, PublishError>>;
}

/// The publisher of a context built outside any bus: refuses everything.
pub(crate) struct ClosedPublisher;

impl Publisher for ClosedPublisher {
    fn publish_encoded(&self, _: EncodedEvent) -> BoxFuture<'_, Result<Published, PublishError>> {
        Box::pin(async { Err(PublishError::Closed) })
    }
}
