use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(nmae = "TICKET_UPDATED")]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
    #[event(validate(non_empty), required)]
    pub title: String,
    #[event(validate(max_length = 3))]
    pub body: String,
}

fn main() {}
