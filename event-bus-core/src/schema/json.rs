//! JSON Schemas built from the static description of a payload ([`super::model`]): the
//! payload's fields with their types and rules, wrapped in the envelope the wire carries.
//!
//! The schemas use only keywords that mean the same in JSON Schema draft 2020-12 (what the
//! standalone schemas declare, and where `format: uuid` is defined) and in draft-07 (what the
//! AsyncAPI 3.0 schema format extends), so one schema serves both.

use std::cell::Cell;

use serde_json::{json, Map, Number, Value};

use super::model::{PayloadSchema, Presence, RuleSchema, TenantRule, TypeSchema};

/// The `$schema` of a standalone schema.
pub(crate) const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The extension keyword listing rules JSON Schema cannot express (`custom = path`).
pub(crate) const RULES_KEYWORD: &str = "x-event-bus-rules";
/// The extension keyword carrying `#[event(version = N)]`.
pub(crate) const VERSION_KEYWORD: &str = "x-event-bus-version";
/// The extension keyword explaining why a part of a schema accepts any JSON.
pub(crate) const NOTE_KEYWORD: &str = "x-event-bus-note";

/// The nil UUID, which a tenant may not be.
const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// How deep nested [`Schema`](super::Schema) impls may call each other before the rest is
/// described as any JSON (a type that contains itself).
const MAX_DEPTH: u32 = 32;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Calls a nested type's schema function, with a depth limit for recursive types.
pub(crate) fn nested(schema: fn() -> Value) -> Value {
    let depth = DEPTH.with(Cell::get);
    if depth >= MAX_DEPTH {
        return json!({ NOTE_KEYWORD: "nested too deep (a recursive type?): any JSON" });
    }
    DEPTH.with(|d| d.set(depth + 1));
    let value = schema();
    DEPTH.with(|d| d.set(depth));
    value
}

/// The envelope schema of an event type: `{id, eventType, timestamp, payload}` with the
/// payload's own schema. `standalone` adds `$schema`.
pub(crate) fn envelope(event_type: &str, payload: &PayloadSchema, standalone: bool) -> Value {
    let mut out = Map::new();
    if standalone {
        out.insert("$schema".into(), DIALECT.into());
    }
    out.insert("title".into(), event_type.into());
    if !payload.doc.is_empty() {
        out.insert("description".into(), payload.doc.into());
    }
    out.insert("type".into(), "object".into());
    out.insert(
        "required".into(),
        json!(["id", "eventType", "timestamp", "payload"]),
    );
    out.insert(
        "properties".into(),
        json!({
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "The event's id (a UUID v4), stable across retries and replays."
            },
            "eventType": { "type": "string", "const": event_type },
            "timestamp": {
                "type": "string",
                "format": "date-time",
                "description": "When the event was created, written like JavaScript's toISOString()."
            },
            "payload": payload_schema(payload),
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "The W3C trace context of the publisher, when it had one (an invalid one is ignored by readers)."
            },
            "tracestate": {
                "type": "string",
                "description": "The W3C tracestate beside traceparent, when there is one."
            },
        }),
    );
    out.insert(VERSION_KEYWORD.into(), payload.version.into());
    Value::Object(out)
}

/// The schema of a payload: an object with its fields.
pub(crate) fn payload_schema(payload: &PayloadSchema) -> Value {
    if !payload.described {
        return json!({
            "type": "object",
            NOTE_KEYWORD: "the event type does not derive Event: its fields are not described",
        });
    }
    let none_as_null = payload.none_as_null;
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut all_of = Vec::new();
    for field in &payload.fields {
        let (inner, is_option) = match &field.ty {
            TypeSchema::Option(inner) => (&**inner, true),
            other => (other, false),
        };
        let mut schema = match field.presence {
            Presence::Custom => json!({
                NOTE_KEYWORD: "written by a #[serde(with)] function: any JSON",
            }),
            _ => type_schema(inner),
        };
        if let Value::Object(map) = &mut schema {
            if let Some(tenant) = field.tenant {
                apply_tenant(map, tenant);
            }
            for rule in &field.rules {
                apply_rule(map, rule);
            }
            if !field.doc.is_empty() {
                map.insert("description".into(), field.doc.into());
            }
        }
        if field.presence == Presence::Flatten {
            all_of.push(schema);
            continue;
        }
        if is_option && none_as_null {
            schema = nullable(schema);
        }
        let optional =
            is_option || payload.container_default || matches!(field.presence, Presence::Optional);
        if !optional {
            required.push(Value::from(field.name));
        }
        properties.insert(field.name.into(), schema);
    }
    let mut out = Map::new();
    out.insert("type".into(), "object".into());
    if !payload.doc.is_empty() {
        out.insert("description".into(), payload.doc.into());
    }
    out.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        out.insert("required".into(), Value::Array(required));
    }
    if !all_of.is_empty() {
        out.insert("allOf".into(), Value::Array(all_of));
    }
    if payload.deny_unknown_fields {
        out.insert("additionalProperties".into(), false.into());
    }
    Value::Object(out)
}

