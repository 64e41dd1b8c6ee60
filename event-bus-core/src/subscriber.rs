//! Subscribers: their options, and [`Subscriber`], the runtime descriptor a bus runs, built from
//! a `#[subscriber]` registration or explicitly with [`Subscriber::new`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::context::{Context, StateKey};
use crate::dispatch::{prepare, Failure, Prepared};
use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::event::Event;
use crate::registry::SubscriberRegistration;

/// Where a new subscriber (a new consumer group) starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartFrom {
    /// Only events published after the group is created (`$`).
    #[default]
    Latest,
    /// Every event still in the stream (`0`).
    Earliest,
}

/// Whether a subscriber running concurrently keeps some order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ordering {
    /// No order beyond what `concurrency = 1` gives.
    #[default]
    None,
    /// Events of one tenant are handled one at a time, in stream order (a retry holds back that
    /// tenant only); tenants run concurrently up to `concurrency`.
    PerTenant,
}

/// How a subscriber runs. Built by `#[subscriber(...)]` or by [`Subscriber`]'s methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberOptions {
    /// Handlers running at once in one process (default 1: events in order).
    pub concurrency: u32,
    /// Attempts before an event is dead-lettered; `None` takes the bus's retry policy.
    pub max_attempts: Option<u32>,
    /// Where a new group starts.
    pub start: StartFrom,
    /// Ordering under concurrency.
    pub ordering: Ordering,
    /// The channel it reads (`None`: [`DEFAULT_CHANNEL`](crate::DEFAULT_CHANNEL)).
    pub channel: Option<&'static str>,
    /// Idempotent handling: each envelope id is handled at most once within this window
    /// (`None`: every delivery runs the handler). See
    /// [`transport::dedupe`](crate::transport::dedupe).
    pub dedupe: Option<Duration>,
}

impl SubscriberOptions {
    /// The defaults: concurrency 1, the bus's max attempts, start at latest, no ordering.
    pub const DEFAULT: Self = Self {
        concurrency: 1,
        max_attempts: None,
        start: StartFrom::Latest,
        ordering: Ordering::None,
        channel: None,
        dedupe: None,
    };

    /// Sets `concurrency`.
    pub const fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets `max_attempts`.
    pub const fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Sets `start`.
    pub const fn start(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// Sets `ordering`.
    pub const fn ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = ordering;
        self
    }

