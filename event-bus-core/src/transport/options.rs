//! [`BusOptions`]: the settings every bus builder shares, and the start checks every bus runs.

use std::time::Duration;

use crate::context::StateMap;
use crate::dispatch::RetryPolicy;
use crate::error::StartError;
use crate::registry::{Resolved, Selection};

/// The settings every bus builder shares: key prefix, shared state, subscriber selection,
/// retry policy and shutdown deadline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BusOptions {
    /// The stream prefix (`event`).
    pub prefix: String,
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
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            prefix: "event".to_owned(),
            state: StateMap::new(),
            selection: Selection::new(),
            allow_no_subscribers: false,
            retry: RetryPolicy::default(),
            shutdown_timeout: Duration::from_secs(30),
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
