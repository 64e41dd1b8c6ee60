//! [`DeadLetter`]: an event a subscriber gave up on, with why, as every bus lists them;
//! [`DeadLetterFilter`]: which dead letters to purge; [`ReplaySummary`]: what a replay of them
//! all did.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::dispatch::FailureKind;
use crate::error::BoxError;

/// An event a subscriber gave up on.
///
/// Buses construct it; its fields are its whole contract (new fields would come with a new
/// major version).
///
/// **Foreign letters.** A dead-letter stream on Redis can be shared with another
/// implementation of the wire format: the seed system (the TypeScript event bus) writes its own
/// dead letters to the same `{stream}:dead-letter`, with only the original entry's fields and
/// `sourceStream`, `sourceMessageId`, `deliveries`, `deadLetteredAt`. Such a letter names no
/// subscriber: it is listed with [`foreign`](Self::foreign) set, an empty `subscriber` and
/// `error`, `runs` 0, [`FailureKind::Crashed`] (the seed gives up after a number of
/// deliveries) and a `reason` that says so. It cannot be replayed here (no subscriber of this
/// bus failed it: [`DeadLetterError::Foreign`]), [`Bus::replay_all_dead_letters`] skips it, and
/// [`Bus::purge_dead_letters`] leaves it alone unless the filter selects foreign letters.
///
/// [`Bus::replay_all_dead_letters`]: crate::Bus::replay_all_dead_letters
/// [`Bus::purge_dead_letters`]: crate::Bus::purge_dead_letters
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter's own id (its entry id in `{stream}:dead-letter` on Redis).
    pub id: String,
    /// The stream the event came from.
    pub source_stream: String,
    /// The entry id it had there.
    pub source_message_id: String,
    /// The subscriber that failed it (empty for a [foreign](Self::foreign) letter).
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
    /// Written by another implementation sharing the dead-letter stream (the seed system), not
    /// by this one: it names no subscriber (see [Foreign letters](DeadLetter#foreign-letters)).
    /// Always `false` on the in-memory bus.
    pub foreign: bool,
}

impl DeadLetter {
    /// The payload as text (lossy for invalid UTF-8).
    pub fn payload_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.payload)
    }

    /// Whether another implementation wrote it (the same as [`DeadLetter::foreign`]).
    pub fn is_foreign(&self) -> bool {
        self.foreign
    }
}

/// Which dead letters were written by whom, for a [`DeadLetterFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Origin {
    #[default]
    Ours,
    Foreign,
    All,
}

/// Which dead letters [`Bus::purge_dead_letters`](crate::Bus::purge_dead_letters) deletes.
///
/// Start from the letters' origin — [`ours`](Self::ours) (the [`Default`]),
/// [`foreign`](Self::foreign) or [`all`](Self::all) — then narrow it: a letter matches when it
/// passes every condition given ([`subscriber`](Self::subscriber),
/// [`ids`](Self::ids), [`event_type`](Self::event_type)); calling one of them again widens that
/// condition (a letter of either subscriber, of any of the ids).
///
/// ```
/// use event_bus_core::DeadLetterFilter;
///
/// // What the default purge deletes: every letter this implementation wrote, none of the seed's.
/// assert_eq!(DeadLetterFilter::default(), DeadLetterFilter::ours());
/// // ticket-email's letters of TICKET_UPDATED only.
/// let f = DeadLetterFilter::ours().subscriber("ticket-email").event_type("TICKET_UPDATED");
/// // Two letters by id, whoever wrote them.
/// let g = DeadLetterFilter::all().ids(["1732665600123-0", "1732665600456-0"]);
/// # let _ = (f, g);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct DeadLetterFilter {
    origin: Origin,
    subscribers: Option<BTreeSet<String>>,
    ids: Option<BTreeSet<String>>,
    event_types: Option<BTreeSet<String>>,
}

impl DeadLetterFilter {
    /// The letters this implementation wrote (the default): every letter that names its
    /// subscriber, whichever process of this bus wrote it. Never a foreign letter.
    pub fn ours() -> Self {
        Self::default()
    }

    /// The letters another implementation sharing the dead-letter streams wrote (the seed
    /// system's, see [Foreign letters](DeadLetter#foreign-letters)). None on the in-memory bus.
    /// Deleting them takes them from the seed's own tooling too.
    pub fn foreign() -> Self {
        Self {
            origin: Origin::Foreign,
            ..Self::default()
        }
    }

    /// Every letter, ours and foreign.
    pub fn all() -> Self {
        Self {
            origin: Origin::All,
            ..Self::default()
        }
    }

    /// Only the letters of the subscriber `name` (called again: of any of the names given).
    /// Foreign letters name no subscriber, so none matches.
    pub fn subscriber(mut self, name: impl Into<String>) -> Self {
        self.subscribers
            .get_or_insert_with(BTreeSet::new)
            .insert(name.into());
        self
    }

