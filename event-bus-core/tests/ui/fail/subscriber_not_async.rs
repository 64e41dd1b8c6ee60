use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[subscriber("TICKET_UPDATED")]
fn on_update(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {
    // The function itself still exists (no extra "cannot find function" error).
    let _ = on_update;
}
