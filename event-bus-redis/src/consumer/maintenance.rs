//! Maintenance: a periodic round of claims, consumer clean-up, the check for entries trimmed
//! before the group read them ([`trimming`](super::trimming)) and retention, for one
//! subscriber. Rounds are jittered (the first one starts at a random point of the interval,
//! later ones vary by ±10 %), so the subscribers of a process do not all tick together.
//!
//! At start, before the first round, it looks once at what the consumer starts from: entries
//! trimmed while the subscriber was away (seen best before its first read passes them), and a
//! dead-letter stream shared with the seed system that is near the seed's cap.

use std::sync::Arc;
use std::time::Duration;

use event_bus_core::transport::WorkerPool;
use redis::streams::{StreamInfoConsumersReply, StreamPendingCountReply};
use redis::{cmd, RedisResult, Value};
use tokio_util::sync::CancellationToken;

use super::reader::sleep_unless_stopped;
use super::trimming::TrimCheck;
use super::{claims, ConsumerShared, RedisSink};
use crate::config::Retention;
use crate::dead_letter;

/// What maintenance does, and how often.
pub(crate) struct Settings {
    pub(crate) claim_idle: Duration,
    pub(crate) interval: Duration,
    pub(crate) consumer_idle_timeout: Duration,
    pub(crate) retention: Retention,
    pub(crate) batch: usize,
    /// The deployment's replay-request counter, shared by the process's consumers.
    pub(crate) replay_signal: Arc<super::replays::ReplaySignal>,
}

/// The slow checks (consumer clean-up, entries trimmed by others) run at most this often: they
/// look for things that change slowly, and every subscriber of a process runs them, so running
/// them every round would be most of an idle process's Redis load.
const SLOW_CHECKS_EVERY: Duration = Duration::from_secs(30);

/// `interval` scaled by a random factor in `[low, high)`.
fn jittered(interval: Duration, low: f64, high: f64) -> Duration {
    interval.mul_f64(low + (high - low) * fastrand::f64())
}

pub(crate) async fn maintenance_loop(
    shared: Arc<ConsumerShared>,
    pool: Arc<WorkerPool<RedisSink>>,
    settings: Settings,
    stop: CancellationToken,
) {
    let mut trim_check = TrimCheck::default();
    {
        let mut conn = shared.conn.clone();
        if let Err(e) =
            dead_letter::warn_if_shared_near_cap(&mut conn, &shared.dl_stream, &shared.group).await
        {
            tracing::debug!(stream = %shared.dl_stream, error = %e, "could not look at the dead-letter stream");
        }
    }
    check_trimmed(&shared, &mut trim_check, 0).await;
    let mut delay = jittered(settings.interval, 0.0, 1.0);
    // Consumer clean-up at most every quarter of the idle timeout it enforces (and a minute).
    let clean_up_every = settings
        .interval
        .max((settings.consumer_idle_timeout / 4).min(Duration::from_secs(60)));
    let trim_check_every = settings.interval.max(SLOW_CHECKS_EVERY);
    let started = tokio::time::Instant::now();
    let (mut cleaned_up, mut trim_checked) = (started, started);
    let mut replays = super::replays::Replays::new(
        &shared,
        settings.batch,
        settings.claim_idle,
        settings.consumer_idle_timeout,
        Arc::clone(&settings.replay_signal),
    );
    loop {
        sleep_unless_stopped(delay, &stop).await;
        if stop.is_cancelled() {
            return;
        }
        delay = jittered(settings.interval, 0.9, 1.1);
        // A partition is claimed from by its owner only (it claims everything when it takes
        // the partition over; see `assignment`).
        if shared.may_read() {
            if let Err(e) =
                claims::claim_stale(&shared, &pool, settings.claim_idle, settings.batch, &stop)
                    .await
            {
                tracing::warn!(stream = %shared.stream, group = %shared.group, error = %e, "claiming stale entries failed");
            }
        }
        replays.round(&shared, &pool).await;
        if cleaned_up.elapsed() >= clean_up_every {
            cleaned_up = tokio::time::Instant::now();
            if let Err(e) = remove_idle_consumers(&shared, settings.consumer_idle_timeout).await {
                tracing::warn!(stream = %shared.stream, group = %shared.group, error = %e, "removing idle consumers failed");
            }
        }
        // Trimmed by others first; then what this round's own cap trims, which it counts itself.
        if trim_check.inconclusive
            || trim_checked.elapsed() >= trim_check_every
            || settings.retention != Retention::Unbounded
        {
            trim_checked = tokio::time::Instant::now();
            check_trimmed(&shared, &mut trim_check, 0).await;
        }
        let counted_before = shared.counters.trimmed_unhandled.get();
        if let Err(e) = crate::retention::apply(
            &shared.conn,
            &shared.stream,
            settings.retention,
            &shared.counters,
        )
        .await
        {
            tracing::warn!(stream = %shared.stream, error = %e, "retention failed");
        }
        let own = shared
            .counters
            .trimmed_unhandled
            .get()
            .saturating_sub(counted_before);
        if own > 0 {
            check_trimmed(&shared, &mut trim_check, own).await;
        }
    }
}

/// Counts the entries removed before the group read them (see [`TrimCheck`]), less
/// `already_counted`.
async fn check_trimmed(shared: &ConsumerShared, check: &mut TrimCheck, already_counted: u64) {
    if let Err(e) = check.run(shared, already_counted).await {
        tracing::warn!(stream = %shared.stream, group = %shared.group, error = %e,
            "could not check for entries trimmed before the group read them; trying again next round");
    }
}

/// Removes consumers of the group that have been idle for `timeout` and hold no pending
/// entries. A consumer with pending entries is never removed.
async fn remove_idle_consumers(shared: &ConsumerShared, timeout: Duration) -> RedisResult<()> {
    let mut conn = shared.conn.clone();
    let info: StreamInfoConsumersReply = cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&shared.stream)
        .arg(&shared.group)
        .query_async(&mut conn)
        .await?;
    let timeout_ms = usize::try_from(timeout.as_millis()).unwrap_or(usize::MAX);
    for consumer in info.consumers {
        if consumer.name.is_empty()
            || consumer.name == shared.consumer
            || consumer.pending != 0
            || consumer.idle < timeout_ms
        {
            continue;
        }
        // DELCONSUMER would drop pending entries: re-check the count right before.
        let still: StreamPendingCountReply = cmd("XPENDING")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(&consumer.name)
            .query_async(&mut conn)
            .await?;
        if !still.ids.is_empty() {
            continue;
        }
        let _: Value = cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg(&consumer.name)
            .query_async(&mut conn)
            .await?;
        tracing::info!(stream = %shared.stream, group = %shared.group, consumer = %consumer.name, "removed idle consumer");
    }
    Ok(())
}
