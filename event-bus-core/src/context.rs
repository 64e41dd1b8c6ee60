//! [`Context`]: what a handler knows about the delivery it is handling, and what it can reach:
//! the shared state handed to the bus at build time, and a publisher for follow-up events.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::error::{MissingState, PublishError};
use crate::event::Event;
use crate::publish::{encode, Published, Publisher};

/// Typed values shared by every handler, one per type (`ctx.state::<T>()`).
#[derive(Clone, Default)]
pub struct State {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl State {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the value of type `T`.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was inserted.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("values", &self.values.len())
            .finish()
    }
}

/// What every delivery of a bus shares: state and the publisher.
#[derive(Clone)]
pub struct Shared {
    pub(crate) state: Arc<State>,
    pub(crate) publisher: Arc<dyn Publisher>,
}

impl Shared {
    /// Shared state and a publisher, as a runtime builds them at start.
    pub fn new(state: State, publisher: Arc<dyn Publisher>) -> Self {
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
/// let mut state = event_bus_core::State::new();
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
            scope,
        }
    }

    /// A context for calling a handler directly in a unit test: attempt 1, subscriber `"test"`,
    /// and a publisher that refuses (`PublishError::Closed`).
    pub fn for_test(tenant_id: Uuid, state: State) -> Self {
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
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, MissingState> {
        self.scope
            .shared
            .state
            .get::<T>()
            .ok_or_else(|| MissingState {
                type_name: std::any::type_name::<T>().into(),
            })
    }

    /// Publishes a follow-up event on the same bus.
    pub async fn publish<E: Event>(&self, event: E) -> Result<Published, PublishError> {
        let encoded = encode(event)?;
        self.scope.shared.publisher.publish_encoded(encoded).await
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
