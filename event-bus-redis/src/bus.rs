//! [`RedisBus`]: publishing to Redis Streams, starting the consumers of every subscriber, and
//! the dead-letter operations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use event_bus_core::runtime::{Dispatcher, Message, Shared};
use event_bus_core::{
    channel_name, encode, encode_envelope, DeadLetter, DeadLetterError, EncodedEvent, Envelope,
    Event, PublishError, Published, Publisher, ShutdownError, StartError,
};
use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{cmd, Client, Value};
use tracing::Instrument;

use crate::config::{RedisBusBuilder, RedisConfig};
use crate::connection;
use crate::consumer::Consumer;
use crate::dead_letter;
use crate::keys::dead_letter_stream;
use crate::reply;
use crate::stats::{Counters, RedisBusStats};

/// The event bus on Redis Streams.
///
/// Cheap to clone: clones share the connection and the running consumers.
///
/// ```no_run
/// use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError};
/// use event_bus_redis::RedisBus;
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed { tenant_id: uuid::Uuid }
///
/// #[subscriber("TICKET_CLOSED", name = "close-notifier")]
/// async fn notify(event: Envelope<TicketClosed>, _ctx: Context) -> Result<(), HandlerError> {
///     println!("ticket closed for {}", event.payload.tenant_id);
///     Ok(())
/// }
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = RedisBus::builder().url("redis://127.0.0.1:6379").build().await?;
/// let running = bus.start().await?;
/// bus.publish(TicketClosed { tenant_id: uuid::Uuid::new_v4() }).await?;
/// running.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<BusInner>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("prefix", &self.inner.config.common.prefix)
            .field("consumer", &self.inner.consumer)
            .finish_non_exhaustive()
    }
}

struct BusInner {
    config: RedisConfig,
    client: Client,
    conn: ConnectionManager,
    consumer: String,
    counters: Arc<Counters>,
    /// The running consumers by subscriber name (for replays).
    running: Mutex<
        Option<
            HashMap<String, Arc<event_bus_core::runtime::WorkerPool<crate::consumer::RedisSink>>>,
        >,
    >,
}

impl BusInner {
    async fn write(&self, event: EncodedEvent) -> Result<Published, PublishError> {
        let stream = channel_name(&self.config.common.prefix, event.event_type);
        let span = tracing::info_span!(
            "publish",
            bus = "redis",
            stream = %stream,
            event_type = event.event_type,
            event_id = %event.event_id,
            tenant_id = %event.tenant_id,
        );
        async {
            let mut conn = self.conn.clone();
            // Sized up front: the JSON is most of it, and growing the buffer arg by arg
            // reallocated it several times per publish.
            let size = "XADD*eventchannel".len() + 2 * stream.len() + event.json.len();
            let reply: Value = redis::Cmd::with_capacity(7, size)
                .arg("XADD")
                .arg(&stream)
                .arg("*")
                .arg("event")
                .arg(&event.json)
                .arg("channel")
                .arg(&stream)
                .query_async(&mut conn)
                .await
                .map_err(|e| PublishError::Transport {
                    event_type: event.event_type,
                    source: Box::new(e),
                })?;
            let entry_id = reply::string(reply).ok_or_else(|| PublishError::Transport {
                event_type: event.event_type,
                source: "XADD returned no entry id".into(),
            })?;
            Counters::add(&self.counters.published, 1);
            tracing::debug!(%entry_id, "published");
            Ok(Published::new(event.event_id, entry_id))
        }
        .instrument(span)
        .await
    }

    fn event_streams(&self) -> Vec<String> {
        self.config
            .common
            .selection
            .event_types()
            .into_iter()
            .map(|t| channel_name(&self.config.common.prefix, t))
            .collect()
    }
}

impl Publisher for BusInner {
    fn publish_encoded(
        &self,
        event: EncodedEvent,
    ) -> BoxFuture<'_, Result<Published, PublishError>> {
        Box::pin(self.write(event))
    }
}

