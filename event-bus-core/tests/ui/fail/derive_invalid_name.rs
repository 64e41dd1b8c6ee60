use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(name = "ticketUpdated")]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

fn main() {}
