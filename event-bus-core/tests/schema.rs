//! Schemas from the registry: how `#[derive(Event)]`'s description maps to JSON Schema, what
//! the in-memory bus writes validated against it, and schema evolution (the compatibility check
//! and the snapshot helper), each kind of break and its escape hatch.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use event_bus_core::schema::{
    self, check_compatible, IncompatibilityKind, Schema, SchemaSnapshot, SnapshotError,
    SnapshotProblem,
};
use event_bus_core::{
    Bus, Context, Envelope, Event, HandlerError, MemoryBus, RunningBus, Subscriber,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Shapes.

/// A nested type with a schema of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Address {
    pub city: String,
}

impl Schema for Address {
    fn json_schema() -> Value {
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    }
}

/// A nested type without one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opaque(pub u8);

pub type Ids = Vec<Uuid>;

fn even(value: &i64) -> Result<(), &'static str> {
    if value % 2 == 0 {
        Ok(())
    } else {
        Err("must be even")
    }
}

/// Every shape the schema describes.
///
/// Second paragraph.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "SCHEMA_SHAPES", version = 3, none_as_null)]
pub struct Shapes {
    /// The tenant, any non-empty string.
    #[event(tenant(any_string))]
    pub tenant: String,
    pub count: u8,
    #[serde(default)]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[event(validate(length(max = 5)))]
    pub tags: Vec<String>,
    pub labels: BTreeSet<String>,
    pub scores: HashMap<String, f64>,
    pub at: DateTime<Utc>,
    pub day: NaiveDate,
    pub pair: (u8, String),
    pub note: Option<String>,
    pub address: Address,
    pub unknown: Opaque,
    pub ids: Ids,
    #[serde(skip)]
    pub skipped: u8,
    #[serde(rename = "CODE")]
    #[event(validate(custom = even, range(min = -10, max = 100)))]
    pub code: i64,
    #[serde(with = "chrono::serde::ts_seconds")]
    pub seconds: DateTime<Utc>,
    pub nested: Option<Nested>,
}

/// An event nested in another is described by its payload schema.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[event(name = "SCHEMA_NESTED")]
pub struct Nested {
    pub tenant_id: Uuid,
    #[event(validate(non_empty, uuid))]
    pub ref_id: String,
}

/// Flattened fields.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "SCHEMA_FLATTENED")]
pub struct Flattened {
    pub tenant_id: Uuid,
    #[serde(flatten)]
    pub address: Address,
}

#[test]
fn the_payload_is_described_field_by_field() {
    let schema = schema::json_schema::<Shapes>();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["title"], "SCHEMA_SHAPES");
    assert_eq!(schema["x-event-bus-version"], 3);
    assert_eq!(
        schema["description"],
        "Every shape the schema describes.\n\nSecond paragraph."
    );
    let payload = &schema["properties"]["payload"];
    let p = &payload["properties"];
    assert_eq!(
        payload["required"],
        json!([
            "tenant", "count", "labels", "scores", "at", "day", "pair", "address", "unknown",
            "ids", "CODE", "seconds"
        ])
    );
    assert_eq!(
        p["tenant"],
        json!({"type": "string", "minLength": 1, "description": "The tenant, any non-empty string."})
    );
    assert_eq!(
        p["count"],
        json!({"type": "integer", "minimum": 0, "maximum": 255})
    );
    assert_eq!(
        p["tags"],
        json!({"type": "array", "items": {"type": "string"}, "maxItems": 5})
    );
    assert_eq!(
        p["labels"],
        json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true})
    );
    assert_eq!(
        p["scores"],
        json!({"type": "object", "additionalProperties": {"type": "number"}})
    );
    assert_eq!(p["at"], json!({"type": "string", "format": "date-time"}));
    assert_eq!(p["day"], json!({"type": "string", "format": "date"}));
    assert_eq!(
        p["pair"],
        json!({"type": "array", "minItems": 2, "maxItems": 2})
    );
    // `none_as_null`: `None` is written as null.
    assert_eq!(p["note"], json!({"type": ["string", "null"]}));
    assert_eq!(p["address"]["required"], json!(["city"]));
    assert_eq!(
        p["unknown"],
        json!({"x-event-bus-note": "`Opaque` does not implement event_bus_core::schema::Schema: any JSON"})
    );
    assert_eq!(
        p["ids"],
        json!({"type": "array", "items": {"type": "string", "format": "uuid"}})
    );
    assert!(p.get("skipped").is_none());
    assert_eq!(
        p["CODE"],
        json!({"type": "integer", "minimum": -10, "maximum": 100, "x-event-bus-rules": ["custom = even"]})
    );
    assert!(p["seconds"]["x-event-bus-note"]
        .as_str()
        .unwrap()
        .contains("#[serde(with)]"));
    // An event nested in another: its payload schema, nullable here.
    let nested = &p["nested"];
    assert_eq!(nested["type"], json!(["object", "null"]));
    assert_eq!(nested["additionalProperties"], false);
    assert_eq!(
        nested["properties"]["refId"],
        json!({"type": "string", "minLength": 1, "format": "uuid"})
    );

    let flattened = schema::json_schema::<Flattened>();
    let payload = &flattened["properties"]["payload"];
    assert_eq!(payload["allOf"][0]["required"], json!(["city"]));
    assert!(payload["properties"].get("address").is_none());
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap()
}

