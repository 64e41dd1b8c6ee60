//! [`RedisBusStats`]: counters of what the runtime did, for metrics and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a [`RedisBus`](crate::RedisBus) did since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisBusStats {
    /// Events published.
    pub published: u64,
    /// Deliveries handled and acknowledged.
    pub handled: u64,
    /// Retries (redeliveries after a failure).
    pub retried: u64,
    /// Entries dead-lettered.
    pub dead_lettered: u64,
    /// Entries claimed from other (dead or stuck) consumers.
    pub claimed: u64,
    /// Pending entries found deleted from the stream when claimed (recorded, not handled).
    pub deleted_while_pending: u64,
    /// Entries a [`Retention::MaxLen`](crate::Retention) cap deleted before every group handled them.
    pub trimmed_unhandled: u64,
    /// Reconnections of blocking readers after errors or timeouts.
    pub reconnects: u64,
    /// Consumer groups recreated after `NOGROUP`.
    pub groups_recreated: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) handled: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) claimed: AtomicU64,
    pub(crate) deleted_while_pending: AtomicU64,
    pub(crate) trimmed_unhandled: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) groups_recreated: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RedisBusStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisBusStats {
            published: get(&self.published),
            handled: get(&self.handled),
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
