use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(tenant)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
    #[event(name = "TITLE")]
    pub title: String,
}

fn main() {}
