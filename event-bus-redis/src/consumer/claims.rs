//! Crash recovery: entries another consumer of the group left pending for longer than
//! `claim_idle` (it died, or stalled) are claimed with `XAUTOCLAIM` and handled here, with
//! their history (failed handler runs recorded, deliveries counted) so that the core's
//! dispatcher decides their fate as for any other delivery.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use event_bus_core::transport::{SubscriberCounters, WorkerPool};
use redis::streams::StreamPendingCountReply;
use redis::{cmd, RedisResult, Value};
use tokio_util::sync::CancellationToken;

use super::acks::Ack;
use super::{ConsumerShared, RedisSink};
use crate::dead_letter;
use crate::reply::{self, Entry};
use crate::runs;

/// The history of claimed entries: (failed runs, deliveries) by id.
async fn history(
    shared: &ConsumerShared,
    claimed: &[Entry],
) -> RedisResult<HashMap<String, (u32, u32)>> {
    let (Some(first), Some(last)) = (claimed.first(), claimed.last()) else {
        return Ok(HashMap::new());
    };
    let mut conn = shared.conn.clone();
    let pending: StreamPendingCountReply = cmd("XPENDING")
        .arg(&shared.stream)
        .arg(&shared.group)
        .arg(&first.id)
        .arg(&last.id)
        .arg(claimed.len() * 2 + 10)
        .arg(&shared.consumer)
        .query_async(&mut conn)
        .await?;
    let ids: Vec<&str> = claimed.iter().map(|e| e.id.as_str()).collect();
    let recorded = runs::read(&mut conn, &shared.runs_key, &ids).await?;
    let deliveries: HashMap<&str, u32> = pending
        .ids
        .iter()
        .map(|p| {
            (
                p.id.as_str(),
                u32::try_from(p.times_delivered).unwrap_or(u32::MAX),
            )
        })
        .collect();
    Ok(ids
        .iter()
        .zip(recorded)
        .map(|(id, runs)| {
            // A claim raises the count by one, so a claimed entry was delivered twice at least.
            let delivered = deliveries.get(id).copied().unwrap_or(2);
            ((*id).to_owned(), (runs, delivered))
        })
        .collect())
}

/// Claims entries left pending by other consumers for longer than `claim_idle` and hands them
/// to the pool; records entries deleted meanwhile.
pub(crate) async fn claim_stale(
    shared: &ConsumerShared,
    pool: &WorkerPool<RedisSink>,
    claim_idle: Duration,
    batch: usize,
    stop: &CancellationToken,
) -> RedisResult<()> {
    let mut conn = shared.conn.clone();
    let idle_ms = u64::try_from(claim_idle.as_millis()).unwrap_or(u64::MAX);
    let mut cursor = "0-0".to_owned();
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let value: Value = cmd("XAUTOCLAIM")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg(&shared.consumer)
            .arg(idle_ms)
            .arg(&cursor)
            .arg("COUNT")
            .arg(batch)
            .query_async(&mut conn)
            .await?;
        let claimed_at = tokio::time::Instant::now();
        let (next, claimed, deleted) = reply::autoclaim_reply(value);
        if !deleted.is_empty() {
            SubscriberCounters::add(&shared.counters.deleted_while_pending, deleted.len() as u64);
            tracing::warn!(stream = %shared.stream, group = %shared.group, ids = ?deleted,
                "pending entries were deleted from the stream before they were handled (trimmed or XDEL'd)");
        }
        if !claimed.is_empty() {
            handle_claimed(shared, pool, claimed, claimed_at).await?;
        }
        if next == "0-0" {
            return Ok(());
        }
        cursor = next;
    }
}

async fn handle_claimed(
    shared: &ConsumerShared,
    pool: &WorkerPool<RedisSink>,
    claimed: Vec<Entry>,
    claimed_at: tokio::time::Instant,
) -> RedisResult<()> {
    SubscriberCounters::add(&shared.counters.claimed, claimed.len() as u64);
    tracing::info!(stream = %shared.stream, group = %shared.group, count = claimed.len(), "claimed stale entries");
    // Without its history an entry cannot be judged: leave it pending with us (a later
    // round claims it again after claim_idle) rather than guess its attempts.
    let history = history(shared, &claimed).await?;
    let mut conn = shared.conn.clone();
    let ids: Vec<String> = claimed.iter().map(|e| e.id.clone()).collect();
    let done =
        dead_letter::already_dead_lettered(&mut conn, &shared.dl_stream, &shared.group, &ids)
            .await?;
    for entry in claimed {
        if done.contains(&entry.id) {
            // Dead-lettered by a consumer that died before acknowledging.
            if reply::is_stream_id(&entry.id) {
                let id = Arc::from(entry.id);
                shared.acks.push(Ack { id, handled: false }, true);
            }
            continue;
        }
        let (runs, deliveries) = history.get(&entry.id).copied().unwrap_or((0, 2));
        if let Some(message) = shared
            .delivery(pool, entry, (runs, deliveries), claimed_at)
            .await
        {
            pool.submit(message).await;
        }
    }
    Ok(())
}
