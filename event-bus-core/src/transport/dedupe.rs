//! Idempotent subscribers: the protocol, written once for every bus, by which a subscriber
//! with `dedupe = "24h"` (or [`Subscriber::dedupe`](crate::Subscriber::dedupe)) handles each
//! envelope id at most once within the window. The marks live in a [`DedupeStore`] that each
//! bus provides (on Redis one key per envelope id and subscriber, written one key per command;
//! in memory a map with expiry).
//!
//! # The protocol
//!
//! A mark has two states, `running` (with a token and a lease) and `done`:
//!
//! 1. **Claim** — before running the handler, the delivery claims the envelope id: it sets the
//!    mark to `running` with its own token and a lease, only if there is no mark (on Redis
//!    `SET key running:<token> NX GET PX <lease>`, one command that also returns the mark it
//!    found). While the handler runs, the lease is renewed (every quarter of it) as long as
//!    the token is still the mark's.
//!    - no mark: claimed, the handler runs;
//!    - `done`: the envelope was handled within the window; the delivery is acknowledged
//!      without running the handler (and counted as handled);
//!    - `running`: another delivery of the same envelope id runs right now, in this process
//!      or another; this one waits (the entry stays unacknowledged, held by its consumer) and
//!      claims again, until the mark is `done` (acknowledged without a run) or gone (runs).
//!      The wait takes the delivery's place like a running handler: with `concurrency = 1`
//!      the subscriber's next entries wait too (after a crash, up to the dead run's lease).
//! 2. **Handler succeeded** → the mark becomes `done` for the window (`SET key done PX
//!    <window>`), **then** the entry is acknowledged.
//! 3. **Handler failed** → the mark is deleted if it still holds this delivery's token, and the
//!    failure is retried or dead-lettered as usual (a waiting duplicate may take over).
//!
//! # What it guarantees
//!
//! Within the window, and for one subscriber (a consumer group: all its processes share the
//! marks), the handler **succeeds at most once per envelope id, and two runs for one id never
//! overlap** (while leases are renewed), with these exceptions around crashes, each tested in
//! `tests/tests/dedupe.rs`:
//!
//! - **Crash while the handler runs** (before it succeeded): the `running` mark outlives the
//!   process until its lease runs out; the entry is claimed by another consumer, which waits
//!   for the lease and then runs the handler. The handler *starts* twice and *succeeds* once.
//! - **Crash after the handler succeeded, before the `done` mark is written**: nothing records
//!   the success, so the handler runs again once the lease is out: **at-least-once, the one
//!   unavoidable window** (short: one Redis round trip). Only a handler whose effects commit
//!   in the same transaction as its own record of the envelope id closes it.
//! - **Crash after the `done` mark, before the acknowledgement**: the entry is claimed by
//!   another consumer, which finds `done` and acknowledges without running the handler: the
//!   handler ran once.
//! - **The same envelope published twice** (two stream entries with one envelope id: a publish
//!   retried after a timeout, re-sent with [`Bus::publish_envelope`](crate::Bus::publish_envelope)
//!   which keeps the id): the handler runs once; the second entry is acknowledged.
//! - **The store unreachable**: a claim that fails is retried after a pause (the handler does
//!   not run unclaimed); a `done` mark that cannot be written after three tries is logged as an
//!   error and the entry acknowledged, which leaves the window of the second case open for
//!   that envelope.
//! - **A handler that runs longer than the lease without its renewals getting through** (a
//!   stalled store, a starved runtime) can lose its claim, and a concurrent duplicate may then
//!   run too.
//!
//! After the window the mark expires, and a delivery of the same envelope id runs again.
//! Dead-lettered deliveries leave no mark: a replayed dead letter runs.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::dispatch::{Dispatcher, Failure, Prepared};
use crate::error::BoxError;

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// There was no mark: it is now `running` with the caller's token.
    Claimed,
    /// The envelope id was handled within the window.
    Done,
    /// Another delivery of the envelope id holds it (its lease is not over).
    Running,
}

