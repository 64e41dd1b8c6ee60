//! Shared readers: when a process runs more subscribers than
//! [`max_reader_connections`](crate::RedisBusBuilder::max_reader_connections), its subscribers
//! are spread over that many shards, each reading for all of its subscribers on one connection.
//! A process then holds a bounded number of connections however many subscribers it runs.
//!
//! A shard alternates two steps:
//!
//! 1. **Poll** the subscribers that may have work, in one pipelined round trip: for each of
//!    their streams `XREVRANGE stream + - COUNT 1` (the stream's last entry, taken *before*
//!    the reads), then for each subscriber a non-blocking `XREADGROUP ... STREAMS stream >`,
//!    never for more entries than its pool has room for. What is read is handed to the
//!    subscriber's worker pool (never handled on the shard's task, so one slow handler holds up
//!    no other subscriber). A subscriber whose read came back full, or found no room, stays due.
//! 2. When no subscriber is due, **wait**: one blocking `XREAD COUNT 1 BLOCK ... STREAMS s1 ..
//!    sN id1 .. idN` from each stream's last entry seen, which returns as soon as any stream
//!    gets an entry after it; the subscribers of the streams that woke are polled. An idle shard
//!    sends one command per `BLOCK`, whatever its number of subscribers.
//!
//! Nothing is missed between the two steps: an entry added after a stream's last entry was
//! taken is after the id the wait starts from. Entries others consumed first (competing
//! consumers in other processes) wake the shard once, and the next poll moves its ids on.
//!
//! A member reading a partition that another consumer of its group owns (see
//! [`assignment`](super::assignment)) is neither polled nor waited on until it owns it.
//!
//! On Redis Cluster a multi-key `XREAD` must stay within one hash slot. There the shards are
//! made per master (see `RedisBus::start`), the streams of one slot kept together: a shard whose
//! streams lie in one slot waits as above; one whose streams span slots checks them with one
//! non-blocking `XREAD` per slot in a single pipelined round trip, [`MULTI_SLOT_POLL`] after
//! activity, backing off to once per `BLOCK` while idle. Its commands go to the master of each key, following `MOVED`/`ASK`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use event_bus_core::transport::{SubscriberCounters, WorkerPool};
use redis::{cmd, RedisResult, Value};
use tokio_util::sync::CancellationToken;

use super::reader::sleep_unless_stopped;
use super::{ConsumerShared, RedisSink};
use crate::connection::{describe, is_nogroup, Backoff, BlockingConnection};
use crate::reply::{self, StreamId};

/// One subscriber read by a shard.
pub(crate) struct Member {
    pub(crate) shared: Arc<ConsumerShared>,
    pub(crate) pool: Arc<WorkerPool<RedisSink>>,
}

/// A stream read by a shard: its key and the last entry seen on it.
struct Watched {
    key: String,
    seen: Option<StreamId>,
}

/// The subscribers of one shard, by stream.
struct Shard {
    members: Vec<Member>,
    /// Each member's stream, as an index into `streams`.
    stream_of: Vec<usize>,
    streams: Vec<Watched>,
    /// Whether each member may have work.
    due: Vec<bool>,
    /// On a cluster, with streams in several slots: how many checks in a row found nothing.
    quiet: u32,
    /// Whether each member may read (a partition is read by its owner only), as last seen.
    allowed: Vec<bool>,
}

impl Shard {
    fn new(members: Vec<Member>) -> Self {
        let mut streams: Vec<Watched> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut stream_of = Vec::with_capacity(members.len());
        for m in &members {
            let i = *index.entry(m.shared.stream.clone()).or_insert_with(|| {
                streams.push(Watched {
                    key: m.shared.stream.clone(),
                    seen: None,
                });
                streams.len() - 1
            });
            stream_of.push(i);
        }
        let due = vec![true; members.len()];
        let allowed = vec![true; members.len()];
        Self {
            members,
            stream_of,
            streams,
            due,
            quiet: 0,
            allowed,
        }
    }

    fn set_error(&self, error: Option<String>) {
        for m in &self.members {
            m.shared.set_reader_error(error.clone());
        }
    }

