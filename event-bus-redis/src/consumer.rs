//! One subscriber's consumer in this process: its consumer group, the blocking reader, the
//! batched acker, crash recovery (`XAUTOCLAIM`), consumer clean-up and retention, and the
//! [`Sink`] through which the core's worker pool reports outcomes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use event_bus_core::runtime::{Dispatcher, Message, Sink, WorkerPool};
use event_bus_core::{Failure, FailureKind, StartFrom};
use redis::aio::ConnectionManager;
use redis::{cmd, Client, RedisResult, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{RedisConfig, Retention};
use crate::connection::{is_busygroup, is_nogroup, Backoff, BlockingConnection};
use crate::dead_letter::{self, DeadLetterFields};
use crate::keys::dead_letter_stream;
use crate::reply::{self, Entry, StreamId};
use crate::stats::Counters;

/// What the tasks of one consumer share.
pub(crate) struct ConsumerShared {
    pub(crate) stream: String,
    pub(crate) dl_stream: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) conn: ConnectionManager,
    pub(crate) counters: Arc<Counters>,
    acks: mpsc::UnboundedSender<StreamId>,
    /// Entries the reader handled in place since its last read: acknowledged by the reader
    /// itself, in the same round trip as its next read.
    read_acks: Mutex<Vec<StreamId>>,
}

/// The outcomes of deliveries, written to Redis.
pub(crate) struct RedisSink {
    shared: Arc<ConsumerShared>,
}

impl ConsumerShared {
    fn read_acks_mut(&self) -> std::sync::MutexGuard<'_, Vec<StreamId>> {
        self.read_acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn take_read_acks(&self) -> Vec<StreamId> {
        std::mem::take(&mut *self.read_acks_mut())
    }

    /// Hands acknowledgements to the acker (which retries them).
    fn to_acker(&self, ids: Vec<StreamId>) {
        for id in ids {
            if self.acks.send(id).is_err() {
                tracing::error!(stream = %self.stream, group = %self.group,
                    "acker stopped; entries stay pending and will be delivered again");
                return;
            }
        }
    }

    /// `XACK` of one entry, now; `false` (logged) when it failed.
    async fn ack_now(&self, id: &str) -> bool {
        let mut conn = self.conn.clone();
        let result: RedisResult<Value> = cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .query_async(&mut conn)
            .await;
        if let Err(e) = &result {
            tracing::error!(stream = %self.stream, group = %self.group, id, error = %e,
                "XACK failed; the entry stays pending and will be delivered again");
        }
        result.is_ok()
    }

    async fn delete_dead_letter(&self, id: &str) {
        let mut conn = self.conn.clone();
        let result: RedisResult<Value> = cmd("XDEL")
            .arg(&self.dl_stream)
            .arg(id)
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::error!(stream = %self.dl_stream, id, error = %e, "could not delete a replayed dead letter");
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
}

impl Sink for RedisSink {
    async fn handled(&self, message: Message) {
        match &message.replay_of {
            Some(letter) => {
                Counters::add(&self.shared.counters.handled, 1);
                self.shared.delete_dead_letter(letter).await;
            }
            None => {
                // Counted as handled once acknowledged.
                let queued = match StreamId::parse(&message.id) {
                    Some(id) if message.in_place => {
                        self.shared.read_acks_mut().push(id);
                        true
                    }
                    Some(id) => self.shared.acks.send(id).is_ok(),
                    None => false,
                };
                if !queued && self.shared.ack_now(&message.id).await {
                    Counters::add(&self.shared.counters.handled, 1);
                }
            }
        }
    }

