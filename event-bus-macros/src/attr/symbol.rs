//! The names `#[derive(Event)]` and `#[subscriber]` recognise, as constants (modelled on
//! serde_derive's `internals/symbol.rs`), and the key lists their error messages show.
//!
//! A key is matched with `meta.path.is_ident(NAME)`; keeping every name here keeps the parsers
//! and the "expected one of: ..." lists in step.

/// `#[event(...)]`
pub(crate) const EVENT: &str = "event";
/// `#[serde(...)]`
pub(crate) const SERDE: &str = "serde";

/// `#[event(name = "...")]` on the struct; `name = "..."` in `#[subscriber]`.
pub(crate) const NAME: &str = "name";
/// `#[event(tenant)]` on a field.
pub(crate) const TENANT: &str = "tenant";
/// `#[event(validate(...))]` on a field.
pub(crate) const VALIDATE: &str = "validate";
/// `#[event(tenant(any_string))]` on a field.
pub(crate) const ANY_STRING: &str = "any_string";
/// `#[event(channels("global", ...))]` on the struct.
pub(crate) const CHANNELS: &str = "channels";
/// `#[event(none_as_null)]` on the struct.
pub(crate) const NONE_AS_NULL: &str = "none_as_null";
/// `#[event(version = N)]` on the struct.
pub(crate) const VERSION: &str = "version";

/// `validate(non_empty)`
pub(crate) const NON_EMPTY: &str = "non_empty";
/// `validate(length(min = .., max = ..))`
pub(crate) const LENGTH: &str = "length";
/// `validate(range(min = .., max = ..))`
pub(crate) const RANGE: &str = "range";
/// `validate(uuid)`
pub(crate) const UUID: &str = "uuid";
/// `validate(custom = path)`
pub(crate) const CUSTOM: &str = "custom";
/// A lower bound.
pub(crate) const MIN: &str = "min";
/// An upper bound.
pub(crate) const MAX: &str = "max";

/// `#[serde(rename = "...")]`
pub(crate) const RENAME: &str = "rename";
/// `#[serde(rename_all = "...")]`
pub(crate) const RENAME_ALL: &str = "rename_all";
/// `rename(serialize = "...")`
pub(crate) const SERIALIZE: &str = "serialize";
/// `rename(deserialize = "...")`
pub(crate) const DESERIALIZE: &str = "deserialize";

/// `#[subscriber(concurrency = N)]`
pub(crate) const CONCURRENCY: &str = "concurrency";
/// `#[subscriber(max_attempts = N)]`
pub(crate) const MAX_ATTEMPTS: &str = "max_attempts";
/// `#[subscriber(start = "earliest" | "latest")]`
pub(crate) const START: &str = "start";
/// `#[subscriber(ordering = "tenant" | "none")]`
pub(crate) const ORDERING: &str = "ordering";
/// `#[subscriber(channel = "...")]`
pub(crate) const CHANNEL: &str = "channel";
/// `#[subscriber(dedupe = "24h")]`
pub(crate) const DEDUPE: &str = "dedupe";

/// The struct-level keys of `#[event(...)]`, for messages.
pub(crate) const CONTAINER_KEYS: &str = "name, channels, none_as_null, version";
/// The field-level keys of `#[event(...)]`, for messages.
pub(crate) const FIELD_KEYS: &str = "tenant, tenant(any_string), validate";
/// The rules of `validate(...)`, for messages.
pub(crate) const RULES: &str =
    "non_empty, length(min = .., max = ..), range(min = .., max = ..), uuid, custom = path";
/// The options of `#[subscriber(...)]`, for messages.
pub(crate) const SUBSCRIBER_KEYS: &str =
    "name, channel, concurrency, max_attempts, start, ordering, dedupe";
