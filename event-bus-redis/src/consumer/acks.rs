//! Acknowledgements: the one owner of a consumer's `XACK`s, and the one place where a delivery
//! is counted as handled (when its acknowledgement is confirmed).
//!
//! Entries to acknowledge are buffered here. The reader takes the buffer and sends it pipelined
//! before its next `XREADGROUP` (one round trip for both); the flusher task sends whatever is
//! left when woken: at once for deliveries handled off the reader's task, after
//! [`ACK_WITH_READ_FOR`](super::reader::ACK_WITH_READ_FOR) for a slow batch, and a last time at
//! shutdown. An `XACK` that failed goes back into the buffer and is sent again (acknowledging
//! twice is harmless).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::connection::Conn;
use event_bus_core::transport::SubscriberCounters;
use redis::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::connection::Backoff;

/// One entry to acknowledge.
#[derive(Debug, Clone)]
pub(crate) struct Ack {
    /// Its id, as Redis sent it (checked to be one by whoever queues it): shared with the
    /// delivery, written into the `XACK` as it is.
    pub(crate) id: Arc<str>,
    /// Whether it counts as handled once acknowledged (a dead-lettered entry does not).
    pub(crate) handled: bool,
}

/// A consumer's acknowledgements.
#[derive(Debug)]
pub(crate) struct Acks {
    stream: String,
    group: String,
    buffer: Mutex<Vec<Ack>>,
    /// Acknowledgements taken from the buffer whose `XACK` has not come back yet.
    sending: AtomicUsize,
    wake: Notify,
    counters: Arc<SubscriberCounters>,
}

impl Acks {
    pub(crate) fn new(stream: &str, group: &str, counters: Arc<SubscriberCounters>) -> Self {
        Self {
            stream: stream.to_owned(),
            group: group.to_owned(),
            buffer: Mutex::new(Vec::with_capacity(256)),
            sending: AtomicUsize::new(0),
            wake: Notify::new(),
            counters,
        }
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Vec<Ack>> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an acknowledgement; `now` wakes the flusher, otherwise it waits for the reader's
    /// next read (or for [`Acks::flush_soon`]).
    pub(crate) fn push(&self, ack: Ack, now: bool) {
        self.buffer().push(ack);
        if now {
            self.wake.notify_one();
        }
    }

    /// Wakes the flusher to send what is buffered.
    pub(crate) fn flush_soon(&self) {
        self.wake.notify_one();
    }

    /// Takes the buffer, for the reader to send with its next read. Each one taken must come
    /// back through [`Acks::confirmed`] or [`Acks::put_back`].
    pub(crate) fn take(&self) -> Vec<Ack> {
        let mut buffer = self.buffer();
        self.sending.fetch_add(buffer.len(), Ordering::AcqRel);
        std::mem::take(&mut *buffer)
    }

    /// Puts back acknowledgements whose `XACK` failed.
    pub(crate) fn put_back(&self, acks: Vec<Ack>) {
        let mut buffer = self.buffer();
        self.sending.fetch_sub(acks.len(), Ordering::AcqRel);
        buffer.extend(acks);
    }

    /// `XACK` of `acks` is confirmed: count the handled ones.
    pub(crate) fn confirmed(&self, acks: &[Ack]) {
        let handled = acks.iter().filter(|a| a.handled).count() as u64;
        SubscriberCounters::add(&self.counters.handled, handled);
        self.sending.fetch_sub(acks.len(), Ordering::AcqRel);
    }

    /// Whether nothing waits to be acknowledged or is being acknowledged (and so the counters
    /// are up to date with Redis).
    pub(crate) fn settled(&self) -> bool {
        let buffer = self.buffer();
        buffer.is_empty() && self.sending.load(Ordering::Acquire) == 0
    }

    /// `XACK stream group id...`.
    pub(crate) fn command(&self, acks: &[Ack]) -> redis::Cmd {
        let ids: usize = acks.iter().map(|a| a.id.len()).sum();
        let size = "XACK".len() + self.stream.len() + self.group.len() + ids;
        let mut c = redis::Cmd::with_capacity(3 + acks.len(), size);
        c.arg("XACK").arg(&self.stream).arg(&self.group);
        for ack in acks {
            c.arg(ack.id.as_bytes());
        }
        c
    }

    /// Sends everything buffered, retrying a few times; what still fails goes back.
    async fn flush(&self, conn: &mut Conn) {
        let acks = self.take();
        if acks.is_empty() {
            return;
        }
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        for attempt in 1..=3 {
            match self.command(&acks).query_async::<Value>(conn).await {
                Ok(_) => {
                    self.confirmed(&acks);
                    return;
                }
                Err(e) if attempt == 3 => {
                    tracing::warn!(stream = %self.stream, group = %self.group, error = %e,
                        entries = acks.len(), "XACK failed; sent again later");
                }
                Err(_) => tokio::time::sleep(backoff.next_delay()).await,
            }
        }
        self.put_back(acks);
    }
}

/// Sends buffered acknowledgements when woken, until cancelled; then a last time, for at most
/// `last_for`.
pub(crate) async fn flush_loop(
    acks: Arc<Acks>,
    mut conn: Conn,
    cancel: CancellationToken,
    last_for: Duration,
) {
    loop {
        tokio::select! {
            () = acks.wake.notified() => acks.flush(&mut conn).await,
            () = cancel.cancelled() => break,
        }
    }
    if tokio::time::timeout(last_for, acks.flush(&mut conn))
        .await
        .is_err()
    {
        tracing::error!(stream = %acks.stream, group = %acks.group,
            "the last acknowledgements did not go out before the deadline; those entries stay pending and will be delivered again");
    }
    let left = acks.buffer().len();
    if left > 0 {
        tracing::error!(stream = %acks.stream, group = %acks.group, entries = left,
            "acknowledgements could not be sent; those entries stay pending and will be delivered again");
    }
}
