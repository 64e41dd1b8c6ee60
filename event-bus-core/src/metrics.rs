//! Metrics through the [`metrics`](https://docs.rs/metrics) facade: what a bus did, per
//! subscriber and event type, for whatever recorder the application installs (a Prometheus
//! exporter, say). Without a recorder every handle is the facade's no-op.
//!
//! Every handle is built once (a subscriber's when it starts, a stream's publish counter at its
//! first publish) and reused: recording an event allocates nothing and looks up no labels. A
//! handle is bound to the recorder installed when it was built, so install the recorder before
//! starting the bus.
//!
//! The counts are the ones [`BusStats`](crate::BusStats) reports: each [`Count`] moves the
//! number `stats()` reads and its metric together, where the effect is confirmed.
//!
//! Labels are `subscriber` (the consumer group), `event_type` and `stream`, nothing else: their
//! number is bounded by the subscribers and streams of the binary. There is no tenant label.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Unit};
use chrono::{DateTime, Utc};

/// `event_bus_published_total`: entries written, per event type and stream.
pub const PUBLISHED: &str = "event_bus_published_total";
/// `event_bus_handled_total`: deliveries handled and acknowledged.
pub const HANDLED: &str = "event_bus_handled_total";
/// `event_bus_failed_total`: handler runs that failed (errors and panics).
pub const FAILED: &str = "event_bus_failed_total";
/// `event_bus_retried_total`: failed runs that were retried.
pub const RETRIED: &str = "event_bus_retried_total";
/// `event_bus_dead_lettered_total`: entries dead-lettered.
pub const DEAD_LETTERED: &str = "event_bus_dead_lettered_total";
/// `event_bus_trimmed_unhandled_total`: entries removed from the stream before the group read
/// them, or before it handled them.
pub const TRIMMED_UNHANDLED: &str = "event_bus_trimmed_unhandled_total";
/// `event_bus_claimed_total`: entries claimed from dead or stuck consumers.
pub const CLAIMED: &str = "event_bus_claimed_total";
/// `event_bus_deleted_while_pending_total`: pending entries found deleted when claimed.
pub const DELETED_WHILE_PENDING: &str = "event_bus_deleted_while_pending_total";
/// `event_bus_reconnects_total`: reconnections of the subscriber's reader.
pub const RECONNECTS: &str = "event_bus_reconnects_total";
/// `event_bus_groups_recreated_total`: consumer groups recreated after `NOGROUP`.
pub const GROUPS_RECREATED: &str = "event_bus_groups_recreated_total";
/// `event_bus_handler_duration_seconds`: how long each handler run took.
pub const HANDLER_DURATION: &str = "event_bus_handler_duration_seconds";
/// `event_bus_end_to_end_latency_seconds`: from the envelope's timestamp to the handler's
/// success.
pub const END_TO_END_LATENCY: &str = "event_bus_end_to_end_latency_seconds";
/// `event_bus_group_lag`: entries of the stream not yet delivered to the group (sampled).
pub const GROUP_LAG: &str = "event_bus_group_lag";
/// `event_bus_group_pending`: entries delivered to the group and not yet acknowledged
/// (sampled).
pub const GROUP_PENDING: &str = "event_bus_group_pending";

/// Describes every metric (unit and meaning) to the recorder installed now. Each bus calls it
/// when it starts.
pub fn describe() {
    let counters: [(&'static str, &'static str); 10] = [
        (PUBLISHED, "Entries written by this process, per event type and stream."),
        (HANDLED, "Deliveries handled and acknowledged."),
        (FAILED, "Handler runs that failed (errors and panics)."),
        (RETRIED, "Failed handler runs that were retried."),
        (DEAD_LETTERED, "Entries dead-lettered."),
        (
            TRIMMED_UNHANDLED,
            "Entries removed from the stream (trimmed or deleted) before the group read or handled them.",
        ),
        (CLAIMED, "Entries claimed from dead or stuck consumers."),
        (
            DELETED_WHILE_PENDING,
            "Pending entries found deleted from the stream when claimed.",
        ),
        (RECONNECTS, "Reconnections of the subscriber's reader."),
        (
            GROUPS_RECREATED,
            "Times the subscriber's consumer group was recreated after NOGROUP.",
        ),
    ];
    for (name, meaning) in counters {
        ::metrics::describe_counter!(name, Unit::Count, meaning);
    }
    ::metrics::describe_histogram!(
        HANDLER_DURATION,
        Unit::Seconds,
        "How long each handler run took, whatever its outcome."
    );
    ::metrics::describe_histogram!(
        END_TO_END_LATENCY,
        Unit::Seconds,
        "From the envelope's timestamp (its publish) to the handler run that succeeded."
    );
    ::metrics::describe_gauge!(
        GROUP_LAG,
        Unit::Count,
        "Entries not yet delivered to the subscriber's group (sampled)."
    );
    ::metrics::describe_gauge!(
        GROUP_PENDING,
        Unit::Count,
        "Entries delivered to the subscriber's group and not yet acknowledged (sampled)."
    );
}

