//! The errors of the public API: publishing, starting a bus, and what handlers return.

use std::borrow::Cow;
use std::fmt;

use crate::validation::ValidationErrors;

/// The error type of library calls that can fail for several reasons.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a publish failed. Nothing was written unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The event failed validation; nothing was written.
    #[error("invalid {event_type} event: {errors}")]
    Invalid {
        /// The event type.
        event_type: &'static str,
        /// Every failed rule.
        errors: ValidationErrors,
    },
    /// The event could not be serialised; nothing was written.
    #[error("could not encode {event_type} event: {source}")]
    Encode {
        /// The event type.
        event_type: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The bus is shut down.
    #[error("the bus is shut down")]
    Closed,
    /// The publish named no channel; nothing was written.
    #[error("no channel to publish the {event_type} event to: name at least one")]
    NoChannel {
        /// The event type.
        event_type: &'static str,
    },
    /// The transport (Redis) failed; the event may or may not have been written.
    #[error("could not write the {event_type} event: {source}")]
    Transport {
        /// The event type.
        event_type: &'static str,
        /// The transport's error.
        #[source]
        source: BoxError,
    },
    /// A batch publish ([`Bus::publish_all`](crate::Bus::publish_all)) wrote nothing because
    /// `rejected` of its events failed before any I/O (validation, encoding, no channel); this
    /// one was valid and was not written either.
    #[error("the {event_type} event was not written: {rejected} other event(s) of its batch were rejected before any I/O, and a batch is written only when every event passes")]
    BatchRejected {
        /// The event type.
        event_type: &'static str,
        /// How many events of the batch were rejected.
        rejected: usize,
    },
}

impl PublishError {
    /// Whether publishing the same event again may succeed (transport errors only).
    pub fn is_retryable(&self) -> bool {
        matches!(self, PublishError::Transport { .. })
    }
}

/// Why a bus refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Two subscribers share one name (one consumer group each, so names must be unique). A
    /// subscriber without `name = "..."` is named after its function, so two functions of one
    /// name in different modules collide.
    #[error("two subscribers are named {name:?}: {first} and {second}; a subscriber's name is its consumer group (by default the function's name), so give one of them another with `#[subscriber(\"EVENT_TYPE\", name = \"...\")]`")]
    DuplicateSubscriber {
        /// The shared name.
        name: String,
        /// Where the first is declared.
        first: String,
        /// Where the second is declared.
        second: String,
    },
    /// Two event types share one wire name.
    #[error("two event types are named {name:?}: {first} and {second}; rename one with #[event(name = \"...\")]")]
    DuplicateEventType {
        /// The shared name.
        name: String,
        /// The first Rust type.
        first: String,
        /// The second Rust type.
        second: String,
    },
    /// A subscriber listens to an event type nobody registered.
    #[error("subscriber {subscriber:?} ({location}) listens to {event_type:?}, which is not a registered event type: derive `Event` for it, or with `.discover(false)` register it with `.register_event::<T>()`")]
    UnknownEventType {
        /// The subscriber.
        subscriber: String,
        /// Where it is declared.
        location: String,
        /// The event type it names.
        event_type: String,
    },
    /// Subscribers the program expects were not found (see the linking rule in the README).
    #[error("expected subscribers not found: {}; a crate whose subscribers are never named by the binary is not linked: add `use that_crate as _;` (found: {})", missing.join(", "), if found.is_empty() { "none".to_owned() } else { found.join(", ") })]
    MissingSubscribers {
        /// The names not found.
        missing: Vec<String>,
        /// The names found.
        found: Vec<String>,
    },
    /// A subscriber takes `State<T>`, but the bus was not given a value of type `T`.
    #[error("{}", missing_state_message(.subscriber, .location, .type_name, .available))]
    MissingState {
        /// The subscriber.
        subscriber: String,
        /// Where it is declared.
        location: String,
        /// The type it needs ([`std::any::type_name`]).
        type_name: String,
        /// The types the bus holds.
        available: Vec<String>,
    },
    /// A subscriber option is out of range.
    #[error("subscriber {subscriber:?}: {message}")]
    InvalidOption {
        /// The subscriber.
        subscriber: String,
        /// What is wrong.
        message: String,
    },
    /// No subscriber was found to run: usually the crate holding the `#[subscriber]`s is not
    /// linked into the binary. A publish-only process says `.allow_no_subscribers(true)`.
    #[error("no subscriber to run (event types known: {}): if this process should consume, name the crate holding its #[subscriber]s in the binary (`use my_handlers as _;`); if it only publishes, build the bus with `.allow_no_subscribers(true)`", if events.is_empty() { "none".to_owned() } else { events.join(", ") })]
    NoSubscribers {
        /// The event types the registry knows.
        events: Vec<String>,
    },
    /// A subscriber took a reserved consumer-group name (`event-processors`, the seed's one
    /// group) without the builder allowing it.
    #[error("subscriber {subscriber:?} ({location}) would join the consumer group of the same name, which the seed system uses for all its subscribers: it would take the seed's entries away from it. Rename the subscriber, or, if sharing that group is intended, allow it with `.allow_group_name({subscriber:?})`")]
    ReservedName {
        /// The subscriber (and group) name.
        subscriber: String,
        /// Where it is declared.
        location: String,
    },
    /// The bus is misconfigured (for example, no Redis URL).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// `start` was called twice.
    #[error("the bus is already started")]
    AlreadyStarted,
    /// The transport (Redis) failed while setting up.
    #[error("could not set up {what}: {source}")]
    Transport {
        /// What was being set up.
        what: String,
        /// The transport's error.
        #[source]
        source: BoxError,
    },
}

