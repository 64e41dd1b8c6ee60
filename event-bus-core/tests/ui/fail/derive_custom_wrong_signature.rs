use event_bus_core::Event;

fn check_title(title: &str) -> bool {
    !title.is_empty()
}

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
    #[event(validate(custom = check_title))]
    pub title: String,
}

fn main() {}
