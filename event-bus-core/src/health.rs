//! [`Health`]: whether a running bus is reading for every subscriber, for a readiness check an
//! orchestrator can call (`RunningBus::health`).

/// Whether one subscriber is reading.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberHealth {
    /// The subscriber's name.
    pub name: String,
    /// Whether its last read succeeded (or it has not failed since it started).
    pub reading: bool,
    /// Why it is not reading, when it is not (a refused connection says so).
    pub last_error: Option<String>,
}

impl SubscriberHealth {
    /// A subscriber that is reading.
    pub fn reading(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reading: true,
            last_error: None,
        }
    }

    /// A subscriber that is not reading, and why.
    pub fn failing(name: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reading: false,
            last_error: Some(error.into()),
        }
    }
}

/// A running bus's readiness: ready when every subscriber is reading.
///
/// ```
/// use event_bus_core::{Health, SubscriberHealth};
///
/// let health = Health::of(vec![
///     SubscriberHealth::reading("ticket-email"),
///     SubscriberHealth::failing("audit-log", "connection refused"),
/// ]);
/// assert!(!health.ready);
/// assert_eq!(health.not_reading().collect::<Vec<_>>(), ["audit-log"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Whether every subscriber is reading.
    pub ready: bool,
    /// Each subscriber, by name.
    pub subscribers: Vec<SubscriberHealth>,
}

impl Health {
    /// The health of these subscribers.
    pub fn of(mut subscribers: Vec<SubscriberHealth>) -> Self {
        subscribers.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            ready: subscribers.iter().all(|s| s.reading),
            subscribers,
        }
    }

    /// The names of the subscribers that are not reading.
    pub fn not_reading(&self) -> impl Iterator<Item = &str> {
        self.subscribers
            .iter()
            .filter(|s| !s.reading)
            .map(|s| s.name.as_str())
    }
}
