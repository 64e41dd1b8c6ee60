use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(channels("global", "", "internal notifications", "global", "emailservice::v7\n"))]
pub struct TicketUpdated {
    pub tenant_id: uuid::Uuid,
}

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(channels())]
pub struct TicketClosed {
    pub tenant_id: uuid::Uuid,
}

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(channels = "global")]
pub struct TicketCreated {
    pub tenant_id: uuid::Uuid,
}

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(channels(global, 7), channels("global"))]
pub struct TicketDeleted {
    pub tenant_id: uuid::Uuid,
}

fn main() {}
