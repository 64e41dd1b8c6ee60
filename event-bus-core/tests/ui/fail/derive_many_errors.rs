use event_bus_core::Event;

// Every mistake is reported in one compile.
#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(name = "ticket-updated", revision = 2)]
pub struct TicketUpdated {
    #[event(validate(lenght(max = 3)))]
    pub title: String,
    #[event(validate(range(min = 5, max = 1)))]
    pub priority: u8,
}

fn main() {}
