//! [`RedisBus`]: the [`Bus`] on Redis Streams: publishing, starting the consumers of every
//! subscriber (and reporting the groups no subscriber owns), and the dead-letter operations.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use event_bus_core::transport::{
    describe_metrics, BatchResults, BusOptions, Dispatcher, EncodedEvent, Message, PublishTargets,
    Shared, SubscriberCounters, WorkerPool,
};
use event_bus_core::{
    registered_subscribers, BoxError, Bus, BusStats, DeadLetter, DeadLetterError, DeadLetterFilter,
    Health, PublishError, Published, Publisher, RunningBus, ShutdownError, StartError, StartFrom,
    Subscriber, SubscriberHealth, DEFAULT_CHANNEL,
};
use futures_util::future::BoxFuture;
use redis::{cmd, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cluster;
use crate::config::{RedisBusBuilder, RedisConfig};
use crate::connection;
use crate::connection::{BlockingConnection, Conn, Target};
use crate::consumer::assignment::Assigner;
use crate::consumer::replays::ReplaySignal;
use crate::consumer::{shard_loop, Consumer, Process, ReaderMode, RedisSink};
use crate::dead_letter;
use crate::durability::{Durability, NotReplicated};
use crate::groups::{self, ensure_group, ForeignGroup};
use crate::keys::dead_letter_stream;
use crate::reply;
use crate::sampling;
use crate::security;
use crate::workflow;

mod batch;

/// The event bus on Redis Streams.
///
/// Cheap to clone: clones share the connection and the running consumers.
///
/// ```no_run
/// use event_bus_core::prelude::*;
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

const BUILDING: u8 = 0;
const RUNNING: u8 = 1;
const CLOSED: u8 = 2;

/// A started subscriber, as the bus sees it (kept after shutdown, for its counters).
struct Started {
    name: String,
    event_type: &'static str,
    /// Its worker pools, by the stream each consumer reads (several for a partitioned type).
    pools: Vec<(String, Arc<WorkerPool<RedisSink>>)>,
    counters: Arc<SubscriberCounters>,
}

struct BusInner {
    config: RedisConfig,
    /// Where the readers' connections go: the one Redis, or the master of each stream's slot.
    target: Target,
    conn: Conn,
    consumer: String,
    published: AtomicU64,
    /// Each event type's stream per channel, with its `event_bus_published_total` counter.
    publishes: PublishTargets,
    phase: AtomicU8,
    /// Serialises `start` (and the group creation of publishes before it).
    starting: tokio::sync::Mutex<StartState>,
    /// Event types whose groups are known to exist before `start` (a copy of
    /// `StartState::early_groups` that a publish reads without waiting).
    early_groups: Mutex<HashSet<&'static str>>,
    /// Set once a publish before `start` found that the bus runs no subscriber at all (a
    /// publisher's bus): later publishes then skip the group check at once.
    no_subscribers: AtomicBool,
    started: Mutex<Vec<Started>>,
    /// The bus's shutdown signal; every consumer's tasks take a child of it.
    stop: CancellationToken,
}

#[derive(Default)]
struct StartState {
    started: bool,
    /// Event types whose subscribers' groups a publish before `start` created.
    early_groups: HashSet<&'static str>,
}

impl BusInner {
    fn started(&self) -> std::sync::MutexGuard<'_, Vec<Started>> {
        self.started.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn write(&self, event: EncodedEvent) -> Result<Published, PublishError> {
        match self.phase.load(Ordering::Acquire) {
            CLOSED => return Err(PublishError::Closed),
            BUILDING => self.ensure_groups_before_start(event.event_type).await?,
            _ => {}
        }
        let options = &self.config.common;
        let channels = event.channels.names();
        if channels.is_empty() {
            return Err(PublishError::NoChannel {
                event_type: event.event_type,
            });
        }
        let span = tracing::info_span!(
            "publish",
            bus = "redis",
            event_type = event.event_type,
            event_id = %event.event_id,
            tenant_id = %event.tenant_id,
        );
        async {
            let transport = |source: BoxError| PublishError::Transport {
                event_type: event.event_type,
                source,
            };
            let streams = options.layout.distinct_streams(&channels);
            let json = event.json.as_str();
            let workflow = self
                .config
                .workflow_stream
                .as_deref()
                .filter(|_| channels.contains(&DEFAULT_CHANNEL));
            // The usual publish: one stream, no workflow copy, nothing to join.
            if let ([channel], None) = (streams, workflow) {
                let id = self
                    .write_channel(&event, channel, json)
                    .await
                    .map_err(transport)?;
                self.published.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(entry_id = %id, channel, "published");
                return Ok(Published::new(event.event_id, channel, id));
            }
            let writes = streams
                .iter()
                .map(|channel| self.write_channel(&event, channel, json));
            let workflow_write = async {
                match workflow {
                    Some(stream) => self.write_workflow(stream, &event.json).await.map(Some),
                    None => Ok(None),
                }
            };
            // Pipelined over the multiplexed connection: one round trip for all.
            let (written, workflow_written) =
                futures_util::future::join(futures_util::future::join_all(writes), workflow_write)
                    .await;
            let mut entries = Vec::with_capacity(streams.len());
            for (channel, result) in streams.iter().zip(written) {
                entries.push(((*channel).to_owned(), result.map_err(transport)?));
            }
            if let Some(id) = workflow_written.map_err(transport)? {
                tracing::debug!(workflow_entry = %id, "written to the workflow stream");
            }
            self.published.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(entries = ?entries, "published");
            Ok(Published::of(event.event_id, entries))
        }
        .instrument(span)
        .await
    }

    /// Writes `json` to the stream `event` goes to on `channel` (its tenant's partition, when
    /// its type is partitioned) and counts it: the entry's id.
    async fn write_channel(
        &self,
        event: &EncodedEvent,
        channel: &str,
        json: &str,
    ) -> Result<String, BoxError> {
        let event_type = event.event_type;
        let target = if self.config.partitions.partitioned(event_type) {
            let stream = self.entry_stream(channel, event);
            self.publishes.get(event_type, &stream, || stream.clone())
        } else {
            let options = &self.config.common;
            self.publishes.get(event_type, channel, || {
                options.layout.stream(&options.prefix, channel, event_type)
            })
        };
        let id = self.xadd(target.stream(), channel, json).await?;
        target.record();
        Ok(id)
    }

    /// The stream `event`'s entry for `channel` goes to (its tenant's partition, when its type
    /// is partitioned).
    fn entry_stream(&self, channel: &str, event: &EncodedEvent) -> String {
        let options = &self.config.common;
        let stream = options
            .layout
            .stream(&options.prefix, channel, event.event_type);
        if self.config.partitions.is_empty() {
            return stream;
        }
        self.config
            .partitions
            .stream(stream, event.event_type, event.tenant_id)
    }

    /// The streams `subscriber` reads: its stream, or every partition of it.
    fn subscriber_streams(&self, subscriber: &Subscriber) -> Vec<String> {
        self.config.partitions.streams(
            self.config.common.stream_of(subscriber),
            subscriber.event_type(),
        )
    }

    /// `XADD stream * event <json> channel <channel>`: the entry's id. With
    /// [`Durability::Replicas`], followed by `WAIT` in the same pipeline (so on the same
    /// connection to the same master: on a cluster, routed by the stream's slot).
    async fn xadd(&self, stream: &str, channel: &str, json: &str) -> Result<String, BoxError> {
        let mut conn = self.conn.clone();
        let xadd = xadd_command(stream, channel, json);
        let Durability::Replicas { replicas, timeout } = self.config.durability else {
            let reply: Value = xadd.query_async(&mut conn).await?;
            return reply::string(reply).ok_or_else(|| "XADD returned no entry id".into());
        };
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        pipe.add_command(xadd)
            .cmd("WAIT")
            .arg(replicas)
            .arg(timeout_ms);
        let (id, acknowledged): (Value, i64) = pipe.query_async(&mut conn).await?;
        let id = reply::string(id).ok_or("XADD returned no entry id")?;
        let acknowledged = u32::try_from(acknowledged).unwrap_or(0);
        if acknowledged < replicas {
            return Err(Box::new(NotReplicated {
                stream: stream.to_owned(),
                entry_id: id,
                acknowledged,
                wanted: replicas,
                timeout,
            }));
        }
        Ok(id)
    }

    /// The seed's workflow entry of the envelope (see [`crate::workflow`]).
    async fn write_workflow(&self, stream: &str, json: &str) -> Result<String, BoxError> {
        let mut conn = self.conn.clone();
        let reply: Value = workflow_command(stream, json)?
            .query_async(&mut conn)
            .await?;
        reply::string(reply).ok_or_else(|| "XADD returned no entry id".into())
    }

    /// Before `start`, a publish creates the groups of this bus's subscribers of its event type
    /// first (once per type), so that they receive it when they start, whatever their start
    /// position: the same as a bus whose groups existed from the moment it was built.
    async fn ensure_groups_before_start(
        &self,
        event_type: &'static str,
    ) -> Result<(), PublishError> {
        if self.no_subscribers.load(Ordering::Relaxed)
            || self
                .early_groups
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(event_type)
        {
            return Ok(());
        }
        let mut state = self.starting.lock().await;
        if state.started || state.early_groups.contains(event_type) {
            return Ok(());
        }
        // A selection that does not resolve makes `start` fail: no subscriber will run.
        let Ok(resolved) = self.config.common.selection.resolve() else {
            return Ok(());
        };
        if resolved.subscribers.is_empty() {
            self.no_subscribers.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let mut conn = self.conn.clone();
        for sub in resolved
            .subscribers
            .iter()
            .filter(|s| s.event_type() == event_type)
        {
            for stream in self.subscriber_streams(sub) {
                ensure_group(
                    &mut conn,
                    &stream,
                    sub.name(),
                    start_id(sub.options().start),
                )
                .await
                .map_err(|e| PublishError::Transport {
                    event_type,
                    source: Box::new(e),
                })?;
            }
        }
        state.early_groups.insert(event_type);
        self.early_groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(event_type);
        Ok(())
    }

    /// Every stream of the bus's event types (each partition of a partitioned type).
    fn event_streams(&self) -> Vec<String> {
        let streams = self.config.common.streams();
        if self.config.partitions.is_empty() {
            return streams;
        }
        streams
            .into_iter()
            .flat_map(|stream| {
                let event_type = crate::keys::event_type_of(&stream).to_owned();
                self.config.partitions.streams(stream, &event_type)
            })
            .collect()
    }

    /// The groups on the bus's streams that no subscriber of this binary owns.
    async fn foreign_groups(&self, owned: &BTreeSet<String>) -> Vec<ForeignGroup> {
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        for stream in self.event_streams() {
            let info = match groups::groups(&mut conn, &stream).await {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(%stream, error = %e, "could not list the stream's consumer groups");
                    continue;
                }
            };
            for group in info.groups {
                if owned.contains(&group.name) {
                    continue;
                }
                out.push(ForeignGroup {
                    stream: stream.clone(),
                    group: group.name,
                    lag: group.lag.map(|l| l as u64),
                    pending: group.pending as u64,
                    consumers: group.consumers as u64,
                });
            }
        }
        out
    }
}

/// `XADD stream * event <json> channel <channel>`.
fn xadd_command(stream: &str, channel: &str, json: &str) -> redis::Cmd {
    // Sized up front: the JSON is most of it, and growing the buffer arg by arg
    // reallocated it several times per publish.
    let size = "XADD*eventchannel".len() + stream.len() + channel.len() + json.len();
    let mut c = redis::Cmd::with_capacity(7, size);
    c.arg("XADD")
        .arg(stream)
        .arg("*")
        .arg("event")
        .arg(json)
        .arg("channel")
        .arg(channel);
    c
}

/// The `XADD` of the seed's workflow entry of the envelope (see [`crate::workflow`]).
fn workflow_command(stream: &str, json: &str) -> Result<redis::Cmd, BoxError> {
    let mut c = cmd("XADD");
    c.arg(stream).arg("*");
    for (name, value) in workflow::fields(json)? {
        c.arg(name).arg(value);
    }
    Ok(c)
}

impl Publisher for BusInner {
    fn publish_encoded(
        &self,
        event: EncodedEvent,
    ) -> BoxFuture<'_, Result<Published, PublishError>> {
        Box::pin(self.write(event))
    }
}

