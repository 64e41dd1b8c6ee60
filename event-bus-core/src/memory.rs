//! [`MemoryBus`]: the in-process bus, with the API and the delivery semantics of the Redis bus
//! (fan-out, concurrency, per-tenant order, retries, dead letters, graceful shutdown), for tests
//! and for running without Redis. Nothing survives the process.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::context::Shared;
use crate::dead_letter::{DeadLetter, DeadLetterError};
use crate::dispatch::{Dispatcher, Failure, RetryPolicy};
use crate::envelope::Envelope;
use crate::error::{PublishError, ShutdownError, StartError};
use crate::event::{channel_name, Event};
use crate::publish::{encode, encode_envelope, EncodedEvent, Published, Publisher};
use crate::runtime::{BusOptions, Message, Sink, WorkerPool};
use crate::subscriber::{StartFrom, Subscriber};

/// Builds a [`MemoryBus`].
#[derive(Debug, Default)]
#[must_use]
pub struct MemoryBusBuilder {
    options: BusOptions,
}

impl MemoryBusBuilder {
    /// The stream prefix, used in dead letters' `source_stream` (default `event`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.prefix = prefix.into();
        self
    }

    /// Hands a value to every handler (`ctx.state::<T>()`); one value per type.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.options.state.insert(value);
        self
    }

    /// Adds a subscriber explicitly (besides the discovered `#[subscriber]`s).
    pub fn subscribe(mut self, subscriber: Subscriber) -> Self {
        self.options.selection.subscribe(subscriber);
        self
    }

    /// Registers an event type explicitly (for targets where `inventory` cannot run).
    pub fn register_event<E: Event>(mut self) -> Self {
        self.options.selection.register_event::<E>();
        self
    }

    /// Runs only the named subscribers; start fails if one is not found.
    pub fn only<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.selection.only(names);
        self
    }

    /// Whether the `#[derive(Event)]`s and `#[subscriber]`s linked into the binary are used
    /// (default: yes). Without discovery, register both explicitly (`register_event`,
    /// `subscribe`): the path for targets where `inventory` cannot run.
    pub fn discover(mut self, discover: bool) -> Self {
        self.options.selection.discover(discover);
        self
    }

    /// Start fails unless every named subscriber is found (see the linking rule).
    pub fn expect_subscribers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.selection.expect(names);
        self
    }

    /// How failed deliveries are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = policy;
        self
    }

    /// How long shutdown waits for in-flight handlers (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.options.shutdown_timeout = timeout;
        self
    }

    /// Builds the bus (nothing runs until [`MemoryBus::start`]).
    pub fn build(self) -> MemoryBus {
        MemoryBus {
            inner: Arc::new(BusInner {
                options: self.options,
                seq: AtomicU64::new(0),
                phase: Mutex::new(Phase::Building {
                    backlog: Vec::new(),
                }),
                dead: Mutex::new(Vec::new()),
                outstanding: AtomicUsize::new(0),
                settled: Notify::new(),
            }),
        }
    }
}

/// The in-process bus.
///
/// ```
/// use event_bus_core::{Context, Envelope, Event, HandlerError, MemoryBus, Subscriber};
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
///     .build();
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
    id: Arc<str>,
    payload: Vec<u8>,
}

enum Phase {
    Building {
        backlog: Vec<BacklogEntry>,
    },
    Running {
        by_type: HashMap<&'static str, Vec<mpsc::UnboundedSender<Message>>>,
        by_name: HashMap<String, mpsc::UnboundedSender<Message>>,
    },
    Closed,
}

struct BusInner {
    options: BusOptions,
    seq: AtomicU64,
    phase: Mutex<Phase>,
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

