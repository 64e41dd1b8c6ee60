//! One subscriber's consumer in this process, split along its seams:
//!
//! - [`reader`]: the blocking `XREADGROUP` loop, which hands entries to the core's worker pool
//!   (handling them on its own task when the subscriber runs one at a time);
//! - [`acks`]: the one owner of acknowledgements, and where "handled" is counted;
//! - [`leases`]: keeps held entries from being claimed while their handlers run;
//! - [`claims`]: crash recovery, claiming entries other consumers left pending;
//! - [`maintenance`]: the periodic, jittered round of claims, consumer clean-up and retention;
//! - [`replays`]: replay requests for the subscriber's dead letters, read during maintenance;
//! - [`assignment`]: which consumer of a group reads each partition of a partitioned type.
//!
//! This module holds what they share, the [`RedisSink`] through which the core reports
//! outcomes, and the consumer's life cycle: one cancellation signal, and a deadline on every
//! join at shutdown.

mod acks;
pub(crate) mod assignment;
mod claims;
mod leases;
mod maintenance;
mod reader;
pub(crate) mod replays;
mod shard;

pub(crate) mod trimming;

pub(crate) use shard::{shard_loop, Member};

use std::sync::Arc;
use std::time::Duration;

use crate::connection::Conn;
use event_bus_core::transport::{
    Dispatcher, GiveUp, Message, Release, Sink, SubscriberCounters, WorkerPool,
};
use event_bus_core::{Failure, ShutdownError, SubscriberHealth};
use redis::{cmd, RedisResult, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RedisConfig;
use crate::connection::{Backoff, BlockingConnection};
use crate::dead_letter::{self, DeadLetterFields};
use crate::keys::{dead_letter_stream, runs_key};
use crate::reply::{self, Entry};
use crate::runs;
use acks::{Ack, Acks};
use leases::Leases;

/// What the parts of one consumer share.
pub(crate) struct ConsumerShared {
    pub(crate) stream: String,
    pub(crate) dl_stream: String,
    pub(crate) runs_key: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) conn: Conn,
    pub(crate) counters: Arc<SubscriberCounters>,
    pub(crate) acks: Arc<Acks>,
    pub(crate) leases: Arc<Leases>,
    /// Why the reader is not reading (`None` while its reads succeed).
    pub(crate) reader_error: std::sync::Mutex<Option<String>>,
    /// Whether `reader_error` holds an error: a successful read looks here, not at the lock.
    pub(crate) reader_failing: std::sync::atomic::AtomicBool,
    /// Whether reading waits for ownership of the stream (a partition; see [`assignment`]).
    pub(crate) gated: bool,
    /// Whether this consumer owns its (partition) stream in its group now.
    pub(crate) owned: std::sync::atomic::AtomicBool,
    /// Whether a read of a gated consumer is under way (from before it looks at `owned` until
    /// what it read is handed over), so that a partition is not handed over mid-read.
    pub(crate) reading: std::sync::atomic::AtomicBool,
}

