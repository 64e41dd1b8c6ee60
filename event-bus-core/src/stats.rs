//! [`BusStats`]: what a bus did, in total and per subscriber, the same on every bus. The
//! counters behind it ([`SubscriberCounters`](crate::transport::SubscriberCounters)) are
//! updated once, where each effect is confirmed: a delivery counts as handled when its
//! acknowledgement is, a dead letter when it is written.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one subscriber did in this process since the bus started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// The subscriber's name.
    pub name: String,
    /// The event type it handles.
    pub event_type: &'static str,
    /// Deliveries handled and acknowledged.
    pub handled: u64,
    /// Handler runs that failed (errors and panics).
    pub failed: u64,
    /// Failed runs that were retried.
    pub retried: u64,
    /// Entries dead-lettered.
    pub dead_lettered: u64,
    /// Entries claimed from other (dead or stuck) consumers (Redis).
    pub claimed: u64,
    /// Pending entries found deleted from the stream when claimed (recorded, not handled).
    pub deleted_while_pending: u64,
    /// Entries a retention cap deleted before this subscriber's group handled them.
    pub trimmed_unhandled: u64,
    /// Reconnections of the subscriber's reader after errors or timeouts (Redis).
    pub reconnects: u64,
    /// Times its consumer group was recreated after `NOGROUP` (Redis).
    pub groups_recreated: u64,
}

/// What a bus did since it was built: the totals over its subscribers, and each subscriber's.
///
/// ```
/// # use event_bus_core::BusStats;
/// let stats = BusStats::default();
/// assert_eq!(stats.handled, 0);
/// assert!(stats.subscriber("ticket-email").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStats {
    /// Events published by this bus.
    pub published: u64,
    /// Sum over the subscribers.
    pub handled: u64,
    /// Sum over the subscribers.
    pub failed: u64,
    /// Sum over the subscribers.
    pub retried: u64,
    /// Sum over the subscribers.
    pub dead_lettered: u64,
    /// Sum over the subscribers.
    pub claimed: u64,
    /// Sum over the subscribers.
    pub deleted_while_pending: u64,
    /// Sum over the subscribers.
    pub trimmed_unhandled: u64,
    /// Sum over the subscribers.
    pub reconnects: u64,
    /// Sum over the subscribers.
    pub groups_recreated: u64,
    /// Each running subscriber, by name.
    pub subscribers: Vec<SubscriberStats>,
}

impl BusStats {
    /// The stats of one subscriber.
    pub fn subscriber(&self, name: &str) -> Option<&SubscriberStats> {
        self.subscribers.iter().find(|s| s.name == name)
    }

    /// Totals of `subscribers`, with `published`.
    pub fn from_subscribers(published: u64, mut subscribers: Vec<SubscriberStats>) -> Self {
        subscribers.sort_by(|a, b| a.name.cmp(&b.name));
        let sum = |f: fn(&SubscriberStats) -> u64| subscribers.iter().map(f).sum();
        Self {
            published,
            handled: sum(|s| s.handled),
            failed: sum(|s| s.failed),
            retried: sum(|s| s.retried),
            dead_lettered: sum(|s| s.dead_lettered),
            claimed: sum(|s| s.claimed),
            deleted_while_pending: sum(|s| s.deleted_while_pending),
            trimmed_unhandled: sum(|s| s.trimmed_unhandled),
            reconnects: sum(|s| s.reconnects),
            groups_recreated: sum(|s| s.groups_recreated),
            subscribers,
        }
    }
}

/// The live counters of one subscriber, shared by the core's worker pool and the transport.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SubscriberCounters {
    /// See [`SubscriberStats::handled`].
    pub handled: AtomicU64,
    /// See [`SubscriberStats::failed`].
    pub failed: AtomicU64,
    /// See [`SubscriberStats::retried`].
    pub retried: AtomicU64,
    /// See [`SubscriberStats::dead_lettered`].
    pub dead_lettered: AtomicU64,
    /// See [`SubscriberStats::claimed`].
    pub claimed: AtomicU64,
    /// See [`SubscriberStats::deleted_while_pending`].
    pub deleted_while_pending: AtomicU64,
    /// See [`SubscriberStats::trimmed_unhandled`].
    pub trimmed_unhandled: AtomicU64,
    /// See [`SubscriberStats::reconnects`].
    pub reconnects: AtomicU64,
    /// See [`SubscriberStats::groups_recreated`].
    pub groups_recreated: AtomicU64,
}

impl SubscriberCounters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A snapshot, under the subscriber's name and event type.
    pub fn snapshot(&self, name: &str, event_type: &'static str) -> SubscriberStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SubscriberStats {
            name: name.to_owned(),
            event_type,
            handled: get(&self.handled),
            failed: get(&self.failed),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            claimed: get(&self.claimed),
            deleted_while_pending: get(&self.deleted_while_pending),
            trimmed_unhandled: get(&self.trimmed_unhandled),
            reconnects: get(&self.reconnects),
            groups_recreated: get(&self.groups_recreated),
        }
    }
}