fn missing_state_message(
    subscriber: &str,
    location: &str,
    type_name: &str,
    available: &[String],
) -> String {
    let mut message = format!(
        "subscriber {subscriber:?} ({location}) takes `State<{type_name}>`, but the bus was not \
         given `.state(value)` of type `{type_name}`; it holds: "
    );
    if available.is_empty() {
        message.push_str("nothing");
    } else {
        let held: Vec<String> = available.iter().map(|t| format!("`{t}`")).collect();
        message.push_str(&held.join(", "));
    }
    if let Some(near) = available
        .iter()
        .find(|held| wraps(type_name, held) || wraps(held, type_name))
    {
        message.push_str(&format!("; did you mean State<{near}>?"));
    }
    message
}

/// Whether the type named `outer` is the one named `inner` inside one or more single-parameter
/// wrappers (`alloc::sync::Arc<app::Mailer>` around `app::Mailer`).
fn wraps(outer: &str, inner: &str) -> bool {
    let mut current = outer;
    while let Some(unwrapped) = unwrap_once(current) {
        if unwrapped == inner {
            return true;
        }
        current = unwrapped;
    }
    false
}

/// `X` of `path::Wrapper<X>`, if the whole name is one wrapper around one type argument.
fn unwrap_once(name: &str) -> Option<&str> {
    let open = name.find('<')?;
    let inner = name.get(open + 1..)?.strip_suffix('>')?;
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => return None,
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    (depth == 0).then_some(inner)
}

/// Why a graceful shutdown did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Handlers were still running at the deadline; their entries stay pending and will be
    /// delivered again.
    #[error("{unfinished} deliveries were still in flight when the shutdown deadline passed")]
    Deadline {
        /// How many were abandoned.
        unfinished: usize,
    },
    /// A background task failed.
    #[error("a worker task failed: {0}")]
    Worker(String),
}

/// What a handler returns on failure: any error, marked transient (retried, the default) or
/// permanent (dead-lettered at once).
///
/// Every `std::error::Error + Send + Sync` converts into it, so `?` works in handlers:
///
/// ```
/// use event_bus_core::HandlerError;
///
/// fn parse(input: &str) -> Result<u32, HandlerError> {
///     let n: u32 = input.parse()?; // transient by default
///     if n == 0 {
///         return Err(HandlerError::permanent("zero is never valid"));
///     }
///     Ok(n)
/// }
/// assert!(parse("x").unwrap_err().is_transient());
/// assert!(parse("0").unwrap_err().is_permanent());
/// ```
pub struct HandlerError {
    permanent: bool,
    source: BoxError,
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn transient(error: impl Into<BoxError>) -> Self {
        Self {
            permanent: false,
            source: error.into(),
        }
    }

    /// A failure that retrying cannot fix: the event is dead-lettered at once.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self {
            permanent: true,
            source: error.into(),
        }
    }

    /// Marks this error permanent.
    pub fn into_permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// Whether the event is dead-lettered without retry.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Whether the event will be retried.
    pub fn is_transient(&self) -> bool {
        !self.permanent
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl<E: Into<BoxError>> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::transient(error)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("permanent", &self.permanent)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

/// A state value was asked for with `ctx.state::<T>()` but never handed to the bus builder.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "no shared state of type `{type_name}`: hand it to the bus with `.state(value)` when building"
)]
pub struct MissingState {
    /// The type asked for.
    pub type_name: Cow<'static, str>,
}