    /// Starts a read for the members that may read (see `ConsumerShared::begin_read`): one
    /// that may not is never due; one that just may (it took its partition over) is due at
    /// once. Ended by [`end_reads`](Self::end_reads).
    fn refresh_allowed(&mut self) {
        for (m, member) in self.members.iter().enumerate() {
            let now = member.shared.begin_read();
            if now && !self.allowed[m] {
                self.due[m] = true;
            }
            if !now {
                self.due[m] = false;
            }
            self.allowed[m] = now;
        }
    }

    fn end_reads(&self) {
        for member in &self.members {
            member.shared.end_read();
        }
    }

    /// Marks due the subscribers of the streams an `XREAD` reply names.
    fn wake(&mut self, reply: Value) {
        for key in reply::read_reply_streams(reply) {
            for (m, &s) in self.stream_of.iter().enumerate() {
                if self.streams[s].key == key {
                    self.due[m] = true;
                }
            }
        }
    }
}

/// Reads for every member until `stop`.
pub(crate) async fn shard_loop(
    members: Vec<Member>,
    mut conn: BlockingConnection,
    block: Duration,
    batch: usize,
    stop: CancellationToken,
) {
    let mut shard = Shard::new(members);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
    while !stop.is_cancelled() {
        shard.refresh_allowed();
        if !shard.allowed.iter().any(|a| *a) {
            // Every member's partition is owned by another consumer of its group.
            sleep_unless_stopped(Duration::from_millis(50), &stop).await;
            continue;
        }
        let result = if shard.due.iter().any(|d| *d) {
            poll(&mut shard, &mut conn, batch).await
        } else {
            wait(&mut shard, &mut conn, block_ms).await
        };
        shard.end_reads();
        match result {
            Ok(()) => {
                backoff.reset();
                shard.set_error(None);
            }
            Err(e) => {
                for m in &shard.members {
                    SubscriberCounters::add(&m.shared.counters.reconnects, 1);
                }
                let delay = backoff.next_delay();
                let error = describe(&e);
                tracing::warn!(streams = shard.streams.len(), subscribers = shard.members.len(),
                    %error, retry_in_ms = delay.as_millis() as u64, "shared read failed; reconnecting");
                shard.set_error(Some(error));
                shard.due.iter_mut().for_each(|d| *d = true);
                sleep_unless_stopped(delay, &stop).await;
            }
        }
    }
}

/// How soon a shared reader on a cluster whose streams lie in several slots checks them again
/// after finding nothing (a blocking multi-stream `XREAD` must stay within one slot); the
/// pause doubles while they stay quiet, up to one `BLOCK`.
const MULTI_SLOT_POLL: Duration = Duration::from_millis(50);

/// `XREAD COUNT 1 [BLOCK ms] STREAMS s1 .. sN id1 .. idN` for these streams of the shard, from
/// the last entry seen on each.
fn xread(shard: &Shard, streams: &[usize], block_ms: Option<u64>) -> redis::Cmd {
    let mut read = cmd("XREAD");
    read.arg("COUNT").arg(1);
    if let Some(ms) = block_ms {
        read.arg("BLOCK").arg(ms);
    }
    read.arg("STREAMS");
    for &s in streams {
        read.arg(&shard.streams[s].key);
    }
    for &s in streams {
        match shard.streams[s].seen {
            Some(id) => read.arg(id.to_string()),
            None => read.arg("0-0"),
        };
    }
    read
}

