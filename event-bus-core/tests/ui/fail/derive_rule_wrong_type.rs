use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
    #[event(validate(length(max = 3)))]
    pub count: i32,
    #[event(validate(range(min = 1)))]
    pub title: String,
    #[event(validate(uuid))]
    pub external_id: u64,
    #[event(validate(non_empty))]
    pub flag: bool,
}

fn main() {}
