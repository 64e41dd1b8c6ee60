//! [`DeadLetter`]: an event a subscriber gave up on, with why, as every bus lists them.

use chrono::{DateTime, Utc};

use crate::dispatch::FailureKind;
use crate::error::BoxError;

/// An event a subscriber gave up on.
///
/// Buses construct it; its fields are its whole contract (new fields would come with a new
/// major version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter's own id (its entry id in `{stream}:dead-letter` on Redis).
    pub id: String,
    /// The stream the event came from.
    pub source_stream: String,
    /// The entry id it had there.
    pub source_message_id: String,
    /// The subscriber that failed it.
    pub subscriber: String,
    /// The event type (from the stream name).
    pub event_type: String,
    /// How many times the transport delivered the entry (reads and claims included).
    pub deliveries: u32,
    /// How many handler runs failed (what `max_attempts` counts).
    pub runs: u32,
    /// Why it was given up on: which limit was hit, with the handler runs
    /// (`max_attempts reached: 5 handler runs failed (max_attempts = 5)`).
    pub reason: String,
    /// The last failure, in words.
    pub error: String,
    /// The kind of the last failure.
    pub kind: FailureKind,
    /// When it was dead-lettered.
    pub dead_lettered_at: DateTime<Utc>,
    /// The entry's `event` field: the envelope JSON as it was read (possibly malformed).
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The payload as text (lossy for invalid UTF-8).
    pub fn payload_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.payload)
    }
}

/// Why a dead letter could not be listed, replayed or purged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// No dead letter has this id.
    #[error("no dead letter {0}")]
    NotFound(String),
    /// The subscriber that failed it is not running in this bus.
    #[error("subscriber {0:?} is not running in this bus; start it to replay its dead letters")]
    SubscriberNotRunning(String),
    /// The bus is not started (replay needs running subscribers).
    #[error("the bus is not running")]
    NotRunning,
    /// The transport failed.
    #[error("dead-letter operation failed: {0}")]
    Transport(#[source] BoxError),
}
