use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[subscriber("TICKET_UPDATED", name = "no-unit", dedupe = "24")]
async fn no_unit(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber("TICKET_UPDATED", name = "bad-unit", dedupe = "1 week")]
async fn bad_unit(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber("TICKET_UPDATED", name = "zero", dedupe = "0s")]
async fn zero(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber("TICKET_UPDATED", name = "not-a-string", dedupe = 86400)]
async fn not_a_string(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
