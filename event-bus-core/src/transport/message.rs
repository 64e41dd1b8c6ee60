//! [`Message`]: one delivery of one stream entry to one subscriber, as a transport hands it to
//! the [`WorkerPool`](crate::transport::WorkerPool).

use std::fmt;
use std::sync::Arc;

/// One delivery of one entry to one subscriber.
#[non_exhaustive]
pub struct Message {
    /// The transport's id (the stream entry id).
    pub id: Arc<str>,
    /// The envelope JSON.
    pub payload: Vec<u8>,
    /// Failed handler runs of this entry so far, as the transport recorded them (0 for a first
    /// delivery). The handler's attempt number is `runs + 1`.
    pub runs: u32,
    /// How many times the transport delivered the entry, this delivery included (the pending
    /// list's delivery count on Redis). It feeds the crash-loop guard only.
    pub deliveries: u32,
    /// The entry's other fields, kept for dead letters.
    pub fields: Vec<(String, Vec<u8>)>,
    /// Set when this delivery replays a dead letter: that dead letter's id.
    pub replay_of: Option<Arc<str>>,
    /// Set by [`WorkerPool::handle`](crate::transport::WorkerPool::handle) when the delivery
    /// runs on the feeder's own task: the feeder knows its outcome when `handle` returns, so a
    /// sink may leave work for the feeder to do for a whole batch at once (acknowledging, say).
    pub in_place: bool,
    hold: Option<(Arc<dyn Release>, usize)>,
}

/// How a transport learns that a delivery it handed out has ended, however it ended (handled,
/// dead-lettered, or abandoned at shutdown): to keep a lease on what is in flight, say. See
/// [`Message::holding`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use event_bus_core::transport::{Message, Release};
///
/// #[derive(Default)]
/// struct InFlight(AtomicUsize);
///
/// impl Release for InFlight {
///     fn release(&self, _token: usize) {
///         self.0.fetch_sub(1, Ordering::Relaxed);
///     }
/// }
///
/// let in_flight = Arc::new(InFlight::default());
/// in_flight.0.fetch_add(1, Ordering::Relaxed);
/// let message = Message::new("1-0", b"{}".to_vec()).holding(in_flight.clone(), 7);
/// assert_eq!(in_flight.0.load(Ordering::Relaxed), 1);
/// drop(message);
/// assert_eq!(in_flight.0.load(Ordering::Relaxed), 0);
/// ```
pub trait Release: Send + Sync + 'static {
    /// The delivery marked with `token` ended.
    fn release(&self, token: usize);
}

impl Message {
    /// A first delivery: no runs yet, delivered once.
    pub fn new(id: impl Into<Arc<str>>, payload: Vec<u8>) -> Self {
        Self {
            id: id.into(),
            payload,
            runs: 0,
            deliveries: 1,
            fields: Vec::new(),
            replay_of: None,
            in_place: false,
            hold: None,
        }
    }

    /// Sets what the transport knows of the entry's history: failed handler runs recorded, and
    /// deliveries counted (this one included).
    pub fn with_history(mut self, runs: u32, deliveries: u32) -> Self {
        self.runs = runs;
        self.deliveries = deliveries.max(1);
        self
    }

    /// Marks this delivery as the replay of dead letter `id`.
    pub fn replaying(mut self, id: impl Into<Arc<str>>) -> Self {
        self.replay_of = Some(id.into());
        self
    }

    /// Keeps the entry's other fields.
    pub fn with_fields(mut self, fields: Vec<(String, Vec<u8>)>) -> Self {
        self.fields = fields;
        self
    }

    /// Has `owner` told, with `token`, when the delivery ends, however it ends (handled,
    /// dead-lettered, or abandoned at shutdown): how a transport tracks what is in flight, to
    /// keep its lease on it. A message holds one such hook; setting another releases the first.
    /// No allocation per message: the owner is shared, the token says which delivery it is.
    pub fn holding(mut self, owner: Arc<dyn Release>, token: usize) -> Self {
        if let Some((previous, token)) = self.hold.replace((owner, token)) {
            previous.release(token);
        }
        self
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        if let Some((owner, token)) = self.hold.take() {
            owner.release(token);
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("payload_len", &self.payload.len())
            .field("runs", &self.runs)
            .field("deliveries", &self.deliveries)
            .field("replay_of", &self.replay_of)
            .field("in_place", &self.in_place)
            .finish_non_exhaustive()
    }
}
