use event_bus_core::{subscriber, Event, HandlerError};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

// Every mistake is reported in one compile.
#[subscriber("ticket", concurrency = -1, colour = "blue")]
fn on_update<T>(event: TicketUpdated) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}