    async fn dead_letter(&self, message: Message, failure: Failure) {
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
                    deliveries: message.attempt,
                    failure: &failure,
                },
            )
            .await;
            match written {
                Ok(dl_id) => {
                    tracing::warn!(
                        stream = %shared.stream, subscriber = %shared.group, message_id = %message.id,
                        dead_letter = %dl_id, deliveries = message.attempt, %failure, "dead-lettered"
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
        Counters::add(&shared.counters.dead_lettered, 1);
        match &message.replay_of {
            Some(letter) => shared.delete_dead_letter(letter).await,
            None => {
                shared.ack_now(&message.id).await;
            }
        }
    }

    async fn redeliver(&self, message: &Message) -> Option<u32> {
        Counters::add(&self.shared.counters.retried, 1);
        if message.replay_of.is_some() {
            return Some(message.attempt + 1);
        }
        // XCLAIM to ourselves: counts the delivery in the pending list (so attempts survive a
        // crash) and tells whether the entry is still ours and still exists.
        let mut conn = self.shared.conn.clone();
        let result: RedisResult<Value> = cmd("XCLAIM")
            .arg(&self.shared.stream)
            .arg(&self.shared.group)
            .arg(&self.shared.consumer)
            .arg(0)
            .arg(&*message.id)
            .query_async(&mut conn)
            .await;
        match result {
            Ok(v) if reply::has_entries(&v) => Some(message.attempt + 1),
            Ok(_) => {
                tracing::warn!(stream = %self.shared.stream, message_id = %message.id,
                    "entry gone or no longer pending before its retry; dropping the retry");
                None
            }
            Err(e) => {
                tracing::warn!(stream = %self.shared.stream, message_id = %message.id, error = %e,
                    "could not claim the entry for its retry; it stays pending and will be claimed later");
                None
            }
        }
    }
}

/// A running consumer: its tasks and its pool.
pub(crate) struct Consumer {
    pub(crate) name: String,
    pub(crate) pool: Arc<WorkerPool<RedisSink>>,
    stop: watch::Sender<bool>,
    reader: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    acker: JoinHandle<()>,
    shared: Arc<ConsumerShared>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("stream", &self.shared.stream)
            .finish_non_exhaustive()
    }
}

/// `XGROUP CREATE stream group $|0 MKSTREAM`; an existing group is kept as it is.
pub(crate) async fn ensure_group(
    conn: &mut ConnectionManager,
    stream: &str,
    group: &str,
    start: &str,
) -> RedisResult<()> {
    let result: RedisResult<Value> = cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_busygroup(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Consumer {
    /// Creates the group and starts the tasks.
    pub(crate) async fn start(
        dispatcher: Dispatcher,
        stream: String,
        client: Client,
        mut conn: ConnectionManager,
        consumer: String,
        config: &RedisConfig,
        counters: Arc<Counters>,
    ) -> RedisResult<Self> {
        let subscriber = dispatcher.subscriber().clone();
        let group = subscriber.name().to_owned();
        let start = match subscriber.options().start {
            StartFrom::Earliest => "0",
            _ => "$",
        };
        ensure_group(&mut conn, &stream, &group, start).await?;

        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(ConsumerShared {
            dl_stream: dead_letter_stream(&stream),
            stream,
            group,
            consumer,
            conn,
            counters,
            acks: ack_tx,
            read_acks: Mutex::new(Vec::new()),
        });
        let max_attempts = dispatcher.max_attempts();
        let capacity = config.read_batch * 2;
        let pool = Arc::new(WorkerPool::new(
            dispatcher,
            RedisSink {
                shared: Arc::clone(&shared),
            },
            capacity,
        ));
        let (stop, stop_rx) = watch::channel(false);
        let reader = tokio::spawn(read_loop(
            Arc::clone(&shared),
            Arc::clone(&pool),
            BlockingConnection::new(client, config.block, config.response_timeout),
            config.block,
            config.read_batch,
            stop_rx.clone(),
        ));
        let maintenance = tokio::spawn(maintenance_loop(
            Arc::clone(&shared),
            Arc::clone(&pool),
            Maintenance {
                claim_idle: config.claim_idle,
                interval: config.claim_interval,
                consumer_idle_timeout: config.consumer_idle_timeout,
                retention: config.retention,
                batch: config.read_batch,
                max_attempts,
            },
            stop_rx,
        ));
        let acker = tokio::spawn(ack_loop(Arc::clone(&shared), ack_rx));
        Ok(Self {
            name: shared.group.clone(),
            pool,
            stop,
            reader,
            maintenance,
            acker,
            shared,
        })
    }

    /// Stops reading, drains the pool within `deadline`, flushes the acks.
    pub(crate) async fn shutdown(
        self,
        deadline: Duration,
    ) -> Result<(), event_bus_core::ShutdownError> {
        let deadline = tokio::time::Instant::now() + deadline;
        let Self {
            reader,
            maintenance,
            pool,
            stop,
            shared,
            acker,
            ..
        } = self;
        let _ = stop.send(true);
        pool.begin_shutdown();
        // The reader finishes its current read (at most one BLOCK) and handles or hands over
        // what it got; whatever still runs at the deadline is counted by the pool, then stopped.
        let mut tasks = [reader, maintenance];
        for task in &mut tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = pool.shutdown(left).await;
        for task in tasks {
            if !task.is_finished() {
                task.abort();
                let _ = task.await;
            }
        }
        // What the reader handled after its last read.
        shared.to_acker(shared.take_read_acks());
        drop(pool);
        drop(shared);
        // The acker ends when every sender (the sink's) is gone, after flushing.
        let _ = acker.await;
        result
    }
}

/// Turns a read entry into a delivery; an entry with no `event` field cannot be one and is
/// dead-lettered at once.
async fn delivery(pool: &WorkerPool<RedisSink>, mut entry: Entry, attempt: u32) -> Option<Message> {
    match entry.take_field("event") {
        Some(payload) => Some(Message::new(entry.id, payload, attempt)),
        None => {
            let id = entry.id.clone();
            let message =
                Message::new(id, Vec::new(), attempt).with_fields(entry.into_text_fields());
            pool.sink()
                .dead_letter(
                    message,
                    Failure::new(FailureKind::Decode, "stream entry has no `event` field"),
                )
                .await;
            None
        }
    }
}

/// How long the acknowledgements of a batch handled in place may wait to go out with the next
/// read. A quick batch (the common case) costs no round trip of its own; a slow one has its
/// handled entries acknowledged as it goes, so they are not left pending (and claimable by
/// another consumer after `claim_idle`) while the rest of the batch runs.
const ACK_WITH_READ_FOR: Duration = Duration::from_millis(100);

/// Handles what one read fetched, in order. Acknowledgements wait for the next read for at
/// most [`ACK_WITH_READ_FOR`]; after that they go to the acker as entries finish.
async fn handle_batch(shared: &ConsumerShared, pool: &WorkerPool<RedisSink>, entries: Vec<Entry>) {
    let flush_at = tokio::time::sleep(ACK_WITH_READ_FOR);
    tokio::pin!(flush_at);
    let mut slow = false;
    for entry in entries {
        let Some(message) = delivery(pool, entry, 1).await else {
            continue;
        };
        if !slow {
            let handling = pool.handle(message);
            tokio::pin!(handling);
            tokio::select! {
                biased;
                _ = &mut handling => continue,
                () = &mut flush_at => {
                    slow = true;
                    shared.to_acker(shared.take_read_acks());
                    handling.await;
                }
            }
        } else {
            pool.handle(message).await;
        }
        shared.to_acker(shared.take_read_acks());
    }
}

async fn read_loop(
    shared: Arc<ConsumerShared>,
    pool: Arc<WorkerPool<RedisSink>>,
    mut conn: BlockingConnection,
    block: Duration,
    batch: usize,
    stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
    while !*stop.borrow() {
        // Never more than the pool has room for: reads are bounded.
        let count = batch.min(pool.room().max(1));
        let mut read = cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&shared.group)
            .arg(&shared.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&shared.stream)
            .arg(">");
        // Read, then handle what was read before reading again: the reply is parsed and its
        // entries handled and freed on one thread, and a stop lets what was read be handled.
        // What was handled in place is acknowledged in the same round trip, before the read.
        let acks = shared.take_read_acks();
        let result = if acks.is_empty() {
            conn.query(&read).await
        } else {
            let mut text = Vec::new();
            let xack = xack(&shared.stream, &shared.group, &acks, &mut text);
            match conn.query_after(xack, read).await {
                Ok((Ok(_), read_result)) => {
                    Counters::add(&shared.counters.handled, acks.len() as u64);
                    read_result
                }
                Ok((Err(e), read_result)) => {
                    tracing::warn!(stream = %shared.stream, group = %shared.group, error = %e,
                        "XACK failed; sent again with the next read");
                    shared.read_acks_mut().extend(acks);
                    read_result
                }
                Err(e) => {
                    // Not known to be applied: sent again with the next read (acknowledging
                    // twice is harmless), on a fresh connection.
                    shared.read_acks_mut().extend(acks);
                    Err(e)
                }
            }
        };
        match result {
            Ok(reply) => {
                backoff.reset();
                handle_batch(&shared, &pool, reply::read_reply(reply)).await;
            }
            Err(e) if is_nogroup(&e) => {
                // The stream or its group is gone (deleted, or Redis lost its data): recreate
                // it from the beginning so nothing published since is missed.
                tracing::warn!(stream = %shared.stream, group = %shared.group, "NOGROUP: recreating the consumer group");
                Counters::add(&shared.counters.groups_recreated, 1);
                let mut c = shared.conn.clone();
                if let Err(e) = ensure_group(&mut c, &shared.stream, &shared.group, "0").await {
                    tracing::warn!(stream = %shared.stream, error = %e, "could not recreate the group");
                    sleep_unless_stopped(backoff.next_delay(), &stop).await;
                }
            }
            Err(e) => {
                Counters::add(&shared.counters.reconnects, 1);
                let delay = backoff.next_delay();
                tracing::warn!(stream = %shared.stream, group = %shared.group, error = %e,
                    retry_in_ms = delay.as_millis() as u64, "read failed; reconnecting");
                sleep_unless_stopped(delay, &stop).await;
            }
        }
    }
}

/// `XACK stream group id...`; `text` is scratch space for formatting ids.
fn xack(stream: &str, group: &str, ids: &[StreamId], text: &mut Vec<u8>) -> redis::Cmd {
    // An id is at most 41 characters (two u64 and a dash); typically 15 to 20.
    let size = "XACK".len() + stream.len() + group.len() + ids.len() * 20;
    let mut c = redis::Cmd::with_capacity(3 + ids.len(), size);
    c.arg("XACK").arg(stream).arg(group);
    for id in ids {
        id.write_to(text);
        c.arg(text.as_slice());
    }
    c
}

async fn sleep_unless_stopped(delay: Duration, stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

async fn ack_loop(shared: Arc<ConsumerShared>, mut rx: mpsc::UnboundedReceiver<StreamId>) {
    let mut ids: Vec<StreamId> = Vec::with_capacity(1024);
    let mut text = Vec::new();
    let mut conn = shared.conn.clone();
    let stream = shared.stream.clone();
    let group = shared.group.clone();
    let counters = Arc::clone(&shared.counters);
    // `shared` holds the sender this loop ends on.
    drop(shared);
    while rx.recv_many(&mut ids, 1024).await > 0 {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        for attempt in 1..=5 {
            let c = xack(&stream, &group, &ids, &mut text);
            match c.query_async::<Value>(&mut conn).await {
                Ok(_) => {
                    Counters::add(&counters.handled, ids.len() as u64);
                    break;
                }
                Err(e) if attempt == 5 => {
                    tracing::error!(%stream, %group, error = %e, entries = ids.len(),
                        "XACK failed; these entries stay pending and will be delivered again");
                }
                Err(_) => tokio::time::sleep(backoff.next_delay()).await,
            }
        }
        ids.clear();
    }
}

struct Maintenance {
    claim_idle: Duration,
    interval: Duration,
    consumer_idle_timeout: Duration,
    retention: Retention,
    batch: usize,
    max_attempts: u32,
}

async fn maintenance_loop(
    shared: Arc<ConsumerShared>,
    pool: Arc<WorkerPool<RedisSink>>,
    settings: Maintenance,
    stop: watch::Receiver<bool>,
) {
    loop {
        sleep_unless_stopped(settings.interval, &stop).await;
        if *stop.borrow() {
            return;
        }
        if let Err(e) = claim_stale(&shared, &pool, &settings, &stop).await {
            tracing::warn!(stream = %shared.stream, group = %shared.group, error = %e, "claiming stale entries failed");
        }
        if let Err(e) = remove_idle_consumers(&shared, settings.consumer_idle_timeout).await {
            tracing::warn!(stream = %shared.stream, group = %shared.group, error = %e, "removing idle consumers failed");
        }
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
    }
}

/// Claims entries left pending by other consumers for longer than `claim_idle` and handles
/// them; records entries deleted meanwhile.
async fn claim_stale(
    shared: &ConsumerShared,
    pool: &WorkerPool<RedisSink>,
    settings: &Maintenance,
    stop: &watch::Receiver<bool>,
) -> RedisResult<()> {
    let mut conn = shared.conn.clone();
    let idle_ms = u64::try_from(settings.claim_idle.as_millis()).unwrap_or(u64::MAX);
    let mut cursor = "0-0".to_owned();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let value: Value = cmd("XAUTOCLAIM")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg(&shared.consumer)
            .arg(idle_ms)
            .arg(&cursor)
            .arg("COUNT")
            .arg(settings.batch)
            .query_async(&mut conn)
            .await?;
        let (next, claimed, deleted) = reply::autoclaim_reply(value);
        if !deleted.is_empty() {
            Counters::add(&shared.counters.deleted_while_pending, deleted.len() as u64);
            tracing::warn!(stream = %shared.stream, group = %shared.group, ids = ?deleted,
                "pending entries were deleted from the stream before they were handled (trimmed or XDEL'd)");
        }
        if !claimed.is_empty() {
            Counters::add(&shared.counters.claimed, claimed.len() as u64);
            tracing::info!(stream = %shared.stream, group = %shared.group, count = claimed.len(), "claimed stale entries");
            let deliveries = delivery_counts(shared, &mut conn, &claimed).await?;
            let ids: Vec<String> = claimed.iter().map(|e| e.id.clone()).collect();
            let done = dead_letter::already_dead_lettered(
                &mut conn,
                &shared.dl_stream,
                &shared.group,
                &ids,
            )
            .await?;
            for entry in claimed {
                let attempt = deliveries.get(&entry.id).copied().unwrap_or(2);
                if done.contains(&entry.id) {
                    // Dead-lettered by a consumer that died before acknowledging.
                    shared.ack_now(&entry.id).await;
                } else if attempt > settings.max_attempts {
                    let message = Message::new(
                        entry.id.as_str(),
                        entry.field("event").map(<[u8]>::to_vec).unwrap_or_default(),
                        attempt - 1,
                    );
                    pool.sink()
                        .dead_letter(
                            message,
                            Failure::new(
                                FailureKind::Handler,
                                format!("delivered {} times without success: consumers died while handling it", attempt - 1),
                            ),
                        )
                        .await;
                } else if let Some(message) = delivery(pool, entry, attempt).await {
                    pool.submit(message).await;
                }
            }
        }
        if next == "0-0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// The delivery count of each claimed entry (after the claim).
async fn delivery_counts(
    shared: &ConsumerShared,
    conn: &mut ConnectionManager,
    claimed: &[Entry],
) -> RedisResult<HashMap<String, u32>> {
    let (Some(first), Some(last)) = (claimed.first(), claimed.last()) else {
        return Ok(HashMap::new());
    };
    let value: Value = cmd("XPENDING")
        .arg(&shared.stream)
        .arg(&shared.group)
        .arg(&first.id)
        .arg(&last.id)
        .arg(claimed.len() * 2 + 10)
        .arg(&shared.consumer)
        .query_async(conn)
        .await?;
    Ok(reply::pending_reply(value)
        .into_iter()
        .map(|p| (p.id, p.deliveries))
        .collect())
}

/// Removes consumers of the group that have been idle for `timeout` and hold no pending
/// entries. A consumer with pending entries is never removed.
async fn remove_idle_consumers(shared: &ConsumerShared, timeout: Duration) -> RedisResult<()> {
    let mut conn = shared.conn.clone();
    let value: Value = cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&shared.stream)
        .arg(&shared.group)
        .query_async(&mut conn)
        .await?;
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    for row in reply::info_rows(value) {
        let get = |k: &str| row.iter().find(|(name, _)| name == k).map(|(_, v)| v);
        let name = get("name")
            .and_then(|v| reply::string(v.clone()))
            .unwrap_or_default();
        let pending = get("pending").and_then(reply::int).unwrap_or(1);
        let idle = get("idle").and_then(reply::int).unwrap_or(0);
        if name.is_empty() || name == shared.consumer || pending != 0 || idle < timeout_ms {
            continue;
        }
        // DELCONSUMER would drop pending entries: re-check the count right before.
        let still: Value = cmd("XPENDING")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(&name)
            .query_async(&mut conn)
            .await?;
        if !reply::pending_reply(still).is_empty() {
            continue;
        }
        let _: Value = cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&shared.stream)
            .arg(&shared.group)
            .arg(&name)
            .query_async(&mut conn)
            .await?;
        tracing::info!(stream = %shared.stream, group = %shared.group, consumer = %name, "removed idle consumer");
    }
    Ok(())
}
