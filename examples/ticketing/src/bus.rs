//! The demo's bus: the in-memory bus, or Redis when `REDIS_URL` is set. Both implement
//! [`Bus`](event_bus_core::Bus), so the demo itself (`main::run`) is one generic function and
//! does not know which one runs; only building a bus differs, and cleaning up after a Redis
//! run.

use std::future::Future;
use std::time::Duration;

use event_bus_core::transport::BusOptions;
use event_bus_core::{BoxError, MemoryBus, RetryPolicy, RunningBus, StartError};
use event_bus_redis::RedisBus;

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

/// What both builders get, written once: the shared state (one value per `State<T>` the
/// subscribers take; start fails if one is missing), the subscribers we rely on, the retry
/// policy and the shutdown deadline.
fn common(options: &mut BusOptions, app: &App) {
    options.state.insert(app.directory.clone());
    options.state.insert(app.mailer.clone());
    options.state.insert(app.sla.clone());
    options.state.insert(app.audit.clone());
    options.state.insert(app.webhooks.clone());
    options.state.insert(app.scoreboard.clone());
    // The linking safety net: start fails if one of these is not in the binary.
    options.selection.expect(subscribers::ALL);
    options.retry = retry_policy();
    options.shutdown_timeout = SHUTDOWN_TIMEOUT;
}

/// The in-memory bus.
pub async fn memory(app: &App) -> Result<MemoryBus, StartError> {
    MemoryBus::builder()
        .with_options(|options| common(options, app))
        .build()
        .await
}

/// A run on Redis: the server, and a stream prefix of the run's own, so runs never see each
/// other's streams (and the run's keys can be deleted afterwards).
#[derive(Debug, Clone)]
pub struct RedisRun {
    url: String,
    prefix: String,
}

impl RedisRun {
    /// A run on the Redis at `url`, under a fresh prefix.
    pub fn new(url: &str) -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        Self {
            url: url.to_owned(),
            prefix: format!("ticketing-demo-{}", &run[..8]),
        }
    }

    /// The Redis bus of this run.
    pub async fn bus(&self, app: &App) -> Result<RedisBus, StartError> {
        RedisBus::builder()
            .url(self.url.as_str())
            .prefix(self.prefix.as_str())
            // Short blocking reads: shutdown does not wait a full second for idle readers.
            .block(Duration::from_millis(250))
            .with_options(|options| common(options, app))
            .build()
            .await
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The run's own prefix: every key of the run starts with it and a colon.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// In words, for the banner.
    pub fn describe(&self) -> String {
        format!(
            "Redis at {}, streams {}:*",
            event_bus_redis::redact_url(&self.url),
            self.prefix
        )
    }

    /// Deletes every key of this run; returns how many. The bus must be shut down.
    pub async fn delete_keys(&self) -> Result<usize, BoxError> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut con = client.get_multiplexed_async_connection().await?;
        let pattern = format!("{}:*", self.prefix);
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

/// How long the bus may take to settle before the demo gives up.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Waits until the bus is idle (every delivery so far handled or dead-lettered, retries
/// included, on either bus), then checks that `done` holds. A bus that does not settle within
/// 30 s fails the demo instead of hanging it (and CI).
pub async fn settle<R, F, Fut>(running: &R, what: &str, done: F) -> Result<(), BoxError>
where
    R: RunningBus,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<bool, BoxError>>,
{
    let start = tokio::time::Instant::now();
    let idle = running.idle();
    tokio::pin!(idle);
    loop {
        tokio::select! {
            () = &mut idle => break,
            () = tokio::time::sleep(Duration::from_secs(2)) => {
                if start.elapsed() > SETTLE_LIMIT {
                    return Err(format!(
                        "gave up after {} s waiting for {what}",
                        SETTLE_LIMIT.as_secs()
                    )
                    .into());
                }
                println!("        ... still waiting for {what}");
            }
        }
    }
    if done().await? {
        Ok(())
    } else {
        Err(format!("the bus is idle, but {what} did not happen").into())
    }
}

/// Graceful shutdown. The bus gives in-flight handlers 10 s; a shutdown that takes much
/// longer than that is a bug, reported as an error instead of hanging the demo (and CI).
pub async fn shutdown<R: RunningBus>(running: R) -> Result<(), BoxError> {
    let limit = SHUTDOWN_TIMEOUT + Duration::from_secs(10);
    match tokio::time::timeout(limit, running.shutdown()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(format!("the bus did not shut down within {} s", limit.as_secs()).into()),
    }
}