    fn settle_one(&self) {
        if self.outstanding.fetch_sub(1, AtomicOrdering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    fn deliver(&self, tx: &mpsc::UnboundedSender<Message>, message: Message) -> bool {
        self.outstanding.fetch_add(1, AtomicOrdering::AcqRel);
        if tx.send(message).is_err() {
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
        let id: Arc<str> = Arc::from(format!(
            "{}-0",
            self.seq.fetch_add(1, AtomicOrdering::Relaxed) + 1
        ));
        let payload = event.json.into_bytes();
        let mut phase = self.phase();
        match &mut *phase {
            Phase::Building { backlog } => backlog.push(BacklogEntry {
                event_type: event.event_type,
                id: Arc::clone(&id),
                payload,
            }),
            Phase::Running { by_type, .. } => {
                for tx in by_type.get(event.event_type).into_iter().flatten() {
                    self.deliver(tx, Message::new(Arc::clone(&id), payload.clone(), 1));
                }
            }
            Phase::Closed => return Err(PublishError::Closed),
        }
        tracing::debug!(entry_id = %id, "published");
        Ok(Published::new(event.event_id, id.to_string()))
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

    /// Validates `event`, wraps it in an envelope and delivers it to every running subscriber
    /// of its type. Before [`MemoryBus::start`], events are kept for subscribers that start at
    /// [`StartFrom::Earliest`].
    pub async fn publish<E: Event>(&self, event: E) -> Result<Published, PublishError> {
        self.inner.write(encode(event)?)
    }

    /// Like [`MemoryBus::publish`], keeping the envelope's id and timestamp.
    pub async fn publish_envelope<E: Event>(
        &self,
        envelope: &Envelope<E>,
    ) -> Result<Published, PublishError> {
        self.inner.write(encode_envelope(envelope)?)
    }

    /// This bus as a [`Publisher`] for code that publishes on any bus.
    pub fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::clone(&self.inner) as Arc<dyn Publisher>
    }

    /// Discovers the subscribers, checks them, and starts delivering.
    pub async fn start(&self) -> Result<RunningMemoryBus, StartError> {
        let resolved = self.inner.options.selection.resolve()?;
        let mut phase = self.inner.phase();
        let backlog = match &mut *phase {
            Phase::Building { backlog } => std::mem::take(backlog),
            _ => return Err(StartError::AlreadyStarted),
        };
        resolved.log("memory");
        let shared = Shared::new(
            self.inner.options.state.clone(),
            Arc::clone(&self.inner) as Arc<dyn Publisher>,
        );
        let mut by_type: HashMap<&'static str, Vec<mpsc::UnboundedSender<Message>>> =
            HashMap::new();
        let mut by_name = HashMap::new();
        let mut feeders = Vec::new();
        for subscriber in resolved.subscribers {
            let (tx, rx) = mpsc::unbounded_channel();
            let sink = MemorySink {
                bus: Arc::clone(&self.inner),
                subscriber: subscriber.name().to_owned(),
                event_type: subscriber.event_type(),
                stream: channel_name(&self.inner.options.prefix, subscriber.event_type()),
            };
            if subscriber.options().start == StartFrom::Earliest {
                for entry in backlog
                    .iter()
                    .filter(|e| e.event_type == subscriber.event_type())
                {
                    self.inner.deliver(
                        &tx,
                        Message::new(Arc::clone(&entry.id), entry.payload.clone(), 1),
                    );
                }
            }
            by_type
                .entry(subscriber.event_type())
                .or_default()
                .push(tx.clone());
            by_name.insert(subscriber.name().to_owned(), tx);
            let capacity = (subscriber.options().concurrency as usize * 2).max(64);
            let dispatcher = Dispatcher::new(subscriber, shared.clone(), self.inner.options.retry);
            let pool = Arc::new(WorkerPool::new(dispatcher, sink, capacity));
            let feeder = tokio::spawn(feed(rx, Arc::clone(&pool)));
            feeders.push((pool, feeder));
        }
        *phase = Phase::Running { by_type, by_name };
        Ok(RunningMemoryBus {
            bus: self.clone(),
            feeders,
        })
    }

    /// The dead letters, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        Ok(self
            .inner
            .dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    /// Delivers a dead letter again, as attempt 1, to the one subscriber that failed it, and
    /// removes it from the list.
    pub async fn replay_dead_letter(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let id = letter.id.as_str();
        let letter = {
            let dead = self
                .inner
                .dead
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            dead.iter()
                .find(|d| d.id == id)
                .cloned()
                .ok_or_else(|| DeadLetterError::NotFound(id.to_owned()))?
        };
        {
            let phase = self.inner.phase();
            let Phase::Running { by_name, .. } = &*phase else {
                return Err(DeadLetterError::NotRunning);
            };
            let tx = by_name
                .get(&letter.subscriber)
                .ok_or_else(|| DeadLetterError::SubscriberNotRunning(letter.subscriber.clone()))?;
            let message = Message::new(letter.source_message_id.as_str(), letter.payload, 1);
            if !self.inner.deliver(tx, message) {
                return Err(DeadLetterError::NotRunning);
            }
        }
        self.inner
            .dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|d| d.id != id);
        Ok(())
    }

    /// Replays every dead letter; returns how many were replayed.
    pub async fn replay_all_dead_letters(&self) -> Result<usize, DeadLetterError> {
        let letters = self.dead_letters().await?;
        for letter in &letters {
            self.replay_dead_letter(letter).await?;
        }
        Ok(letters.len())
    }

    /// Deletes every dead letter; returns how many there were.
    pub async fn purge_dead_letters(&self) -> Result<usize, DeadLetterError> {
        let mut dead = self
            .inner
            .dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = dead.len();
        dead.clear();
        Ok(n)
    }
}

async fn feed(mut rx: mpsc::UnboundedReceiver<Message>, pool: Arc<WorkerPool<MemorySink>>) {
    while let Some(message) = rx.recv().await {
        if !pool.handle(message).await {
            break;
        }
    }
}

/// A started [`MemoryBus`]: wait for it to settle, or shut it down.
#[derive(Debug)]
#[must_use = "dropping the handle leaves the bus running; call `shutdown`"]
pub struct RunningMemoryBus {
    bus: MemoryBus,
    feeders: Vec<(Arc<WorkerPool<MemorySink>>, JoinHandle<()>)>,
}

impl RunningMemoryBus {
    /// The bus.
    pub fn bus(&self) -> &MemoryBus {
        &self.bus
    }

    /// Waits until every delivery so far was handled or dead-lettered (retries included).
    pub fn idle(&self) -> impl Future<Output = ()> + '_ {
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

    /// Stops taking events, lets what was published finish within the shutdown deadline,
    /// and stops the workers. Publishing afterwards fails with [`PublishError::Closed`].
    pub async fn shutdown(self) -> Result<(), ShutdownError> {
        *self.bus.inner.phase() = Phase::Closed;
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
}

impl Sink for MemorySink {
    async fn handled(&self, _message: Message) {
        self.bus.settle_one();
    }

    async fn dead_letter(&self, message: Message, failure: Failure) {
        let id = format!(
            "{}-0",
            self.bus.seq.fetch_add(1, AtomicOrdering::Relaxed) + 1
        );
        tracing::warn!(
            subscriber = %self.subscriber,
            message_id = %message.id,
            deliveries = message.attempt,
            %failure,
            "dead-lettered"
        );
        self.bus
            .dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(DeadLetter {
                id,
                source_stream: self.stream.clone(),
                source_message_id: message.id.to_string(),
                subscriber: self.subscriber.clone(),
                event_type: self.event_type.to_owned(),
                deliveries: message.attempt,
                error: failure.message,
                kind: failure.kind,
                dead_lettered_at: Utc::now(),
                payload: message.payload,
            });
        self.bus.settle_one();
    }

    async fn redeliver(&self, message: &Message) -> Option<u32> {
        Some(message.attempt + 1)
    }
}
