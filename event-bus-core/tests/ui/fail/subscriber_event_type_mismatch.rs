use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[subscriber("TICKET_UPDATE")]
async fn on_update(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
