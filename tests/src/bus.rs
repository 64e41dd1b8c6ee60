//! Test buses: [`TestBus`] sets up either bus the same way (fast retries, a unique prefix, the
//! chosen subscribers, a [`Recorder`] as state), and [`TestTransport`] lets a behaviour
//! scenario be written once, as `async fn scenario<B: TestTransport>()`, and run on both.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use event_bus_core::transport::BusOptions;
use event_bus_core::{Bus, DeadLetter, MemoryBus, RetryPolicy, StreamLayout};
use event_bus_redis::RedisBus;

use crate::probe::Recorder;

/// Which bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// `MemoryBus`.
    Memory,
    /// `RedisBus` on the shared server.
    Redis,
}

/// A bus a [`TestBus`] can build.
pub trait TestTransport: Bus {
    /// Which bus this is.
    const KIND: BusKind;

    /// Builds one with `t`'s settings (another one with the same settings shares groups on
    /// Redis).
    fn build_for(t: &TestBus) -> impl Future<Output = Self> + Send;
}

impl TestTransport for MemoryBus {
    const KIND: BusKind = BusKind::Memory;

    async fn build_for(t: &TestBus) -> Self {
        let built = MemoryBus::builder()
            .with_options(|options| t.common(options))
            .build()
            .await;
        match built {
            Ok(bus) => bus,
            Err(e) => panic!("cannot build a memory bus: {e}"),
        }
    }
}

impl TestTransport for RedisBus {
    const KIND: BusKind = BusKind::Redis;

    async fn build_for(t: &TestBus) -> Self {
        let builder = match &t.cluster {
            Some(nodes) => RedisBus::builder().cluster_nodes(nodes.iter().cloned()),
            None => RedisBus::builder().url(&t.url),
        };
        let mut builder = builder
            .with_options(|options| t.common(options))
            .claim_idle(t.claim_idle)
            .claim_interval(t.claim_interval)
            .block(t.block);
        if let Some(name) = &t.consumer_name {
            builder = builder.consumer_name(name);
        }
        for (event_type, n) in &t.partitions {
            builder = builder.partitions(event_type, *n);
        }
        if let Some(n) = t.max_reader_connections {
            builder = builder.max_reader_connections(n);
        }
        match builder.build().await {
            Ok(bus) => bus,
            Err(e) => panic!("cannot connect to Redis at {}: {e}", t.url),
        }
    }
}

/// How a test bus is set up: fast retries, a unique prefix, the chosen subscribers, and a
/// [`Recorder`] as state.
#[derive(Debug, Clone)]
pub struct TestBus {
    /// Which bus.
    pub kind: BusKind,
    /// The Redis URL (Redis only).
    pub url: String,
    /// The seed nodes of a Redis Cluster to run on instead of `url` (Redis only): set for the
    /// scenarios run inside [`on_cluster`].
    pub cluster: Option<Vec<String>>,
    /// The key prefix.
    pub prefix: String,
    /// The subscribers to run.
    pub only: Vec<String>,
    /// The recorder handed to handlers.
    pub recorder: Arc<Recorder>,
    /// The retry policy (default: 5 attempts, 10–40 ms).
    pub retry: RetryPolicy,
    /// Claim idle time (Redis).
    pub claim_idle: Duration,
    /// Claim interval (Redis).
    pub claim_interval: Duration,
    /// Consumer name (Redis); random when `None`.
    pub consumer_name: Option<String>,
    /// BLOCK (Redis).
    pub block: Duration,
    /// How long a shutdown may take (default 10 s).
    pub shutdown_timeout: Duration,
    /// Whether start may find no subscriber (default no).
    pub allow_no_subscribers: bool,
    /// The stream layout (default one stream per event type).
    pub layout: StreamLayout,
    /// Reserved group names a subscriber may take.
    pub allowed_group_names: Vec<String>,
    /// Partitioned event types and their partition counts (Redis).
    pub partitions: Vec<(String, u16)>,
    /// The most reader connections (Redis; default: the bus's own default).
    pub max_reader_connections: Option<usize>,
}

impl TestBus {
    /// A test bus of `kind` running `only` under a fresh prefix.
    pub fn new(kind: BusKind, test: &str, only: &[&str]) -> Self {
        Self {
            kind,
            url: crate::redis_url(),
            cluster: CLUSTER_NODES.try_with(Clone::clone).ok(),
            prefix: crate::unique_prefix(test),
            only: only.iter().map(|s| (*s).to_owned()).collect(),
            recorder: Arc::new(Recorder::default()),
            retry: RetryPolicy::default()
                .max_attempts(5)
                .backoff(Duration::from_millis(10), Duration::from_millis(40)),
            claim_idle: Duration::from_secs(30),
            claim_interval: Duration::from_secs(5),
            consumer_name: None,
            block: Duration::from_millis(200),
            shutdown_timeout: Duration::from_secs(10),
            allow_no_subscribers: false,
            layout: StreamLayout::default(),
            allowed_group_names: Vec::new(),
            partitions: Vec::new(),
            max_reader_connections: None,
        }
    }

