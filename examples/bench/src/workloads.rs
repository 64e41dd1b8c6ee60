//! Our side of each workload: the same work through `event_bus_redis::RedisBus`.
//!
//! Subscribers are registered explicitly (`Subscriber::new` + `.discover(false)`), start at the
//! earliest entry, and run a no-op handler that records the event into a [`Collector`].

use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{Bus, Context, Envelope, HandlerError, RunningBus, StartFrom, Subscriber};
use event_bus_redis::{RedisBus, RedisBusBuilder, RunningRedisBus};

use crate::collector::Collector;
use crate::drive::{self, Pattern};
use crate::event::{payload, TicketUpdated, EVENT_TYPE};

/// Where a bus runs: on the Redis at a URL, or on a Redis Cluster (W3c/W4c) with the benchmark
/// event spread over `partitions` streams (0 or 1: one stream).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Single(&'a str),
    Cluster {
        nodes: &'a [String],
        partitions: u16,
    },
}

fn builder(target: Target<'_>, prefix: &str) -> RedisBusBuilder {
    let builder = match target {
        Target::Single(url) => RedisBus::builder().url(url),
        Target::Cluster { nodes, partitions } => RedisBus::builder()
            .cluster_nodes(nodes.iter().cloned())
            .partitions(EVENT_TYPE, partitions),
    };
    builder.prefix(prefix).discover(false)
}

/// A bus that only publishes (it is never started; were it started, it would run no
/// subscriber, which a publish-only process says with `allow_no_subscribers`).
pub async fn publishing_bus(target: Target<'_>, prefix: &str) -> Result<RedisBus, String> {
    builder(target, prefix)
        .allow_no_subscribers(true)
        .build()
        .await
        .map_err(|e| format!("event-bus: build: {e}"))
}

/// Publishes `n` fresh events with `bus.publish` in `pattern`; returns the time it took.
pub async fn publish(
    bus: &RedisBus,
    pattern: Pattern,
    n: usize,
    inflight: usize,
    rate: f64,
) -> Result<Duration, String> {
    drive::run(pattern, n, inflight, rate, || async {
        bus.publish(payload()).await.map(drop)
    })
    .await
    .map_err(|e| format!("event-bus: publish: {e}"))
}

/// Publishes `n` fresh events with `bus.publish_all`, `batch` per call, one call at a time;
/// returns the time it took. Any event's error fails the run.
pub async fn publish_batches(bus: &RedisBus, n: usize, batch: usize) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    let mut left = n;
    while left > 0 {
        let size = left.min(batch);
        let results = bus.publish_all((0..size).map(|_| payload())).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(format!("event-bus: publish_all: {e}"));
        }
        left -= size;
    }
    Ok(started.elapsed())
}

/// The benchmark subscriber: a no-op handler recording into `collector`.
fn subscriber(name: &str, collector: Arc<Collector>) -> Subscriber {
    Subscriber::new(
        name.to_owned(),
        move |event: Envelope<TicketUpdated>, _ctx: Context| {
            let collector = Arc::clone(&collector);
            async move {
                collector.record(event.id, event.timestamp);
                Ok::<(), HandlerError>(())
            }
        },
    )
    .start(StartFrom::Earliest)
}

/// Builds a bus running one subscriber per `(group name, collector)` and starts it.
pub async fn start_subscribers(
    target: Target<'_>,
    prefix: &str,
    groups: &[(String, Arc<Collector>)],
) -> Result<(RedisBus, RunningRedisBus), String> {
    // Without discovery, the event type is registered explicitly too.
    let mut builder = builder(target, prefix).register_event::<TicketUpdated>();
    for (name, collector) in groups {
        builder = builder.subscribe(subscriber(name, Arc::clone(collector)));
    }
    let bus = builder
        .build()
        .await
        .map_err(|e| format!("event-bus: build: {e}"))?;
    let running = tokio::time::timeout(Duration::from_secs(30), bus.start())
        .await
        .map_err(|_| "event-bus: start did not return within 30 s".to_owned())?
        .map_err(|e| format!("event-bus: start: {e}"))?;
    Ok((bus, running))
}

/// How long a shutdown may take before the run is failed: the handlers are no-ops and every
/// event is handled by then, so this is one `BLOCK` (1 s) plus flushing the acks.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// Shuts a running bus down (in-flight handlers finish and ack). A shutdown that does not
/// finish within [`SHUTDOWN_LIMIT`] fails the run (and is left behind).
pub async fn stop(running: RunningRedisBus) -> Result<(), String> {
    match tokio::time::timeout(SHUTDOWN_LIMIT, running.shutdown()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("event-bus: shutdown: {e}")),
        Err(_) => Err(format!(
            "event-bus: RunningRedisBus::shutdown did not return within {} s",
            SHUTDOWN_LIMIT.as_secs()
        )),
    }
}
