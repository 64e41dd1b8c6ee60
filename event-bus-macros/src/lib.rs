//! Procedural macros of event-bus: `#[derive(Event)]` and `#[subscriber(...)]`.
//!
//! Use them through `event-bus-core`, which re-exports both and holds everything the generated
//! code names (`event_bus_core::__private`). This file only parses and hands off: `event.rs`
//! and `subscriber.rs` build a checked model of their input (attributes are read in `attr/`,
//! names converted in `case.rs`, errors collected in `ctxt.rs`) and generate code from it.
#![warn(missing_docs)]

mod attr;
mod case;
mod ctxt;
mod event;
mod schema;
mod subscriber;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `event_bus_core::Event` for a struct with named fields.
///
/// - `#[event(name = "TICKET_UPDATED")]` on the struct sets the event type (default: the type
///   name in SCREAMING_SNAKE_CASE).
/// - `#[event(channels("global", "emailservice::v7"))]` on the struct sets the channels a
///   publish writes to (`Event::CHANNELS`; default: `global`): at least one, each non-empty,
///   without whitespace, listed once.
/// - `#[event(version = N)]` on the struct: the schema version (default 1), raised to
///   acknowledge a breaking change of the payload (see `event_bus_core::schema`).
/// - `#[event(none_as_null)]` on the struct writes `None` fields as `null` (`Event::OMIT_NONE`
///   is `false`); by default they are left out of the payload.
/// - The tenant is the field `tenant_id`, or the one marked `#[event(tenant)]`; it must hold a
///   non-nil UUID (`uuid::Uuid`, or a `String` holding one). `#[event(tenant(any_string))]` on a
///   `String` tenant field accepts any non-empty string instead (its `tenant_id()` is the UUID it
///   holds, else a name-based UUID of the text).
/// - `#[event(validate(...))]` on a field: `non_empty`, `length(min = N, max = N)`,
///   `range(min = X, max = X)`, `uuid`, `custom = path::to::check`.
///
/// Validation issues name fields by their JSON names (`#[serde(rename_all)]` and
/// `#[serde(rename)]` are honoured). The type is also registered, so a runtime can decode and
/// validate raw JSON of it by name.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares `async fn name(event: Envelope<T>, ctx: Context) -> Result<(), E>` a subscriber of
/// the event type named by the first argument.
///
/// After `ctx`, the function may take any number of `State<S>` parameters: shared values handed
/// to the bus with `.state(value)`, which the bus checks it holds when it starts.
///
/// Options: `name = "..."` (the consumer group; default: the function's name, without its
/// module path, so that moving the function keeps its group), `channel = "..."` (the channel it
/// reads; default `global`), `concurrency = N`,
/// `max_attempts = N`, `start = "earliest" | "latest"`, `ordering = "tenant" | "none"`. The
/// function stays callable as written.
#[proc_macro_attribute]
pub fn subscriber(args: TokenStream, item: TokenStream) -> TokenStream {
    subscriber::expand(args.into(), item.into()).into()
}