/// The schema of one type.
pub(crate) fn type_schema(ty: &TypeSchema) -> Value {
    match ty {
        TypeSchema::Bool => json!({ "type": "boolean" }),
        TypeSchema::Integer(name) => integer(name),
        TypeSchema::Number => json!({ "type": "number" }),
        TypeSchema::String => json!({ "type": "string" }),
        TypeSchema::Char => json!({ "type": "string", "minLength": 1, "maxLength": 1 }),
        TypeSchema::Uuid => json!({ "type": "string", "format": "uuid" }),
        TypeSchema::DateTime => json!({ "type": "string", "format": "date-time" }),
        TypeSchema::Date => json!({ "type": "string", "format": "date" }),
        TypeSchema::NaiveDateTime => json!({
            "type": "string",
            "pattern": "^[+-]?\\d{4,}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?$",
        }),
        TypeSchema::NaiveTime => json!({
            "type": "string",
            "pattern": "^\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?$",
        }),
        TypeSchema::Option(inner) => nullable(type_schema(inner)),
        TypeSchema::Array(item) => array(item, false),
        TypeSchema::Set(item) => array(item, true),
        TypeSchema::Map(value) => {
            let value = type_schema(value);
            if is_any(&value) {
                json!({ "type": "object" })
            } else {
                json!({ "type": "object", "additionalProperties": value })
            }
        }
        TypeSchema::Tuple(items) => json!({
            "type": "array",
            "minItems": items.len(),
            "maxItems": items.len(),
        }),
        TypeSchema::Named { rust, schema } => schema().unwrap_or_else(|| {
            json!({
                NOTE_KEYWORD: format!(
                    "`{rust}` does not implement event_bus_core::schema::Schema: any JSON"
                ),
            })
        }),
    }
}

fn array(item: &TypeSchema, unique: bool) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), "array".into());
    let item = type_schema(item);
    if !is_any(&item) {
        out.insert("items".into(), item);
    }
    if unique {
        out.insert("uniqueItems".into(), true.into());
    }
    Value::Object(out)
}

/// An integer type's range, where JSON numbers hold it exactly.
fn integer(name: &str) -> Value {
    let (min, max): (Option<i64>, Option<u64>) = match name {
        "i8" => (Some(i8::MIN.into()), Some(i8::MAX as u64)),
        "i16" => (Some(i16::MIN.into()), Some(i16::MAX as u64)),
        "i32" => (Some(i32::MIN.into()), Some(i32::MAX as u64)),
        "u8" => (Some(0), Some(u8::MAX.into())),
        "u16" => (Some(0), Some(u16::MAX.into())),
        "u32" => (Some(0), Some(u32::MAX.into())),
        "u64" | "u128" | "usize" => (Some(0), None),
        _ => (None, None),
    };
    let mut out = Map::new();
    out.insert("type".into(), "integer".into());
    if let Some(min) = min {
        out.insert("minimum".into(), min.into());
    }
    if let Some(max) = max {
        out.insert("maximum".into(), max.into());
    }
    Value::Object(out)
}

/// Whether a schema accepts any JSON (only annotations in it).
pub(crate) fn is_any(schema: &Value) -> bool {
    match schema {
        Value::Bool(true) => true,
        Value::Object(map) => map
            .keys()
            .all(|k| k == "description" || k == "title" || k.starts_with("x-")),
        _ => false,
    }
}

/// `schema`, or `null`.
pub(crate) fn nullable(schema: Value) -> Value {
    if is_any(&schema) {
        return schema;
    }
    let Value::Object(mut map) = schema else {
        return schema;
    };
    let simple = !map.contains_key("enum") && !map.contains_key("const");
    match map.get("type") {
        Some(Value::String(t)) if simple => {
            let t = t.clone();
            map.insert("type".into(), json!([t, "null"]));
            Value::Object(map)
        }
        _ => json!({ "anyOf": [Value::Object(map), { "type": "null" }] }),
    }
}

