//! [`BusOptions`]: the settings every bus builder shares.

use std::time::Duration;

use crate::context::State;
use crate::dispatch::RetryPolicy;
use crate::registry::Selection;

/// The settings every bus builder shares: key prefix, shared state, subscriber selection,
/// retry policy and shutdown deadline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BusOptions {
    /// The stream prefix (`event`).
    pub prefix: String,
    /// Shared state for handlers.
    pub state: State,
    /// Which subscribers run.
    pub selection: Selection,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// How long a graceful shutdown waits for in-flight handlers.
    pub shutdown_timeout: Duration,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            prefix: "event".to_owned(),
            state: State::new(),
            selection: Selection::new(),
            retry: RetryPolicy::default(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}
