use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError, State};

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

pub struct Mailer;

// With `State<T>` parameters too, a return type that is not `Result<(), impl Into<HandlerError>>`
// and a future that is not `Send` are reported on the function's name.
#[subscriber("TICKET_UPDATED")]
async fn on_update(
    _event: Envelope<TicketUpdated>,
    _ctx: Context,
    _mailer: State<Mailer>,
) -> Result<(), u32> {
    Ok(())
}

#[subscriber("TICKET_UPDATED")]
async fn no_result(_event: Envelope<TicketUpdated>, _ctx: Context, _mailer: State<Mailer>) {}

#[subscriber("TICKET_UPDATED")]
async fn not_send(
    _event: Envelope<TicketUpdated>,
    _ctx: Context,
    _mailer: State<Mailer>,
) -> Result<(), HandlerError> {
    let local = std::rc::Rc::new(1);
    std::future::ready(()).await;
    drop(local);
    Ok(())
}

fn main() {}
