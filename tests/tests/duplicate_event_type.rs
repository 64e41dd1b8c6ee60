//! Two event types with one wire name in one binary: every bus refuses to start, naming both.
//! (A test binary of its own, since the clash affects every bus in the binary.)

use event_bus_core::{Bus, Event, MemoryBus, StartError};

mod billing {
    #[derive(Debug, serde::Serialize, serde::Deserialize, event_bus_core::Event)]
    #[serde(rename_all = "camelCase")]
    #[event(name = "INVOICE_SENT")]
    pub struct InvoiceSent {
        pub tenant_id: uuid::Uuid,
    }
}

mod crm {
    #[derive(Debug, serde::Serialize, serde::Deserialize, event_bus_core::Event)]
    #[serde(rename_all = "camelCase")]
    #[event(name = "INVOICE_SENT")]
    pub struct InvoiceMailed {
        pub tenant_id: uuid::Uuid,
    }
}

#[tokio::test]
async fn two_event_types_with_one_name_are_refused() {
    assert_eq!(
        billing::InvoiceSent::EVENT_TYPE,
        crm::InvoiceMailed::EVENT_TYPE
    );
    let bus = MemoryBus::builder().build().await.expect("build");
    match bus.start().await {
        Err(StartError::DuplicateEventType {
            name,
            first,
            second,
        }) => {
            assert_eq!(name, "INVOICE_SENT");
            let both = format!("{first} {second}");
            assert!(
                both.contains("billing::InvoiceSent") && both.contains("crm::InvoiceMailed"),
                "{both}"
            );
        }
        other => panic!("expected DuplicateEventType, got {other:?}"),
    }
}
