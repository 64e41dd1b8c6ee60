//! One bus for the demo: the in-memory bus, or Redis when `REDIS_URL` is set. Both have the same
//! API, so this is a thin enum; application code (events, subscribers) does not know which runs.

use std::future::Future;
use std::time::Duration;

use event_bus_core::{
    BoxError, DeadLetter, DeadLetterError, Event, MemoryBus, PublishError, Published, RetryPolicy,
    RunningMemoryBus, StartError,
};
use event_bus_redis::{RedisBus, RunningRedisBus};

use crate::state::App;
use crate::subscribers;

/// How long shutdown waits for in-flight handlers.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Quick retries: the demo should not sit in backoff for long.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(3)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// What both builders get: the shared state, the subscribers we rely on, the retry policy.
macro_rules! configure {
    ($builder:expr, $app:expr) => {
        $builder
            .state($app.directory.clone())
            .state($app.mailer.clone())
            .state($app.sla.clone())
            .state($app.audit.clone())
            .state($app.webhooks.clone())
            .state($app.scoreboard.clone())
            // The linking safety net: start fails if one of these is not in the binary.
            .expect_subscribers(subscribers::ALL)
            .retry_policy(retry_policy())
            .shutdown_timeout(SHUTDOWN_TIMEOUT)
    };
}

/// The bus the demo runs on.
#[derive(Debug)]
pub enum Bus {
    Memory(MemoryBus),
    Redis {
        bus: RedisBus,
        url: String,
        prefix: String,
    },
}

impl Bus {
    /// The in-memory bus.
    pub fn memory(app: &App) -> Self {
        Bus::Memory(configure!(MemoryBus::builder(), app).build())
    }

    /// A Redis bus under a prefix of its own, so runs never see each other's streams.
    pub async fn redis(app: &App, url: &str) -> Result<Self, StartError> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("ticketing-demo-{}", &run[..8]);
        let bus = configure!(RedisBus::builder(), app)
            .url(url)
            .prefix(prefix.as_str())
            // Short blocking reads: shutdown does not wait a full second for idle readers.
            .block(Duration::from_millis(250))
            .build()
            .await?;
        Ok(Bus::Redis {
            bus,
            url: url.to_owned(),
            prefix,
        })
    }

    /// In words, for the banner.
    pub fn describe(&self) -> String {
        match self {
            Bus::Memory(_) => "the in-memory bus".to_owned(),
            Bus::Redis { url, prefix, .. } => format!("Redis at {url}, streams {prefix}:*"),
        }
    }

    pub async fn publish<E: Event>(&self, event: E) -> Result<Published, PublishError> {
        match self {
            Bus::Memory(bus) => bus.publish(event).await,
            Bus::Redis { bus, .. } => bus.publish(event).await,
        }
    }

    pub async fn start(&self) -> Result<Running, StartError> {
        Ok(match self {
            Bus::Memory(bus) => Running::Memory(bus.start().await?),
            Bus::Redis { bus, .. } => Running::Redis(bus.start().await?),
        })
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        match self {
            Bus::Memory(bus) => bus.dead_letters().await,
            Bus::Redis { bus, .. } => bus.dead_letters().await,
        }
    }

    pub async fn replay_dead_letter(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        match self {
            Bus::Memory(bus) => bus.replay_dead_letter(letter).await,
            Bus::Redis { bus, .. } => bus.replay_dead_letter(letter).await,
        }
    }

    /// Deletes every key of this run (Redis); returns how many. The bus must be shut down.
    pub async fn delete_streams(&self) -> Result<usize, BoxError> {
        let Bus::Redis { url, prefix, .. } = self else {
            return Ok(0);
        };
        let client = redis::Client::open(url.as_str())?;
        let mut con = client.get_multiplexed_async_connection().await?;
        let pattern = format!("{prefix}:*");
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut con)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        // One key per command, as the bus itself does (cluster-friendly).
        for key in &keys {
            redis::cmd("DEL")
                .arg(key)
                .query_async::<i64>(&mut con)
                .await?;
        }
        Ok(keys.len())
    }
}

/// A started bus.
#[derive(Debug)]
pub enum Running {
    Memory(RunningMemoryBus),
    Redis(RunningRedisBus),
}

impl Running {
    /// Waits until the bus has settled and `done` holds. The in-memory bus knows when every
    /// delivery (retries included) is finished; on Redis, other processes could be consuming
    /// too, so we watch for the outcome we expect, with a deadline.
    pub async fn settle<F, Fut>(&self, what: &str, mut done: F) -> Result<(), BoxError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, BoxError>>,
    {
        match self {
            Running::Memory(running) => {
                running.idle().await;
                if done().await? {
                    Ok(())
                } else {
                    Err(format!("the bus is idle, but {what} did not happen").into())
                }
            }
            Running::Redis(_) => {
                let start = tokio::time::Instant::now();
                let mut next_note = start + Duration::from_secs(2);
                loop {
                    if done().await? {
                        return Ok(());
                    }
                    let now = tokio::time::Instant::now();
                    if now - start > Duration::from_secs(30) {
                        return Err(format!("gave up after 30 s waiting for {what}").into());
                    }
                    if now >= next_note {
                        println!("        ... still waiting for {what}");
                        next_note += Duration::from_secs(2);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Graceful shutdown. The bus gives in-flight handlers 10 s; a shutdown that takes much
    /// longer than that is a bug, reported as an error instead of hanging the demo (and CI).
    pub async fn shutdown(self) -> Result<(), BoxError> {
        let limit = SHUTDOWN_TIMEOUT + Duration::from_secs(10);
        let shutdown = async {
            match self {
                Running::Memory(running) => running.shutdown().await,
                Running::Redis(running) => running.shutdown().await,
            }
        };
        match tokio::time::timeout(limit, shutdown).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(format!("the bus did not shut down within {} s", limit.as_secs()).into()),
        }
    }
}
