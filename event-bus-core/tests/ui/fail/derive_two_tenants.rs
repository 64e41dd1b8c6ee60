use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    #[event(tenant)]
    pub org_id: uuid::Uuid,
    #[event(tenant)]
    pub tenant_id: uuid::Uuid,
}

fn main() {}
