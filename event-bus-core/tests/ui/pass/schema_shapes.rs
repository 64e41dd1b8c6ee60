//! The schema part of the derive compiles, without a warning, on every kind of field type:
//! known ones, a nested type with and without a `Schema` impl, one naming `Self`, aliases and
//! serde attributes.
#![deny(warnings)]

use std::collections::{BTreeMap, HashSet};

use event_bus_core::schema::{self, Schema};
use event_bus_core::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize)]
pub struct Described {
    pub city: String,
}

impl Schema for Described {
    fn json_schema() -> serde_json::Value {
        serde_json::json!({"type": "object"})
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Undescribed(pub u8);

pub type Tags = Vec<String>;

/// A recursive event.
#[derive(Debug, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "SCHEMA_SHAPES", version = 2)]
pub struct SchemaShapes {
    /// The tenant.
    pub tenant_id: Uuid,
    pub described: Described,
    pub undescribed: Option<Undescribed>,
    pub tags: Tags,
    pub by_name: BTreeMap<String, Vec<Option<i16>>>,
    pub set: HashSet<u64>,
    pub pair: (bool, char),
    pub boxed: Box<str>,
    pub children: Vec<Box<Self>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[event(validate(range(min = -1.5, max = 10)))]
    pub weight: Option<f32>,
    #[serde(skip)]
    pub cache: u8,
}

fn main() {
    let schema = schema::json_schema::<SchemaShapes>();
    assert_eq!(schema["x-event-bus-version"], 2);
    let _ = <SchemaShapes as Schema>::json_schema();
}