    /// Sets the channel it reads.
    pub const fn channel(mut self, channel: &'static str) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Handles each envelope id at most once within `window` (`dedupe = "24h"`).
    pub const fn dedupe(mut self, window: Duration) -> Self {
        self.dedupe = Some(window);
        self
    }
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

pub(crate) type PrepareFn = dyn Fn(&[u8]) -> Result<Prepared, Failure> + Send + Sync;

/// A subscriber as a bus runs it: name, event type, options and the type-erased handler.
///
/// Every `#[subscriber]` in the binary becomes one at start. Build one by hand for targets
/// where `inventory` cannot run, or to register a closure:
///
/// ```
/// use event_bus_core::{Context, Envelope, Event, HandlerError, Subscriber};
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed { tenant_id: uuid::Uuid }
///
/// async fn audit(_: Envelope<TicketClosed>, _: Context) -> Result<(), HandlerError> {
///     Ok(())
/// }
///
/// let sub = Subscriber::new("audit-closed", audit).concurrency(4);
/// assert_eq!(sub.event_type(), "TICKET_CLOSED");
/// ```
#[derive(Clone)]
pub struct Subscriber {
    name: Cow<'static, str>,
    event_type: &'static str,
    options: SubscriberOptions,
    location: Cow<'static, str>,
    prepare: Arc<PrepareFn>,
    required_state: Cow<'static, [StateKey]>,
}

impl Subscriber {
    /// A subscriber named `name` that runs `handler` for every event of type `E`.
    pub fn new<E, F, Fut, Err>(name: impl Into<Cow<'static, str>>, handler: F) -> Self
    where
        E: Event,
        F: Fn(Envelope<E>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Err>> + Send + 'static,
        Err: Into<HandlerError>,
    {
        let handler = Arc::new(handler);
        Self {
            name: name.into(),
            event_type: E::EVENT_TYPE,
            options: SubscriberOptions::DEFAULT,
            location: Cow::Borrowed("registered explicitly"),
            required_state: Cow::Borrowed(&[]),
            prepare: Arc::new(move |bytes: &[u8]| {
                let handler = Arc::clone(&handler);
                prepare::<E, _, _, _>(bytes, move |envelope, ctx| handler(envelope, ctx))
            }),
        }
    }

    /// The subscriber of a `#[subscriber]` registration.
    pub fn from_registration(registration: &'static SubscriberRegistration) -> Self {
        Self {
            name: Cow::Borrowed(registration.name),
            event_type: registration.event_type,
            options: registration.options,
            location: Cow::Owned(registration.location()),
            prepare: Arc::new(registration.prepare),
            required_state: Cow::Borrowed(registration.state),
        }
    }

    /// Sets the concurrency.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.options.concurrency = n;
        self
    }

    /// Sets the attempts before dead-lettering.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.options.max_attempts = Some(n);
        self
    }

    /// Sets where a new group starts.
    pub fn start(mut self, start: StartFrom) -> Self {
        self.options.start = start;
        self
    }

    /// Sets the ordering.
    pub fn ordering(mut self, ordering: Ordering) -> Self {
        self.options.ordering = ordering;
        self
    }

    /// Sets the channel it reads (default [`DEFAULT_CHANNEL`](crate::DEFAULT_CHANNEL)).
    pub fn channel(mut self, channel: &'static str) -> Self {
        self.options.channel = Some(channel);
        self
    }

    /// Makes the subscriber idempotent: a delivery whose envelope id it already handled within
    /// `window` is acknowledged without running the handler, and two deliveries of one envelope
    /// id never run it at the same time (on Redis: across processes). What this guarantees
    /// around crashes is stated in [`transport::dedupe`](crate::transport::dedupe).
    ///
    /// ```
    /// # use event_bus_core::{Context, Envelope, Event, HandlerError, Subscriber};
    /// # #[derive(serde::Serialize, serde::Deserialize, Event)]
    /// # #[serde(rename_all = "camelCase")]
    /// # struct TicketClosed { tenant_id: uuid::Uuid }
    /// # async fn bill(_: Envelope<TicketClosed>, _: Context) -> Result<(), HandlerError> { Ok(()) }
    /// use std::time::Duration;
    ///
    /// let sub = Subscriber::new("bill-closed", bill).dedupe(Duration::from_secs(24 * 3600));
    /// assert_eq!(sub.options().dedupe, Some(Duration::from_secs(86_400)));
    /// ```
    pub fn dedupe(mut self, window: Duration) -> Self {
        self.options.dedupe = Some(window);
        self
    }

    /// The channel it reads.
    pub fn channel_name(&self) -> &'static str {
        self.options
            .channel
            .unwrap_or(crate::event::DEFAULT_CHANNEL)
    }

    /// Declares that the handler needs the shared value of type `T` (it reads it with
    /// `ctx.state::<T>()` or `State::<T>::from_context`): the bus then refuses to start without
    /// it, instead of failing the first event.
    pub fn requires_state<T: Send + Sync + 'static>(mut self) -> Self {
        let key = StateKey::of::<T>();
        if !self.required_state.contains(&key) {
            self.required_state.to_mut().push(key);
        }
        self
    }

    /// The shared state types the bus must hold (`State<T>` parameters and
    /// [`requires_state`](Self::requires_state)).
    pub fn required_state(&self) -> &[StateKey] {
        &self.required_state
    }

    /// The name (the consumer group on Redis).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The event type it handles.
    pub fn event_type(&self) -> &'static str {
        self.event_type
    }

    /// Its options.
    pub fn options(&self) -> &SubscriberOptions {
        &self.options
    }

    /// Where it is declared (`src/handlers.rs:12 (crate::handlers::on_update)`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Decodes and validates `payload` (the envelope JSON) and binds the handler to it.
    pub fn prepare(&self, payload: &[u8]) -> Result<Prepared, Failure> {
        (self.prepare)(payload)
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("name", &self.name)
            .field("event_type", &self.event_type)
            .field("options", &self.options)
            .field("location", &self.location)
            .field("required_state", &self.required_state)
            .finish_non_exhaustive()
    }
}
