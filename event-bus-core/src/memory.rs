//! [`MemoryBus`]: the in-process bus, with the API and the delivery semantics of the Redis bus
//! (fan-out, concurrency, per-tenant order, retries, dead letters, graceful shutdown), for tests
//! and for running without Redis. Nothing survives the process.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::bus::{Bus, RunningBus};
use crate::context::Shared;
use crate::dead_letter::{DeadLetter, DeadLetterError, DeadLetterFilter};
use crate::dispatch::{Dispatcher, Failure, GiveUp};
use crate::error::{PublishError, ShutdownError, StartError};
use crate::event::StreamLayout;
use crate::health::{Health, SubscriberHealth};
use crate::metrics::{self, PublishTargets};
use crate::publish::{check_batch, BatchResults, EncodedEvent, Published, Publisher};
use crate::stats::{BusStats, SubscriberCounters};
use crate::transport::{bus_builder_options, BusOptions, Dedupe, Message, Sink, WorkerPool};

/// Builds a [`MemoryBus`]. Its options are those every bus shares.
#[derive(Debug, Default)]
#[must_use]
pub struct MemoryBusBuilder {
    options: BusOptions,
}

impl MemoryBusBuilder {
    bus_builder_options!(options);

    /// Builds the bus (nothing runs until [`Bus::start`]). Never fails; it returns a `Result`
    /// like every bus's `build`, so code can switch buses without change.
    pub async fn build(self) -> Result<MemoryBus, StartError> {
        Ok(MemoryBus {
            inner: Arc::new(BusInner {
                options: self.options,
                seq: AtomicU64::new(0),
                published: AtomicU64::new(0),
                publishes: PublishTargets::default(),
                phase: Mutex::new(Phase::Building {
                    backlog: Vec::new(),
                }),
                counted: Mutex::new(Vec::new()),
                dead: Mutex::new(Vec::new()),
                outstanding: AtomicUsize::new(0),
                settled: Notify::new(),
            }),
        })
    }
}

/// The in-process bus.
///
/// ```
/// use event_bus_core::{Bus, Context, Envelope, Event, HandlerError, MemoryBus, RunningBus, Subscriber};
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct InvoiceFinalized { tenant_id: uuid::Uuid, #[event(validate(range(min = 0)))] total_cents: i64 }
///
/// async fn bill(e: Envelope<InvoiceFinalized>, _: Context) -> Result<(), HandlerError> {
///     if e.payload.total_cents == 13 {
///         return Err(HandlerError::permanent("unlucky invoice"));
///     }
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = MemoryBus::builder()
///     .discover(false)
///     .register_event::<InvoiceFinalized>()
///     .subscribe(Subscriber::new("billing", bill))
///     .build()
///     .await?;
/// let running = bus.start().await?;
/// let tenant_id = uuid::Uuid::new_v4();
/// bus.publish(InvoiceFinalized { tenant_id, total_cents: 500 }).await?;
/// bus.publish(InvoiceFinalized { tenant_id, total_cents: 13 }).await?;
/// // Validation happens before anything is delivered:
/// assert!(bus.publish(InvoiceFinalized { tenant_id, total_cents: -1 }).await.is_err());
/// running.idle().await;
/// let dead = bus.dead_letters().await?;
/// assert_eq!(dead.len(), 1);
/// assert_eq!(dead[0].error, "unlucky invoice");
/// assert_eq!(dead[0].reason, "permanent failure after 1 handler run");
/// running.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBus {
    inner: Arc<BusInner>,
}

struct BacklogEntry {
    event_type: &'static str,
    channels: Vec<String>,
    id: Arc<str>,
    payload: Vec<u8>,
}

/// Where a running subscriber's deliveries go.
struct Route {
    name: String,
    event_type: &'static str,
    channel: &'static str,
    tx: Inbox,
}

