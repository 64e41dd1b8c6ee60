use event_bus_core::Event;

#[derive(Event)]
pub union TicketUpdated {
    tenant: u128,
    raw: [u8; 16],
}

fn main() {}