fn transport(what: impl Into<String>) -> impl FnOnce(redis::RedisError) -> StartError {
    let what = what.into();
    move |e| StartError::Transport {
        what,
        source: Box::new(e),
    }
}

fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

impl RedisBus {
    /// A builder.
    pub fn builder() -> RedisBusBuilder {
        RedisBusBuilder::default()
    }

    pub(crate) async fn connect(mut config: RedisConfig) -> Result<Self, StartError> {
        let url = config.url.clone().ok_or_else(|| {
            StartError::Config(
                "no Redis URL: call `.url(\"redis://...\")` on the builder".to_owned(),
            )
        })?;
        let client =
            Client::open(url.as_str()).map_err(transport(format!("a client for {url}")))?;
        let conn = connection::manager(&client, config.response_timeout)
            .await
            .map_err(transport(format!("a connection to {url}")))?;
        // A retry waiting longer than claim_idle would let another consumer claim its entry.
        let retry = config.common.retry;
        let cap = config.claim_idle / 2;
        if retry.max_backoff() > cap {
            config.common.retry = retry.backoff(retry.initial_backoff().min(cap), cap);
        }
        let consumer = config
            .consumer_name
            .clone()
            .unwrap_or_else(default_consumer_name);
        Ok(Self {
            inner: Arc::new(BusInner {
                config,
                client,
                conn,
                consumer,
                counters: Arc::new(Counters::default()),
                running: Mutex::new(None),
            }),
        })
    }

    /// This process's consumer name.
    pub fn consumer_name(&self) -> &str {
        &self.inner.consumer
    }