/// The JSON type a schema describes (`string`, `array`, ...), the non-null one of a nullable
/// type; `None` when it says none.
fn kind(map: &Map<String, Value>) -> Option<&str> {
    match map.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

fn apply_tenant(map: &mut Map<String, Value>, rule: TenantRule) {
    match rule {
        TenantRule::Uuid => {
            if kind(map) == Some("string") || kind(map).is_none() {
                map.insert("type".into(), "string".into());
                map.insert("format".into(), "uuid".into());
            }
            map.insert("not".into(), json!({ "const": NIL_UUID }));
        }
        TenantRule::AnyString => raise_min(map, "minLength", 1),
    }
}

/// The keywords a length bound takes for the schema's type: all three when it has none (each
/// applies only to values of its own type).
fn length_keywords(map: &Map<String, Value>) -> &'static [(&'static str, &'static str)] {
    match kind(map) {
        Some("string") => &[("minLength", "maxLength")],
        Some("array") => &[("minItems", "maxItems")],
        Some("object") => &[("minProperties", "maxProperties")],
        _ => &[
            ("minLength", "maxLength"),
            ("minItems", "maxItems"),
            ("minProperties", "maxProperties"),
        ],
    }
}

fn apply_rule(map: &mut Map<String, Value>, rule: &RuleSchema) {
    match *rule {
        RuleSchema::NonEmpty => {
            for (min, _) in length_keywords(map) {
                raise_min(map, min, 1);
            }
        }
        RuleSchema::Length { min, max } => {
            for (lo, hi) in length_keywords(map) {
                if let Some(min) = min {
                    raise_min(map, lo, min);
                }
                if let Some(max) = max {
                    lower_max(map, hi, max);
                }
            }
        }
        RuleSchema::Range { min, max } => {
            if let Some(min) = min.and_then(number) {
                let tighter = map
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .is_none_or(|old| as_f64(&min) >= old);
                if tighter {
                    map.insert("minimum".into(), Value::Number(min));
                }
            }
            if let Some(max) = max.and_then(number) {
                let tighter = map
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .is_none_or(|old| as_f64(&max) <= old);
                if tighter {
                    map.insert("maximum".into(), Value::Number(max));
                }
            }
        }
        RuleSchema::Uuid => {
            map.insert("format".into(), "uuid".into());
        }
        RuleSchema::Custom(path) => {
            let entry = Value::from(format!("custom = {path}"));
            match map.get_mut(RULES_KEYWORD) {
                Some(Value::Array(rules)) => rules.push(entry),
                _ => {
                    map.insert(RULES_KEYWORD.into(), json!([entry]));
                }
            }
        }
    }
}

fn raise_min(map: &mut Map<String, Value>, key: &str, min: u64) {
    if map
        .get(key)
        .and_then(Value::as_u64)
        .is_none_or(|old| min > old)
    {
        map.insert(key.into(), min.into());
    }
}

fn lower_max(map: &mut Map<String, Value>, key: &str, max: u64) {
    if map
        .get(key)
        .and_then(Value::as_u64)
        .is_none_or(|old| max < old)
    {
        map.insert(key.into(), max.into());
    }
}

/// A bound as written (`-5`, `1.5`, `100000`) as a JSON number.
fn number(text: &str) -> Option<Number> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Number(n)) => Some(n),
        _ => None,
    }
}

fn as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_map_to_the_keywords_of_the_type() {
        let mut string = json!({"type": "string"});
        let map = string.as_object_mut().unwrap_or_else(|| unreachable!());
        apply_rule(map, &RuleSchema::NonEmpty);
        apply_rule(
            map,
            &RuleSchema::Length {
                min: None,
                max: Some(8),
            },
        );
        assert_eq!(
            string,
            json!({"type": "string", "minLength": 1, "maxLength": 8})
        );

        let mut any = json!({});
        let map = any.as_object_mut().unwrap_or_else(|| unreachable!());
        apply_rule(
            map,
            &RuleSchema::Length {
                min: None,
                max: Some(2),
            },
        );
        assert_eq!(
            any,
            json!({"maxLength": 2, "maxItems": 2, "maxProperties": 2})
        );

        let mut int = integer("u32");
        let map = int.as_object_mut().unwrap_or_else(|| unreachable!());
        apply_rule(
            map,
            &RuleSchema::Range {
                min: Some("1"),
                max: Some("1440"),
            },
        );
        assert_eq!(
            int,
            json!({"type": "integer", "minimum": 1, "maximum": 1440})
        );
    }

    #[test]
    fn nullable_keeps_simple_types_simple() {
        assert_eq!(
            nullable(json!({"type": "string"})),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            nullable(json!({"const": 1})),
            json!({"anyOf": [{"const": 1}, {"type": "null"}]})
        );
        assert_eq!(nullable(json!({})), json!({}));
    }
}