/// Who reads for each subscriber: its own connection, or a shard shared with others.
struct ReaderPlan {
    /// For each subscriber (by index), its shard (`None`: a reader of its own).
    shard_of: Vec<Option<usize>>,
    /// Each shard's subscribers.
    shards: Vec<Vec<usize>>,
}

impl ReaderPlan {
    /// Up to `limit` subscribers (per master, on a cluster) each get a reader of their own;
    /// past it, `limit` shards share them. Subscribers of one stream share a shard, so that
    /// its wait names the stream once; on a cluster, so do the streams of one slot, so that a
    /// shard waits on one slot where it can (a multi-key `XREAD` stays within one slot).
    fn new(streams: &[String], target: &Target, limit: usize) -> Self {
        let limit = limit.max(1);
        let mut by_node: std::collections::BTreeMap<Option<cluster::NodeAddr>, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (i, stream) in streams.iter().enumerate() {
            let node = match target {
                Target::Single(_) => None,
                Target::Cluster(topology) => topology.master_of_key(stream.as_bytes()),
            };
            by_node.entry(node).or_default().push(i);
        }
        let mut plan = Self {
            shard_of: vec![None; streams.len()],
            shards: Vec::new(),
        };
        for (node, subscribers) in by_node {
            if subscribers.len() <= limit {
                continue;
            }
            let first = plan.shards.len();
            plan.shards.extend((0..limit).map(|_| Vec::new()));
            if node.is_none() {
                for i in subscribers {
                    let shard = first + shard_of(&streams[i], limit);
                    plan.shard_of[i] = Some(shard);
                    plan.shards[shard].push(i);
                }
                continue;
            }
            // By slot, the slots dealt out in turn.
            let mut slots: Vec<(u16, Vec<usize>)> = Vec::new();
            for i in subscribers {
                let slot = cluster::key_slot(streams[i].as_bytes());
                match slots.iter_mut().find(|(s, _)| *s == slot) {
                    Some((_, members)) => members.push(i),
                    None => slots.push((slot, vec![i])),
                }
            }
            slots.sort_by_key(|(s, _)| *s);
            for (n, (_, members)) in slots.into_iter().enumerate() {
                let shard = first + n % limit;
                for i in members {
                    plan.shard_of[i] = Some(shard);
                    plan.shards[shard].push(i);
                }
            }
        }
        plan.shards.retain(|members| !members.is_empty());
        // Renumber after dropping empty shards.
        for (n, members) in plan.shards.iter().enumerate() {
            for &i in members {
                plan.shard_of[i] = Some(n);
            }
        }
        plan
    }
}

