use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[subscriber]
async fn bare(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber(name = "ticket-email")]
async fn options_only(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber(TICKET_UPDATED)]
async fn not_a_string(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber("ticket_updated")]
async fn lowercase(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