    /// A test bus for `B`.
    pub fn of<B: TestTransport>(test: &str, only: &[&str]) -> Self {
        Self::new(B::KIND, test, only)
    }

    /// The options every bus shares, as this test sets them.
    fn common(&self, options: &mut BusOptions) {
        options.prefix.clone_from(&self.prefix);
        options.selection.only(self.only.clone());
        options
            .state
            .insert(SharedRecorder(Arc::clone(&self.recorder)));
        options.retry = self.retry;
        options.shutdown_timeout = self.shutdown_timeout;
        options.allow_no_subscribers = self.allow_no_subscribers;
        options.layout = self.layout;
        options
            .allowed_reserved_names
            .extend(self.allowed_group_names.iter().cloned());
    }

    /// Builds a bus of type `B` with these settings.
    pub async fn build<B: TestTransport>(&self) -> B {
        B::build_for(self).await
    }

    /// Builds a Redis bus with these settings.
    pub async fn redis(&self) -> RedisBus {
        self.build::<RedisBus>().await
    }

    /// Deletes the test's keys (Redis; on a cluster, on every master).
    pub async fn cleanup(&self) {
        if self.kind != BusKind::Redis {
            return;
        }
        match &self.cluster {
            None => {
                let _ = crate::delete_prefix(&self.url, &self.prefix).await;
            }
            Some(nodes) => {
                for node in nodes {
                    let _ = crate::delete_prefix(node, &self.prefix).await;
                }
            }
        }
    }

    /// Entries of `group` on `stream` delivered and not acknowledged (`XPENDING`; Redis).
    pub async fn pending(&self, stream: &str, group: &str) -> i64 {
        let mut xpending = redis::cmd("XPENDING");
        xpending.arg(stream).arg(group);
        match self.command::<redis::Value>(&xpending).await {
            Ok(redis::Value::Array(items)) => match items.first() {
                Some(redis::Value::Int(n)) => *n,
                _ => panic!("unexpected XPENDING reply: {items:?}"),
            },
            other => panic!("XPENDING {stream} {group}: {other:?}"),
        }
    }

    /// Runs one single-key command on the bus's Redis (on a cluster, on the master of its key).
    pub async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        match &self.cluster {
            None => {
                let client = redis::Client::open(self.url.as_str())?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                cmd.query_async(&mut conn).await
            }
            Some(nodes) => {
                let client = redis::cluster::ClusterClient::new(nodes.clone())?;
                let mut conn = client.get_async_connection().await?;
                cmd.query_async(&mut conn).await
            }
        }
    }
}

tokio::task_local! {
    /// The seed nodes of the cluster the scenario runs on (see [`on_cluster`]).
    static CLUSTER_NODES: Vec<String>;
}

/// Runs `scenario` with every [`TestBus`] it makes set to run on the Redis Cluster of `nodes`.
pub async fn on_cluster<F: Future>(nodes: Vec<String>, scenario: F) -> F::Output {
    CLUSTER_NODES.scope(nodes, scenario).await
}

/// The recorder as handlers see it: `ctx.state::<SharedRecorder>()`, derefs to [`Recorder`].
#[derive(Debug, Clone)]
pub struct SharedRecorder(pub Arc<Recorder>);

impl std::ops::Deref for SharedRecorder {
    type Target = Recorder;
    fn deref(&self) -> &Recorder {
        &self.0
    }
}

/// Waits until `bus` lists at least `n` dead letters (or `timeout`); returns them.
pub async fn wait_dead_letters<B: Bus>(bus: &B, n: usize, timeout: Duration) -> Vec<DeadLetter> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let letters = bus.dead_letters().await.unwrap_or_default();
        if letters.len() >= n || tokio::time::Instant::now() >= deadline {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs each named scenario, an `async fn name<B: TestTransport>()`, as two tests of a module of
/// its name: `memory` on the in-memory bus and `redis` on Redis. See
/// [`on_redis_cluster!`](crate::on_redis_cluster) for the same scenarios on a Redis Cluster.
#[macro_export]
macro_rules! on_both_buses {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                $crate::init_tracing();
                super::$name::<event_bus_core::MemoryBus>().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                $crate::init_tracing();
                super::$name::<event_bus_redis::RedisBus>().await;
            }
        }
    )*};
}

/// Runs each named scenario, an `async fn name<B: TestTransport>()`, on a Redis Cluster of 3
/// masters and 3 replicas (shared by the tests that run at once, see
/// [`crate::cluster::shared`]), as tests `on_redis_cluster::name::redis`. Written after
/// [`on_both_buses!`] in the same file, for a subset of its scenarios.
#[macro_export]
macro_rules! on_redis_cluster {
    ($($name:ident),* $(,)?) => {
        mod on_redis_cluster {$(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    $crate::init_tracing();
                    let cluster = $crate::cluster::shared().await;
                    $crate::bus::on_cluster(
                        cluster.urls(),
                        super::super::$name::<event_bus_redis::RedisBus>(),
                    )
                    .await;
                    drop(cluster);
                }
            }
        )*}
    };
}
