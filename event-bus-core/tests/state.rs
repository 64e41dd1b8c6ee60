//! `State<T>` subscriber parameters: registered with the types they need, checked against a
//! bus's state before start, filled from the context at run time, and still callable directly.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use event_bus_core::transport::{Dispatcher, EncodedEvent, Selection, Shared};
use event_bus_core::{
    registered_subscribers, subscriber, Bus, Context, Envelope, Event, FailureKind, HandlerError,
    MemoryBus, MissingState, PublishError, Published, Publisher, RetryPolicy, RunningBus,
    StartError, State, StateKey, StateMap, Subscriber,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod app {
    use std::sync::Mutex;

    /// Sends mail (records it).
    #[derive(Debug, Default)]
    pub struct Mailer {
        pub sent: Mutex<Vec<uuid::Uuid>>,
    }

    /// Counts calls.
    #[derive(Debug, Default)]
    pub struct Counter(pub std::sync::atomic::AtomicUsize);
}

use app::{Counter, Mailer};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceSent {
    pub tenant_id: Uuid,
}

#[subscriber("INVOICE_SENT", name = "state-mail")]
async fn mail_invoice(
    event: Envelope<InvoiceSent>,
    _ctx: Context,
    mailer: State<Mailer>,
    counter: State<Arc<Counter>>,
) -> Result<(), HandlerError> {
    mailer.sent.lock().unwrap().push(event.payload.tenant_id);
    counter.0.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

// A path ending in `State`, and an error type other than `HandlerError`.
#[subscriber("INVOICE_SENT", name = "state-io")]
async fn io_invoice(
    _event: Envelope<InvoiceSent>,
    _ctx: Context,
    _mailer: event_bus_core::State<Mailer>,
) -> Result<(), std::io::Error> {
    Ok(())
}

fn state_of(mailer: Mailer, counter: Arc<Counter>) -> StateMap {
    let mut state = StateMap::new();
    state.insert(mailer);
    state.insert(counter);
    state
}

#[test]
fn state_parameters_are_registered() {
    let registration = registered_subscribers()
        .find(|s| s.name == "state-mail")
        .expect("state-mail is registered");
    let names: Vec<&str> = registration.state.iter().map(StateKey::type_name).collect();
    assert_eq!(
        names,
        [
            std::any::type_name::<Mailer>(),
            std::any::type_name::<Arc<Counter>>()
        ]
    );
    assert_eq!(registration.state[0], StateKey::of::<Mailer>());

    let subscriber = Subscriber::from_registration(registration);
    assert_eq!(subscriber.required_state(), registration.state);

    let io = registered_subscribers()
        .find(|s| s.name == "state-io")
        .expect("state-io is registered");
    assert_eq!(io.state, [StateKey::of::<Mailer>()]);
}

#[tokio::test]
async fn handlers_with_state_stay_callable_directly() {
    let tenant = Uuid::new_v4();
    let mailer = State::new(Mailer::default());
    let counter = State::new(Arc::new(Counter::default()));
    let ctx = Context::for_test(tenant, StateMap::new());
    mail_invoice(
        Envelope::new(InvoiceSent { tenant_id: tenant }),
        ctx,
        mailer.clone(),
        counter.clone(),
    )
    .await
    .unwrap();
    assert_eq!(*mailer.sent.lock().unwrap(), [tenant]);
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(Arc::strong_count(State::as_arc(&mailer)), 1);
}

#[test]
fn the_extractor_reads_the_context() {
    let tenant = Uuid::new_v4();
    let counter = Arc::new(Counter::default());
    let ctx = Context::for_test(tenant, state_of(Mailer::default(), Arc::clone(&counter)));

    let got = State::<Arc<Counter>>::from_context(&ctx).unwrap();
    assert!(Arc::ptr_eq(&got, &counter));
    let mailer = State::<Mailer>::from_context(&ctx).unwrap();
    let again = State::<Mailer>::from_context(&ctx).unwrap();
    assert!(Arc::ptr_eq(State::as_arc(&mailer), State::as_arc(&again)));
    assert_eq!(format!("{got:?}"), "State(Counter(0))");

    // The common mistake: the bus holds `Arc<Counter>`, the handler asks for `Counter`.
    let missing: MissingState = State::<Counter>::from_context(&ctx).unwrap_err();
    assert_eq!(missing.type_name, std::any::type_name::<Counter>());
}

#[test]
fn the_state_map_lists_what_it_holds() {
    let state = state_of(Mailer::default(), Arc::new(Counter::default()));
    assert!(state.contains::<Mailer>());
    assert!(!state.contains::<Counter>());
    assert!(state.contains_id(std::any::TypeId::of::<Arc<Counter>>()));
    let mut expected = vec![
        std::any::type_name::<Mailer>(),
        std::any::type_name::<Arc<Counter>>(),
    ];
    expected.sort_unstable();
    assert_eq!(state.type_names(), expected);
    assert!(state.get_arc::<Mailer>().is_some());
    assert!(
        format!("{state:?}").contains("state::app::Mailer"),
        "{state:?}"
    );
}

#[test]
fn start_checks_find_a_missing_state_type() {
    let mut selection = Selection::new();
    selection.only(["state-mail"]);
    let resolved = selection.resolve().unwrap();

    let full = state_of(Mailer::default(), Arc::new(Counter::default()));
    resolved.check_state(&full).unwrap();

    // `Counter` instead of `Arc<Counter>`: the message suggests the type the bus holds.
    let mut wrong = StateMap::new();
    wrong.insert(Mailer::default());
    wrong.insert(Counter::default());
    let error = resolved.check_state(&wrong).unwrap_err();
    let StartError::MissingState {
        subscriber,
        location,
        type_name,
        available,
    } = &error
    else {
        panic!("expected MissingState, got {error:?}");
    };
    assert_eq!(subscriber, "state-mail");
    assert!(location.contains("state.rs"), "{location}");
    assert_eq!(type_name, std::any::type_name::<Arc<Counter>>());
    assert_eq!(available.len(), 2);
    let message = error.to_string();
    assert!(
        message.contains(
            "the bus was not given `.state(value)` of type `alloc::sync::Arc<state::app::Counter>`"
        ),
        "{message}"
    );
    assert!(message.contains("`state::app::Counter`"), "{message}");
    assert!(
        message.ends_with("did you mean State<state::app::Counter>?"),
        "{message}"
    );

    // Nothing at all.
    let error = resolved.check_state(&StateMap::new()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("it holds: nothing"), "{message}");
    assert!(!message.contains("did you mean"), "{message}");
}

#[test]
fn explicit_subscribers_can_require_state() {
    async fn audit(_: Envelope<InvoiceSent>, ctx: Context) -> Result<(), HandlerError> {
        ctx.state::<Mailer>()?;
        Ok(())
    }
    let subscriber = Subscriber::new("state-explicit", audit)
        .requires_state::<Mailer>()
        .requires_state::<Mailer>();
    assert_eq!(subscriber.required_state(), [StateKey::of::<Mailer>()]);
    assert!(Subscriber::new("plain", audit).required_state().is_empty());

    let mut selection = Selection::new();
    selection.discover(false);
    selection.register_event::<InvoiceSent>();
    selection.subscribe(subscriber);
    let resolved = selection.resolve().unwrap();
    let error = resolved.check_state(&StateMap::new()).unwrap_err();
    assert!(
        matches!(&error, StartError::MissingState { subscriber, .. } if subscriber == "state-explicit"),
        "{error:?}"
    );
    let mut state = StateMap::new();
    state.insert(Mailer::default());
    resolved.check_state(&state).unwrap();

    // The other way round: the handler wants `Counter`, the bus holds `Arc<Counter>`.
    let mut selection = Selection::new();
    selection.discover(false);
    selection.register_event::<InvoiceSent>();
    selection.subscribe(Subscriber::new("state-counter", audit).requires_state::<Counter>());
    let mut state = StateMap::new();
    state.insert(Arc::new(Counter::default()));
    let message = selection
        .resolve()
        .unwrap()
        .check_state(&state)
        .unwrap_err()
        .to_string();
    assert!(
        message.ends_with("did you mean State<alloc::sync::Arc<state::app::Counter>>?"),
        "{message}"
    );
}

struct NoPublisher;

impl Publisher for NoPublisher {
    fn publish_encoded(
        &self,
        _: EncodedEvent,
    ) -> Pin<Box<dyn Future<Output = Result<Published, PublishError>> + Send + '_>> {
        Box::pin(async { Err(PublishError::Closed) })
    }
}

#[tokio::test]
async fn missing_state_at_run_time_is_a_permanent_failure() {
    // Only reachable when the start check is skipped; the thunk reports what `ctx.state` would.
    let registration = registered_subscribers()
        .find(|s| s.name == "state-mail")
        .unwrap();
    let dispatcher = Dispatcher::new(
        Subscriber::from_registration(registration),
        Shared::new(StateMap::new(), Arc::new(NoPublisher)),
        RetryPolicy::default(),
    );
    let json = serde_json::to_vec(&Envelope::new(InvoiceSent {
        tenant_id: Uuid::new_v4(),
    }))
    .unwrap();
    let prepared = dispatcher.prepare(&json).unwrap();
    let failure = dispatcher
        .run(prepared, &Arc::from("1-0"), 1)
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Handler);
    assert!(failure.permanent, "{failure}");
    assert!(failure.message.contains("state::app::Mailer"), "{failure}");
}

#[tokio::test]
async fn a_state_subscriber_runs_on_the_memory_bus() {
    let counter = Arc::new(Counter::default());
    let bus = MemoryBus::builder()
        .state(Mailer::default())
        .state(Arc::clone(&counter))
        .only(["state-mail"])
        .build()
        .await
        .unwrap();
    let running = bus.start().await.expect("the bus starts");
    bus.publish(InvoiceSent {
        tenant_id: Uuid::new_v4(),
    })
    .await
    .unwrap();
    running.idle().await;
    // The counter is this test's own: other tests call the handler directly with theirs.
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bus_without_the_state_does_not_start() {
    let bus = MemoryBus::builder()
        .state(Mailer::default())
        .state(Counter::default())
        .only(["state-mail"])
        .build()
        .await
        .unwrap();
    let error = bus.start().await.unwrap_err();
    assert!(
        matches!(&error, StartError::MissingState { subscriber, .. } if subscriber == "state-mail"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .ends_with("did you mean State<state::app::Counter>?"),
        "{error}"
    );
}
