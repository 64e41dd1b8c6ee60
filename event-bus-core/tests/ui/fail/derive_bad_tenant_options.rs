use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(none_as_null = true)]
pub struct TicketUpdated {
    #[event(tenant(uuid))]
    pub tenant_id: String,
}

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct TicketClosed {
    #[event(tenant())]
    pub tenant_id: String,
    #[event(any_string, none_as_null, channels("global"))]
    pub reason: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(none_as_null, none_as_null)]
pub struct TicketCreated {
    #[event(tenant = "any_string")]
    pub tenant_id: String,
}

fn main() {}
