use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
    #[event(validate(length(min = 10, max = 2), non_empty = true))]
    pub title: String,
    #[event(validate(range(min = "1"), length))]
    pub priority: u8,
    #[event(validate(custom = 42, uuid(strict)))]
    pub external_id: String,
    #[event(validate = "non_empty")]
    pub body: String,
}

fn main() {}
