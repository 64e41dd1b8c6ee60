//! [`WorkerPool`]: runs one subscriber's deliveries with bounded concurrency and bounded
//! buffering, per-tenant ordering when asked, retries with backoff, and a graceful drain.
//!
//! A subscriber that runs one delivery at a time in no particular order (the default) is run
//! on its feeder's own task ([`WorkerPool::handle`]): no hand-off to another task per delivery,
//! which on a multi-threaded runtime is what costs the most when handlers are quick.
//!
//! Every retry and dead-letter decision is the [`Dispatcher`]'s, made here for every bus; what
//! happens to an outcome (acknowledging, writing a dead letter, recording a failed run) is the
//! transport's business, through its [`Sink`]: it reports, it does not decide.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::dispatch::{Decision, Dispatcher, Failure, FailureKind, GiveUp, Prepared};
use crate::error::ShutdownError;
use crate::stats::SubscriberCounters;
use crate::subscriber::Ordering;
use crate::transport::dedupe::Gate;
use crate::transport::Message;

/// Where a bus takes the outcomes of its deliveries. The transport carries them out and
/// reports; the decisions are made by the pool's [`Dispatcher`].
pub trait Sink: Send + Sync + 'static {
    /// The handler succeeded: acknowledge (and count the delivery handled once that is
    /// confirmed).
    fn handled(&self, message: Message) -> impl Future<Output = ()> + Send;
    /// Give up on the delivery: write a dead letter saying why (`give_up`, after
    /// `message.runs` failed handler runs), then acknowledge.
    fn dead_letter(
        &self,
        message: Message,
        failure: Failure,
        give_up: GiveUp,
    ) -> impl Future<Output = ()> + Send;
    /// Handler run number `message.runs` failed and will be retried: record the run, so the
    /// count survives a crash, and return whether the entry is still this consumer's to retry
    /// (`false` drops the retry; the entry stays with whoever holds it).
    fn failed(&self, message: &Message) -> impl Future<Output = bool> + Send;
}

struct Job {
    message: Message,
    prepared: Option<Prepared>,
    _room: OwnedSemaphorePermit,
}

struct Inner<S> {
    dispatcher: Dispatcher,
    sink: S,
    counters: Arc<SubscriberCounters>,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    lanes: Mutex<HashMap<Uuid, VecDeque<Job>>>,
    tasks: Mutex<JoinSet<()>>,
}

/// Runs one subscriber's deliveries.
///
/// Unordered subscribers get `concurrency` workers fed from one queue; per-tenant ordered ones
/// get a lane per tenant with work, at most `concurrency` running at once. At most `capacity`
/// deliveries are held (queued or running) at any time: [`WorkerPool::submit`] waits for room.
/// With concurrency 1 and no ordering, [`WorkerPool::handle`] runs a delivery on the calling
/// task instead, still one at a time.
pub struct WorkerPool<S: Sink> {
    inner: Arc<Inner<S>>,
    room: Arc<Semaphore>,
    capacity: u32,
    per_tenant: bool,
    in_place: bool,
    queue: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    closed: AtomicBool,
    stop: watch::Sender<bool>,
}

impl<S: Sink> std::fmt::Debug for WorkerPool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("subscriber", &self.inner.dispatcher.subscriber().name())
            .field("capacity", &self.capacity)
            .field("held", &self.held())
            .finish()
    }
}

