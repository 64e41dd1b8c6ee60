use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub enum TicketEvent {
    Updated { tenant_id: uuid::Uuid },
}

fn main() {}
