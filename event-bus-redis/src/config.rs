//! [`RedisBusBuilder`] and the settings of the Redis runtime: connection, timeouts, batch
//! sizes, crash recovery and retention.

use std::time::Duration;

use event_bus_core::transport::{bus_builder_options, BusOptions};
use event_bus_core::StartError;

use crate::bus::RedisBus;
use crate::durability::Durability;
use crate::partition::Partitions;
use crate::security::{RedisUrl, Security};

/// How long entries stay in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Retention {
    /// Never trim (the default): nothing a group has not handled is ever deleted; the stream
    /// grows until you trim it.
    #[default]
    Unbounded,
    /// Periodically delete the entries every consumer group of the stream has handled
    /// (`XTRIM MINID` to the oldest entry some group still needs). Never drops unhandled entries,
    /// but a group that stops consuming holds the stream's growth back.
    TrimHandled,
    /// Cap each stream near this many entries (`XADD MAXLEN ~ n`), like the seed system. Under
    /// load this can delete entries a group has not handled yet: the runtime checks for that,
    /// logs a warning and counts it in `BusStats::trimmed_unhandled` (see `event_bus_core::Bus::stats`).
    MaxLen(u64),
}

/// The settings of a [`RedisBus`].
#[derive(Debug, Clone)]
pub(crate) struct RedisConfig {
    pub(crate) url: Option<RedisUrl>,
    /// Seed nodes of a Redis Cluster (empty: one Redis at `url`).
    pub(crate) cluster_nodes: Vec<RedisUrl>,
    pub(crate) durability: Durability,
    pub(crate) security: Security,
    pub(crate) common: BusOptions,
    pub(crate) consumer_name: Option<String>,
    pub(crate) block: Duration,
    pub(crate) read_batch: usize,
    pub(crate) claim_idle: Duration,
    pub(crate) claim_interval: Duration,
    pub(crate) consumer_idle_timeout: Duration,
    pub(crate) retention: Retention,
    pub(crate) response_timeout: Duration,
    pub(crate) workflow_stream: Option<String>,
    pub(crate) max_reader_connections: usize,
    pub(crate) partitions: Partitions,
}

/// Which generation of the seed system (the TypeScript event bus) a bus joins; see
/// [`RedisBusBuilder::seed_compatible`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeedGeneration {
    /// The seed as it runs today: streams `alga-psa:event-stream:{channel}:{EVENT_TYPE}`, and
    /// every publish on the default channel also written to `workflow:events:global`.
    Current,
    /// The seed document's first generation: streams `alga-psa:event-stream:{EVENT_TYPE}`, no
    /// channel segment and no workflow stream.
    First,
}

/// The seed's stream prefix.
pub const SEED_PREFIX: &str = "alga-psa:event-stream";

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            cluster_nodes: Vec::new(),
            durability: Durability::Master,
            security: Security::default(),
            common: BusOptions::default(),
            consumer_name: None,
            block: Duration::from_secs(1),
            read_batch: 100,
            claim_idle: Duration::from_secs(30),
            claim_interval: Duration::from_secs(5),
            consumer_idle_timeout: Duration::from_secs(3600),
            retention: Retention::Unbounded,
            response_timeout: Duration::from_secs(2),
            workflow_stream: None,
            max_reader_connections: 8,
            partitions: Partitions::default(),
        }
    }
}

/// Builds a [`RedisBus`]: the options every bus shares, then the Redis ones.
///
/// ```no_run
/// use std::time::Duration;
/// use event_bus_redis::{RedisBus, Retention};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = RedisBus::builder()
///     .url("redis://127.0.0.1:6379")
///     .prefix("alga-psa:event-stream:global")
///     .claim_idle(Duration::from_secs(60))
///     .retention(Retention::TrimHandled)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct RedisBusBuilder {
    pub(crate) config: RedisConfig,
}

