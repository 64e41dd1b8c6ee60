use std::cell::Cell;

use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError, State};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

// Shared state is shared across threads: a `T` that is not `Sync` is reported on the parameter.
#[subscriber("TICKET_UPDATED")]
async fn on_update(
    _event: Envelope<TicketUpdated>,
    _ctx: Context,
    _counter: State<Cell<u32>>,
) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