/// A subscriber's queue, and how many deliveries wait in it, not yet taken by its pool (its
/// lag, for the `event_bus_group_lag` gauge).
struct Inbox {
    tx: mpsc::UnboundedSender<Message>,
    queued: Arc<AtomicUsize>,
}

/// Whether a subscriber of `event_type` on `channel` receives a publish of `published_type`
/// to `channels`: channels share one stream in the per-event-type layout, as on Redis.
fn receives(
    layout: StreamLayout,
    event_type: &str,
    channel: &str,
    published_type: &str,
    channels: &[&str],
) -> bool {
    event_type == published_type
        && (layout == StreamLayout::PerEventType || channels.contains(&channel))
}

/// A started subscriber's counters (kept after shutdown).
struct Counted {
    name: String,
    event_type: &'static str,
    counters: Arc<SubscriberCounters>,
}

enum Phase {
    Building { backlog: Vec<BacklogEntry> },
    Running { routes: Vec<Route> },
    Closed,
}

struct BusInner {
    options: BusOptions,
    seq: AtomicU64,
    published: AtomicU64,
    publishes: PublishTargets,
    phase: Mutex<Phase>,
    counted: Mutex<Vec<Counted>>,
    dead: Mutex<Vec<DeadLetter>>,
    /// Deliveries published or replayed and not yet handled or dead-lettered.
    outstanding: AtomicUsize,
    settled: Notify,
}

