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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
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
            // A publisher's clock ahead of ours counts as no delay, not a negative one.
            let ms = (Utc::now() - at).num_milliseconds().max(0);
            self.end_to_end.record(ms as f64 / 1000.0);
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

/// The publish counters of a bus, one per stream, each built at the stream's first publish.
#[derive(Debug, Default)]
pub struct PublishCounters {
    by_stream: RwLock<HashMap<String, Counter>>,
}

impl PublishCounters {
    /// Counts one entry of `event_type` written to `stream`.
    pub fn record(&self, event_type: &'static str, stream: &str) {
        self.record_n(event_type, stream, 1);
    }

    /// Counts `n` entries of `event_type` written to `stream` (a batch's, at once).
    pub fn record_n(&self, event_type: &'static str, stream: &str, n: u64) {
        if let Some(counter) = self
            .by_stream
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(stream)
        {
            counter.increment(n);
            return;
        }
        let mut by_stream = self
            .by_stream
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        by_stream
            .entry(stream.to_owned())
            .or_insert_with(|| {
                ::metrics::counter!(
                    PUBLISHED,
                    "event_type" => event_type,
                    "stream" => stream.to_owned(),
                )
            })
            .increment(n);
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
        let publishes = PublishCounters::default();
        publishes.record("TICKET_UPDATED", "event:TICKET_UPDATED");
        publishes.record("TICKET_UPDATED", "event:TICKET_UPDATED");
        assert_eq!(publishes.by_stream.read().map(|m| m.len()).ok(), Some(1));
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
