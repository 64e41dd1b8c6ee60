use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[subscriber("TICKET_UPDATED")]
async fn one(_event: Envelope<TicketUpdated>) -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber("TICKET_UPDATED")]
async fn none() -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber("TICKET_UPDATED")]
async fn three(
    _event: Envelope<TicketUpdated>,
    _ctx: Context,
    _extra: u32,
) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
