use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant: uuid::Uuid,
    pub ticket_id: uuid::Uuid,
}

fn main() {}
