//! The registry: every event type and subscriber linked into the binary, collected through
//! `inventory`, plus the explicit registrations of a builder, checked once at start.

use std::collections::{BTreeMap, HashMap};

use crate::context::{StateKey, StateMap};
use crate::dispatch::{decode_meta, Failure, Prepared};
use crate::envelope::EventMeta;
use crate::error::StartError;
use crate::event::Event;
use crate::subscriber::{Subscriber, SubscriberOptions};

/// An event type, as `#[derive(Event)]` registers it.
#[derive(Debug, Clone, Copy)]
pub struct EventRegistration {
    /// The wire name.
    pub event_type: &'static str,
    /// The Rust type's path.
    pub rust_type: &'static str,
    /// The channels a publish writes to by default ([`Event::CHANNELS`]).
    pub channels: &'static [&'static str],
    /// Decodes and validates an envelope of this type from JSON.
    pub decode: fn(&[u8]) -> Result<EventMeta, Failure>,
    /// The payload's description, read by [`crate::schema`]. Not public API.
    #[doc(hidden)]
    pub schema: &'static crate::schema::model::EncodedSchema,
}

impl EventRegistration {
    /// The registration of `E`.
    pub const fn of<E: Event>(rust_type: &'static str) -> Self {
        Self {
            event_type: E::EVENT_TYPE,
            rust_type,
            channels: E::CHANNELS,
            decode: decode_meta::<E>,
            schema: E::__SCHEMA,
        }
    }
}

inventory::collect!(EventRegistration);

/// A subscriber, as `#[subscriber]` registers it.
#[derive(Debug, Clone, Copy)]
pub struct SubscriberRegistration {
    /// The subscriber's name: `name = "..."`, or by default the function's own name (without
    /// its module path, so that moving the function does not change its consumer group).
    pub name: &'static str,
    /// The event type it handles.
    pub event_type: &'static str,
    /// Its options.
    pub options: SubscriberOptions,
    /// The handler function's path (`module::path::fn_name`), for messages.
    pub handler: &'static str,
    /// The source file.
    pub file: &'static str,
    /// The source line.
    pub line: u32,
    /// Decodes, validates and binds the handler.
    pub prepare: fn(&[u8]) -> Result<Prepared, Failure>,
    /// The shared state types its `State<T>` parameters need, checked at start.
    pub state: &'static [StateKey],
}

impl SubscriberRegistration {
    /// `file:line (handler)`.
    pub fn location(&self) -> String {
        format!("{}:{} ({})", self.file, self.line, self.handler)
    }
}

inventory::collect!(SubscriberRegistration);

/// Every event type registered with `#[derive(Event)]` in this binary.
pub fn registered_events() -> impl Iterator<Item = &'static EventRegistration> {
    inventory::iter::<EventRegistration>.into_iter()
}

/// Every subscriber registered with `#[subscriber]` in this binary.
pub fn registered_subscribers() -> impl Iterator<Item = &'static SubscriberRegistration> {
    inventory::iter::<SubscriberRegistration>.into_iter()
}

/// Which subscribers a bus runs and which it requires: the part of a builder shared by every
/// bus.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub(crate) explicit: Vec<Subscriber>,
    pub(crate) events: Vec<EventRegistration>,
    pub(crate) only: Option<Vec<String>>,
    pub(crate) discover: bool,
    pub(crate) expected: Vec<String>,
}

impl Selection {
    /// Discover `#[subscriber]`s, no explicit ones, nothing required.
    pub fn new() -> Self {
        Self {
            discover: true,
            ..Self::default()
        }
    }

    /// Adds a subscriber explicitly.
    pub fn subscribe(&mut self, subscriber: Subscriber) {
        self.explicit.push(subscriber);
    }

    /// Registers an event type explicitly (for targets without `inventory`).
    pub fn register_event<E: Event>(&mut self) {
        self.events
            .push(EventRegistration::of::<E>(std::any::type_name::<E>()));
    }

    /// Runs only the named subscribers (discovered or explicit).
    pub fn only<I, S>(&mut self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = Some(names.into_iter().map(Into::into).collect());
    }

    /// Whether the `#[derive(Event)]`s and `#[subscriber]`s linked into the binary are used
    /// (default: yes). Without discovery, register events and subscribers explicitly.
    pub fn discover(&mut self, discover: bool) {
        self.discover = discover;
    }

    /// Start fails unless every named subscriber is found.
    pub fn expect<I, S>(&mut self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.expected.extend(names.into_iter().map(Into::into));
    }

    /// Every event type known (registered with `#[derive(Event)]` or explicitly), one
    /// registration each, by name.
    pub fn events(&self) -> Vec<EventRegistration> {
        let mut events: Vec<EventRegistration> = registered_events()
            .filter(|_| self.discover)
            .copied()
            .chain(self.events.iter().copied())
            .collect();
        events.sort_by_key(|e| e.event_type);
        events.dedup_by_key(|e| e.event_type);
        events
    }

