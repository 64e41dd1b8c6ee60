//! A subscriber without `name = "..."` is named after its function alone, so moving it to another
//! module keeps its consumer group; two functions of one name in different modules are refused
//! at start, with both locations and the fix.
#![allow(clippy::unwrap_used)]

use event_bus_core::{registered_subscribers, Bus, Event, MemoryBus, StartError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
pub struct TicketUpdated {
    pub tenant_id: Uuid,
}

mod email {
    use event_bus_core::{subscriber, Context, Envelope, HandlerError};

    #[subscriber("TICKET_UPDATED")]
    pub async fn on_ticket(
        _event: Envelope<crate::TicketUpdated>,
        _ctx: Context,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

mod audit {
    pub mod handlers {
        use event_bus_core::{subscriber, Context, Envelope, HandlerError};

        #[subscriber("TICKET_UPDATED")]
        pub async fn on_ticket(
            _event: Envelope<crate::TicketUpdated>,
            _ctx: Context,
        ) -> Result<(), HandlerError> {
            Ok(())
        }
    }
}

#[test]
fn both_are_named_after_the_function() {
    let mut found: Vec<(&str, &str)> = registered_subscribers()
        .map(|s| (s.name, s.handler))
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [
            ("on_ticket", "default_names::audit::handlers::on_ticket"),
            ("on_ticket", "default_names::email::on_ticket"),
        ]
    );
}

#[tokio::test]
async fn the_clash_is_refused_at_start_with_both_locations() {
    let bus = MemoryBus::builder().build().await.unwrap();
    let error = bus.start().await.unwrap_err();
    let StartError::DuplicateSubscriber {
        name,
        first,
        second,
    } = &error
    else {
        panic!("expected DuplicateSubscriber, got {error:?}");
    };
    assert_eq!(name, "on_ticket");
    let locations = [first.as_str(), second.as_str()];
    for handler in [
        "(default_names::audit::handlers::on_ticket)",
        "(default_names::email::on_ticket)",
    ] {
        assert!(
            locations.iter().any(|l| l.ends_with(handler)),
            "{handler} in {locations:?}"
        );
    }
    assert!(locations.iter().all(|l| l.contains("default_names.rs:")));
    let message = error.to_string();
    assert!(message.contains(r#"name = "...""#), "{message}");
}