impl RedisBusBuilder {
    /// The Redis URL (`redis://host:port/db`, `redis://user:password@host:port/db`, or
    /// `rediss://...` for TLS with the `tls` feature); required, unless the bus runs on a
    /// Redis Cluster ([`cluster_nodes`](Self::cluster_nodes)). Its password never appears in
    /// `Debug` output, errors or logs; to keep it out of the URL altogether, see
    /// [`credentials`](Self::credentials).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.config.url = Some(RedisUrl::new(url.into()));
        self
    }

    /// Connects to a Redis Cluster through these seed nodes (`redis://host:port` each, with
    /// credentials as in [`url`](Self::url); one reachable node is enough, the others are
    /// found with `CLUSTER SLOTS`). Use either this or [`url`](Self::url).
    ///
    /// Commands go through redis-rs's cluster client, routed by their key's slot and following
    /// `MOVED`/`ASK`; each reader opens its own connections to the master of its stream's slot
    /// and follows failovers and resharding by itself. See the README's "Redis Cluster"
    /// section for the connections per node and what each [`Durability`] promises there.
    ///
    /// ```no_run
    /// use event_bus_redis::RedisBus;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = RedisBus::builder()
    ///     .cluster_nodes(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000", "redis://10.0.0.3:7000"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cluster_nodes<I>(mut self, nodes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.config.cluster_nodes = nodes.into_iter().map(|n| RedisUrl::new(n.into())).collect();
        self
    }

    /// What an acknowledged publish promises (default [`Durability::Master`]: the master has
    /// the entry). [`Durability::Replicas`] adds a `WAIT` for replicas to every publish: one
    /// more round trip's worth of latency (the replicas' acknowledgement), none on the default.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.config.durability = durability;
        self
    }

    bus_builder_options!(config.common);

    /// Joins a deployment of the seed system (the TypeScript event bus) in one call: its
    /// prefix (`alga-psa:event-stream`), its stream layout, and for the current generation its
    /// workflow stream. What else joining needs is the default already: the envelope and entry
    /// format, absent (never `null`) optional fields, dead letters shared with the seed's, the
    /// `event-processors` group name refused to subscribers, and trimming by the seed's
    /// `MAXLEN ~ 1000` detected and counted. Event types keep their own channels
    /// (`#[event(channels(...))]`), subscribers theirs (`channel = "..."`).
    ///
    /// ```no_run
    /// use event_bus_redis::{RedisBus, SeedGeneration};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = RedisBus::builder()
    ///     .url("redis://127.0.0.1:6379")
    ///     .seed_compatible(SeedGeneration::Current)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn seed_compatible(mut self, generation: SeedGeneration) -> Self {
        self.config.common.prefix = SEED_PREFIX.to_owned();
        match generation {
            SeedGeneration::Current => {
                self.config.common.layout = event_bus_core::StreamLayout::PerChannel;
                self.config.workflow_stream = Some(crate::WORKFLOW_STREAM.to_owned());
            }
            SeedGeneration::First => {
                self.config.common.layout = event_bus_core::StreamLayout::PerEventType;
                self.config.workflow_stream = None;
            }
        }
        self
    }

    /// Also writes every publish on the default channel (`global`) to this stream, as the
    /// seed does for its workflow runtime (`workflow:events:global`, see
    /// [`WORKFLOW_STREAM`](crate::WORKFLOW_STREAM)): flat fields in the seed's order. Off by
    /// default; [`seed_compatible`](Self::seed_compatible) turns it on. Nothing here trims it.
    pub fn workflow_stream(mut self, stream: impl Into<String>) -> Self {
        self.config.workflow_stream = Some(stream.into());
        self
    }

    /// The most connections this process's readers hold (default 8; at least 1). Up to that
    /// many subscribers, each has a blocking reader of its own; past it, the subscribers share
    /// that many readers, each polling its subscribers in one pipelined round trip and waiting
    /// with one blocking multi-stream `XREAD` (see the README's "Connections" section). With
    /// the connection for publishes and commands, a process holds at most this plus one.
    ///
    /// On a Redis Cluster the limit is per master: the subscribers whose streams a master
    /// serves get their own readers up to this many, and share this many past it.
    pub fn max_reader_connections(mut self, n: usize) -> Self {
        self.config.max_reader_connections = n.max(1);
        self
    }

    /// Spreads the event type `event_type` over `n` partition streams (at most 1,024; 0 or 1:
    /// one stream, the default). Opt-in per event type, for a type too hot for one stream (one
    /// Redis Cluster shard): each event goes to the partition of its tenant, so each tenant's
    /// events keep their order; every subscriber of the type reads every partition, in one
    /// consumer group per partition stream under its own name, and several processes running
    /// it share each partition (competing consumers). Claims, retries, dead letters (one
    /// dead-letter stream per partition), replays, retention and metrics work per partition
    /// as they do per stream; a subscriber's `concurrency` applies per partition.
    ///
    /// The keys, and how they are spread over the cluster's slots, are described in
    /// [`admin`](crate::admin#partitioned-streams). The seed system knows nothing of partitions:
    /// leave the types it shares unpartitioned. Every process of a deployment must use the same
    /// `n` for a type; changing it moves tenants to other partitions, so drain the type's
    /// streams first.
    ///
    /// ```no_run
    /// use event_bus_redis::RedisBus;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = RedisBus::builder()
    ///     .url("redis://127.0.0.1:6379")
    ///     .partitions("TICKET_UPDATED", 8)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn partitions(mut self, event_type: &str, n: u16) -> Self {
        self.config.partitions.set(event_type, n);
        self
    }

    /// This process's consumer name in every group (default: host name, pid and a random
    /// suffix, unique even when every container runs as pid 1).
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.config.consumer_name = Some(name.into());
        self
    }

    /// How long one `XREADGROUP` blocks (default 1 s). Its connection's response timeout is
    /// this plus the response timeout, so a dead socket is noticed.
    pub fn block(mut self, block: Duration) -> Self {
        self.config.block = block.max(Duration::from_millis(1));
        self
    }

    /// The response timeout of ordinary commands (default 2 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// Entries per read (default 100). At most about twice this many are held per
    /// subscriber: reads are bounded, nothing is prefetched without limit.
    pub fn read_batch(mut self, n: usize) -> Self {
        self.config.read_batch = n.max(1);
        self
    }

    /// How long an entry stays pending with a consumer before another may claim it
    /// (default 30 s). A consumer keeps its lease on the entries it holds (running, queued or
    /// waiting for a retry) by renewing them every third of this, so a long handler is never
    /// claimed from a live consumer; only a consumer that died or stalled loses its entries.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.config.claim_idle = idle;
        self
    }

    /// How often to look for entries to claim, and for retention work (default 5 s).
    pub fn claim_interval(mut self, interval: Duration) -> Self {
        self.config.claim_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Consumers idle this long with no pending entries are removed from their groups
    /// (default 1 h). A consumer with pending entries is never removed.
    pub fn consumer_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.consumer_idle_timeout = timeout;
        self
    }

    /// How long entries stay in the streams (default [`Retention::Unbounded`]).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.config.retention = retention;
        self
    }

    /// Connects and returns the bus (nothing is consumed until `start`: see [`event_bus_core::Bus::start`]).
    pub async fn build(self) -> Result<RedisBus, StartError> {
        RedisBus::connect(self.config).await
    }
}