/// The shard reading `stream`, of `shards`.
fn shard_of(stream: &str, shards: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    stream.hash(&mut hasher);
    (hasher.finish() % shards.max(1) as u64) as usize
}

fn start_id(start: StartFrom) -> &'static str {
    match start {
        StartFrom::Earliest => "0",
        _ => "$",
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

    pub(crate) async fn connect(config: RedisConfig) -> Result<Self, StartError> {
        let (target, conn) = if config.cluster_nodes.is_empty() {
            Self::connect_single(&config).await?
        } else {
            if config.url.is_some() {
                return Err(StartError::Config(
                    "both `url` and `cluster_nodes` were given: use `url` for one Redis, \
                     `cluster_nodes` for a Redis Cluster"
                        .to_owned(),
                ));
            }
            let (conn, topology) = cluster::connect(&config).await?;
            (Target::Cluster(topology), Conn::Cluster(conn))
        };
        let consumer = config
            .consumer_name
            .clone()
            .unwrap_or_else(default_consumer_name);
        Ok(Self {
            inner: Arc::new(BusInner {
                config,
                target,
                conn,
                consumer,
                published: AtomicU64::new(0),
                publishes: PublishTargets::default(),
                phase: AtomicU8::new(BUILDING),
                starting: tokio::sync::Mutex::new(StartState::default()),
                early_groups: Mutex::new(HashSet::new()),
                no_subscribers: AtomicBool::new(false),
                started: Mutex::new(Vec::new()),
                stop: CancellationToken::new(),
            }),
        })
    }

    async fn connect_single(config: &RedisConfig) -> Result<(Target, Conn), StartError> {
        let url = config.url.as_ref().ok_or_else(|| {
            StartError::Config(
                "no Redis URL: call `.url(\"redis://...\")` on the builder (or \
                 `.cluster_nodes([...])` for a Redis Cluster)"
                    .to_owned(),
            )
        })?;
        // The one client every connection (this one, the readers', every reconnect) is opened
        // from: the same credentials and TLS settings everywhere.
        let client = security::client(url, &config.security)?;
        let conn = connection::manager(&client, config.response_timeout)
            .await
            .map_err(|e| {
                let secrets = config
                    .security
                    .secrets(Some(url), Some(client.get_connection_info()));
                StartError::Transport {
                    what: format!(
                        "a connection to {}: {}",
                        url.redacted(),
                        connection::describe(&e)
                    ),
                    source: security::scrub(e, &secrets),
                }
            })?;
        Ok((Target::Single(Box::new(client)), Conn::Single(conn)))
    }

    /// This process's consumer name.
    pub fn consumer_name(&self) -> &str {
        &self.inner.consumer
    }

    /// The stream prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.config.common.prefix
    }

    fn options(&self) -> &BusOptions {
        &self.inner.config.common
    }
}