    /// Only the letters with these ids ([`DeadLetter::id`]; called again: any of the ids given).
    /// An empty list matches nothing. The origin still applies: with [`ours`](Self::ours), the
    /// id of a foreign letter is not deleted; use [`all`](Self::all) for "these ids, whoever
    /// wrote them".
    pub fn ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ids
            .get_or_insert_with(BTreeSet::new)
            .extend(ids.into_iter().map(Into::into));
        self
    }

    /// Only the letters of this event type ([`DeadLetter::event_type`], e.g. `"TICKET_UPDATED"`;
    /// called again: of any of the types given).
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_types
            .get_or_insert_with(BTreeSet::new)
            .insert(event_type.into());
        self
    }

    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        let origin = match self.origin {
            Origin::Ours => !letter.foreign,
            Origin::Foreign => letter.foreign,
            Origin::All => true,
        };
        let within = |set: &Option<BTreeSet<String>>, value: &str| {
            set.as_ref().is_none_or(|set| set.contains(value))
        };
        origin
            && (self.subscribers.is_none() || !letter.foreign)
            && within(&self.subscribers, &letter.subscriber)
            && within(&self.ids, &letter.id)
            && within(&self.event_types, &letter.event_type)
    }
}

/// What [`Bus::replay_all_dead_letters`](crate::Bus::replay_all_dead_letters) did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReplaySummary {
    /// Letters handed to their subscriber again (each stays listed until its replay is handled,
    /// or is replaced by a new letter if it fails again).
    pub replayed: usize,
    /// [Foreign](DeadLetter#foreign-letters) letters left as they are: the implementation that
    /// wrote them (the seed system) must replay them with its own tooling.
    pub skipped_foreign: usize,
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
    /// The letter was written by another implementation sharing the dead-letter stream (the
    /// seed system) and names no subscriber of this bus: see
    /// [Foreign letters](DeadLetter#foreign-letters).
    #[error(
        "dead letter {id} was written by another implementation (the seed system) and names no \
         subscriber; replay it with that system's own tooling"
    )]
    Foreign {
        /// The letter's id.
        id: String,
    },
    /// The transport failed.
    #[error("dead-letter operation failed: {0}")]
    Transport(#[source] BoxError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(id: &str, subscriber: &str, event_type: &str, foreign: bool) -> DeadLetter {
        DeadLetter {
            id: id.to_owned(),
            source_stream: format!("event:{event_type}"),
            source_message_id: "1-0".to_owned(),
            subscriber: subscriber.to_owned(),
            event_type: event_type.to_owned(),
            deliveries: 1,
            runs: 1,
            reason: String::new(),
            error: String::new(),
            kind: FailureKind::Handler,
            dead_lettered_at: Utc::now(),
            payload: Vec::new(),
            foreign,
        }
    }

    #[test]
    fn origins() {
        let ours = letter("1-0", "email", "T", false);
        let seed = letter("2-0", "", "T", true);
        assert!(DeadLetterFilter::ours().matches(&ours));
        assert!(!DeadLetterFilter::ours().matches(&seed));
        assert!(!DeadLetterFilter::foreign().matches(&ours));
        assert!(DeadLetterFilter::foreign().matches(&seed));
        assert!(DeadLetterFilter::all().matches(&ours) && DeadLetterFilter::all().matches(&seed));
        assert_eq!(DeadLetterFilter::default(), DeadLetterFilter::ours());
    }

    #[test]
    fn conditions_all_hold_and_repeated_calls_widen() {
        let a = letter("1-0", "email", "T", false);
        let b = letter("2-0", "sla", "U", false);
        let seed = letter("3-0", "", "T", true);
        let by_sub = DeadLetterFilter::ours().subscriber("email");
        assert!(by_sub.matches(&a) && !by_sub.matches(&b));
        let either = by_sub.clone().subscriber("sla");
        assert!(either.matches(&a) && either.matches(&b));
        assert!(!DeadLetterFilter::all().subscriber("").matches(&seed));
        let ids = DeadLetterFilter::all().ids(["1-0", "3-0"]);
        assert!(ids.matches(&a) && !ids.matches(&b) && ids.matches(&seed));
        assert!(!DeadLetterFilter::ours().ids(["3-0"]).matches(&seed));
        assert!(!DeadLetterFilter::all()
            .ids(Vec::<String>::new())
            .matches(&a));
        let both = DeadLetterFilter::ours().subscriber("email").ids(["2-0"]);
        assert!(!both.matches(&a) && !both.matches(&b));
        let typed = DeadLetterFilter::all().event_type("T");
        assert!(typed.matches(&a) && !typed.matches(&b) && typed.matches(&seed));
    }
}
