//! [`Context`]: what a handler knows about the delivery it is handling, and what it can reach:
//! the shared state handed to the bus at build time, and a publisher for follow-up events.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::{HandlerError, MissingState, PublishError};
use crate::event::Event;
use crate::publish::{encode_envelope, Published, Publisher};
use crate::trace::TraceContext;

/// Typed values shared by every handler, one per type: what a bus builder's `.state(value)`
/// fills, and what [`State<T>`] parameters and `ctx.state::<T>()` read.
#[derive(Clone, Default)]
pub struct StateMap {
    values: HashMap<TypeId, StateEntry>,
}

/// One value of a [`StateMap`], with its type's name for messages.
#[derive(Clone)]
struct StateEntry {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl StateMap {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the value of type `T`.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(
            TypeId::of::<T>(),
            StateEntry {
                value: Arc::new(value),
                type_name: std::any::type_name::<T>(),
            },
        );
    }

    /// The value of type `T`, if one was inserted.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.value.downcast_ref::<T>())
    }

    /// The value of type `T`, shared, if one was inserted.
    pub fn get_arc<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| Arc::clone(&v.value).downcast::<T>().ok())
    }

    /// Whether a value of type `T` was inserted.
    pub fn contains<T: Send + Sync + 'static>(&self) -> bool {
        self.contains_id(TypeId::of::<T>())
    }

    /// Whether a value of the type with this id was inserted.
    pub fn contains_id(&self, id: TypeId) -> bool {
        self.values.contains_key(&id)
    }

    /// The type names ([`std::any::type_name`]) of every value held, sorted.
    pub fn type_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.values.values().map(|v| v.type_name).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMap")
            .field("types", &self.type_names())
            .finish()
    }
}

/// A shared value handed to the bus with `.state(value)`, as a subscriber parameter.
///
/// A `#[subscriber]` function may take, after `ctx: Context`, any number of `State<T>`
/// parameters. The bus checks at start that it holds a value of every such `T`, so a mistake
/// (asking for `State<Arc<Mailer>>` while the bus was given a `Mailer`) stops the start with
/// [`StartError::MissingState`](crate::StartError::MissingState) instead of dead-lettering the
/// first event. `State<T>` dereferences to `T`, and is cheap to clone (an [`Arc`]).
///
/// ```
/// use std::sync::Mutex;
///
/// use event_bus_core::{
///     subscriber, Bus, Context, Envelope, Event, HandlerError, MemoryBus, RunningBus, State,
/// };
///
/// #[derive(Default)]
/// struct Mailer {
///     sent: Mutex<Vec<uuid::Uuid>>,
/// }
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed {
///     tenant_id: uuid::Uuid,
/// }
///
/// #[subscriber("TICKET_CLOSED", name = "state-doc-email")]
/// async fn email_on_close(
///     event: Envelope<TicketClosed>,
///     _ctx: Context,
///     mailer: State<Mailer>,
/// ) -> Result<(), HandlerError> {
///     mailer.sent.lock().unwrap().push(event.payload.tenant_id);
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // On a bus: hand the value over with `.state(value)`.
/// let bus = MemoryBus::builder()
///     .state(Mailer::default())
///     .only(["state-doc-email"])
///     .build()
///     .await?;
/// let running = bus.start().await?;
/// bus.publish(TicketClosed { tenant_id: uuid::Uuid::new_v4() }).await?;
/// running.idle().await;
/// running.shutdown().await?;
///
/// // Without it, the bus does not start (instead of failing the first event).
/// let bus = MemoryBus::builder().only(["state-doc-email"]).build().await?;
/// let error = bus.start().await.unwrap_err();
/// assert!(error.to_string().contains("was not given `.state(value)`"), "{error}");
///
/// // In a unit test: call the function as written.
/// let tenant = uuid::Uuid::new_v4();
/// let mailer = State::new(Mailer::default());
/// let ctx = Context::for_test(tenant, Default::default());
/// email_on_close(Envelope::new(TicketClosed { tenant_id: tenant }), ctx, mailer.clone())
///     .await
///     .expect("mailed");
/// assert_eq!(*mailer.sent.lock().unwrap(), [tenant]);
/// # Ok(())
/// # }
/// ```
pub struct State<T>(Arc<T>);

impl<T> State<T> {
    /// A state value, for calling a subscriber directly (in a unit test, say).
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }

    /// The value of type `T` the bus of `ctx` holds, or [`MissingState`] (a permanent handler
    /// error) if it was given none. What `#[subscriber]` calls for each `State<T>` parameter;
    /// useful in subscribers built with [`Subscriber::new`](crate::Subscriber::new).
    pub fn from_context(ctx: &Context) -> Result<Self, MissingState>
    where
        T: Send + Sync + 'static,
    {
        ctx.state_arc::<T>().map(Self)
    }

    /// The shared value. (An associated function, so that it does not hide a method of `T`:
    /// write `State::into_arc(state)`.)
    pub fn into_arc(this: Self) -> Arc<T> {
        this.0
    }

    /// The shared value, borrowed: `State::as_arc(&state)`.
    pub fn as_arc(this: &Self) -> &Arc<T> {
        &this.0
    }
}