/// Where a bus keeps one subscriber's marks, keyed by envelope id. Each method touches one
/// mark, atomically.
pub trait DedupeStore: Send + Sync + 'static {
    /// Sets the mark of `id` to `running` with `token`, expiring after `lease`, if there is
    /// none; says what was there.
    fn claim<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, BoxError>>;

    /// Extends the lease of `id`'s mark to `lease` from now if it is still `running` with
    /// `token`; `false` if it is not.
    fn renew<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, BoxError>>;

    /// Deletes `id`'s mark if it is still `running` with `token`.
    fn release<'a>(&'a self, id: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Sets `id`'s mark to `done`, expiring after `window`, whatever it was.
    fn done<'a>(&'a self, id: &'a str, window: Duration) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// A subscriber's de-duplication: its store, window and lease. Attach it with
/// [`Dispatcher::with_dedupe`]; the worker pool then runs the protocol above.
#[derive(Clone)]
pub struct Dedupe {
    store: Arc<dyn DedupeStore>,
    window: Duration,
    lease: Duration,
}

impl fmt::Debug for Dedupe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedupe")
            .field("window", &self.window)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// How a de-duplicated delivery went.
#[derive(Debug)]
pub(crate) enum Gate {
    /// The handler ran, with this result.
    Ran(Result<(), Failure>),
    /// The envelope id was handled already: acknowledge without a run.
    Duplicate,
    /// Another delivery holds the envelope id (or the store failed): claim again after this.
    Busy(Duration),
}

/// Tries at writing the `done` mark before giving up on it.
const DONE_TRIES: u32 = 3;

impl Dedupe {
    /// Marks kept in `store` for `window`; a `running` mark's lease is `lease` (at least one
    /// second), renewed every quarter of it while the handler runs.
    pub fn new(store: impl DedupeStore, window: Duration, lease: Duration) -> Self {
        Self {
            store: Arc::new(store),
            window,
            lease: lease.max(Duration::from_secs(1)),
        }
    }

    /// Marks in this process's memory (the in-memory bus's store).
    pub fn in_memory(window: Duration) -> Self {
        Self::new(MemoryDedupe::default(), window, Duration::from_secs(30))
    }

    /// How long a handled envelope id is remembered.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long a `running` mark lasts without renewal.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How long a delivery that found the envelope id busy waits before claiming again.
    fn busy_delay(&self) -> Duration {
        (self.lease / 8).clamp(Duration::from_millis(20), Duration::from_millis(500))
    }

    /// Claims the envelope id of `prepared`, runs it (renewing the claim) if claimed, and
    /// records the outcome.
    pub(crate) async fn run(
        &self,
        dispatcher: &Dispatcher,
        prepared: Prepared,
        message_id: &Arc<str>,
        attempt: u32,
    ) -> Gate {
        let id = prepared.meta().id.to_string();
        let token = uuid::Uuid::new_v4().to_string();
        let subscriber = dispatcher.subscriber().name();
        match self.store.claim(&id, &token, self.lease).await {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Done) => {
                tracing::debug!(subscriber, event_id = %id, %message_id,
                    "already handled: acknowledged without running the handler");
                return Gate::Duplicate;
            }
            Ok(Claim::Running) => {
                tracing::debug!(subscriber, event_id = %id, %message_id,
                    "another delivery of this event runs: waiting for it");
                return Gate::Busy(self.busy_delay());
            }
            Err(e) => {
                tracing::warn!(subscriber, event_id = %id, error = %e,
                    "cannot claim the event for de-duplication; trying again");
                return Gate::Busy(self.busy_delay().max(Duration::from_millis(200)));
            }
        }
        let result = {
            let run = dispatcher.run(prepared, message_id, attempt);
            tokio::pin!(run);
            let mut renew = tokio::time::interval(self.lease / 4);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            renew.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    _ = renew.tick() => self.renew(&id, &token, subscriber).await,
                }
            }
        };
        match &result {
            Ok(()) => self.mark_done(&id, subscriber).await,
            Err(_) => {
                if let Err(e) = self.store.release(&id, &token).await {
                    tracing::warn!(subscriber, event_id = %id, error = %e,
                        "cannot release the de-duplication claim; it expires with its lease");
                }
            }
        }
        Gate::Ran(result)
    }

    async fn renew(&self, id: &str, token: &str, subscriber: &str) {
        match self.store.renew(id, token, self.lease).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(subscriber, event_id = %id,
                "the de-duplication claim was lost while the handler ran (its lease ran out); a duplicate may run"),
            Err(e) => tracing::warn!(subscriber, event_id = %id, error = %e,
                "cannot renew the de-duplication claim"),
        }
    }

    async fn mark_done(&self, id: &str, subscriber: &str) {
        for tries in 1..=DONE_TRIES {
            match self.store.done(id, self.window).await {
                Ok(()) => return,
                Err(e) if tries == DONE_TRIES => {
                    tracing::error!(subscriber, event_id = %id, error = %e,
                    "handled, but the de-duplication mark could not be written: a duplicate of this event will run again")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50) * tries).await,
            }
        }
    }
}