    /// The stream prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.config.common.prefix
    }

    /// What the bus did so far.
    pub fn stats(&self) -> RedisBusStats {
        self.inner.counters.snapshot()
    }

    /// Validates `event` (before any I/O), wraps it in an envelope and appends it to its stream
    /// with `XADD {prefix}:{EVENT_TYPE} * event <json> channel <stream>`. Concurrent publishes
    /// are pipelined over one multiplexed connection.
    pub async fn publish<E: Event>(&self, event: E) -> Result<Published, PublishError> {
        self.inner.write(encode(event)?).await
    }

    /// Like [`RedisBus::publish`], keeping the envelope's id and timestamp.
    pub async fn publish_envelope<E: Event>(
        &self,
        envelope: &Envelope<E>,
    ) -> Result<Published, PublishError> {
        self.inner.write(encode_envelope(envelope)?).await
    }

    /// This bus as a [`Publisher`].
    pub fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::clone(&self.inner) as Arc<dyn Publisher>
    }

    /// Discovers the subscribers, checks them, creates one consumer group per subscriber and
    /// starts consuming.
    pub async fn start(&self) -> Result<RunningRedisBus, StartError> {
        let resolved = self.inner.config.common.selection.resolve()?;
        {
            let mut running = self
                .inner
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if running.is_some() {
                return Err(StartError::AlreadyStarted);
            }
            *running = Some(HashMap::new());
        }
        resolved.log("redis");
        let shared = Shared::new(
            self.inner.config.common.state.clone(),
            Arc::clone(&self.inner) as Arc<dyn Publisher>,
        );
        let mut consumers = Vec::new();
        for subscriber in resolved.subscribers {
            let stream = channel_name(&self.inner.config.common.prefix, subscriber.event_type());
            let name = subscriber.name().to_owned();
            let dispatcher =
                Dispatcher::new(subscriber, shared.clone(), self.inner.config.common.retry);
            let consumer = Consumer::start(
                dispatcher,
                stream.clone(),
                self.inner.client.clone(),
                self.inner.conn.clone(),
                self.inner.consumer.clone(),
                &self.inner.config,
                Arc::clone(&self.inner.counters),
            )
            .await;
            let consumer = match consumer {
                Ok(c) => c,
                Err(e) => {
                    let running = RunningRedisBus {
                        bus: self.clone(),
                        consumers,
                    };
                    let _ = running.shutdown().await;
                    return Err(transport(format!("the consumer group {name} on {stream}"))(
                        e,
                    ));
                }
            };
            if let Some(map) = self
                .inner
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                map.insert(name, Arc::clone(&consumer.pool));
            }
            consumers.push(consumer);
        }
        Ok(RunningRedisBus {
            bus: self.clone(),
            consumers,
        })
    }

    /// Every dead letter of every known event type, oldest first per stream.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let mut conn = self.inner.conn.clone();
        let mut out = Vec::new();
        for stream in self.inner.event_streams() {
            let entries = dead_letter::read_all(&mut conn, &dead_letter_stream(&stream), "-")
                .await
                .map_err(|e| DeadLetterError::Transport(Box::new(e)))?;
            out.extend(entries.into_iter().map(dead_letter::parse));
        }
        Ok(out)
    }

    /// Delivers a dead letter again, as attempt 1, to the one subscriber that failed it (it must
    /// be running in this bus). The dead letter is deleted once the handler succeeds; if it
    /// fails again, a new dead letter replaces it.
    pub async fn replay_dead_letter(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let pool = {
            let running = self
                .inner
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let map = running.as_ref().ok_or(DeadLetterError::NotRunning)?;
            map.get(&letter.subscriber)
                .cloned()
                .ok_or_else(|| DeadLetterError::SubscriberNotRunning(letter.subscriber.clone()))?
        };
        let message = Message::new(letter.source_message_id.as_str(), letter.payload.clone(), 1)
            .replaying(letter.id.as_str());
        if pool.submit(message).await {
            Ok(())
        } else {
            Err(DeadLetterError::NotRunning)
        }
    }

    /// Replays every dead letter; returns how many.
    pub async fn replay_all_dead_letters(&self) -> Result<usize, DeadLetterError> {
        let letters = self.dead_letters().await?;
        for letter in &letters {
            self.replay_dead_letter(letter).await?;
        }
        Ok(letters.len())
    }

    /// Deletes every dead letter of every known event type; returns how many there were.
    pub async fn purge_dead_letters(&self) -> Result<usize, DeadLetterError> {
        let mut conn = self.inner.conn.clone();
        let mut n = 0;
        for stream in self.inner.event_streams() {
            let dl = dead_letter_stream(&stream);
            let len: u64 = cmd("XLEN")
                .arg(&dl)
                .query_async(&mut conn)
                .await
                .map_err(|e| DeadLetterError::Transport(Box::new(e)))?;
            let _: Value = cmd("DEL")
                .arg(&dl)
                .query_async(&mut conn)
                .await
                .map_err(|e| DeadLetterError::Transport(Box::new(e)))?;
            n += len as usize;
        }
        Ok(n)
    }
}

/// A started [`RedisBus`].
#[derive(Debug)]
#[must_use = "dropping the handle leaves the consumers running; call `shutdown`"]
pub struct RunningRedisBus {
    bus: RedisBus,
    consumers: Vec<Consumer>,
}

impl RunningRedisBus {
    /// The bus.
    pub fn bus(&self) -> &RedisBus {
        &self.bus
    }

    /// The names of the running subscribers.
    pub fn subscribers(&self) -> Vec<&str> {
        self.consumers.iter().map(|c| c.name.as_str()).collect()
    }

    /// Graceful shutdown: stop reading, let in-flight handlers finish within the shutdown
    /// deadline, acknowledge what they handled, close. Entries not finished by then stay
    /// pending and are delivered again (to this consumer name after a restart, or claimed by
    /// another consumer).
    pub async fn shutdown(self) -> Result<(), ShutdownError> {
        let deadline = self.bus.inner.config.common.shutdown_timeout;
        let started = tokio::time::Instant::now();
        // The replay map holds the pools (and through them each acker's channel): release it
        // first, so each consumer's acker can drain and stop.
        *self
            .bus
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let mut result = Ok(());
        let mut tasks = Vec::new();
        for consumer in self.consumers {
            tasks.push(tokio::spawn(
                async move { consumer.shutdown(deadline).await },
            ));
        }
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(ShutdownError::Worker(e.to_string())),
            }
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "redis bus shut down"
        );
        result
    }
}
