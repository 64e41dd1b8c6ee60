//! Events defined in one crate (`ticket-events`), subscribers in a second (`ticket-handlers`),
//! the program here: all are discovered once the program names the handler crate, as the
//! README's linking rule says.

use std::sync::atomic::Ordering;

use event_bus_core::{
    registered_events, registered_subscribers, Bus, MemoryBus, RunningBus, StartError,
};
use ticket_events::CrossTicketUpdated;
use ticket_handlers::Seen;

// The linking rule: name the handler crate once, or its registrations are not linked.
use ticket_handlers as _;

#[tokio::test]
async fn events_and_subscribers_from_other_crates_are_discovered() {
    assert!(
        registered_events().any(|e| e.event_type == "XC_TICKET_UPDATED"
            && e.rust_type == "ticket_events::CrossTicketUpdated")
    );
    let names: Vec<&str> = registered_subscribers().map(|s| s.name).collect();
    for expected in ticket_handlers::SUBSCRIBERS {
        assert!(
            names.contains(&expected),
            "{expected} not discovered in {names:?}"
        );
    }

    let seen = Seen::default();
    let bus = MemoryBus::builder()
        .only(ticket_handlers::SUBSCRIBERS)
        .expect_subscribers(ticket_handlers::SUBSCRIBERS)
        .state(seen.clone())
        .build()
        .await
        .expect("build");
    let running = bus.start().await.expect("start");
    for _ in 0..5 {
        bus.publish(CrossTicketUpdated {
            tenant_id: uuid::Uuid::new_v4(),
            ticket_id: uuid::Uuid::new_v4(),
            changes: None,
        })
        .await
        .expect("publish");
    }
    running.idle().await;
    running.shutdown().await.expect("shutdown");
    assert_eq!(seen.audit.load(Ordering::SeqCst), 5);
    assert_eq!(seen.notify.load(Ordering::SeqCst), 5);
    assert!(bus.dead_letters().await.expect("list").is_empty());
}

#[tokio::test]
async fn state_the_bus_was_not_given_dead_letters_with_the_reason() {
    let bus = MemoryBus::builder()
        .only(["xc-audit"])
        .build()
        .await
        .expect("build");
    let running = bus.start().await.expect("start");
    bus.publish(CrossTicketUpdated {
        tenant_id: uuid::Uuid::new_v4(),
        ticket_id: uuid::Uuid::new_v4(),
        changes: None,
    })
    .await
    .expect("publish");
    running.idle().await;
    running.shutdown().await.expect("shutdown");
    let letters = bus.dead_letters().await.expect("list");
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].error.contains("no shared state of type"),
        "{}",
        letters[0].error
    );
    assert_eq!(
        letters[0].deliveries, 1,
        "a configuration mistake is not retried"
    );
}

#[tokio::test]
async fn a_missing_expected_subscriber_fails_start_and_names_it() {
    let bus = MemoryBus::builder()
        .expect_subscribers(["xc-audit", "xc-billing"])
        .build()
        .await
        .expect("build");
    match bus.start().await {
        Err(StartError::MissingSubscribers { missing, found }) => {
            assert_eq!(missing, vec!["xc-billing".to_owned()]);
            assert!(found.contains(&"xc-audit".to_owned()));
        }
        other => panic!("expected MissingSubscribers, got {other:?}"),
    }
}