impl Bus for RedisBus {
    type Running = RunningRedisBus;

    /// Appends the event to its stream with
    /// `XADD {prefix}:{EVENT_TYPE} * event <json> channel <stream>`. Concurrent publishes are
    /// pipelined over one multiplexed connection.
    async fn publish_encoded(&self, event: EncodedEvent) -> Result<Published, PublishError> {
        self.inner.write(event).await
    }

    /// Checks the whole batch first, then pipelines its `XADD`s (the workflow stream's too),
    /// at most 1,024 commands per pipeline, over the multiplexed connection: one round trip
    /// per pipeline, the pipelines of a larger batch sent together. Per-event results as
    /// [`Bus::publish_all`] describes.
    async fn publish_encoded_all(&self, events: Vec<EncodedEvent>) -> BatchResults {
        self.inner.write_all(events).await
    }

    fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::clone(&self.inner) as Arc<dyn Publisher>
    }

    /// Runs the start checks, creates one consumer group per subscriber and starts consuming,
    /// then warns about the groups on the bus's streams that no subscriber of this binary owns
    /// (see [`RunningRedisBus::foreign_groups`]).
    async fn start(&self) -> Result<RunningRedisBus, StartError> {
        let mut state = self.inner.starting.lock().await;
        if state.started || self.inner.phase.load(Ordering::Acquire) != BUILDING {
            return Err(StartError::AlreadyStarted);
        }
        let resolved = self.options().resolve_for_start("redis")?;
        for event_type in self.inner.config.partitions.event_types() {
            if !resolved.events.iter().any(|e| e.event_type == event_type) {
                tracing::warn!(
                    event_type,
                    "`partitions` names an event type this bus does not know: check its spelling \
                     (the type's EVENT_TYPE, e.g. TICKET_UPDATED)"
                );
            }
        }
        describe_metrics();
        let shared = Shared::new(
            self.options().state.clone(),
            Arc::clone(&self.inner) as Arc<dyn Publisher>,
        );
        // One consumer per subscriber and stream it reads: its stream, or each partition of it.
        let units: Vec<(usize, String)> = resolved
            .subscribers
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                self.inner
                    .subscriber_streams(s)
                    .into_iter()
                    .map(move |stream| (i, stream))
            })
            .collect();
        // Every group in one round trip.
        let groups: Vec<(String, String, &'static str)> = units
            .iter()
            .map(|(i, stream)| {
                let s = &resolved.subscribers[*i];
                (
                    stream.clone(),
                    s.name().to_owned(),
                    start_id(s.options().start),
                )
            })
            .collect();
        let mut conn = self.inner.conn.clone();
        if let Err((group, e)) = groups::ensure_groups(&mut conn, &groups).await {
            return Err(StartError::Transport {
                what: if group.is_empty() {
                    format!("the consumer groups: {}", connection::describe(&e))
                } else {
                    format!("the consumer group {group}: {}", connection::describe(&e))
                },
                source: Box::new(e),
            });
        }
        // Reader connections, connected (and checked) before anything runs: one per
        // consumer, or, past `max_reader_connections`, one per shard of consumers. On a
        // cluster, the limit is per master (of each stream's slot).
        let streams: Vec<String> = units.iter().map(|(_, stream)| stream.clone()).collect();
        let plan = ReaderPlan::new(
            &streams,
            &self.inner.target,
            self.inner.config.max_reader_connections,
        );
        let new_connection = |home: &str| {
            BlockingConnection::new(
                self.inner.target.clone(),
                self.inner.config.block,
                self.inner.config.response_timeout,
                Some(home),
            )
        };
        let mut own_connections: Vec<Option<BlockingConnection>> =
            (0..streams.len()).map(|_| None).collect();
        for (i, (s, stream)) in units.iter().enumerate() {
            if plan.shard_of[i].is_some() {
                continue;
            }
            let mut reader = new_connection(stream);
            if let Err(e) = reader.connect().await {
                return Err(StartError::Transport {
                    what: format!(
                        "the reader connection of subscriber {} on {stream}: {}",
                        resolved.subscribers[*s].name(),
                        connection::describe(&e)
                    ),
                    source: Box::new(e),
                });
            }
            own_connections[i] = Some(reader);
        }
        let mut shard_connections = Vec::with_capacity(plan.shards.len());
        for (n, members) in plan.shards.iter().enumerate() {
            let home = members.first().map_or("", |&i| streams[i].as_str());
            let mut reader = new_connection(home);
            if let Err(e) = reader.connect().await {
                return Err(StartError::Transport {
                    what: format!(
                        "shared reader connection {} of {}: {}",
                        n + 1,
                        plan.shards.len(),
                        connection::describe(&e)
                    ),
                    source: Box::new(e),
                });
            }
            shard_connections.push(reader);
        }
        let mut consumers = Vec::new();
        // One poll of the replay-request counter for every consumer of the process, at most
        // twice per maintenance interval.
        let replay_signal = Arc::new(ReplaySignal::new(
            &self.inner.config.common.prefix,
            self.inner.config.claim_interval / 2,
        ));
        let process = Process {
            conn: &self.inner.conn,
            consumer: &self.inner.consumer,
            config: &self.inner.config,
            replay_signal: &replay_signal,
            stop: &self.inner.stop,
        };
        // A subscriber's counters, shared by its consumers (labelled with its unpartitioned
        // stream).
        let counters: Vec<Arc<SubscriberCounters>> = resolved
            .subscribers
            .iter()
            .map(|s| {
                Arc::new(SubscriberCounters::new(
                    s.name(),
                    s.event_type(),
                    &self.options().stream_of(s),
                ))
            })
            .collect();
        // A subscriber of a partitioned type: its consumers read the partitions this process
        // owns (see `consumer::assignment`).
        let partitioned: Vec<bool> = (0..resolved.subscribers.len())
            .map(|i| units.iter().filter(|(s, _)| *s == i).count() > 1)
            .collect();
        for ((i, stream), own) in units.into_iter().zip(own_connections) {
            let subscriber = &resolved.subscribers[i];
            let mut dispatcher =
                Dispatcher::new(subscriber.clone(), shared.clone(), self.options().retry);
            if let Some(window) = subscriber.options().dedupe {
                let (conn, lease) = (self.inner.conn.clone(), self.inner.config.claim_idle);
                let dedupe = crate::dedupe::dedupe(conn, &stream, subscriber.name(), window, lease);
                dispatcher = dispatcher.with_dedupe(dedupe);
            }
            let mode = match own {
                Some(own) => ReaderMode::Own(Box::new(own)),
                None => ReaderMode::Shared,
            };
            let c = Consumer::start(
                dispatcher,
                stream,
                mode,
                &process,
                Arc::clone(&counters[i]),
                partitioned[i],
            );
            let pool = (c.stream().to_owned(), Arc::clone(&c.pool));
            let mut started = self.inner.started();
            match started.iter_mut().find(|s| s.name == c.name) {
                Some(s) => s.pools.push(pool),
                None => started.push(Started {
                    name: c.name.clone(),
                    event_type: c.event_type,
                    pools: vec![pool],
                    counters: Arc::clone(&c.counters),
                }),
            }
            drop(started);
            consumers.push(c);
        }
        // Each partitioned subscriber's partitions: a first round of assignment (taking what is
        // free), then a round every claim interval.
        let mut assigners = Vec::new();
        let lease = self.inner.config.claim_idle;
        let every = self
            .inner
            .config
            .claim_interval
            .min(lease / 3)
            .max(Duration::from_millis(10));
        for (i, subscriber) in resolved.subscribers.iter().enumerate() {
            if !partitioned[i] {
                continue;
            }
            let members = consumers
                .iter()
                .filter(|c| c.name == subscriber.name())
                .map(Consumer::member)
                .collect();
            let Some(mut assigner) = Assigner::new(members, lease, self.inner.config.read_batch)
            else {
                continue;
            };
            let stop = self.inner.stop.child_token();
            if let Err(e) = assigner.round(&stop).await {
                tracing::warn!(subscriber = subscriber.name(), error = %e,
                    "partition assignment failed; trying again next round");
            }
            assigners.push(tokio::spawn(assigner.run(every, stop)));
        }
        let mut shards = Vec::new();
        if !plan.shards.is_empty() {
            let readers = plan.shards.len();
            for (members, conn) in plan.shards.iter().zip(shard_connections) {
                let members = members.iter().map(|&i| consumers[i].member()).collect();
                shards.push(tokio::spawn(shard_loop(
                    members,
                    conn,
                    self.inner.config.block,
                    self.inner.config.read_batch,
                    self.inner.stop.child_token(),
                )));
            }
            tracing::info!(
                consumers = plan.shard_of.iter().flatten().count(),
                reader_connections = readers,
                "consumers share {readers} reader connections"
            );
        }
        let interval = self.options().metrics_interval;
        let sampler = (!interval.is_zero()).then(|| {
            let streams = sampling::by_stream(
                consumers
                    .iter()
                    .map(|c| (c.stream(), c.name.as_str(), &c.counters)),
            );
            tokio::spawn(sampling::sample_loop(
                self.inner.conn.clone(),
                streams,
                interval,
                self.inner.stop.child_token(),
            ))
        });
        state.started = true;
        self.inner.phase.store(RUNNING, Ordering::Release);
        drop(state);

        // Every subscriber this binary declares owns its group, running here or not.
        let owned: BTreeSet<String> = registered_subscribers()
            .map(|r| r.name.to_owned())
            .chain(resolved.subscribers.iter().map(|s| s.name().to_owned()))
            .collect();
        let foreign = self.inner.foreign_groups(&owned).await;
        for g in &foreign {
            tracing::warn!(
                stream = %g.stream,
                group = %g.group,
                lag = ?g.lag,
                pending = g.pending,
                consumers = g.consumers,
                "a consumer group on this bus's stream is not run by this binary: fine if another service runs it; \
                 if it is the old name of a renamed subscriber, its lag and pending entries are not being handled \
                 (delete it with XGROUP DESTROY once drained, or give the subscriber its old `name`)"
            );
        }
        Ok(RunningRedisBus {
            bus: self.clone(),
            consumers,
            assigners,
            shards,
            sampler,
            foreign,
        })
    }

    fn stats(&self) -> BusStats {
        let subscribers = self
            .inner
            .started()
            .iter()
            .map(|s| s.counters.snapshot(&s.name, s.event_type))
            .collect();
        BusStats::from_subscribers(self.inner.published.load(Ordering::Relaxed), subscribers)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
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

    /// The dead letter is deleted once the replay is handled; if it fails again, a new dead
    /// letter replaces it.
    async fn replay_dead_letter(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        if letter.foreign {
            return Err(DeadLetterError::Foreign {
                id: letter.id.clone(),
            });
        }
        if self.inner.phase.load(Ordering::Acquire) != RUNNING {
            return Err(DeadLetterError::NotRunning);
        }
        // The pool of the consumer of the letter's stream (a partition's, for a partitioned
        // type), which deletes the letter from its dead-letter stream once handled.
        let pool = self
            .inner
            .started()
            .iter()
            .find(|s| s.name == letter.subscriber)
            .and_then(|s| {
                s.pools
                    .iter()
                    .find(|(stream, _)| *stream == letter.source_stream)
                    .or_else(|| s.pools.first())
                    .map(|(_, pool)| Arc::clone(pool))
            })
            .ok_or_else(|| DeadLetterError::SubscriberNotRunning(letter.subscriber.clone()))?;
        let message = Message::new(letter.source_message_id.as_str(), letter.payload.clone())
            .replaying(letter.id.as_str());
        if pool.submit(message).await {
            Ok(())
        } else {
            Err(DeadLetterError::NotRunning)
        }
    }

    /// Deletes the selected letters one by one (`XDEL`), never the stream: the seed's letters
    /// in a shared dead-letter stream stay unless the filter selects foreign letters.
    async fn purge_dead_letters(&self, filter: DeadLetterFilter) -> Result<usize, DeadLetterError> {
        let mut conn = self.inner.conn.clone();
        let mut n = 0;
        for stream in self.inner.event_streams() {
            n += dead_letter::purge(&mut conn, &dead_letter_stream(&stream), &filter)
                .await
                .map_err(|e| DeadLetterError::Transport(Box::new(e)))?;
        }
        Ok(n)
    }
}