impl<T> From<Arc<T>> for State<T> {
    fn from(value: Arc<T>) -> Self {
        Self(value)
    }
}

impl<T> From<State<T>> for Arc<T> {
    fn from(state: State<T>) -> Self {
        state.0
    }
}

impl<T> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> AsRef<T> for State<T> {
    fn as_ref(&self) -> &T {
        &self.0
    }
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

/// A type a subscriber needs in the bus's [`StateMap`] (one per `State<T>` parameter), checked
/// at start. Only const data, so that `#[subscriber]` can register it.
#[derive(Clone, Copy)]
pub struct StateKey {
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
}

impl StateKey {
    /// The key of `T`.
    pub const fn of<T: ?Sized + 'static>() -> Self {
        Self {
            type_id: TypeId::of::<T>,
            type_name: std::any::type_name::<T>,
        }
    }

    /// The type's id.
    pub fn type_id(&self) -> TypeId {
        (self.type_id)()
    }

    /// The type's name ([`std::any::type_name`]), e.g. `alloc::sync::Arc<app::Mailer>`.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
}

impl PartialEq for StateKey {
    fn eq(&self, other: &Self) -> bool {
        self.type_id() == other.type_id()
    }
}

impl Eq for StateKey {}

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StateKey").field(&self.type_name()).finish()
    }
}

/// A handler's future with its error converted: what `#[subscriber]`'s thunk awaits when it
/// wraps a function that takes `State<T>` parameters. (It takes the future, not its output, so
/// that a wrong return type is reported like `prepare` reports it.)
#[doc(hidden)]
pub async fn handler_result<Fut, E>(future: Fut) -> Result<(), HandlerError>
where
    Fut: std::future::Future<Output = Result<(), E>>,
    E: Into<HandlerError>,
{
    future.await.map_err(Into::into)
}

/// A missing `State<T>` as a handler error: permanent, like `ctx.state::<T>()?`.
#[doc(hidden)]
pub fn missing_state(error: MissingState) -> HandlerError {
    HandlerError::permanent(error)
}

/// What every delivery of a bus shares: state and the publisher.
#[derive(Clone)]
pub struct Shared {
    pub(crate) state: Arc<StateMap>,
    pub(crate) publisher: Arc<dyn Publisher>,
}