#[test]
fn the_schemas_are_valid_json_schemas_that_accept_what_serde_writes() {
    let shapes = Shapes {
        tenant: "acme".to_owned(),
        count: 3,
        retries: 0,
        tags: vec!["a".to_owned()],
        labels: BTreeSet::from(["x".to_owned()]),
        scores: HashMap::from([("q".to_owned(), 0.5)]),
        at: Utc::now(),
        day: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
        pair: (1, "one".to_owned()),
        note: None,
        address: Address {
            city: "Lyon".to_owned(),
        },
        unknown: Opaque(1),
        ids: vec![Uuid::new_v4()],
        skipped: 0,
        code: 2,
        seconds: Utc::now(),
        nested: Some(Nested {
            tenant_id: Uuid::new_v4(),
            ref_id: Uuid::new_v4().to_string(),
        }),
    };
    let encoded = event_bus_core::transport::encode(shapes.clone()).unwrap();
    let value: Value = serde_json::from_str(&encoded.json).unwrap();
    let validator = validator(&schema::json_schema::<Shapes>());
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{value:#}");

    // What the rules refuse, the schema refuses.
    let mut bad = shapes;
    bad.tenant = String::new();
    bad.tags = vec!["t".to_owned(); 6];
    bad.code = -12;
    let value = serde_json::to_value(Envelope::new(bad)).unwrap();
    let mut paths: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.instance_path().to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/payload/CODE", "/payload/tags", "/payload/tenant"]);
}

// ---------------------------------------------------------------------------------------------
// The in-memory bus: what it writes matches the registry's schema.

/// A ticket was updated.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "SCHEMA_TICKET_UPDATED")]
pub struct TicketUpdated {
    pub tenant_id: Uuid,
    pub ticket_id: Uuid,
    #[event(validate(non_empty, length(max = 64)))]
    pub title: String,
    pub changes: Option<serde_json::Map<String, Value>>,
}

async fn refuse(_: Envelope<TicketUpdated>, _: Context) -> Result<(), HandlerError> {
    // Dead-letters every event, so the test can read the entries exactly as written.
    Err(HandlerError::permanent("kept for the schema test"))
}

#[tokio::test]
async fn what_the_memory_bus_writes_matches_the_registry_schema() {
    let bus = MemoryBus::builder()
        .discover(false)
        .register_event::<TicketUpdated>()
        .subscribe(Subscriber::new("schema-keeper", refuse))
        .build()
        .await
        .unwrap();
    let running = bus.start().await.unwrap();
    let tenant_id = Uuid::new_v4();
    for (i, changes) in [None, Some(json!({"status": "open"}))]
        .into_iter()
        .enumerate()
    {
        bus.publish(TicketUpdated {
            tenant_id,
            ticket_id: Uuid::new_v4(),
            title: format!("ticket {i}"),
            changes: changes.and_then(|c| c.as_object().cloned()),
        })
        .await
        .unwrap();
    }
    running.idle().await;
    let letters = bus.dead_letters().await.unwrap();
    running.shutdown().await.unwrap();
    assert_eq!(letters.len(), 2);

    // From the registry, by name: no bus involved.
    let schema = schema::json_schema_for("SCHEMA_TICKET_UPDATED").unwrap();
    assert!(schema::json_schemas().contains_key("SCHEMA_TICKET_UPDATED"));
    let validator = validator(&schema);
    for letter in &letters {
        let value: Value = serde_json::from_slice(&letter.payload).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}: {value}");
        // An absent change is absent on the wire, and the schema does not require it.
        if value["payload"].get("changes").is_none() {
            assert!(!schema["properties"]["payload"]["required"]
                .as_array()
                .unwrap()
                .contains(&json!("changes")));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evolution: one module per version of the same event type.

mod v1 {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    #[serde(rename_all = "camelCase")]
    #[event(name = "EVOLVING")]
    pub struct Evolving {
        pub tenant_id: Uuid,
        pub user_id: Uuid,
        #[event(validate(length(min = 1, max = 64)))]
        pub title: String,
        pub note: Option<String>,
        #[event(validate(range(min = 0, max = 100)))]
        pub score: f64,
        pub external_id: String,
    }
}

/// Additive and widening: a new optional field, wider bounds, an integer read as a number.
mod v1_wider {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    #[serde(rename_all = "camelCase")]
    #[event(name = "EVOLVING")]
    pub struct Evolving {
        pub tenant_id: Uuid,
        pub user_id: Uuid,
        #[event(validate(length(max = 200)))]
        pub title: String,
        pub note: Option<String>,
        #[event(validate(range(min = -1)))]
        pub score: f64,
        pub external_id: String,
        /// New, optional.
        pub priority: Option<u8>,
    }
}

/// Every kind of break at once.
mod v2 {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[event(name = "EVOLVING")]
    pub struct Evolving {
        pub tenant_id: Uuid,
        // user_id removed
        #[event(validate(length(min = 2, max = 10), custom = super::no_spaces))]
        pub title: String,
        pub note: String,
        #[event(validate(range(min = 0, max = 50)))]
        pub score: i64,
        #[event(validate(uuid))]
        pub external_id: String,
        pub priority: u8,
    }
}

/// The same break as `v2`, acknowledged: `version = 2`.
mod v2_acknowledged {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    #[serde(rename_all = "camelCase")]
    #[event(name = "EVOLVING", version = 2)]
    pub struct Evolving {
        pub tenant_id: Uuid,
        #[event(validate(length(min = 1, max = 64)))]
        pub title: String,
    }
}

// A custom rule takes `&FieldType`.
#[allow(clippy::ptr_arg)]
pub fn no_spaces(value: &String) -> Result<(), String> {
    if value.contains(' ') {
        Err("no spaces".to_owned())
    } else {
        Ok(())
    }
}

fn kinds_at(old: &Value, new: &Value) -> Vec<(String, IncompatibilityKind)> {
    check_compatible(old, new)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.path, i.kind))
        .collect()
}

#[test]
fn additive_and_widening_changes_are_compatible() {
    let old = schema::json_schema::<v1::Evolving>();
    let new = schema::json_schema::<v1_wider::Evolving>();
    assert_eq!(check_compatible(&old, &new), Ok(()));
    assert_eq!(check_compatible(&old, &old), Ok(()));
}

#[test]
fn every_kind_of_break_is_reported() {
    use IncompatibilityKind::*;
    let old = schema::json_schema::<v1::Evolving>();
    let new = schema::json_schema::<v2::Evolving>();
    let breaks = check_compatible(&old, &new).unwrap_err();
    let messages: Vec<String> = breaks.iter().map(ToString::to_string).collect();
    let found = kinds_at(&old, &new);
    let expect = [
        ("payload.userId", FieldRemoved),
        ("payload.title", RangeNarrowed),      // minLength 1 -> 2
        ("payload.title", RuleAdded),          // custom = no_spaces
        ("payload.score", TypeNarrowed),       // number -> integer
        ("payload.score", RangeNarrowed),      // maximum 100 -> 50
        ("payload.externalId", FormatChanged), // uuid added
        ("payload.note", FieldRequired),       // Option<String> -> String
        ("payload.priority", FieldRequired),   // a new required field
        ("payload", UnknownFieldsRefused),     // deny_unknown_fields
    ];
    for (path, kind) in expect {
        assert!(
            found.iter().any(|(p, k)| p == path && *k == kind),
            "{path} {kind:?} missing from {messages:#?}"
        );
    }
    assert!(messages.contains(&"payload.title: minLength raised from 1 to 2".to_owned()));
    assert!(messages.contains(&"payload.title: maxLength lowered from 64 to 10".to_owned()));
    assert!(messages.contains(&"payload.userId: field removed".to_owned()));
    assert!(messages.contains(&"payload.score: type changed from number to integer".to_owned()));
}

#[test]
fn narrowed_values_and_nullability_are_reported() {
    use IncompatibilityKind::*;
    let old = json!({"type": "object", "properties": {
        "status": {"type": "string", "enum": ["open", "closed", "waiting"]},
        "note": {"type": ["string", "null"]},
        "meta": {"type": "object", "additionalProperties": {"type": "number"}},
    }});
    let narrowed = json!({"type": "object", "properties": {
        "status": {"type": "string", "enum": ["open", "closed"]},
        "note": {"type": "string"},
        "meta": {"type": "object", "additionalProperties": {"type": "integer"}},
    }});
    assert_eq!(
        kinds_at(&old, &narrowed),
        [
            ("status".to_owned(), ValuesNarrowed),
            ("note".to_owned(), TypeNarrowed),
            ("meta.*".to_owned(), TypeNarrowed),
        ]
    );
    let widened = json!({"type": "object", "properties": {
        "status": {"type": "string", "enum": ["open", "closed", "waiting", "new"]},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "meta": {"type": "object"},
    }});
    assert_eq!(check_compatible(&old, &widened), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("event-bus-schema-{name}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn schemas(schema: Value) -> BTreeMap<String, Value> {
    BTreeMap::from([("EVOLVING".to_owned(), schema)])
}

fn problems(result: Result<schema::SnapshotReport, SnapshotError>) -> Vec<SnapshotProblem> {
    match result {
        Err(SnapshotError::Mismatch(problems)) => problems,
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn a_snapshot_is_written_on_request_then_holds() {
    let dir = temp_dir("new");
    let v1 = schemas(schema::json_schema::<v1::Evolving>());
    let snapshot = SchemaSnapshot::new(&dir).update(false);

    // A new event type needs its file.
    let found = problems(snapshot.check_schemas(v1.clone()));
    assert!(
        matches!(&found[..], [SnapshotProblem::New { event_type }] if event_type == "EVOLVING")
    );
    let report = snapshot
        .clone()
        .update(true)
        .check_schemas(v1.clone())
        .unwrap();
    assert_eq!(report.written, ["EVOLVING"]);
    assert!(dir.join("EVOLVING.json").is_file());
    let report = snapshot.check_schemas(v1.clone()).unwrap();
    assert_eq!(report.unchanged, ["EVOLVING"]);

    // A compatible change: out of date until updated.
    let wider = schemas(schema::json_schema::<v1_wider::Evolving>());
    let found = problems(snapshot.check_schemas(wider.clone()));
    assert!(matches!(&found[..], [SnapshotProblem::OutOfDate { .. }]));
    let message = SnapshotError::Mismatch(found).to_string();
    assert!(message.contains("EVENT_BUS_UPDATE_SCHEMAS=1"), "{message}");
    snapshot
        .clone()
        .update(true)
        .check_schemas(wider.clone())
        .unwrap();
    snapshot.check_schemas(wider).unwrap();

    // A retired event type: its file must be deleted by hand.
    let found = problems(snapshot.clone().update(true).check_schemas(BTreeMap::new()));
    assert!(
        matches!(&found[..], [SnapshotProblem::Removed { event_type, .. }] if event_type == "EVOLVING")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_breaking_change_fails_even_when_updating() {
    let dir = temp_dir("breaking");
    let snapshot = SchemaSnapshot::new(&dir).update(true);
    snapshot
        .check_schemas(schemas(schema::json_schema::<v1::Evolving>()))
        .unwrap();
    let before = std::fs::read_to_string(dir.join("EVOLVING.json")).unwrap();

    let v2 = schemas(schema::json_schema::<v2::Evolving>());
    let error = snapshot.check_schemas(v2).unwrap_err();
    let message = error.to_string();
    let SnapshotError::Mismatch(found) = error else {
        panic!("{message}")
    };
    assert!(matches!(
        &found[..],
        [SnapshotProblem::Breaking { version: 1, incompatibilities, .. }] if incompatibilities.len() >= 9
    ));
    assert!(message.contains("BREAKING"), "{message}");
    assert!(
        message.contains("payload.userId: field removed"),
        "{message}"
    );
    assert!(message.contains("EVOLVING_V2"), "{message}");
    assert!(message.contains("#[event(version = 2)]"), "{message}");
    // The snapshot is untouched.
    assert_eq!(
        std::fs::read_to_string(dir.join("EVOLVING.json")).unwrap(),
        before
    );

    // The escape hatches. A new event type beside the old one is additive:
    let mut both = schemas(schema::json_schema::<v1::Evolving>());
    both.insert(
        "EVOLVING_V2".to_owned(),
        schema::json_schema::<v2::Evolving>(),
    );
    let report = snapshot.check_schemas(both).unwrap();
    assert_eq!(report.written, ["EVOLVING_V2"]);
    assert_eq!(report.unchanged, ["EVOLVING"]);
    std::fs::remove_file(dir.join("EVOLVING_V2.json")).unwrap();

    // Or the break is acknowledged with a new version: written on update, then it holds.
    let acknowledged = schemas(schema::json_schema::<v2_acknowledged::Evolving>());
    assert!(check_compatible(
        &schema::json_schema::<v1::Evolving>(),
        &acknowledged["EVOLVING"]
    )
    .is_err());
    let found = problems(
        snapshot
            .clone()
            .update(false)
            .check_schemas(acknowledged.clone()),
    );
    assert!(matches!(&found[..], [SnapshotProblem::OutOfDate { .. }]));
    let report = snapshot.check_schemas(acknowledged.clone()).unwrap();
    assert_eq!(report.written, ["EVOLVING"]);
    let report = snapshot.update(false).check_schemas(acknowledged).unwrap();
    assert_eq!(report.unchanged, ["EVOLVING"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