/// One count of a subscriber: the number [`BusStats`](crate::BusStats) reports and its metric,
/// moved together by [`SubscriberCounters::add`](crate::transport::SubscriberCounters::add).
#[derive(Debug)]
pub struct Count {
    value: AtomicU64,
    metric: Counter,
}

impl Default for Count {
    /// Zero, with no metric.
    fn default() -> Self {
        Self::new(Counter::noop())
    }
}

impl Count {
    fn new(metric: Counter) -> Self {
        Self {
            value: AtomicU64::new(0),
            metric,
        }
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        self.metric.increment(n);
    }
}

/// The labels of one subscriber's metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Labels<'a> {
    pub(crate) subscriber: &'a str,
    pub(crate) event_type: &'static str,
    pub(crate) stream: &'a str,
}

impl Labels<'_> {
    /// A count of metric `name` under these labels.
    pub(crate) fn count(&self, name: &'static str) -> Count {
        Count::new(::metrics::counter!(
            name,
            "subscriber" => self.subscriber.to_owned(),
            "event_type" => self.event_type,
            "stream" => self.stream.to_owned(),
        ))
    }

    fn histogram(&self, name: &'static str) -> Histogram {
        ::metrics::histogram!(
            name,
            "subscriber" => self.subscriber.to_owned(),
            "event_type" => self.event_type,
            "stream" => self.stream.to_owned(),
        )
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        ::metrics::gauge!(
            name,
            "subscriber" => self.subscriber.to_owned(),
            "event_type" => self.event_type,
            "stream" => self.stream.to_owned(),
        )
    }
}

/// A subscriber's histograms and gauges (its counters are [`Count`]s).
#[derive(Debug)]
pub(crate) struct SubscriberMetrics {
    handler_duration: Histogram,
    end_to_end: Histogram,
    lag: Gauge,
    pending: Gauge,
}

impl Default for SubscriberMetrics {
    fn default() -> Self {
        Self {
            handler_duration: Histogram::noop(),
            end_to_end: Histogram::noop(),
            lag: Gauge::noop(),
            pending: Gauge::noop(),
        }
    }
}

impl SubscriberMetrics {
    pub(crate) fn new(labels: Labels<'_>) -> Self {
        Self {
            handler_duration: labels.histogram(HANDLER_DURATION),
            end_to_end: labels.histogram(END_TO_END_LATENCY),
            lag: labels.gauge(GROUP_LAG),
            pending: labels.gauge(GROUP_PENDING),
        }
    }

    /// A handler run took `took`; when it succeeded, `published_at` is its envelope's
    /// timestamp.
    pub(crate) fn handler_ran(&self, took: Duration, published_at: Option<DateTime<Utc>>) {
        self.handler_duration.record(took.as_secs_f64());
        if let Some(at) = published_at {
            // A publisher's clock ahead of ours counts as no delay, not a negative one. In
            // `SystemTime`s: no calendar arithmetic per event.
            let delay = std::time::SystemTime::now()
                .duration_since(at.into())
                .unwrap_or_default();
            self.end_to_end.record(delay.as_millis() as f64 / 1000.0);
        }
    }

    /// A sample of the group's state; `lag` is `None` when it is not known (left as it was).
    pub(crate) fn group(&self, lag: Option<u64>, pending: u64) {
        if let Some(lag) = lag {
            self.lag.set(lag as f64);
        }
        self.pending.set(pending as f64);
    }
}

