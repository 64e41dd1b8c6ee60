use event_bus_core::subscriber;

#[subscriber("TICKET_UPDATED")]
pub struct NotAFunction;

fn main() {
    let _ = NotAFunction;
}
