//! Start-up checks: duplicate subscriber names, subscribers of unknown event types, missing
//! expected subscribers, bad options, double start, and the explicit registration path.

use event_bus_core::{
    Bus, Context, Envelope, Event, HandlerError, MemoryBus, RunningBus, StartError, Subscriber,
};
use event_bus_tests::Probe;

async fn noop(_: Envelope<Probe>, _: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[derive(Debug, serde::Serialize, serde::Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "START_CHECK_UNREGISTERED")]
struct Unregistered {
    tenant_id: uuid::Uuid,
}

async fn on_unregistered(_: Envelope<Unregistered>, _: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[tokio::test]
async fn two_subscribers_with_one_name_are_refused() {
    let bus = MemoryBus::builder()
        .subscribe(Subscriber::new("probe-a", noop))
        .only(["probe-a"])
        .build()
        .await
        .expect("build");
    match bus.start().await {
        Err(StartError::DuplicateSubscriber {
            name,
            first,
            second,
        }) => {
            assert_eq!(name, "probe-a");
            assert!(first.contains("probe.rs"), "{first}");
            assert_eq!(second, "registered explicitly");
        }
        other => panic!("expected DuplicateSubscriber, got {other:?}"),
    }
}

#[tokio::test]
async fn a_subscriber_of_an_unregistered_event_type_is_refused() {
    // Without discovery, only explicitly registered event types are known.
    let bus = MemoryBus::builder()
        .discover(false)
        .register_event::<Probe>()
        .subscribe(Subscriber::new("orphan", on_unregistered))
        .build()
        .await
        .expect("build");
    let err = bus.start().await.expect_err("unknown event type");
    assert!(
        matches!(err, StartError::UnknownEventType { ref event_type, .. } if event_type == "START_CHECK_UNREGISTERED")
    );
    assert!(err.to_string().contains("orphan"));
}

#[tokio::test]
async fn explicit_registration_works_without_discovery() {
    let bus = MemoryBus::builder()
        .discover(false)
        .register_event::<Unregistered>()
        .subscribe(Subscriber::new("explicit", on_unregistered).concurrency(2))
        .build()
        .await
        .expect("build");
    let running = bus.start().await.expect("start");
    bus.publish(Unregistered {
        tenant_id: uuid::Uuid::new_v4(),
    })
    .await
    .expect("publish");
    running.idle().await;
    running.shutdown().await.expect("shutdown");
    assert!(bus.dead_letters().await.expect("list").is_empty());
}

#[tokio::test]
async fn expected_subscribers_must_be_present() {
    let bus = MemoryBus::builder()
        .expect_subscribers(["probe-a", "nobody"])
        .build()
        .await
        .expect("build");
    let err = bus.start().await.expect_err("missing");
    let text = err.to_string();
    assert!(
        text.contains("nobody") && text.contains("use that_crate as _"),
        "{text}"
    );
}

#[tokio::test]
async fn zero_concurrency_is_refused() {
    let bus = MemoryBus::builder()
        .discover(false)
        .register_event::<Probe>()
        .subscribe(Subscriber::new("zero", noop).concurrency(0))
        .build()
        .await
        .expect("build");
    assert!(matches!(
        bus.start().await,
        Err(StartError::InvalidOption { .. })
    ));
}

#[tokio::test]
async fn starting_twice_is_refused() {
    let bus = MemoryBus::builder()
        .only(["probe-a"])
        .build()
        .await
        .expect("build");
    let running = bus.start().await.expect("start");
    assert!(matches!(bus.start().await, Err(StartError::AlreadyStarted)));
    running.shutdown().await.expect("shutdown");
    assert!(
        bus.publish(Probe::new(uuid::Uuid::new_v4(), 1))
            .await
            .is_err(),
        "closed after shutdown"
    );
}