/// A started [`RedisBus`] (see [`RunningBus`]).
#[derive(Debug)]
#[must_use = "dropping the handle leaves the consumers running; call `shutdown`"]
pub struct RunningRedisBus {
    bus: RedisBus,
    consumers: Vec<Consumer>,
    /// The partition assignment of each partitioned subscriber.
    assigners: Vec<tokio::task::JoinHandle<Assigner>>,
    /// The shared readers' tasks (none when every subscriber has its own connection).
    shards: Vec<tokio::task::JoinHandle<()>>,
    /// Samples the groups' lag and pending gauges (none when `metrics_interval` is zero).
    sampler: Option<tokio::task::JoinHandle<()>>,
    foreign: Vec<ForeignGroup>,
}

impl RunningRedisBus {
    /// The consumer groups on the bus's streams that no subscriber of this binary owns, as
    /// found at start (each also logged as a warning): another service's subscribers, or
    /// groups left behind by a renamed subscriber, with their lag and pending counts.
    pub fn foreign_groups(&self) -> &[ForeignGroup] {
        &self.foreign
    }

    /// Whether every running subscriber's group has caught up: nothing held here, no lag, no
    /// pending entry.
    async fn caught_up(&self, conn: &mut Conn) -> bool {
        if !self.consumers.iter().all(Consumer::is_idle) {
            return false;
        }
        let mut by_stream: Vec<(&str, Vec<&str>)> = Vec::new();
        for c in &self.consumers {
            let stream = c.stream();
            match by_stream.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, groups)) => groups.push(&c.name),
                None => by_stream.push((stream, vec![&c.name])),
            }
        }
        for (stream, names) in by_stream {
            let Ok(info) = groups::groups(conn, stream).await else {
                return false;
            };
            for name in names {
                let Some(group) = info.groups.iter().find(|g| g.name == name) else {
                    return false;
                };
                if group.pending != 0 {
                    return false;
                }
                // Redis 7.0 keeps `lag` above zero for good once entries were trimmed before
                // the group read them (its read counter skips them): a group that was delivered
                // the stream's last entry has caught up, whatever `lag` says.
                let caught_up = group.lag == Some(0)
                    || last_generated_id(conn, stream).await.as_deref()
                        == Some(group.last_delivered_id.as_str());
                if !caught_up {
                    return false;
                }
            }
        }
        true
    }
}

