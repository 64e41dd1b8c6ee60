//! [`Bus`] and [`RunningBus`]: the one API of every bus, in memory or on Redis. Code written
//! against these traits (an application's wiring, a test scenario) runs unchanged on either,
//! with the same semantics.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::dead_letter::{DeadLetter, DeadLetterError, DeadLetterFilter, ReplaySummary};
use crate::envelope::Envelope;
use crate::error::{PublishError, ShutdownError, StartError};
use crate::event::Event;
use crate::health::Health;
use crate::publish::{
    check_batch, encode, encode_envelope, BatchResults, Channels, EncodedEvent, Published,
    Publisher,
};
use crate::stats::BusStats;

/// An event bus: publish typed events, start the subscribers linked into the binary, and look
/// after dead letters.
///
/// Semantics every bus keeps:
///
/// - **Publishing validates first** and writes nothing when validation fails. It writes to the
///   event type's channels ([`Event::CHANNELS`], `global` by default) or to those named with
///   [`Bus::publish_on`]; a subscriber reads one channel (`global` unless it names another),
///   and receives what is published to its channel (in the per-event-type layout every channel
///   shares the type's one stream, so every subscriber of the type receives it).
/// - **Before [`start`](Bus::start)**, a publish is kept for this bus's own subscribers of
///   that event type: they receive it once they start, whatever their
///   [`StartFrom`](crate::StartFrom) (which only places a *new* group relative to events others
///   published before this bus existed).
/// - **After [`RunningBus::shutdown`]**, publishing fails with [`PublishError::Closed`].
/// - **Start fails** when no subscriber is found, unless the builder said
///   `.allow_no_subscribers(true)` (a publish-only process), when a subscriber needs shared
///   state the bus was not given, and on the checks of the registry (duplicate names, unknown
///   event types, expected subscribers missing).
/// - **A replayed dead letter** stays listed until its replay is handled (then it is deleted)
///   or dead-lettered again (then the new dead letter replaces it).
///
/// ```
/// use event_bus_core::{subscriber, Bus, Context, Envelope, Event, HandlerError, MemoryBus, RunningBus};
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed { tenant_id: uuid::Uuid }
///
/// #[subscriber("TICKET_CLOSED", name = "bus-doc-audit")]
/// async fn audit(_: Envelope<TicketClosed>, _: Context) -> Result<(), HandlerError> { Ok(()) }
///
/// /// Works on any bus.
/// async fn close_one<B: Bus>(bus: &B) -> Result<(), Box<dyn std::error::Error>> {
///     let running = bus.start().await?;
///     bus.publish(TicketClosed { tenant_id: uuid::Uuid::new_v4() }).await?;
///     running.idle().await;
///     assert_eq!(running.stats().subscriber("bus-doc-audit").map(|s| s.handled), Some(1));
///     running.shutdown().await?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = MemoryBus::builder().only(["bus-doc-audit"]).build().await?;
/// close_one(&bus).await
/// # }
/// ```
pub trait Bus: Clone + fmt::Debug + Send + Sync + 'static {
    /// The handle of the started bus.
    type Running: RunningBus<Bus = Self>;

    /// Validates `event` (before any I/O), wraps it in a fresh envelope and writes it.
    fn publish<E: Event>(
        &self,
        event: E,
    ) -> impl Future<Output = Result<Published, PublishError>> + Send {
        let encoded = encode(event);
        async move { self.publish_encoded(encoded?).await }
    }

    /// Like [`Bus::publish`], to the channels named here instead of the event type's own
    /// ([`Event::CHANNELS`]): one entry per channel's stream, each naming its channel.
    fn publish_on<E: Event>(
        &self,
        channels: &[&str],
        event: E,
    ) -> impl Future<Output = Result<Published, PublishError>> + Send {
        let encoded = encode(event).map(|mut e| {
            e.channels = Channels::Named(channels.iter().map(|c| (*c).to_owned()).collect());
            e
        });
        async move { self.publish_encoded(encoded?).await }
    }

    /// Like [`Bus::publish`], keeping the envelope's id and timestamp (a publish retried
    /// after a timeout reuses its envelope).
    fn publish_envelope<E: Event>(
        &self,
        envelope: &Envelope<E>,
    ) -> impl Future<Output = Result<Published, PublishError>> + Send {
        let encoded = encode_envelope(envelope);
        async move { self.publish_encoded(encoded?).await }
    }

    /// Publishes a batch: validates and encodes every event first, then writes them together
    /// (on Redis, pipelined: one round trip per batch instead of one per event). Returns one
    /// result per event, in the order given.
    ///
    /// - **Validation is all or nothing**: when any event fails validation (or encoding),
    ///   nothing of the batch is written; the failing events report their error and every
    ///   other one [`PublishError::BatchRejected`], so the caller fixes the batch and sends it
    ///   again whole, with no duplicate.
    /// - **Writes are per event**: once every event passed, each is written on its own. A
    ///   transport error (a Redis error reply, a dropped connection) fails the events it hit,
    ///   with [`PublishError::Transport`], and the others are written. To retry the failed
    ///   ones without risking duplicates, keep their envelopes and send them again with
    ///   [`Bus::publish_envelopes`] (same ids: a subscriber's de-duplication drops a copy).
    /// - Everything else is as for [`Bus::publish`]: fresh envelopes, the event type's
    ///   channels, the same counters, and after shutdown every event fails with
    ///   [`PublishError::Closed`].
    ///
    /// ```
    /// use event_bus_core::{Bus, Event, MemoryBus, PublishError};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Event)]
    /// #[serde(rename_all = "camelCase")]
    /// struct TicketClosed { tenant_id: uuid::Uuid }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = MemoryBus::builder().allow_no_subscribers(true).build().await?;
    /// let tenant = uuid::Uuid::new_v4();
    /// let results = bus.publish_all((0..3).map(|_| TicketClosed { tenant_id: tenant })).await;
    /// assert!(results.iter().all(Result::is_ok));
    ///
    /// // One invalid event: nothing is written.
    /// let results = bus
    ///     .publish_all([TicketClosed { tenant_id: tenant }, TicketClosed { tenant_id: uuid::Uuid::nil() }])
    ///     .await;
    /// assert!(matches!(results[0], Err(PublishError::BatchRejected { rejected: 1, .. })));
    /// assert!(matches!(results[1], Err(PublishError::Invalid { .. })));
    /// assert_eq!(bus.stats().published, 3);
    /// # Ok(()) }
    /// ```
    fn publish_all<E: Event>(
        &self,
        events: impl IntoIterator<Item = E>,
    ) -> impl Future<Output = BatchResults> + Send {
        let encoded = check_batch(events.into_iter().map(encode).collect());
        async move {
            match encoded {
                Ok(events) => self.publish_encoded_all(events).await,
                Err(results) => results,
            }
        }
    }

    /// Like [`Bus::publish_all`], keeping each envelope's id and timestamp (a batch, or its
    /// failed part, retried after a transport error reuses its envelopes).
    fn publish_envelopes<E: Event>(
        &self,
        envelopes: &[Envelope<E>],
    ) -> impl Future<Output = BatchResults> + Send {
        let encoded = check_batch(envelopes.iter().map(encode_envelope).collect());
        async move {
            match encoded {
                Ok(events) => self.publish_encoded_all(events).await,
                Err(results) => results,
            }
        }
    }

    /// Writes a batch of events already validated and encoded, of any event types (see
    /// [`transport::encode`](crate::transport::encode) and
    /// [`transport::check_batch`](crate::transport::check_batch), which every bus runs first
    /// here too). One result per event, in order, as [`Bus::publish_all`] describes.
    fn publish_encoded_all(
        &self,
        events: Vec<EncodedEvent>,
    ) -> impl Future<Output = BatchResults> + Send;

    /// Writes an event already validated and encoded (see
    /// [`transport::encode`](crate::transport::encode)).
    fn publish_encoded(
        &self,
        event: EncodedEvent,
    ) -> impl Future<Output = Result<Published, PublishError>> + Send;

    /// This bus as a [`Publisher`], for code that publishes without knowing the bus type.
    fn publisher(&self) -> Arc<dyn Publisher>;

    /// Discovers the subscribers, runs the start checks, and starts delivering.
    fn start(&self) -> impl Future<Output = Result<Self::Running, StartError>> + Send;

    /// What the bus did so far: published events, and each running subscriber's counters.
    fn stats(&self) -> BusStats;

    /// Every dead letter of the bus's event types, oldest first per stream, including the
    /// [foreign](DeadLetter#foreign-letters) ones another implementation (the seed system)
    /// wrote to the same streams, flagged [`DeadLetter::foreign`].
    fn dead_letters(&self)
        -> impl Future<Output = Result<Vec<DeadLetter>, DeadLetterError>> + Send;

    /// Delivers a dead letter again, as a first attempt, to the one subscriber that failed it
    /// (it must be running in this bus). A [foreign](DeadLetter#foreign-letters) letter names
    /// no subscriber and fails with [`DeadLetterError::Foreign`].
    fn replay_dead_letter(
        &self,
        letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), DeadLetterError>> + Send;

    /// Replays every dead letter this implementation wrote, skipping (and logging the count
    /// of) the [foreign](DeadLetter#foreign-letters) ones; stops at the first replay that
    /// fails. Each replayed letter stays listed until its replay is handled.
    fn replay_all_dead_letters(
        &self,
    ) -> impl Future<Output = Result<ReplaySummary, DeadLetterError>> + Send {
        async move {
            let letters = self.dead_letters().await?;
            let mut summary = ReplaySummary::default();
            for letter in &letters {
                if letter.foreign {
                    summary.skipped_foreign += 1;
                    continue;
                }
                self.replay_dead_letter(letter).await?;
                summary.replayed += 1;
            }
            if summary.skipped_foreign > 0 {
                tracing::warn!(
                    replayed = summary.replayed,
                    skipped_foreign = summary.skipped_foreign,
                    "skipped dead letters written by another implementation (the seed system): \
                     they name no subscriber; replay them with that system's own tooling"
                );
            }
            Ok(summary)
        }
    }

    /// Deletes the dead letters of the bus's event types that `filter` selects (by default,
    /// [`DeadLetterFilter::ours`]: every letter this implementation wrote, none of the seed's);
    /// returns how many it deleted. On Redis each letter is deleted by id (`XDEL`), never the
    /// stream: letters written meanwhile, and those the filter leaves out, stay as they are.
    fn purge_dead_letters(
        &self,
        filter: DeadLetterFilter,
    ) -> impl Future<Output = Result<usize, DeadLetterError>> + Send;
}