/// Blocks until a stream of the shard gets an entry after the last one seen. On a cluster,
/// when the shard's streams lie in several slots, checks them all in one pipelined round trip
/// (one `XREAD` per slot, sent to its master) and, if none has news, pauses
/// [`MULTI_SLOT_POLL`], doubled with each quiet check up to one `BLOCK`.
async fn wait(shard: &mut Shard, conn: &mut BlockingConnection, block_ms: u64) -> RedisResult<()> {
    // The streams some member may read (a partition owned by another consumer is not waited on).
    let watched: Vec<usize> = (0..shard.streams.len())
        .filter(|&i| {
            shard
                .stream_of
                .iter()
                .zip(&shard.allowed)
                .any(|(&s, &allowed)| s == i && allowed)
        })
        .collect();
    if !conn.is_cluster() {
        let reply = conn.query(&xread(shard, &watched, Some(block_ms))).await?;
        shard.wake(reply);
        return Ok(());
    }
    let mut slots: Vec<(u16, Vec<usize>)> = Vec::new();
    for &s in &watched {
        let slot = crate::cluster::key_slot(shard.streams[s].key.as_bytes());
        match slots.iter_mut().find(|(x, _)| *x == slot) {
            Some((_, streams)) => streams.push(s),
            None => slots.push((slot, vec![s])),
        }
    }
    if let [(_, streams)] = slots.as_slice() {
        let reply = conn.query(&xread(shard, streams, Some(block_ms))).await?;
        shard.wake(reply);
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (_, streams) in &slots {
        pipe.add_command(xread(shard, streams, None));
    }
    let replies = conn.query_pipeline(&pipe).await?;
    let mut woke = false;
    for reply in replies {
        let reply = reply?;
        woke |= !matches!(reply, Value::Nil);
        shard.wake(reply);
    }
    if woke {
        shard.quiet = 0;
    } else {
        // Idle: the pause doubles with each quiet check, up to one `BLOCK`.
        let pause = MULTI_SLOT_POLL
            .saturating_mul(1 << shard.quiet.min(8))
            .min(Duration::from_millis(block_ms));
        shard.quiet = shard.quiet.saturating_add(1);
        tokio::time::sleep(pause).await;
    }
    Ok(())
}

/// Reads, in one round trip, for every due member.
async fn poll(shard: &mut Shard, conn: &mut BlockingConnection, batch: usize) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    // The last entry of each stream with a due member, taken before the reads.
    let mut polled_streams = Vec::new();
    for (m, &s) in shard.stream_of.iter().enumerate() {
        if shard.due[m] && !polled_streams.contains(&s) {
            polled_streams.push(s);
        }
    }
    for &s in &polled_streams {
        pipe.cmd("XREVRANGE")
            .arg(&shard.streams[s].key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
    }
    let mut reads = Vec::new();
    for (m, member) in shard.members.iter().enumerate() {
        if !shard.due[m] {
            continue;
        }
        let room = member.pool.room();
        if room == 0 {
            continue; // stays due: read once the pool has room
        }
        let count = batch.min(room);
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&member.shared.group)
            .arg(&member.shared.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&member.shared.stream)
            .arg(">");
        reads.push((m, count));
    }
    if reads.is_empty() {
        // Every due member is waiting for room in its pool.
        tokio::time::sleep(Duration::from_millis(5)).await;
        return Ok(());
    }
    let replies: Vec<RedisResult<Value>> = conn.query_pipeline(&pipe).await?;
    let mut replies = replies.into_iter();
    for &s in &polled_streams {
        if let Some(Ok(last)) = replies.next() {
            if let Some(entry) = reply::entries(last).into_iter().next() {
                shard.streams[s].seen = StreamId::parse(&entry.id);
            } else {
                shard.streams[s].seen = None;
            }
        }
    }
    for (m, count) in reads {
        let member = &shard.members[m];
        match replies.next() {
            Some(Ok(value)) => {
                let entries = reply::read_reply(value);
                shard.due[m] = entries.len() >= count;
                let s = shard.stream_of[m];
                let read_at = tokio::time::Instant::now();
                for entry in entries {
                    if let Some(id) = StreamId::parse(&entry.id) {
                        let seen = &mut shard.streams[s].seen;
                        if seen.is_none_or(|seen| seen < id) {
                            *seen = Some(id);
                        }
                    }
                    if let Some(message) = member
                        .shared
                        .delivery(&member.pool, entry, (0, 1), read_at)
                        .await
                    {
                        member.pool.submit(message).await;
                    }
                }
            }
            Some(Err(e)) if is_nogroup(&e) => {
                member.shared.recreate_group().await;
            }
            Some(Err(e)) => {
                tracing::warn!(stream = %member.shared.stream, group = %member.shared.group,
                    error = %describe(&e), "read failed");
                member.shared.set_reader_error(Some(describe(&e)));
            }
            None => {}
        }
    }
    Ok(())
}
