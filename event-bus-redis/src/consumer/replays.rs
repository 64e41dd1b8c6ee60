//! Replay requests: how an operator's `event-bus dead-letters replay` reaches the running
//! consumers of the failing subscriber's group, and no other subscriber.
//!
//! The request is an entry of `{stream}:replay:{group}` naming a dead letter
//! ([`crate::admin::request_replay`] writes it, and creates the stream's consumer group, named
//! like the subscriber). Each maintenance round, a consumer of the group:
//!
//! 1. settles the requests it holds whose replay has ended (the message is
//!    dropped by the pool once the sink has acted on the outcome): if the dead letter is gone
//!    (deleted after the handler succeeded, or replaced by a new letter), the request is
//!    acknowledged and deleted; if it is still there (the sink could not write or delete), the
//!    letter is handed over again. Requests still running have their idle time reset
//!    (`XCLAIM ... JUSTID`), so no other consumer claims them meanwhile;
//! 2. reads new requests, when there may be some: in its first round, after the counter
//!    `{prefix}:replay-requests` moved (every request bumps it; the process polls it through one
//!    [`ReplaySignal`] shared by all its consumers, at most twice per round interval), and while
//!    its request stream still holds entries. Then one non-blocking `XREADGROUP COUNT n` (no
//!    key: one `NOGROUP` reply, and the round ends there), every [`CLAIM_EVERY`] rounds an
//!    `XAUTOCLAIM` of the requests another consumer left pending for `claim_idle` (it died
//!    mid-replay), and, when that found nothing, an `XLEN` to know whether to look again;
//! 3. hands each request's letter to the subscriber's worker pool, as
//!    `RedisBus::replay_dead_letter` does: the dispatcher decodes, validates, retries and
//!    dead-letters it again as for any delivery. A request whose letter is gone is settled at
//!    once; one naming another subscriber's letter or a foreign letter is logged and dropped.
//!
//! After a round that settled a request, the consumers of the request stream's group idle for
//! `consumer_idle_timeout` with nothing pending (processes gone since) are removed.
//!
//! The idle cost: nothing per subscriber; one `GET` of the counter per process, at most twice per
//! `claim_interval`. After a request, every consumer of the process looks once (the counter
//! does not say for whom), and the consumers of the subscriber asked for until its request
//! stream is empty again.
//!
//! So a replay starts within about 1.5 maintenance rounds (`claim_interval`, 5 s by default) of the
//! request, and runs at least once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Conn;
use event_bus_core::transport::{Message, Release, WorkerPool};
use redis::streams::StreamInfoConsumersReply;
use redis::{cmd, RedisResult, Value};
use tokio::time::Instant;

use super::{ConsumerShared, RedisSink};
use crate::admin::REPLAY_FIELD_DEAD_LETTER;
use crate::connection::is_nogroup;
use crate::keys::replay_stream;
use crate::reply::{self, Entry};

/// Requests left pending by another consumer are claimed every this many rounds (and in the
/// first one).
pub(crate) const CLAIM_EVERY: u32 = 6;

/// The counter of replay requests of the deployment (`{prefix}:replay-requests`), as this
/// process last read it: shared by all its consumers, read from Redis at most once per
/// `refresh`.
pub(crate) struct ReplaySignal {
    key: String,
    refresh: Duration,
    /// The value and when it was read.
    last: tokio::sync::Mutex<Option<(u64, Instant)>>,
}