impl<S: Sink> WorkerPool<S> {
    /// A pool holding at most `capacity` deliveries (at least the subscriber's concurrency).
    /// Must be called inside a tokio runtime.
    pub fn new(
        dispatcher: Dispatcher,
        sink: S,
        counters: Arc<SubscriberCounters>,
        capacity: usize,
    ) -> Self {
        let options = *dispatcher.subscriber().options();
        let concurrency = options.concurrency.max(1);
        let capacity = (capacity.max(concurrency as usize)).min(Semaphore::MAX_PERMITS) as u32;
        let (stop_tx, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            dispatcher,
            sink,
            counters,
            slots: Arc::new(Semaphore::new(concurrency as usize)),
            stop: stop_rx,
            lanes: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
        });
        let per_tenant = options.ordering == Ordering::PerTenant;
        let queue = if per_tenant {
            None
        } else {
            let (tx, rx) = mpsc::unbounded_channel::<Job>();
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..concurrency {
                let inner2 = Arc::clone(&inner);
                let rx = Arc::clone(&rx);
                inner.spawn(async move {
                    loop {
                        let job = rx.lock().await.recv().await;
                        let Some(job) = job else { break };
                        // Shared with `handle`, so that concurrency 1 holds for both.
                        let Ok(_slot) = Arc::clone(&inner2.slots).acquire_owned().await else {
                            break;
                        };
                        inner2.process(job, false).await;
                    }
                });
            }
            Some(tx)
        };
        Self {
            inner,
            room: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            per_tenant,
            in_place: !per_tenant && concurrency == 1,
            queue: Mutex::new(queue),
            closed: AtomicBool::new(false),
            stop: stop_tx,
        }
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.inner.sink
    }

    /// How many more deliveries fit right now.
    pub fn room(&self) -> usize {
        self.room.available_permits()
    }

    /// How many deliveries are queued or running.
    pub fn held(&self) -> usize {
        self.capacity as usize - self.room.available_permits()
    }

    /// Runs `message` to its end (success, dead letter, or abandonment at shutdown) on the
    /// calling task when the subscriber runs one delivery at a time in no particular order;
    /// otherwise the same as [`WorkerPool::submit`]. Meant for the one task that feeds the
    /// pool from its source, which then fetches no more while a delivery runs. Returns `false`
    /// when the pool is shut down (the message was not taken).
    pub async fn handle(&self, message: Message) -> bool {
        if !self.in_place {
            return self.submit(message).await;
        }
        let Some(room) = self.take_room().await else {
            return false;
        };
        // Free unless a submitted delivery runs (then wait for it): concurrency 1 holds for both.
        let _slot = match Arc::clone(&self.inner.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => match Arc::clone(&self.inner.slots).acquire_owned().await {
                Ok(slot) => slot,
                Err(_) => return false,
            },
        };
        let mut message = message;
        message.in_place = true;
        let job = Job {
            message,
            prepared: None,
            _room: room,
        };
        self.inner.process(job, false).await;
        true
    }

    /// Waits for room, then queues `message`. Returns `false` when the pool is shut down
    /// (the message was not taken).
    pub async fn submit(&self, message: Message) -> bool {
        let Some(room) = self.take_room().await else {
            return false;
        };
        let queue = if self.per_tenant {
            None
        } else {
            match &*self.queue.lock().unwrap_or_else(PoisonError::into_inner) {
                Some(queue) => Some(queue.clone()),
                None => return false,
            }
        };
        match queue {
            Some(queue) => queue
                .send(Job {
                    message,
                    prepared: None,
                    _room: room,
                })
                .is_ok(),
            None => {
                match self.inner.dispatcher.prepare(&message.payload) {
                    Ok(prepared) => {
                        let tenant = prepared.meta().tenant_id;
                        let job = Job {
                            message,
                            prepared: Some(prepared),
                            _room: room,
                        };
                        Inner::enqueue_lane(&self.inner, tenant, job);
                    }
                    Err(failure) => {
                        // Not decodable: there is no tenant to order by, and no retry.
                        self.inner
                            .sink
                            .dead_letter(message, failure, GiveUp::Rejected)
                            .await;
                        drop(room);
                    }
                }
                true
            }
        }
    }

    /// Room for one more delivery, unless the pool is shut down.
    async fn take_room(&self) -> Option<OwnedSemaphorePermit> {
        if self.closed.load(AtomicOrdering::Acquire) {
            return None;
        }
        // The common case, room to spare, without a future and its waiter bookkeeping.
        match Arc::clone(&self.room).try_acquire_owned() {
            Ok(room) => Some(room),
            Err(_) => Arc::clone(&self.room).acquire_owned().await.ok(),
        }
    }

    /// The first step of a shutdown: deliveries waiting to be retried are abandoned from now
    /// on (their entries stay unacknowledged), while new ones are still taken, so that a
    /// feeder can hand over what it already fetched. [`WorkerPool::shutdown`] does this too.
    pub fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops taking work, lets queued and running deliveries finish within `deadline`, then
    /// aborts what is left (those entries stay unacknowledged). Deliveries waiting to be
    /// retried are abandoned at once. Deliveries running on a feeder's task
    /// ([`WorkerPool::handle`]) count as unfinished if they outlast `deadline`; stopping that
    /// task is the feeder's owner's business.
    pub async fn shutdown(&self, deadline: Duration) -> Result<(), ShutdownError> {
        self.begin_shutdown();
        self.closed.store(true, AtomicOrdering::Release);
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let drained = tokio::time::timeout(deadline, self.room.acquire_many(self.capacity)).await;
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        match drained {
            Ok(_) => {
                let mut tasks = tasks;
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                Ok(())
            }
            Err(_) => {
                let unfinished = self.held();
                let mut tasks = tasks;
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                Err(ShutdownError::Deadline { unfinished })
            }
        }
    }
}