/// A started bus: wait for it to settle, look at what it does, shut it down.
pub trait RunningBus: fmt::Debug + Send + Sync + Sized + 'static {
    /// The bus it runs.
    type Bus: Bus<Running = Self>;

    /// The bus.
    fn bus(&self) -> &Self::Bus;

    /// The names of the running subscribers, sorted.
    fn subscribers(&self) -> Vec<&str>;

    /// Whether every subscriber is reading: a readiness check for an orchestrator. On Redis a
    /// subscriber whose reader cannot reach Redis (or whose connection Redis refused) is
    /// reported with the error until a read succeeds again.
    fn health(&self) -> Health;

    /// What the bus did so far (the same as [`Bus::stats`]).
    fn stats(&self) -> BusStats {
        self.bus().stats()
    }

    /// Waits until every event delivered to the running subscribers so far was handled or
    /// dead-lettered, retries included (on Redis: each subscriber's group has no lag and no
    /// pending entry, and every acknowledgement is confirmed, so [`RunningBus::stats`] is up to
    /// date). It waits as long as that takes: wrap it in `tokio::time::timeout` where a
    /// subscriber may never catch up (its entries held by a consumer in another process, say).
    fn idle(&self) -> impl Future<Output = ()> + Send + '_;

    /// Graceful shutdown: stop taking events, let in-flight handlers finish within the
    /// shutdown deadline, acknowledge what they handled, close. Publishing afterwards fails.
    fn shutdown(self) -> impl Future<Output = Result<(), ShutdownError>> + Send;
}
