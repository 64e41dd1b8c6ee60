//! Typed, multi-tenant events for Rust services.
//!
//! Put `#[derive(Event)]` on payload structs and `#[subscriber("EVENT_TYPE")]` on async handler
//! functions; a bus discovers every subscriber linked into the binary and delivers each event at
//! least once to each of them, with retries and dead letters. This crate holds the model and the
//! in-memory bus ([`MemoryBus`]); `event-bus-redis` runs the same code on Redis Streams.
//!
//! ```
//! use event_bus_core::prelude::*;
//! use event_bus_core::MemoryBus;
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Event)]
//! #[serde(rename_all = "camelCase")]
//! pub struct TicketUpdated {
//!     pub tenant_id: uuid::Uuid,
//!     pub ticket_id: uuid::Uuid,
//!     #[event(validate(length(max = 64)))]
//!     pub changes: Option<serde_json::Map<String, serde_json::Value>>,
//! }
//!
//! #[subscriber("TICKET_UPDATED", name = "lib-doc-email")]
//! async fn email_on_update(event: Envelope<TicketUpdated>, ctx: Context) -> Result<(), HandlerError> {
//!     assert_eq!(ctx.tenant_id(), event.payload.tenant_id);
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = MemoryBus::builder().only(["lib-doc-email"]).build().await?;
//! let running = bus.start().await?;
//! bus.publish(TicketUpdated {
//!     tenant_id: uuid::Uuid::new_v4(),
//!     ticket_id: uuid::Uuid::new_v4(),
//!     changes: None,
//! })
//! .await?;
//! running.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## The linking rule
//!
//! Registrations travel through `inventory`: a crate whose items the final binary never names
//! is not linked, and its `#[derive(Event)]`s and `#[subscriber]`s are not found. Name such a
//! crate once in the binary (`use my_handlers as _;`), and list the subscribers you rely on with
//! `.expect_subscribers([...])` so a missing one fails at start instead of silently.
#![warn(missing_docs)]

mod bus;
mod context;
mod dead_letter;
mod decode;
mod dispatch;
mod envelope;
mod error;
mod event;
mod health;
mod memory;
mod metrics;
mod omit_none;
mod publish;
mod registry;
pub mod schema;
mod stats;
mod subscriber;
mod trace;
pub mod transport;
mod validation;

pub use bus::{Bus, RunningBus};
pub use context::{Context, State, StateKey, StateMap};
pub use dead_letter::{DeadLetter, DeadLetterError, DeadLetterFilter, ReplaySummary};
pub use dispatch::{Failure, FailureKind, RetryPolicy};
pub use envelope::{format_timestamp, Envelope, EventMeta};
pub use error::{BoxError, HandlerError, MissingState, PublishError, ShutdownError, StartError};
pub use event::{is_valid_channel, tenant_uuid, TENANT_NAMESPACE};
pub use event::{is_valid_event_type, stream_name, Event, StreamLayout, DEFAULT_CHANNEL};
pub use health::{Health, SubscriberHealth};
pub use memory::{MemoryBus, MemoryBusBuilder, RunningMemoryBus};
pub use publish::{BatchResults, ChannelEntry, Published, Publisher};
pub use registry::{
    registered_events, registered_subscribers, EventRegistration, SubscriberRegistration,
};
pub use stats::{BusStats, SubscriberStats};
pub use subscriber::{Ordering, StartFrom, Subscriber, SubscriberOptions};
pub use trace::{InvalidTraceparent, TraceContext};
pub use validation::{ValidationErrors, ValidationIssue};

/// Declares an async function as a subscriber of one event type.
pub use event_bus_macros::subscriber;
/// Derives [`Event`] for a payload struct. See the crate docs and the README for attributes.
pub use event_bus_macros::Event;

/// What most programs use: `use event_bus_core::prelude::*;` brings the traits whose methods
/// you call ([`Bus`], [`RunningBus`], [`Event`]) and what a handler names.
pub mod prelude {
    pub use crate::{subscriber, Bus, Context, Envelope, Event, HandlerError, RunningBus, State};
}

/// What generated code names. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use ::core::option::Option::{self, None, Some};
    pub use ::inventory;
    pub use ::std::borrow::Cow;
    pub use ::uuid::Uuid;

    pub use crate::context::{handler_result, missing_state, Context, State, StateKey};
    pub use crate::decode::decode;
    pub use crate::dispatch::{handler_future, prepare, Failure, HandlerFuture, Prepared};
    pub use crate::envelope::Envelope;
    pub use crate::error::HandlerError;
    pub use crate::event::{is_valid_event_type, Event};
    pub use crate::registry::{EventRegistration, SubscriberRegistration};
    pub use crate::schema::model::{no_schema, EncodedSchema, SchemaOf, ViaAny, ViaSchema};
    pub use crate::schema::{payload_schema, Schema};
    pub use crate::subscriber::{Ordering, StartFrom, SubscriberOptions};
    pub use crate::validation::{rules, ValidationErrors};

    /// `serde_json::Value`, as an alias: a re-export would make compiler messages name the
    /// type by this path.
    pub type JsonValue = ::serde_json::Value;

    /// `a == b`, usable in constants.
    pub const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// `parts` joined into a buffer of `N` bytes, and the length used (cut at `N`), usable in
    /// constants: how `#[subscriber]` builds a compile-time error naming both event types.
    pub const fn concat_into<const N: usize>(parts: &[&str]) -> ([u8; N], usize) {
        let mut out = [0u8; N];
        let mut at = 0;
        let mut i = 0;
        while i < parts.len() {
            let bytes = parts[i].as_bytes();
            let mut j = 0;
            while j < bytes.len() && at < N {
                out[at] = bytes[j];
                at += 1;
                j += 1;
            }
            i += 1;
        }
        (out, at)
    }

    /// Asserts, at compile time, that a handler's future is `Send + 'static`.
    pub fn assert_send_future<F: ::core::future::Future + Send + 'static>(_: &F) {}
}
