use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[subscriber(
    "TICKET_UPDATED",
    concurrency = 0,
    max_attempts = "5",
    start = "beginning",
    ordering = "fifo",
    retries = 3
)]
async fn on_update(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

#[subscriber(
    "TICKET_UPDATED",
    name = "a",
    name = "b",
    concurrency = 2,
    concurrency = 3
)]
async fn duplicates(_event: Envelope<TicketUpdated>, _ctx: Context) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