    /// Every event type known: registered with `#[derive(Event)]` or explicitly.
    pub fn event_types(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = registered_events()
            .filter(|_| self.discover)
            .map(|e| e.event_type)
            .chain(self.events.iter().map(|e| e.event_type))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Resolves the selection against the registry and runs every start-up check.
    pub fn resolve(&self) -> Result<Resolved, StartError> {
        let mut events: BTreeMap<&'static str, EventRegistration> = BTreeMap::new();
        let discovered_events = registered_events().filter(|_| self.discover).copied();
        for event in discovered_events.chain(self.events.iter().copied()) {
            match events.get(event.event_type) {
                Some(first) if first.rust_type != event.rust_type => {
                    return Err(StartError::DuplicateEventType {
                        name: event.event_type.to_owned(),
                        first: first.rust_type.to_owned(),
                        second: event.rust_type.to_owned(),
                    });
                }
                Some(_) => {}
                None => {
                    events.insert(event.event_type, event);
                }
            }
        }

        let discovered = registered_subscribers()
            .filter(|_| self.discover)
            .map(Subscriber::from_registration);
        let mut by_name: HashMap<String, Subscriber> = HashMap::new();
        let mut subscribers = Vec::new();
        for sub in discovered.chain(self.explicit.iter().cloned()) {
            if let Some(first) = by_name.get(sub.name()) {
                return Err(StartError::DuplicateSubscriber {
                    name: sub.name().to_owned(),
                    first: first.location().to_owned(),
                    second: sub.location().to_owned(),
                });
            }
            by_name.insert(sub.name().to_owned(), sub.clone());
            subscribers.push(sub);
        }
        let found: Vec<String> = subscribers.iter().map(|s| s.name().to_owned()).collect();

        let wanted = |name: &str| match &self.only {
            Some(only) => only.iter().any(|n| n == name),
            None => true,
        };
        let missing: Vec<String> = self
            .expected
            .iter()
            .chain(self.only.iter().flatten())
            .filter(|name| !by_name.contains_key(name.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(StartError::MissingSubscribers { missing, found });
        }
        subscribers.retain(|s| wanted(s.name()));

        for sub in &subscribers {
            if !events.contains_key(sub.event_type()) {
                return Err(StartError::UnknownEventType {
                    subscriber: sub.name().to_owned(),
                    location: sub.location().to_owned(),
                    event_type: sub.event_type().to_owned(),
                });
            }
            let options = sub.options();
            if options.concurrency == 0 {
                return Err(StartError::InvalidOption {
                    subscriber: sub.name().to_owned(),
                    message: "concurrency must be at least 1".to_owned(),
                });
            }
            if options.max_attempts == Some(0) {
                return Err(StartError::InvalidOption {
                    subscriber: sub.name().to_owned(),
                    message: "max_attempts must be at least 1".to_owned(),
                });
            }
        }
        subscribers.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(Resolved {
            events: events.into_values().collect(),
            subscribers,
        })
    }
}

/// The checked result of a [`Selection`]: what a bus runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolved {
    /// Every known event type, by name.
    pub events: Vec<EventRegistration>,
    /// The subscribers to run, by name.
    pub subscribers: Vec<Subscriber>,
}

impl Resolved {
    /// The registration of an event type.
    pub fn event(&self, event_type: &str) -> Option<&EventRegistration> {
        self.events.iter().find(|e| e.event_type == event_type)
    }

    /// Checks that `state` holds a value of every type a subscriber needs (its `State<T>`
    /// parameters, or [`Subscriber::requires_state`]), so that a missing one stops the start
    /// instead of failing the first event. The first missing type is reported.
    pub fn check_state(&self, state: &StateMap) -> Result<(), StartError> {
        for sub in &self.subscribers {
            if let Some(key) = sub
                .required_state()
                .iter()
                .find(|key| !state.contains_id(key.type_id()))
            {
                return Err(StartError::MissingState {
                    subscriber: sub.name().to_owned(),
                    location: sub.location().to_owned(),
                    type_name: key.type_name().to_owned(),
                    available: state.type_names().into_iter().map(String::from).collect(),
                });
            }
        }
        Ok(())
    }

    /// Logs what was discovered (at `info`).
    pub fn log(&self, bus: &str) {
        let events: Vec<&str> = self.events.iter().map(|e| e.event_type).collect();
        tracing::info!(bus, events = ?events, "event types registered");
        for sub in &self.subscribers {
            tracing::info!(
                bus,
                subscriber = sub.name(),
                event_type = sub.event_type(),
                concurrency = sub.options().concurrency,
                location = sub.location(),
                "subscriber discovered"
            );
        }
    }
}