/// The stream's last generated id (`XINFO STREAM`).
async fn last_generated_id(conn: &mut Conn, stream: &str) -> Option<String> {
    let info: Value = cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await
        .ok()?;
    reply::info_pairs(info)
        .into_iter()
        .find(|(k, _)| k == "last-generated-id")
        .and_then(|(_, v)| reply::string(v))
}

impl RunningBus for RunningRedisBus {
    type Bus = RedisBus;

    fn bus(&self) -> &RedisBus {
        &self.bus
    }

    fn subscribers(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.consumers.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// One entry per subscriber: a partitioned type's subscriber is reported failing while
    /// the reading of any of its partitions fails.
    fn health(&self) -> Health {
        let mut by_name: Vec<SubscriberHealth> = Vec::new();
        for health in self.consumers.iter().map(Consumer::health) {
            match by_name.iter_mut().find(|h| h.name == health.name) {
                Some(h) if h.reading => *h = health,
                Some(_) => {}
                None => by_name.push(health),
            }
        }
        Health::of(by_name)
    }

    async fn idle(&self) {
        let mut conn = self.bus.inner.conn.clone();
        loop {
            for c in &self.consumers {
                c.flush_acks();
            }
            if self.caught_up(&mut conn).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop reading, let in-flight handlers finish within the shutdown deadline, acknowledge
    /// what they handled, close. Entries not finished by then stay pending and are delivered
    /// again (to this consumer name after a restart, or claimed by another consumer).
    async fn shutdown(self) -> Result<(), ShutdownError> {
        let inner = &self.bus.inner;
        inner.phase.store(CLOSED, Ordering::Release);
        let started = tokio::time::Instant::now();
        let deadline = started + inner.config.common.shutdown_timeout;
        inner.stop.cancel();
        if let Some(sampler) = &self.sampler {
            sampler.abort();
        }
        // Shared readers stop after their current read or wait (at most one BLOCK), before the
        // consumers drain their pools.
        for mut shard in self.shards {
            if tokio::time::timeout_at(deadline, &mut shard).await.is_err() {
                shard.abort();
            }
        }
        let results = futures_util::future::join_all(
            self.consumers.into_iter().map(|c| c.shutdown(deadline)),
        )
        .await;
        // What was read is handled and acknowledged: the partitions are free for another
        // process at once.
        for mut assigner in self.assigners {
            match tokio::time::timeout_at(deadline, &mut assigner).await {
                Ok(Ok(mut assigner)) => assigner.release_all().await,
                Ok(Err(_)) => {}
                Err(_) => assigner.abort(),
            }
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "redis bus shut down"
        );
        let mut unfinished = 0;
        let mut other = None;
        for result in results {
            match result {
                Ok(()) => {}
                Err(ShutdownError::Deadline { unfinished: n }) => unfinished += n,
                Err(e) => other = Some(e),
            }
        }
        match other {
            Some(e) => Err(e),
            None if unfinished > 0 => Err(ShutdownError::Deadline { unfinished }),
            None => Ok(()),
        }
    }
}
