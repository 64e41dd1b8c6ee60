//! [`BusStats`]: what a bus did, in total and per subscriber, the same on every bus. The
//! counters behind it ([`SubscriberCounters`](crate::transport::SubscriberCounters)) are
//! updated once, where each effect is confirmed: a delivery counts as handled when its
//! acknowledgement is, a dead letter when it is written.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::metrics::{self, Count, Labels, SubscriberMetrics};

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
/// Each [`Count`] is also a metric (see the README's metrics table), labelled with the
/// subscriber, its event type and its stream when built with [`SubscriberCounters::new`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SubscriberCounters {
    /// See [`SubscriberStats::handled`].
    pub handled: Count,
    /// See [`SubscriberStats::failed`].
    pub failed: Count,
    /// See [`SubscriberStats::retried`].
    pub retried: Count,
    /// See [`SubscriberStats::dead_lettered`].
    pub dead_lettered: Count,
    /// See [`SubscriberStats::claimed`].
    pub claimed: Count,
    /// See [`SubscriberStats::deleted_while_pending`].
    pub deleted_while_pending: Count,
    /// See [`SubscriberStats::trimmed_unhandled`].
    pub trimmed_unhandled: Count,
    /// See [`SubscriberStats::reconnects`].
    pub reconnects: Count,
    /// See [`SubscriberStats::groups_recreated`].
    pub groups_recreated: Count,
    metrics: SubscriberMetrics,
}

impl SubscriberCounters {
    /// The counters of `subscriber` (of `event_type`, reading `stream`), with their metrics
    /// registered with the recorder installed now. ([`SubscriberCounters::default`] has no
    /// metrics.)
    pub fn new(subscriber: &str, event_type: &'static str, stream: &str) -> Self {
        let labels = Labels {
            subscriber,
            event_type,
            stream,
        };
        Self {
            handled: labels.count(metrics::HANDLED),
            failed: labels.count(metrics::FAILED),
            retried: labels.count(metrics::RETRIED),
            dead_lettered: labels.count(metrics::DEAD_LETTERED),
            claimed: labels.count(metrics::CLAIMED),
            deleted_while_pending: labels.count(metrics::DELETED_WHILE_PENDING),
            trimmed_unhandled: labels.count(metrics::TRIMMED_UNHANDLED),
            reconnects: labels.count(metrics::RECONNECTS),
            groups_recreated: labels.count(metrics::GROUPS_RECREATED),
            metrics: SubscriberMetrics::new(labels),
        }
    }

    /// Adds `n` to `counter` (and to its metric).
    pub fn add(counter: &Count, n: u64) {
        counter.add(n);
    }

    /// Sets the subscriber's `event_bus_group_lag` and `event_bus_group_pending` gauges from a
    /// sample of its group; a `lag` of `None` (not known) leaves that gauge as it was.
    pub fn sample_group(&self, lag: Option<u64>, pending: u64) {
        self.metrics.group(lag, pending);
    }

    /// A handler run took `took`; `published_at` is the envelope's timestamp when it succeeded.
    pub(crate) fn handler_ran(&self, took: Duration, published_at: Option<DateTime<Utc>>) {
        self.metrics.handler_ran(took, published_at);
    }

    /// A snapshot, under the subscriber's name and event type.
    pub fn snapshot(&self, name: &str, event_type: &'static str) -> SubscriberStats {
        SubscriberStats {
            name: name.to_owned(),
            event_type,
            handled: self.handled.get(),
            failed: self.failed.get(),
            retried: self.retried.get(),
            dead_lettered: self.dead_lettered.get(),
            claimed: self.claimed.get(),
            deleted_while_pending: self.deleted_while_pending.get(),
            trimmed_unhandled: self.trimmed_unhandled.get(),
            reconnects: self.reconnects.get(),
            groups_recreated: self.groups_recreated.get(),
        }
    }
}