/// Where a bus writes each event type on each channel: the stream's name and its
/// `event_bus_published_total` counter, both built at the first publish and then looked up,
/// so that a publish neither formats the stream name nor looks up labels again.
///
/// The look-up is by the event type's address (event types are `&'static str`) and a key that
/// names the stream within the type: its channel, or the stream's own name where the stream
/// depends on more than the channel (a partition). The same type name at two addresses (two crates' copies of a literal) gets two
/// entries for one stream, whose counters the recorder merges, as it does any handles with
/// equal labels.
#[derive(Debug, Default)]
pub struct PublishTargets {
    by_type: RwLock<HashMap<usize, Vec<Arc<PublishTarget>>, BuildHasherDefault<AddressHasher>>>,
}

/// Hashes an address with a multiplication (Fibonacci hashing): the keys of
/// [`PublishTargets`] are distinct pointers, not input anyone controls, and SipHash was a
/// measurable part of a publish.
#[derive(Debug, Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, address: usize) {
        // The high bits mixed into the low ones too: the table indexes by the low bits, and
        // an aligned address multiplied keeps its trailing zeros.
        let mixed = (address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = mixed ^ (mixed >> 29);
    }
}

/// One stream a bus publishes to, with its counter: see [`PublishTargets`].
#[derive(Debug)]
pub struct PublishTarget {
    key: Box<str>,
    stream: Box<str>,
    counter: Counter,
}

impl PublishTarget {
    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Counts one entry written to the stream.
    pub fn record(&self) {
        self.counter.increment(1);
    }

    /// Counts `n` entries written to the stream (a batch's, at once).
    pub fn record_n(&self, n: u64) {
        self.counter.increment(n);
    }
}

impl PublishTargets {
    /// The target of `event_type` under `key` (see above); `stream` names its stream the
    /// first time.
    pub fn get(
        &self,
        event_type: &'static str,
        key: &str,
        stream: impl FnOnce() -> String,
    ) -> Arc<PublishTarget> {
        let address = event_type.as_ptr() as usize;
        let find = |targets: &Vec<Arc<PublishTarget>>| {
            targets.iter().find(|t| *t.key == *key).map(Arc::clone)
        };
        if let Some(target) = self
            .by_type
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&address)
            .and_then(find)
        {
            return target;
        }
        let mut by_type = self.by_type.write().unwrap_or_else(PoisonError::into_inner);
        let targets = by_type.entry(address).or_default();
        if let Some(target) = find(targets) {
            return target;
        }
        let stream = stream();
        let target = Arc::new(PublishTarget {
            key: key.into(),
            counter: ::metrics::counter!(
                PUBLISHED,
                "event_type" => event_type,
                "stream" => stream.clone(),
            ),
            stream: stream.into(),
        });
        targets.push(Arc::clone(&target));
        target
    }
}

/// The default [`BusOptions::metrics_interval`](crate::transport::BusOptions::metrics_interval):
/// how often each group's lag and pending count are sampled.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(15);

/// The wait before a bus's next sample of its groups, every `interval`: the first one at a
/// random point of the interval (so that processes started together do not sample together),
/// later ones within ±10 % of it.
pub fn sample_delay(interval: Duration, first: bool) -> Duration {
    let (low, high) = if first { (0.0, 1.0) } else { (0.9, 1.1) };
    interval.mul_f64(low + (high - low) * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_move_without_a_recorder() {
        let count = Count::default();
        count.add(2);
        count.add(1);
        assert_eq!(count.get(), 3);
        let targets = PublishTargets::default();
        let mut named = 0;
        for channel in ["default", "default", "audit"] {
            let target = targets.get("TICKET_UPDATED", channel, || {
                named += 1;
                format!("event:{channel}:TICKET_UPDATED")
            });
            target.record();
            assert_eq!(target.stream(), format!("event:{channel}:TICKET_UPDATED"));
        }
        assert_eq!(named, 2, "each stream is named once");
    }

    #[test]
    fn sample_delays_are_jittered_within_bounds() {
        let interval = Duration::from_secs(10);
        for _ in 0..100 {
            assert!(sample_delay(interval, true) < interval);
            let next = sample_delay(interval, false);
            assert!(next >= Duration::from_secs(9) && next <= Duration::from_secs(11));
        }
    }
}
