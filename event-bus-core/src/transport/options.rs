//! [`BusOptions`]: the settings every bus builder shares, and the start checks every bus runs.

use std::time::Duration;

use crate::context::StateMap;
use crate::dispatch::RetryPolicy;
use crate::error::StartError;
use crate::event::StreamLayout;
use crate::registry::{Resolved, Selection};
use crate::subscriber::Subscriber;

/// Consumer-group names a subscriber may not take unless the builder allows it by name:
/// `event-processors` is the seed system's one group for everything, so a subscriber of that
/// name would join it and take the seed's entries.
pub const RESERVED_GROUP_NAMES: &[&str] = &["event-processors"];

/// The settings every bus builder shares: key prefix, shared state, subscriber selection,
/// retry policy and shutdown deadline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BusOptions {
    /// The stream prefix (`event`).
    pub prefix: String,
    /// How stream keys are laid out (default: one stream per event type).
    pub layout: StreamLayout,
    /// Reserved group names the caller allowed a subscriber to take.
    pub allowed_reserved_names: Vec<String>,
    /// Shared state for handlers.
    pub state: StateMap,
    /// Which subscribers run.
    pub selection: Selection,
    /// Whether start may find no subscriber at all.
    pub allow_no_subscribers: bool,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// How long a graceful shutdown waits for in-flight handlers.
    pub shutdown_timeout: Duration,
    /// How often the bus samples each subscriber's group lag and pending count for its metrics
    /// (default 15 s; zero: never).
    pub metrics_interval: Duration,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            prefix: "event".to_owned(),
            layout: StreamLayout::default(),
            allowed_reserved_names: Vec::new(),
            state: StateMap::new(),
            selection: Selection::new(),
            allow_no_subscribers: false,
            retry: RetryPolicy::default(),
            shutdown_timeout: Duration::from_secs(30),
            metrics_interval: crate::metrics::DEFAULT_SAMPLE_INTERVAL,
        }
    }
}

impl BusOptions {
    /// Every check a bus runs at start, the same on every bus: resolves the subscribers
    /// against the registry, checks that each one's shared state was given, refuses an empty
    /// set unless allowed, and logs what was found (at `info`; `bus` names the bus).
    pub fn resolve_for_start(&self, bus: &str) -> Result<Resolved, StartError> {
        let resolved = self.selection.resolve()?;
        resolved.check_state(&self.state)?;
        for sub in &resolved.subscribers {
            if RESERVED_GROUP_NAMES.contains(&sub.name())
                && !self.allowed_reserved_names.iter().any(|n| n == sub.name())
            {
                return Err(StartError::ReservedName {
                    subscriber: sub.name().to_owned(),
                    location: sub.location().to_owned(),
                });
            }
        }
        if resolved.subscribers.is_empty() && !self.allow_no_subscribers {
            return Err(StartError::NoSubscribers {
                events: resolved
                    .events
                    .iter()
                    .map(|e| e.event_type.to_owned())
                    .collect(),
            });
        }
        resolved.log(bus);
        Ok(resolved)
    }
}

impl BusOptions {
    /// The stream `subscriber` reads: its event type on its channel, in this bus's layout.
    pub fn stream_of(&self, subscriber: &Subscriber) -> String {
        self.layout.stream(
            &self.prefix,
            subscriber.channel_name(),
            subscriber.event_type(),
        )
    }

    /// Every stream of the bus's event types: each on its declared channels and on the
    /// channels its subscribers read (one stream per type in the per-event-type layout).
    pub fn streams(&self) -> Vec<String> {
        let mut streams: Vec<String> = Vec::new();
        let subscribers = self
            .selection
            .resolve()
            .map(|r| r.subscribers)
            .unwrap_or_default();
        for event in self.selection.events() {
            let channels = event.channels.iter().copied().chain(
                subscribers
                    .iter()
                    .filter(|s| s.event_type() == event.event_type)
                    .map(Subscriber::channel_name),
            );
            for channel in channels {
                let stream = self.layout.stream(&self.prefix, channel, event.event_type);
                if !streams.contains(&stream) {
                    streams.push(stream);
                }
            }
        }
        streams
    }
}
