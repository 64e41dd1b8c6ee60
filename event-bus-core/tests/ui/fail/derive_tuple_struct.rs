use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated(uuid::Uuid, String);

fn main() {}