impl ConsumerShared {
    /// Whether this consumer may read and claim entries of its stream: always, unless the
    /// stream is a partition, which only its owner reads (see [`assignment`]).
    pub(crate) fn may_read(&self) -> bool {
        !self.gated || self.owned.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Starts a read: `false` (and no read may be made) when the consumer may not read. A read
    /// that starts is ended with [`end_read`](Self::end_read) once what it read is handed to
    /// the pool. (`reading` is set before `owned` is looked at, and the assignment clears
    /// `owned` before it looks at `reading`: one of the two sees the other.)
    pub(crate) fn begin_read(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.gated {
            return true;
        }
        self.reading.store(true, SeqCst);
        if self.owned.load(SeqCst) {
            return true;
        }
        self.reading.store(false, SeqCst);
        false
    }

    /// Ends a read started with [`begin_read`](Self::begin_read).
    pub(crate) fn end_read(&self) {
        if self.gated {
            self.reading
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    pub(crate) fn set_reader_error(&self, error: Option<String>) {
        use std::sync::atomic::Ordering;
        if error.is_none() && !self.reader_failing.load(Ordering::Acquire) {
            return; // the common case: still reading, nothing to clear
        }
        let mut slot = self
            .reader_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.reader_failing
            .store(error.is_some(), Ordering::Release);
        *slot = error;
    }

    /// After `NOGROUP` (the stream or the group is gone: deleted, or Redis lost its data):
    /// recreates the group from the beginning, so nothing published since is missed. `false`
    /// when that failed (logged).
    pub(crate) async fn recreate_group(&self) -> bool {
        tracing::warn!(stream = %self.stream, group = %self.group, "NOGROUP: recreating the consumer group");
        SubscriberCounters::add(&self.counters.groups_recreated, 1);
        let mut conn = self.conn.clone();
        match crate::groups::ensure_group(&mut conn, &self.stream, &self.group, "0").await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(stream = %self.stream, error = %e, "could not recreate the group");
                false
            }
        }
    }

    /// A delivery of `entry`, read or claimed at `read_at` (when Redis reset its idle time),
    /// leased until it ends; `None` (and a dead letter) when the entry has no `event` field and
    /// so cannot be one.
    async fn delivery(
        &self,
        pool: &WorkerPool<RedisSink>,
        mut entry: Entry,
        (runs, deliveries): (u32, u32),
        read_at: Instant,
    ) -> Option<Message> {
        let id: Arc<str> = Arc::from(std::mem::take(&mut entry.id));
        let slot = self.leases.hold(&id, read_at);
        let leases: Arc<dyn Release> = self.leases.clone();
        match entry.take_field("event") {
            Some(payload) => Some(
                Message::new(id, payload)
                    .with_history(runs, deliveries)
                    .holding(leases, slot),
            ),
            None => {
                let message = Message::new(id, Vec::new())
                    .with_history(runs, deliveries)
                    .with_fields(entry.into_text_fields())
                    .holding(leases, slot);
                pool.sink()
                    .dead_letter(
                        message,
                        Failure::new(
                            event_bus_core::FailureKind::Decode,
                            "stream entry has no `event` field",
                        ),
                        GiveUp::Rejected,
                    )
                    .await;
                None
            }
        }
    }

    async fn delete_dead_letter(&self, id: &str) -> bool {
        let mut conn = self.conn.clone();
        let result: RedisResult<Value> = cmd("XDEL")
            .arg(&self.dl_stream)
            .arg(id)
            .query_async(&mut conn)
            .await;
        match result {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(stream = %self.dl_stream, id, error = %e,
                    "could not delete a replayed dead letter; it stays listed");
                false
            }
        }
    }

