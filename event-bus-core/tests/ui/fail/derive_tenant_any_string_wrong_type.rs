use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    #[event(tenant(any_string))]
    pub tenant_id: u64,
}

fn main() {}
