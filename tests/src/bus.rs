//! [`AnyBus`]: the in-memory and the Redis bus behind one API, so behaviour tests are written
//! once and run against both.

use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{
    DeadLetter, DeadLetterError, Event, MemoryBus, PublishError, Published, RetryPolicy,
    ShutdownError, StartError,
};
use event_bus_redis::{RedisBus, RunningRedisBus};

use crate::probe::Recorder;

/// Which bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// `MemoryBus`.
    Memory,
    /// `RedisBus` on the shared server.
    Redis,
}

/// How a test bus is set up: fast retries, a unique prefix, the chosen subscribers, and a
/// [`Recorder`] as state.
#[derive(Debug, Clone)]
pub struct TestBus {
    /// Which bus.
    pub kind: BusKind,
    /// The Redis URL (Redis only).
    pub url: String,
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
}

impl TestBus {
    /// A test bus of `kind` running `only` under a fresh prefix.
    pub fn new(kind: BusKind, test: &str, only: &[&str]) -> Self {
        Self {
            kind,
            url: crate::redis_url(),
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
        }
    }

    /// Builds a bus (another instance with the same settings shares groups on Redis).
    pub async fn build(&self) -> AnyBus {
        match self.kind {
            BusKind::Memory => AnyBus::Memory(
                MemoryBus::builder()
                    .prefix(&self.prefix)
                    .only(self.only.clone())
                    .state(SharedRecorder(Arc::clone(&self.recorder)))
                    .retry_policy(self.retry)
                    .shutdown_timeout(self.shutdown_timeout)
                    .build(),
            ),
            BusKind::Redis => {
                let mut builder = RedisBus::builder()
                    .url(&self.url)
                    .prefix(&self.prefix)
                    .only(self.only.clone())
                    .state(SharedRecorder(Arc::clone(&self.recorder)))
                    .retry_policy(self.retry)
                    .shutdown_timeout(self.shutdown_timeout)
                    .claim_idle(self.claim_idle)
                    .claim_interval(self.claim_interval)
                    .block(self.block);
                if let Some(name) = &self.consumer_name {
                    builder = builder.consumer_name(name);
                }
                match builder.build().await {
                    Ok(bus) => AnyBus::Redis(bus),
                    Err(e) => panic!("cannot connect to Redis at {}: {e}", self.url),
                }
            }
        }
    }

    /// Deletes the test's keys (Redis).
    pub async fn cleanup(&self) {
        if self.kind == BusKind::Redis {
            let _ = crate::delete_prefix(&self.url, &self.prefix).await;
        }
    }
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

/// Either bus.
#[derive(Debug, Clone)]
pub enum AnyBus {
    /// In memory.
    Memory(MemoryBus),
    /// On Redis.
    Redis(RedisBus),
}

/// Either running bus.
#[derive(Debug)]
pub enum AnyRunning {
    /// In memory.
    Memory(event_bus_core::RunningMemoryBus),
    /// On Redis.
    Redis(RunningRedisBus),
}

impl AnyBus {
    /// Publishes.
    pub async fn publish<E: Event>(&self, event: E) -> Result<Published, PublishError> {
        match self {
            AnyBus::Memory(b) => b.publish(event).await,
            AnyBus::Redis(b) => b.publish(event).await,
        }
    }

    /// Starts.
    pub async fn start(&self) -> Result<AnyRunning, StartError> {
        Ok(match self {
            AnyBus::Memory(b) => AnyRunning::Memory(b.start().await?),
            AnyBus::Redis(b) => AnyRunning::Redis(b.start().await?),
        })
    }

    /// Lists dead letters.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        match self {
            AnyBus::Memory(b) => b.dead_letters().await,
            AnyBus::Redis(b) => b.dead_letters().await,
        }
    }

    /// Replays one dead letter.
    pub async fn replay_dead_letter(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        match self {
            AnyBus::Memory(b) => b.replay_dead_letter(letter).await,
            AnyBus::Redis(b) => b.replay_dead_letter(letter).await,
        }
    }

    /// Purges dead letters.
    pub async fn purge_dead_letters(&self) -> Result<usize, DeadLetterError> {
        match self {
            AnyBus::Memory(b) => b.purge_dead_letters().await,
            AnyBus::Redis(b) => b.purge_dead_letters().await,
        }
    }

    /// Waits until `n` dead letters exist (or `timeout`); returns them.
    pub async fn wait_dead_letters(&self, n: usize, timeout: Duration) -> Vec<DeadLetter> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let letters = self.dead_letters().await.unwrap_or_default();
            if letters.len() >= n || tokio::time::Instant::now() >= deadline {
                return letters;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl AnyRunning {
    /// Shuts down gracefully.
    pub async fn shutdown(self) -> Result<(), ShutdownError> {
        match self {
            AnyRunning::Memory(r) => r.shutdown().await,
            AnyRunning::Redis(r) => r.shutdown().await,
        }
    }
}
