use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(name = "TICKET_UPDATED", name = "TICKET_CHANGED")]
pub struct TicketUpdated {
    #[event(tenant, tenant)]
    pub tenant_id: uuid::Uuid,
    #[event(validate(length(min = 1), length(max = 64)))]
    pub title: String,
    #[event(validate(range(min = 1, min = 2)))]
    pub priority: u8,
}

fn main() {}