impl ReplaySignal {
    pub(crate) fn new(prefix: &str, refresh: Duration) -> Self {
        Self {
            key: crate::keys::replay_signal(prefix),
            refresh,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The counter: the value read less than `refresh` ago, or a fresh one. Consumers asking
    /// meanwhile wait for that one read.
    async fn current(&self, conn: &mut Conn) -> RedisResult<u64> {
        let mut last = self.last.lock().await;
        if let Some((value, at)) = *last {
            if at.elapsed() < self.refresh {
                return Ok(value);
            }
        }
        let value: Option<u64> = cmd("GET").arg(&self.key).query_async(conn).await?;
        let value = value.unwrap_or(0);
        *last = Some((value, Instant::now()));
        Ok(value)
    }
}

/// Set when the replay's message is dropped: its outcome has been carried out (or it was not
/// taken).
#[derive(Default)]
struct Ended(AtomicBool);

impl Ended {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Release for Ended {
    fn release(&self, _: usize) {
        self.0.store(true, Ordering::Release);
    }
}

/// A request this consumer holds.
struct Held {
    letter: String,
    ended: Arc<Ended>,
}

/// One consumer's replay requests.
pub(crate) struct Replays {
    key: String,
    batch: usize,
    claim_idle: Duration,
    consumer_idle_timeout: Duration,
    rounds: u32,
    /// A request was settled this round: time to remove the request group's idle consumers.
    settled: bool,
    /// By request entry id.
    held: HashMap<String, Held>,
    signal: Arc<ReplaySignal>,
    /// The counter when this consumer last looked at its request stream.
    looked_at: Option<u64>,
    /// The request stream held entries when it last looked: look again next round.
    busy: bool,
}

impl Replays {
    pub(crate) fn new(
        shared: &ConsumerShared,
        batch: usize,
        claim_idle: Duration,
        consumer_idle_timeout: Duration,
        signal: Arc<ReplaySignal>,
    ) -> Self {
        Self {
            signal,
            looked_at: None,
            busy: false,
            key: replay_stream(&shared.stream, &shared.group),
            batch: batch.max(1),
            claim_idle,
            consumer_idle_timeout,
            rounds: 0,
            settled: false,
            held: HashMap::new(),
        }
    }

    /// One round (see the module docs); errors are logged, and the round tried again next time.
    pub(crate) async fn round(&mut self, shared: &ConsumerShared, pool: &WorkerPool<RedisSink>) {
        if let Err(e) = self.try_round(shared, pool).await {
            tracing::warn!(stream = %self.key, group = %shared.group, error = %e,
                "replay requests: trying again next round");
        }
    }

    async fn try_round(
        &mut self,
        shared: &ConsumerShared,
        pool: &WorkerPool<RedisSink>,
    ) -> RedisResult<()> {
        self.settle(shared, pool).await?;
        let mut conn = shared.conn.clone();
        let signal = self.signal.current(&mut conn).await?;
        if !self.busy && self.held.is_empty() && self.looked_at == Some(signal) {
            return Ok(()); // no request since this consumer last looked, none left
        }
        self.looked_at = Some(signal);
        let claim = self.rounds.is_multiple_of(CLAIM_EVERY);
        self.rounds = self.rounds.wrapping_add(1);
        let read: RedisResult<Value> = cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&shared.group)
            .arg(&shared.consumer)
            .arg("COUNT")
            .arg(self.batch)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut conn)
            .await;
        let mut requests = match read {
            Ok(v) => reply::read_reply(v),
            // No request was ever written (or the group is gone): nothing to claim either.
            Err(e) if is_nogroup(&e) => {
                self.busy = false;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if claim {
            let claimed: Value = cmd("XAUTOCLAIM")
                .arg(&self.key)
                .arg(&shared.group)
                .arg(&shared.consumer)
                .arg(u64::try_from(self.claim_idle.as_millis()).unwrap_or(u64::MAX))
                .arg("0-0")
                .arg("COUNT")
                .arg(self.batch)
                .query_async(&mut conn)
                .await?;
            requests.extend(reply::autoclaim_reply(claimed).1);
        }
        // With nothing read, look again next round only while the stream holds requests
        // (pending with a consumer that may have died, to be claimed in a later round).
        self.busy = !requests.is_empty() || {
            let len: u64 = cmd("XLEN").arg(&self.key).query_async(&mut conn).await?;
            len > 0
        };
        for request in requests {
            self.start(shared, pool, request).await?;
        }
        if std::mem::take(&mut self.settled) {
            self.remove_idle_consumers(shared).await?;
        }
        Ok(())
    }

    /// Every process that read requests left a consumer in the request stream's group: those
    /// idle for `consumer_idle_timeout` with nothing pending are removed, after a request was
    /// settled (so an idle subscriber pays nothing for it).
    async fn remove_idle_consumers(&self, shared: &ConsumerShared) -> RedisResult<()> {
        let mut conn = shared.conn.clone();
        let info: StreamInfoConsumersReply = cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.key)
            .arg(&shared.group)
            .query_async(&mut conn)
            .await?;
        let timeout_ms =
            usize::try_from(self.consumer_idle_timeout.as_millis()).unwrap_or(usize::MAX);
        for consumer in info.consumers {
            if consumer.name == shared.consumer
                || consumer.pending != 0
                || consumer.idle < timeout_ms
            {
                continue;
            }
            // A consumer with nothing pending loses nothing when deleted.
            let _: Value = cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&self.key)
                .arg(&shared.group)
                .arg(&consumer.name)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Settles the ended replays, re-submits those whose letter stayed, and keeps the running
    /// ones from being claimed.
    async fn settle(
        &mut self,
        shared: &ConsumerShared,
        pool: &WorkerPool<RedisSink>,
    ) -> RedisResult<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let mut conn = shared.conn.clone();
        let mut running = Vec::new();
        let ids: Vec<String> = self.held.keys().cloned().collect();
        for id in ids {
            let Some(held) = self.held.get(&id) else {
                continue;
            };
            if !held.ended.is_set() {
                running.push(id);
                continue;
            }
            let letter = held.letter.clone();
            if self.letter_exists(shared, &letter).await? {
                tracing::warn!(stream = %self.key, group = %shared.group, dead_letter = %letter,
                    "the replay ended but its dead letter is still there; replaying it again");
                match self.submit(shared, pool, &letter).await {
                    Some(ended) => {
                        if let Some(held) = self.held.get_mut(&id) {
                            held.ended = ended;
                        }
                        running.push(id);
                    }
                    None => self.done(shared, &id).await?,
                }
            } else {
                self.done(shared, &id).await?;
            }
        }
        if !running.is_empty() {
            let _: Value = cmd("XCLAIM")
                .arg(&self.key)
                .arg(&shared.group)
                .arg(&shared.consumer)
                .arg(0)
                .arg(&running)
                .arg("JUSTID")
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Starts the replay a request asks for.
    async fn start(
        &mut self,
        shared: &ConsumerShared,
        pool: &WorkerPool<RedisSink>,
        request: Entry,
    ) -> RedisResult<()> {
        if self.held.contains_key(&request.id) {
            return Ok(());
        }
        let Some(letter_id) = request.field_str(REPLAY_FIELD_DEAD_LETTER) else {
            tracing::warn!(stream = %self.key, request = %request.id,
                "a replay request without a `{REPLAY_FIELD_DEAD_LETTER}` field; dropping it");
            return self.done(shared, &request.id).await;
        };
        // The same letter asked for twice: this request ends with the first.
        if let Some(ended) = self
            .held
            .values()
            .find(|h| h.letter == letter_id)
            .map(|h| Arc::clone(&h.ended))
        {
            self.held.insert(
                request.id,
                Held {
                    letter: letter_id,
                    ended,
                },
            );
            return Ok(());
        }
        let mut conn = shared.conn.clone();
        let Some(letter) =
            crate::admin::dead_letter(&mut conn, &shared.dl_stream, &letter_id).await?
        else {
            tracing::info!(stream = %self.key, dead_letter = %letter_id,
                "replay request for a dead letter that is gone (replayed or purged already)");
            return self.done(shared, &request.id).await;
        };
        if letter.foreign || letter.subscriber != shared.group {
            tracing::warn!(stream = %self.key, group = %shared.group, dead_letter = %letter_id,
                subscriber = %letter.subscriber, foreign = letter.foreign,
                "replay request for a dead letter this subscriber did not write; dropping it");
            return self.done(shared, &request.id).await;
        }
        tracing::info!(stream = %shared.stream, group = %shared.group, dead_letter = %letter_id,
            request = %request.id, "replaying a dead letter on request");
        let ended = Arc::new(Ended::default());
        let message = Message::new(letter.source_message_id.as_str(), letter.payload)
            .replaying(letter.id.as_str())
            .holding(ended.clone(), 0);
        // Not taken (shutting down): the message is dropped, which marks it ended, and the
        // next round (or another consumer) settles or replays it.
        pool.submit(message).await;
        self.held.insert(
            request.id,
            Held {
                letter: letter_id,
                ended,
            },
        );
        Ok(())
    }

    /// Hands `letter` to the pool again; `None` when it is gone meanwhile.
    async fn submit(
        &self,
        shared: &ConsumerShared,
        pool: &WorkerPool<RedisSink>,
        letter: &str,
    ) -> Option<Arc<Ended>> {
        let mut conn = shared.conn.clone();
        let letter = crate::admin::dead_letter(&mut conn, &shared.dl_stream, letter)
            .await
            .ok()??;
        let ended = Arc::new(Ended::default());
        let message = Message::new(letter.source_message_id.as_str(), letter.payload)
            .replaying(letter.id.as_str())
            .holding(ended.clone(), 0);
        pool.submit(message).await;
        Some(ended)
    }

    async fn letter_exists(&self, shared: &ConsumerShared, letter: &str) -> RedisResult<bool> {
        let mut conn = shared.conn.clone();
        let reply: Value = cmd("XRANGE")
            .arg(&shared.dl_stream)
            .arg(letter)
            .arg(letter)
            .query_async(&mut conn)
            .await?;
        Ok(!reply::entries(reply).is_empty())
    }

    /// Acknowledges and deletes request `id`: it is carried out.
    async fn done(&mut self, shared: &ConsumerShared, id: &str) -> RedisResult<()> {
        let mut conn = shared.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&self.key)
            .arg(&shared.group)
            .arg(id)
            .ignore()
            .cmd("XDEL")
            .arg(&self.key)
            .arg(id)
            .ignore();
        pipe.query_async::<()>(&mut conn).await?;
        self.held.remove(id);
        self.settled = true;
        Ok(())
    }
}