impl Shared {
    /// Shared state and a publisher, as a runtime builds them at start.
    pub fn new(state: StateMap, publisher: Arc<dyn Publisher>) -> Self {
        Self {
            state: Arc::new(state),
            publisher,
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What every delivery to one subscriber shares: its name and the bus's [`Shared`]. One
/// allocation per subscriber, so that a delivery's context costs one reference count on a
/// counter no other subscriber touches (threads running other subscribers do not contend).
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) subscriber: Box<str>,
    pub(crate) shared: Shared,
}

/// The delivery a handler is running for.
///
/// ```
/// use event_bus_core::{Context, Envelope, Event, HandlerError};
///
/// struct Db { name: &'static str }
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[serde(rename_all = "camelCase")]
/// struct TicketClosed { tenant_id: uuid::Uuid }
///
/// async fn handle(event: Envelope<TicketClosed>, ctx: Context) -> Result<(), HandlerError> {
///     let db = ctx.state::<Db>()?;
///     assert_eq!(db.name, "tickets");
///     assert_eq!(ctx.tenant_id(), event.payload.tenant_id);
///     Ok(())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tenant = uuid::Uuid::new_v4();
/// let mut state = event_bus_core::StateMap::new();
/// state.insert(Db { name: "tickets" });
/// let ctx = Context::for_test(tenant, state);
/// handle(Envelope::new(TicketClosed { tenant_id: tenant }), ctx).await.unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct Context {
    tenant_id: Uuid,
    event_id: Uuid,
    attempt: u32,
    message_id: Arc<str>,
    trace: Option<TraceContext>,
    scope: Arc<Scope>,
}

impl Context {
    pub(crate) fn new(
        tenant_id: Uuid,
        event_id: Uuid,
        attempt: u32,
        message_id: Arc<str>,
        scope: Arc<Scope>,
    ) -> Self {
        Self {
            tenant_id,
            event_id,
            attempt,
            message_id,
            trace: None,
            scope,
        }
    }

    /// The same context with the delivery's trace context.
    pub(crate) fn traced(mut self, trace: Option<TraceContext>) -> Self {
        self.trace = trace;
        self
    }

    /// A context for calling a handler directly in a unit test: attempt 1, subscriber `"test"`,
    /// and a publisher that refuses (`PublishError::Closed`).
    pub fn for_test(tenant_id: Uuid, state: StateMap) -> Self {
        Self::new(
            tenant_id,
            Uuid::nil(),
            1,
            Arc::from("0-0"),
            Arc::new(Scope {
                subscriber: "test".into(),
                shared: Shared::new(state, Arc::new(crate::publish::ClosedPublisher)),
            }),
        )
    }

    /// The same context with another attempt number (for testing retry-dependent handlers).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The tenant of the event.
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// The event's id (the envelope's `id`).
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// Which attempt this is: 1 for the first delivery, counted across crashes on Redis.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The transport's id of the message (the stream entry id on Redis).
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The subscriber's name (its consumer group on Redis).
    pub fn subscriber(&self) -> &str {
        &self.scope.subscriber
    }

    /// The shared value of type `T` handed to the bus builder with `.state(value)`.
    ///
    /// This is only found missing when an event arrives; a [`State<T>`] parameter is checked
    /// when the bus starts.
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, MissingState> {
        self.scope.shared.state.get::<T>().ok_or_else(missing::<T>)
    }

    /// The shared value of type `T`, as an `Arc`.
    pub(crate) fn state_arc<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, MissingState> {
        self.scope
            .shared
            .state
            .get_arc::<T>()
            .ok_or_else(missing::<T>)
    }

    /// The trace context the event carried (its envelope's [`trace`](Envelope::trace)).
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// Publishes a follow-up event on the same bus.
    ///
    /// It continues the trace: with the `opentelemetry` feature, from the current span (the
    /// handler's, unless the handler entered one of its own); else, or without an
    /// OpenTelemetry layer, it carries the delivery's own context ([`Context::trace`]).
    pub async fn publish<E: Event>(&self, event: E) -> Result<Published, PublishError> {
        #[cfg(feature = "opentelemetry")]
        let trace = TraceContext::current().or_else(|| self.trace.clone());
        #[cfg(not(feature = "opentelemetry"))]
        let trace = self.trace.clone();
        let encoded = encode_envelope(&Envelope::new(event).with_trace(trace))?;
        self.scope.shared.publisher.publish_encoded(encoded).await
    }
}

fn missing<T>() -> MissingState {
    MissingState {
        type_name: std::any::type_name::<T>().into(),
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("tenant_id", &self.tenant_id)
            .field("event_id", &self.event_id)
            .field("attempt", &self.attempt)
            .field("message_id", &self.message_id)
            .field("subscriber", &self.scope.subscriber)
            .finish_non_exhaustive()
    }
}