impl<S: Sink> Inner<S> {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    fn enqueue_lane(this: &Arc<Self>, tenant: Uuid, job: Job) {
        let mut lanes = this.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        match lanes.entry(tenant) {
            Entry::Occupied(mut lane) => lane.get_mut().push_back(job),
            Entry::Vacant(slot) => {
                slot.insert(VecDeque::new());
                drop(lanes);
                let inner = Arc::clone(this);
                this.spawn(async move { inner.run_lane(tenant, job).await });
            }
        }
    }

    async fn run_lane(self: Arc<Self>, tenant: Uuid, first: Job) {
        let mut job = first;
        loop {
            self.process(job, true).await;
            let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            let next = lanes.get_mut(&tenant).and_then(VecDeque::pop_front);
            match next {
                Some(next) => job = next,
                None => {
                    lanes.remove(&tenant);
                    return;
                }
            }
        }
    }

    /// Runs one delivery to its end: success, dead letter, or abandonment at shutdown. A lane
    /// takes a slot for each run; otherwise the caller holds one throughout.
    async fn process(&self, job: Job, lane: bool) {
        let Job {
            mut message,
            mut prepared,
            _room,
        } = job;
        loop {
            if let Some((failure, give_up)) =
                self.dispatcher.admit(message.runs, message.deliveries)
            {
                self.sink.dead_letter(message, failure, give_up).await;
                return;
            }
            // In a lane, a slot is held while the handler runs, not while a retry waits, so
            // one tenant's retries never hold back the others.
            let slot = if lane {
                match Arc::clone(&self.slots).acquire_owned().await {
                    Ok(slot) => Some(slot),
                    Err(_) => return,
                }
            } else {
                None
            };
            let result = match prepared
                .take()
                .map_or_else(|| self.dispatcher.prepare(&message.payload), Ok)
            {
                Ok(p) => {
                    // A replay's latency would count from its first publish: left out.
                    let published_at = message.replay_of.is_none().then(|| p.meta().timestamp);
                    let started = std::time::Instant::now();
                    let attempt = message.runs + 1;
                    let result = match self.dispatcher.dedupe() {
                        None => self.dispatcher.run(p, &message.id, attempt).await,
                        Some(dedupe) => {
                            match dedupe.run(&self.dispatcher, p, &message.id, attempt).await {
                                Gate::Ran(result) => result,
                                Gate::Duplicate => {
                                    drop(slot);
                                    self.sink.handled(message).await;
                                    return;
                                }
                                Gate::Busy(delay) => {
                                    drop(slot);
                                    if !self.wait_unless_stopped(delay).await {
                                        return;
                                    }
                                    continue;
                                }
                            }
                        }
                    };
                    let succeeded = published_at.filter(|_| result.is_ok());
                    self.counters.handler_ran(started.elapsed(), succeeded);
                    result
                }
                Err(failure) => Err(failure),
            };
            drop(slot);
            let failure = match result {
                Ok(()) => {
                    self.sink.handled(message).await;
                    return;
                }
                Err(failure) => failure,
            };
            if !matches!(failure.kind, FailureKind::Decode | FailureKind::Validation) {
                message.runs += 1;
                SubscriberCounters::add(&self.counters.failed, 1);
            }
            match self.dispatcher.decide(&failure, message.runs) {
                Decision::DeadLetter(give_up) => {
                    self.sink.dead_letter(message, failure, give_up).await;
                    return;
                }
                Decision::Retry(delay) => {
                    if !self.sink.failed(&message).await {
                        return;
                    }
                    SubscriberCounters::add(&self.counters.retried, 1);
                    if !self.wait_unless_stopped(delay).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps; `false` when the pool began shutting down meanwhile.
    async fn wait_unless_stopped(&self, delay: Duration) -> bool {
        let mut stop = self.stop.clone();
        if *stop.borrow() {
            return false;
        }
        let stopped = tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        !stopped && !*self.stop.borrow()
    }
}