/// The in-memory store: a map from envelope id to mark and expiry.
#[derive(Debug, Default)]
pub(crate) struct MemoryDedupe {
    marks: Mutex<Marks>,
}

#[derive(Debug, Default)]
struct Marks {
    map: std::collections::HashMap<String, (Mark, Instant)>,
    /// The size at which expired marks are swept next.
    sweep_at: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mark {
    Running(String),
    Done,
}

impl MemoryDedupe {
    fn with<T>(&self, f: impl FnOnce(&mut Marks, Instant) -> T) -> T {
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if marks.map.len() >= marks.sweep_at {
            marks.map.retain(|_, (_, expires)| *expires > now);
            marks.sweep_at = (marks.map.len() * 2).max(1024);
        }
        f(&mut marks, now)
    }
}

impl Marks {
    /// The live mark of `id`.
    fn live(&mut self, id: &str, now: Instant) -> Option<&mut (Mark, Instant)> {
        self.map.get_mut(id).filter(|(_, expires)| *expires > now)
    }
}

impl DedupeStore for MemoryDedupe {
    fn claim<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, BoxError>> {
        let claim = self.with(|marks, now| match marks.live(id, now) {
            Some((Mark::Done, _)) => Claim::Done,
            Some((Mark::Running(_), _)) => Claim::Running,
            None => {
                marks.map.insert(
                    id.to_owned(),
                    (Mark::Running(token.to_owned()), now + lease),
                );
                Claim::Claimed
            }
        });
        Box::pin(std::future::ready(Ok(claim)))
    }

    fn renew<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        let renewed = self.with(|marks, now| match marks.live(id, now) {
            Some((Mark::Running(t), expires)) if t == token => {
                *expires = now + lease;
                true
            }
            _ => false,
        });
        Box::pin(std::future::ready(Ok(renewed)))
    }

    fn release<'a>(&'a self, id: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        self.with(|marks, _| {
            if matches!(marks.map.get(id), Some((Mark::Running(t), _)) if t == token) {
                marks.map.remove(id);
            }
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn done<'a>(&'a self, id: &'a str, window: Duration) -> BoxFuture<'a, Result<(), BoxError>> {
        self.with(|marks, now| {
            marks.map.insert(id.to_owned(), (Mark::Done, now + window));
        });
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn memory_marks_follow_the_protocol() {
        let store = MemoryDedupe::default();
        let lease = Duration::from_secs(5);
        assert_eq!(store.claim("e", "a", lease).await.unwrap(), Claim::Claimed);
        assert_eq!(store.claim("e", "b", lease).await.unwrap(), Claim::Running);
        assert!(store.renew("e", "a", lease).await.unwrap());
        assert!(!store.renew("e", "b", lease).await.unwrap());
        store.release("e", "b").await.unwrap(); // not b's: kept
        assert_eq!(store.claim("e", "b", lease).await.unwrap(), Claim::Running);
        store.release("e", "a").await.unwrap();
        assert_eq!(store.claim("e", "b", lease).await.unwrap(), Claim::Claimed);
        store.done("e", Duration::from_secs(60)).await.unwrap();
        assert_eq!(store.claim("e", "c", lease).await.unwrap(), Claim::Done);
        assert!(!store.renew("e", "b", lease).await.unwrap());
    }

    #[tokio::test]
    async fn memory_marks_expire() {
        let store = MemoryDedupe::default();
        store.done("e", Duration::from_millis(30)).await.unwrap();
        assert_eq!(
            store
                .claim("e", "a", Duration::from_millis(30))
                .await
                .unwrap(),
            Claim::Done
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            store
                .claim("e", "a", Duration::from_millis(30))
                .await
                .unwrap(),
            Claim::Claimed
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            store.claim("e", "b", Duration::from_secs(5)).await.unwrap(),
            Claim::Claimed
        );
    }
}