impl std::fmt::Debug for BusInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("prefix", &self.options.prefix)
            .field(
                "outstanding",
                &self.outstanding.load(AtomicOrdering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl BusInner {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dead(&self) -> std::sync::MutexGuard<'_, Vec<DeadLetter>> {
        self.dead.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> Arc<str> {
        Arc::from(format!(
            "{}-0",
            self.seq.fetch_add(1, AtomicOrdering::Relaxed) + 1
        ))
    }

    fn settle_one(&self) {
        if self.outstanding.fetch_sub(1, AtomicOrdering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    fn deliver(&self, inbox: &Inbox, message: Message) -> bool {
        self.outstanding.fetch_add(1, AtomicOrdering::AcqRel);
        inbox.queued.fetch_add(1, AtomicOrdering::Relaxed);
        if inbox.tx.send(message).is_err() {
            inbox.queued.fetch_sub(1, AtomicOrdering::Relaxed);
            self.settle_one();
            return false;
        }
        true
    }

    fn write(&self, event: EncodedEvent) -> Result<Published, PublishError> {
        let span = tracing::info_span!(
            "publish",
            bus = "memory",
            event_type = event.event_type,
            event_id = %event.event_id,
            tenant_id = %event.tenant_id,
        );
        let _enter = span.enter();
        let channels = event.channels.names();
        if channels.is_empty() {
            return Err(PublishError::NoChannel {
                event_type: event.event_type,
            });
        }
        let layout = self.options.layout;
        let id = self.next_id();
        let payload = event.json.into_bytes();
        let mut phase = self.phase();
        match &mut *phase {
            Phase::Building { backlog } => backlog.push(BacklogEntry {
                event_type: event.event_type,
                channels: channels.iter().map(|c| (*c).to_owned()).collect(),
                id: Arc::clone(&id),
                payload,
            }),
            Phase::Running { routes } => {
                for route in routes.iter().filter(|r| {
                    receives(layout, r.event_type, r.channel, event.event_type, &channels)
                }) {
                    self.deliver(&route.tx, Message::new(Arc::clone(&id), payload.clone()));
                }
            }
            Phase::Closed => return Err(PublishError::Closed),
        }
        drop(phase);
        self.published.fetch_add(1, AtomicOrdering::Relaxed);
        tracing::debug!(entry_id = %id, "published");
        // One entry id for every channel: in memory there are no streams to tell apart.
        let streams = layout.distinct_streams(&channels);
        for channel in streams {
            self.publishes
                .get(event.event_type, channel, || {
                    layout.stream(&self.options.prefix, channel, event.event_type)
                })
                .record();
        }
        let entries = streams
            .iter()
            .map(|c| ((*c).to_owned(), id.to_string()))
            .collect();
        Ok(Published::of(event.event_id, entries))
    }
}

impl Publisher for BusInner {
    fn publish_encoded(
        &self,
        event: EncodedEvent,
    ) -> BoxFuture<'_, Result<Published, PublishError>> {
        let result = self.write(event);
        Box::pin(async move { result })
    }
}

impl MemoryBus {
    /// A builder.
    pub fn builder() -> MemoryBusBuilder {
        MemoryBusBuilder::default()
    }
}

impl Bus for MemoryBus {
    type Running = RunningMemoryBus;

    async fn publish_encoded(&self, event: EncodedEvent) -> Result<Published, PublishError> {
        self.inner.write(event)
    }

    /// Checks the batch ([`check_batch`]), then writes each event in order, as
    /// [`Bus::publish_encoded`] does.
    async fn publish_encoded_all(&self, events: Vec<EncodedEvent>) -> BatchResults {
        match check_batch(events.into_iter().map(Ok).collect()) {
            Ok(events) => events.into_iter().map(|e| self.inner.write(e)).collect(),
            Err(results) => results,
        }
    }

    fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::clone(&self.inner) as Arc<dyn Publisher>
    }

    async fn start(&self) -> Result<RunningMemoryBus, StartError> {
        let resolved = {
            let phase = self.inner.phase();
            if !matches!(&*phase, Phase::Building { .. }) {
                return Err(StartError::AlreadyStarted);
            }
            drop(phase);
            self.inner.options.resolve_for_start("memory")?
        };
        let mut phase = self.inner.phase();
        let backlog = match &mut *phase {
            Phase::Building { backlog } => std::mem::take(backlog),
            _ => return Err(StartError::AlreadyStarted),
        };
        let shared = Shared::new(
            self.inner.options.state.clone(),
            Arc::clone(&self.inner) as Arc<dyn Publisher>,
        );
        let mut routes = Vec::new();
        let mut counted = Vec::new();
        let mut feeders = Vec::new();
        metrics::describe();
        let mut sampled = Vec::new();
        for subscriber in resolved.subscribers {
            let (tx, rx) = mpsc::unbounded_channel();
            let tx = Inbox {
                tx,
                queued: Arc::new(AtomicUsize::new(0)),
            };
            let queued = Arc::clone(&tx.queued);
            let stream = self.inner.options.stream_of(&subscriber);
            let counters = Arc::new(SubscriberCounters::new(
                subscriber.name(),
                subscriber.event_type(),
                &stream,
            ));
            // What this bus published before it started is delivered to every subscriber of
            // the type, as a group created when the bus was built would have it.
            for entry in backlog.iter().filter(|e| {
                let channels: Vec<&str> = e.channels.iter().map(String::as_str).collect();
                receives(
                    self.inner.options.layout,
                    subscriber.event_type(),
                    subscriber.channel_name(),
                    e.event_type,
                    &channels,
                )
            }) {
                self.inner.deliver(
                    &tx,
                    Message::new(Arc::clone(&entry.id), entry.payload.clone()),
                );
            }
            let sink = MemorySink {
                bus: Arc::clone(&self.inner),
                subscriber: subscriber.name().to_owned(),
                event_type: subscriber.event_type(),
                stream,
                counters: Arc::clone(&counters),
            };
            routes.push(Route {
                name: subscriber.name().to_owned(),
                event_type: subscriber.event_type(),
                channel: subscriber.channel_name(),
                tx,
            });
            counted.push(Counted {
                name: subscriber.name().to_owned(),
                event_type: subscriber.event_type(),
                counters: Arc::clone(&counters),
            });
            let capacity = (subscriber.options().concurrency as usize * 2).max(64);
            let dedupe = subscriber.options().dedupe.map(Dedupe::in_memory);
            let mut dispatcher =
                Dispatcher::new(subscriber, shared.clone(), self.inner.options.retry);
            if let Some(dedupe) = dedupe {
                dispatcher = dispatcher.with_dedupe(dedupe);
            }
            let pool = Arc::new(WorkerPool::new(dispatcher, sink, counters, capacity));
            sampled.push((Arc::clone(&queued), Arc::clone(&pool)));
            let feeder = tokio::spawn(feed(rx, Arc::clone(&pool), queued));
            feeders.push((pool, feeder));
        }
        let interval = self.inner.options.metrics_interval;
        let sampler = (!interval.is_zero()).then(|| tokio::spawn(sample_loop(sampled, interval)));
        let names = routes.iter().map(|r| r.name.clone()).collect();
        *phase = Phase::Running { routes };
        *self
            .inner
            .counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = counted;
        Ok(RunningMemoryBus {
            bus: self.clone(),
            names,
            feeders,
            sampler,
        })
    }

    fn stats(&self) -> BusStats {
        let subscribers = self
            .inner
            .counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|c| c.counters.snapshot(&c.name, c.event_type))
            .collect();
        BusStats::from_subscribers(
            self.inner.published.load(AtomicOrdering::Relaxed),
            subscribers,
        )
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        Ok(self.inner.dead().clone())
    }

    /// The dead letter stays listed until its replay is handled (then it is removed) or
    /// dead-lettered again (then the new dead letter replaces it).
    async fn replay_dead_letter(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let id = letter.id.as_str();
        if letter.foreign {
            // The memory bus writes none, but a letter may come from another bus.
            return Err(DeadLetterError::Foreign { id: id.to_owned() });
        }
        let letter = self
            .inner
            .dead()
            .iter()
            .find(|d| d.id == id)
            .cloned()
            .ok_or_else(|| DeadLetterError::NotFound(id.to_owned()))?;
        let phase = self.inner.phase();
        let Phase::Running { routes } = &*phase else {
            return Err(DeadLetterError::NotRunning);
        };
        let route = routes
            .iter()
            .find(|r| r.name == letter.subscriber)
            .ok_or_else(|| DeadLetterError::SubscriberNotRunning(letter.subscriber.clone()))?;
        let message = Message::new(letter.source_message_id.as_str(), letter.payload).replaying(id);
        if !self.inner.deliver(&route.tx, message) {
            return Err(DeadLetterError::NotRunning);
        }
        Ok(())
    }

    /// Deletes the letters `filter` selects (there are no foreign letters in memory).
    async fn purge_dead_letters(&self, filter: DeadLetterFilter) -> Result<usize, DeadLetterError> {
        let mut dead = self.inner.dead();
        let before = dead.len();
        dead.retain(|letter| !filter.matches(letter));
        Ok(before - dead.len())
    }
}

async fn feed(
    mut rx: mpsc::UnboundedReceiver<Message>,
    pool: Arc<WorkerPool<MemorySink>>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(message) = rx.recv().await {
        queued.fetch_sub(1, AtomicOrdering::Relaxed);
        if !pool.handle(message).await {
            break;
        }
    }
}

/// Sets each subscriber's `event_bus_group_lag` (deliveries waiting in its queue) and
/// `event_bus_group_pending` (taken by its pool: queued there, running, or waiting for a retry)
/// every `interval`, until aborted.
async fn sample_loop(
    subscribers: Vec<(Arc<AtomicUsize>, Arc<WorkerPool<MemorySink>>)>,
    interval: std::time::Duration,
) {
    let mut first = true;
    loop {
        tokio::time::sleep(metrics::sample_delay(interval, first)).await;
        first = false;
        for (queued, pool) in &subscribers {
            let lag = queued.load(AtomicOrdering::Relaxed) as u64;
            pool.sink()
                .counters
                .sample_group(Some(lag), pool.held() as u64);
        }
    }
}

/// A started [`MemoryBus`]: wait for it to settle, or shut it down (see [`RunningBus`]).
#[derive(Debug)]
#[must_use = "dropping the handle leaves the bus running; call `shutdown`"]
pub struct RunningMemoryBus {
    bus: MemoryBus,
    names: Vec<String>,
    feeders: Vec<(Arc<WorkerPool<MemorySink>>, JoinHandle<()>)>,
    /// Samples the lag and pending gauges (none when `metrics_interval` is zero).
    sampler: Option<JoinHandle<()>>,
}

impl RunningBus for RunningMemoryBus {
    type Bus = MemoryBus;

    fn bus(&self) -> &MemoryBus {
        &self.bus
    }

    fn subscribers(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// In memory every started subscriber is reading.
    fn health(&self) -> Health {
        Health::of(
            self.names
                .iter()
                .map(|n| SubscriberHealth::reading(n.as_str()))
                .collect(),
        )
    }

    fn idle(&self) -> impl Future<Output = ()> + Send + '_ {
        let inner = &self.bus.inner;
        async move {
            loop {
                let notified = inner.settled.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if inner.outstanding.load(AtomicOrdering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        }
    }

    async fn shutdown(self) -> Result<(), ShutdownError> {
        // Closing drops the routes' senders: each feeder ends once it has handed over what
        // was published.
        *self.bus.inner.phase() = Phase::Closed;
        if let Some(sampler) = &self.sampler {
            sampler.abort();
        }
        let deadline = tokio::time::Instant::now() + self.bus.inner.options.shutdown_timeout;
        let mut result = Ok(());
        for (pool, _) in &self.feeders {
            pool.begin_shutdown();
        }
        for (pool, mut feeder) in self.feeders {
            // Hand what was published to the pool (or handle it), then drain the pool, all
            // within the deadline; a feeder still handling at the deadline is stopped after the
            // pool has counted its delivery as unfinished.
            let _ = tokio::time::timeout_at(deadline, &mut feeder).await;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(e) = pool.shutdown(left).await {
                result = Err(e);
            }
            feeder.abort();
        }
        result
    }
}

struct MemorySink {
    bus: Arc<BusInner>,
    subscriber: String,
    event_type: &'static str,
    stream: String,
    counters: Arc<SubscriberCounters>,
}

impl Sink for MemorySink {
    async fn handled(&self, message: Message) {
        SubscriberCounters::add(&self.counters.handled, 1);
        if let Some(letter) = &message.replay_of {
            self.bus.dead().retain(|d| d.id != **letter);
        }
        self.bus.settle_one();
    }

    async fn dead_letter(&self, mut message: Message, failure: Failure, give_up: GiveUp) {
        let id = self.bus.next_id();
        let reason = give_up.describe(message.runs);
        tracing::warn!(
            subscriber = %self.subscriber,
            message_id = %message.id,
            runs = message.runs,
            %reason,
            %failure,
            "dead-lettered"
        );
        let letter = DeadLetter {
            id: id.to_string(),
            source_stream: self.stream.clone(),
            source_message_id: message.id.to_string(),
            subscriber: self.subscriber.clone(),
            event_type: self.event_type.to_owned(),
            deliveries: message.deliveries,
            runs: message.runs,
            reason,
            error: failure.message,
            kind: failure.kind,
            dead_lettered_at: Utc::now(),
            payload: std::mem::take(&mut message.payload),
            foreign: false,
        };
        {
            let mut dead = self.bus.dead();
            if let Some(replayed) = &message.replay_of {
                dead.retain(|d| d.id != **replayed);
            }
            dead.push(letter);
        }
        SubscriberCounters::add(&self.counters.dead_lettered, 1);
        self.bus.settle_one();
    }

    async fn failed(&self, _message: &Message) -> bool {
        true
    }
}
