use event_bus_core::{subscriber, Context, Event, HandlerError};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[subscriber("TICKET_UPDATED")]
async fn on_update(event: TicketUpdated, _ctx: Context) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}
