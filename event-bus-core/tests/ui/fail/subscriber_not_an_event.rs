use event_bus_core::{subscriber, Context, Envelope, HandlerError};

#[derive(serde::Serialize, serde::Deserialize)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[subscriber("TICKET_UPDATED")]
async fn on_update(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
