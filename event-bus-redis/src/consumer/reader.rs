//! The reader: one `XREADGROUP` at a time on a connection of its own, each read carrying the
//! acknowledgements of the batch before it (a read that carries some does not block; one that
//! carries none does), and the entries read handed to the core's worker pool (handled on this
//! task when the subscriber runs one at a time).

use std::sync::Arc;
use std::time::Duration;

use event_bus_core::transport::{SubscriberCounters, WorkerPool};
use redis::cmd;
use tokio_util::sync::CancellationToken;

use super::{ConsumerShared, RedisSink};
use crate::connection::{describe, is_nogroup, Backoff, BlockingConnection};
use crate::reply::{self, Entry};

/// How long the acknowledgements of a batch handled in place may wait to go out with the next
/// read. A quick batch (the common case) costs no round trip of its own; a slow one has its
/// handled entries acknowledged as it goes.
pub(crate) const ACK_WITH_READ_FOR: Duration = Duration::from_millis(100);

/// How often a reader of a partition it does not own looks whether it owns it now.
const NOT_OWNED_POLL: Duration = Duration::from_millis(50);

/// Handles what one read fetched, in order. Every entry is leased as soon as it is read, so
/// that the ones waiting behind a slow handler are not claimed by another consumer.
async fn handle_batch(shared: &ConsumerShared, pool: &WorkerPool<RedisSink>, entries: Vec<Entry>) {
    let mut deliveries = Vec::with_capacity(entries.len());
    let read_at = tokio::time::Instant::now();
    for entry in entries {
        if let Some(message) = shared.delivery(pool, entry, (0, 1), read_at).await {
            deliveries.push(message);
        }
    }
    let flush_at = tokio::time::sleep(ACK_WITH_READ_FOR);
    tokio::pin!(flush_at);
    let mut slow = false;
    for message in deliveries {
        if slow {
            pool.handle(message).await;
            shared.acks.flush_soon();
            continue;
        }
        let handling = pool.handle(message);
        tokio::pin!(handling);
        tokio::select! {
            biased;
            _ = &mut handling => {}
            () = &mut flush_at => {
                slow = true;
                shared.acks.flush_soon();
                handling.await;
                shared.acks.flush_soon();
            }
        }
    }
}

pub(crate) async fn read_loop(
    shared: Arc<ConsumerShared>,
    pool: Arc<WorkerPool<RedisSink>>,
    mut conn: BlockingConnection,
    block: Duration,
    batch: usize,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
    while !stop.is_cancelled() {
        // A partition another consumer of the group owns is not read here.
        if !shared.begin_read() {
            sleep_unless_stopped(NOT_OWNED_POLL, &stop).await;
            continue;
        }
        // Never more than the pool has room for: reads are bounded.
        let count = batch.min(pool.room().max(1));
        // What was handled since the last read is acknowledged in the same round trip as the
        // next read, pipelined before it. That read does not block, so the `XACK`'s reply (and
        // `stats()`) never waits for new entries; when it finds nothing, the next read, with no
        // acknowledgements to carry, blocks. Under load, each batch costs one round trip.
        let acks = shared.acks.take();
        let result = if acks.is_empty() {
            conn.query(&xreadgroup(&shared, count, Some(block_ms)))
                .await
        } else {
            let xack = shared.acks.command(&acks);
            match conn
                .query_pair(xack, xreadgroup(&shared, count, None))
                .await
            {
                Ok((acked, read)) => {
                    match acked {
                        Ok(_) => shared.acks.confirmed(&acks),
                        Err(e) => {
                            tracing::warn!(stream = %shared.stream, group = %shared.group, error = %e,
                                "XACK failed; sent again with the next read");
                            shared.acks.put_back(acks);
                        }
                    }
                    read
                }
                Err(e) => {
                    // Not known to be applied: sent again with the next read (acknowledging
                    // twice is harmless).
                    shared.acks.put_back(acks);
                    Err(e)
                }
            }
        };
        // The reply is parsed and its entries handled and freed on this task before the next
        // read; a stop lets what was read be handled.
        match result {
            Ok(reply) => {
                backoff.reset();
                shared.set_reader_error(None);
                handle_batch(&shared, &pool, reply::read_reply(reply)).await;
                shared.end_read();
            }
            Err(e) if is_nogroup(&e) => {
                shared.end_read();
                if !shared.recreate_group().await {
                    sleep_unless_stopped(backoff.next_delay(), &stop).await;
                }
            }
            Err(e) => {
                shared.end_read();
                SubscriberCounters::add(&shared.counters.reconnects, 1);
                let delay = backoff.next_delay();
                let error = describe(&e);
                tracing::warn!(stream = %shared.stream, group = %shared.group, %error,
                    retry_in_ms = delay.as_millis() as u64, "read failed; reconnecting");
                shared.set_reader_error(Some(error));
                sleep_unless_stopped(delay, &stop).await;
            }
        }
    }
}

/// `XREADGROUP GROUP group consumer COUNT count [BLOCK ms] STREAMS stream >`.
fn xreadgroup(shared: &ConsumerShared, count: usize, block_ms: Option<u64>) -> redis::Cmd {
    let mut read = cmd("XREADGROUP");
    read.arg("GROUP")
        .arg(&shared.group)
        .arg(&shared.consumer)
        .arg("COUNT")
        .arg(count);
    if let Some(ms) = block_ms {
        read.arg("BLOCK").arg(ms);
    }
    read.arg("STREAMS").arg(&shared.stream).arg(">");
    read
}

pub(crate) async fn sleep_unless_stopped(delay: Duration, stop: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = stop.cancelled() => {}
    }
}