    /// The entry's fields as stored (for the dead letter); empty if it is gone.
    async fn original_fields(&self, id: &str) -> Vec<(String, Vec<u8>)> {
        let mut conn = self.conn.clone();
        let result: RedisResult<Value> = cmd("XRANGE")
            .arg(&self.stream)
            .arg(id)
            .arg(id)
            .query_async(&mut conn)
            .await;
        match result {
            Ok(v) => reply::entries(v)
                .into_iter()
                .next()
                .map(Entry::into_text_fields)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Queues the acknowledgement of `message`.
    fn acknowledge(&self, message: &Message, handled: bool) {
        if reply::is_stream_id(&message.id) {
            let id = Arc::clone(&message.id);
            self.acks.push(Ack { id, handled }, !message.in_place);
        } else {
            tracing::error!(stream = %self.stream, id = %message.id,
                "not a stream entry id; cannot acknowledge it");
        }
    }

    async fn forget_runs(&self, message: &Message) {
        if message.runs > 0 {
            let mut conn = self.conn.clone();
            runs::clear(&mut conn, &self.runs_key, &[&message.id]).await;
        }
    }
}

/// The outcomes of deliveries, carried out on Redis.
pub(crate) struct RedisSink {
    shared: Arc<ConsumerShared>,
}

impl Sink for RedisSink {
    async fn handled(&self, message: Message) {
        let shared = &self.shared;
        match &message.replay_of {
            Some(letter) => {
                // A replay is not pending anywhere: it is done once its dead letter is gone.
                if shared.delete_dead_letter(letter).await {
                    SubscriberCounters::add(&shared.counters.handled, 1);
                }
            }
            None => {
                shared.acknowledge(&message, true);
                shared.forget_runs(&message).await;
            }
        }
    }

    async fn dead_letter(&self, message: Message, failure: Failure, give_up: GiveUp) {
        let shared = &self.shared;
        let mut original = if message.replay_of.is_some() {
            Vec::new()
        } else {
            shared.original_fields(&message.id).await
        };
        if original.is_empty() {
            original = message.fields.clone();
            if !message.payload.is_empty() {
                original.push(("event".to_owned(), message.payload.clone()));
            }
        }
        let reason = give_up.describe(message.runs);
        let mut conn = shared.conn.clone();
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let mut tries = 0;
        loop {
            let written = dead_letter::write(
                &mut conn,
                &shared.dl_stream,
                &original,
                DeadLetterFields {
                    source_stream: &shared.stream,
                    source_message_id: &message.id,
                    subscriber: &shared.group,
                    deliveries: message.deliveries,
                    runs: message.runs,
                    reason: &reason,
                    failure: &failure,
                },
            )
            .await;
            match written {
                Ok(dl_id) => {
                    tracing::warn!(
                        stream = %shared.stream, subscriber = %shared.group, message_id = %message.id,
                        dead_letter = %dl_id, runs = message.runs, deliveries = message.deliveries,
                        %reason, %failure, "dead-lettered"
                    );
                    break;
                }
                Err(e) => {
                    tries += 1;
                    if tries >= 5 {
                        tracing::error!(stream = %shared.stream, message_id = %message.id, error = %e,
                            "could not write the dead letter; the entry stays pending and will come back");
                        return;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
        SubscriberCounters::add(&shared.counters.dead_lettered, 1);
        match &message.replay_of {
            Some(letter) => {
                shared.delete_dead_letter(letter).await;
            }
            None => {
                shared.acknowledge(&message, false);
                shared.forget_runs(&message).await;
            }
        }
    }

    async fn failed(&self, message: &Message) -> bool {
        if message.replay_of.is_some() {
            return true;
        }
        let shared = &self.shared;
        let mut conn = shared.conn.clone();
        if let Err(e) = runs::record(&mut conn, &shared.runs_key, &message.id, message.runs).await {
            // The local count stays exact; the record catches up with the next failed run.
            tracing::warn!(stream = %shared.stream, group = %shared.group, message_id = %message.id,
                error = %e, "could not record a failed handler run; retrying anyway");
            return true;
        }
        match leases::renew(
            &mut conn,
            &shared.stream,
            &shared.group,
            &shared.consumer,
            &[&message.id],
        )
        .await
        {
            Ok(lost) if lost.is_empty() => true,
            Ok(_) => {
                tracing::warn!(stream = %shared.stream, group = %shared.group, message_id = %message.id,
                    "entry acknowledged, claimed by another consumer or deleted before its retry; dropping the retry");
                false
            }
            Err(e) => {
                tracing::warn!(stream = %shared.stream, group = %shared.group, message_id = %message.id,
                    error = %e, "could not check the lease before a retry; retrying anyway");
                true
            }
        }
    }
}

/// A running consumer: its tasks, its pool, and its shutdown.
pub(crate) struct Consumer {
    pub(crate) name: String,
    pub(crate) event_type: &'static str,
    pub(crate) pool: Arc<WorkerPool<RedisSink>>,
    pub(crate) counters: Arc<SubscriberCounters>,
    shared: Arc<ConsumerShared>,
    /// Stops reading and maintenance.
    stop: CancellationToken,
    /// Stops the acknowledgement flusher and lease renewals, once nothing is in flight.
    close: CancellationToken,
    tracker: TaskTracker,
    /// Its own reader; `None` when a shard reads for it.
    reader: Option<JoinHandle<()>>,
    maintenance: JoinHandle<()>,
}

/// Who reads for a consumer.
pub(crate) enum ReaderMode {
    /// A reader task of its own, on this connection (connected already).
    Own(Box<BlockingConnection>),
    /// A shard, shared with other consumers (see [`shard`]).
    Shared,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("stream", &self.shared.stream)
            .finish_non_exhaustive()
    }
}

/// What every consumer of a bus shares: its connection for commands, its consumer name, its
/// settings, the deployment's replay-request counter and its shutdown signal.
pub(crate) struct Process<'a> {
    pub(crate) conn: &'a Conn,
    pub(crate) consumer: &'a str,
    pub(crate) config: &'a RedisConfig,
    pub(crate) replay_signal: &'a Arc<replays::ReplaySignal>,
    pub(crate) stop: &'a CancellationToken,
}

impl Consumer {
    /// Starts the consumer's tasks (its reader too, when it has its own connection); the
    /// group exists already. `counters` are the subscriber's (shared by its consumers of every
    /// partition of a partitioned type); a `gated` consumer reads only while it owns its
    /// stream ([`assignment`]). `process.stop` is the bus's shutdown signal; the consumer's tasks
    /// take child tokens of it.
    pub(crate) fn start(
        dispatcher: Dispatcher,
        stream: String,
        reader_mode: ReaderMode,
        process: &Process<'_>,
        counters: Arc<SubscriberCounters>,
        gated: bool,
    ) -> Self {
        let Process {
            conn,
            consumer,
            config,
            replay_signal,
            stop,
        } = *process;
        let (conn, consumer) = (conn.clone(), consumer.to_owned());
        let subscriber = dispatcher.subscriber().clone();
        let group = subscriber.name().to_owned();

        let shared = Arc::new(ConsumerShared {
            dl_stream: dead_letter_stream(&stream),
            runs_key: runs_key(&stream, &group),
            acks: Arc::new(Acks::new(&stream, &group, Arc::clone(&counters))),
            leases: Arc::new(Leases::default()),
            stream,
            group,
            consumer,
            conn,
            counters: Arc::clone(&counters),
            reader_error: std::sync::Mutex::new(None),
            reader_failing: std::sync::atomic::AtomicBool::new(false),
            gated,
            owned: std::sync::atomic::AtomicBool::new(false),
            reading: std::sync::atomic::AtomicBool::new(false),
        });
        let capacity = config.read_batch * 2;
        let pool = Arc::new(WorkerPool::new(
            dispatcher,
            RedisSink {
                shared: Arc::clone(&shared),
            },
            Arc::clone(&counters),
            capacity,
        ));
        let stop = stop.child_token();
        let close = CancellationToken::new();
        let tracker = TaskTracker::new();
        let reader = match reader_mode {
            ReaderMode::Own(reader_conn) => Some(tracker.spawn(reader::read_loop(
                Arc::clone(&shared),
                Arc::clone(&pool),
                *reader_conn,
                config.block,
                config.read_batch,
                stop.clone(),
            ))),
            ReaderMode::Shared => None,
        };
        let maintenance = tracker.spawn(maintenance::maintenance_loop(
            Arc::clone(&shared),
            Arc::clone(&pool),
            maintenance::Settings {
                claim_idle: config.claim_idle,
                interval: config.claim_interval,
                consumer_idle_timeout: config.consumer_idle_timeout,
                retention: config.retention,
                batch: config.read_batch,
                replay_signal: Arc::clone(replay_signal),
            },
            stop.clone(),
        ));
        tracker.spawn(acks::flush_loop(
            Arc::clone(&shared.acks),
            shared.conn.clone(),
            close.clone(),
            config.response_timeout,
        ));
        tracker.spawn(leases::renew_loop(
            Arc::clone(&shared.leases),
            leases::Renewal {
                stream: shared.stream.clone(),
                group: shared.group.clone(),
                consumer: shared.consumer.clone(),
                conn: shared.conn.clone(),
                every: (config.claim_idle / 3).max(Duration::from_millis(10)),
            },
            close.clone(),
        ));
        tracker.close();
        Self {
            name: shared.group.clone(),
            event_type: subscriber.event_type(),
            pool,
            counters,
            shared,
            stop,
            close,
            tracker,
            reader,
            maintenance,
        }
    }

    /// What a shard needs to read for this consumer.
    pub(crate) fn member(&self) -> Member {
        Member {
            shared: Arc::clone(&self.shared),
            pool: Arc::clone(&self.pool),
        }
    }

    /// Signals the consumer to stop reading (the first step of a shutdown).
    pub(crate) fn begin_shutdown(&self) {
        self.stop.cancel();
        self.pool.begin_shutdown();
    }

    /// Whether nothing read is still held in this process, and every acknowledgement is
    /// confirmed.
    pub(crate) fn is_idle(&self) -> bool {
        self.pool.held() == 0 && self.shared.acks.settled()
    }

    /// Stops reading, drains the pool, sends the last acknowledgements, all by `deadline`
    /// (a little longer for the last acknowledgements, which are never cut short by a handler
    /// that overran).
    pub(crate) async fn shutdown(self, deadline: Instant) -> Result<(), ShutdownError> {
        self.begin_shutdown();
        let Self {
            pool,
            close,
            tracker,
            reader,
            mut maintenance,
            shared,
            ..
        } = self;
        // The reader finishes its current read (at most one BLOCK) and handles or hands over
        // what it got; whatever still runs at the deadline is counted by the pool, then stopped.
        // (A shard's reading is stopped by the bus before this.)
        let mut reader = reader;
        if let Some(reader) = &mut reader {
            let _ = tokio::time::timeout_at(deadline, reader).await;
        }
        let _ = tokio::time::timeout_at(deadline, &mut maintenance).await;
        let left = deadline.saturating_duration_since(Instant::now());
        let result = pool.shutdown(left).await;
        if let Some(reader) = reader {
            reader.abort();
        }
        maintenance.abort();
        // What was handled is acknowledged now, for as long as one more response timeout.
        shared.acks.flush_soon();
        close.cancel();
        let grace = Duration::from_secs(5);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::error!(stream = %shared.stream, group = %shared.group,
                "consumer tasks did not stop in time");
        }
        result
    }
}

impl Consumer {
    /// The stream it reads.
    pub(crate) fn stream(&self) -> &str {
        &self.shared.stream
    }

    /// Whether its reader is reading.
    pub(crate) fn health(&self) -> SubscriberHealth {
        match &*self
            .shared
            .reader_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            None => SubscriberHealth::reading(self.name.as_str()),
            Some(error) => SubscriberHealth::failing(self.name.as_str(), error.as_str()),
        }
    }

    /// Sends what is waiting to be acknowledged now, instead of with the next read.
    pub(crate) fn flush_acks(&self) {
        self.shared.acks.flush_soon();
    }
}
