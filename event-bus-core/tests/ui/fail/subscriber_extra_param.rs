use std::sync::Arc;

use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError, State};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

pub struct Mailer;

// Each parameter after the context that is not `State<T>` is reported, on that parameter.
#[subscriber("TICKET_UPDATED")]
async fn on_update(
    _event: Envelope<TicketUpdated>,
    _ctx: Context,
    _mailer: State<Mailer>,
    _arc: Arc<Mailer>,
    _borrowed: &State<Mailer>,
    _bare: Mailer,
) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
