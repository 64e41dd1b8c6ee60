use event_bus_core::Event;

#[derive(serde::Serialize, serde::Deserialize, Event)]
pub struct Wrapped<T> {
    pub tenant_id: uuid::Uuid,
    pub inner: T,
}

fn main() {}
