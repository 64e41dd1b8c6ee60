//! [`check_compatible`]: whether a new schema of an event type still accepts what consumers of
//! the old one rely on.
//!
//! An event outlives the code that wrote it: entries of the old shape stay in the stream,
//! services still running the old version keep publishing it, and consumers on the old
//! version read what the new one writes. So a change is breaking when
//!
//! - a field is removed (old consumers read it),
//! - a field becomes required, or a new one is required (old events lack it),
//! - a type, range, length, format, pattern or set of values is narrowed, or a rule is added
//!   (old events may not pass it),
//! - unknown fields become refused (`additionalProperties: false`).
//!
//! Adding an optional field, making a field optional, widening a range or dropping a rule
//! are not. The check reads the keywords this crate's schemas use; anything else that changed
//! in a part it does not model (`anyOf`, `allOf`) is reported as a change it cannot vouch for.

use std::fmt;

use serde_json::{Map, Value};

use super::json::RULES_KEYWORD;

/// What kind of break an [`Incompatibility`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IncompatibilityKind {
    /// A field of the old schema is gone.
    FieldRemoved,
    /// A field is required that was optional or absent.
    FieldRequired,
    /// The accepted JSON types are fewer (`number` to `integer`, `string` to `integer`, no
    /// longer `null`).
    TypeNarrowed,
    /// A lower bound rose or an upper bound fell (`minLength`, `maximum`, `maxItems`, ...).
    RangeNarrowed,
    /// A `format` or `pattern` was added or changed.
    FormatChanged,
    /// An `enum` lost values, a `const` was added or changed, or a `not` was added.
    ValuesNarrowed,
    /// A rule JSON Schema cannot express was added (`x-event-bus-rules`).
    RuleAdded,
    /// Unknown fields are refused where they were accepted.
    UnknownFieldsRefused,
    /// A part the check does not model changed (`anyOf`, `allOf`): treated as breaking.
    Changed,
}

/// One way a new schema breaks consumers of the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Incompatibility {
    /// Where, as a JSON path into the envelope (`payload.changes`, `payload.tags[]`).
    pub path: String,
    /// What kind of break.
    pub kind: IncompatibilityKind,
    /// What changed, in words.
    pub message: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// Checks that `new` accepts what consumers of `old` rely on (see the module docs); `Err`
/// lists every break.
///
/// ```
/// use event_bus_core::schema::{check_compatible, IncompatibilityKind};
/// use serde_json::json;
///
/// let old = json!({"type": "object", "properties": {"note": {"type": "string", "maxLength": 64}}});
/// let wider = json!({"type": "object", "properties": {
///     "note": {"type": "string", "maxLength": 200},
///     "tags": {"type": "array"}
/// }});
/// assert!(check_compatible(&old, &wider).is_ok());
///
/// let narrower = json!({"type": "object", "properties": {"note": {"type": "string", "maxLength": 10}}});
/// let breaks = check_compatible(&old, &narrower).unwrap_err();
/// assert_eq!(breaks[0].kind, IncompatibilityKind::RangeNarrowed);
/// assert_eq!(breaks[0].to_string(), "note: maxLength lowered from 64 to 10");
/// ```
pub fn check_compatible(old: &Value, new: &Value) -> Result<(), Vec<Incompatibility>> {
    let mut out = Vec::new();
    compare("", old, new, &mut out);
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

fn push(out: &mut Vec<Incompatibility>, path: &str, kind: IncompatibilityKind, message: String) {
    out.push(Incompatibility {
        path: path.to_owned(),
        kind,
        message,
    });
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// A schema split into its non-null part and whether it accepts `null`:
/// `{"anyOf": [X, {"type": "null"}]}` and `{"type": [t, "null"]}` both read as `X`, nullable.
fn unwrap_nullable(schema: &Value) -> (Map<String, Value>, bool) {
    let Value::Object(map) = schema else {
        // `true` accepts anything; `false` nothing.
        return (Map::new(), schema.as_bool().unwrap_or(true));
    };
    if let Some(Value::Array(options)) = map.get("anyOf") {
        let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
        if options.len() == 2 && map.len() == 1 {
            if let Some(other) = options.iter().find(|v| !is_null(v)) {
                if options.iter().any(is_null) {
                    let (inner, _) = unwrap_nullable(other);
                    return (inner, true);
                }
            }
        }
    }
    let nullable = match map.get("type") {
        None => true,
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        Some(_) => false,
    };
    (map.clone(), nullable)
}

/// The JSON types a schema accepts, without `null`; `None`: any.
fn types(map: &Map<String, Value>) -> Option<Vec<String>> {
    match map.get("type")? {
        Value::String(t) if t == "null" => Some(Vec::new()),
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(list) => Some(
            list.iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

const LOWER: [&str; 5] = [
    "minLength",
    "minItems",
    "minProperties",
    "minimum",
    "exclusiveMinimum",
];
const UPPER: [&str; 5] = [
    "maxLength",
    "maxItems",
    "maxProperties",
    "maximum",
    "exclusiveMaximum",
];

fn compare(path: &str, old: &Value, new: &Value, out: &mut Vec<Incompatibility>) {
    use IncompatibilityKind::*;
    let (old, old_null) = unwrap_nullable(old);
    let (new, new_null) = unwrap_nullable(new);

    if old_null && !new_null && old.contains_key("type") {
        push(out, path, TypeNarrowed, "no longer accepts null".to_owned());
    }
    match (types(&old), types(&new)) {
        (_, None) => {}
        (None, Some(new_types)) => push(
            out,
            path,
            TypeNarrowed,
            format!("any JSON narrowed to {}", new_types.join(" | ")),
        ),
        (Some(old_types), Some(new_types)) => {
            let accepted = |t: &String| {
                new_types.contains(t) || (t == "integer" && new_types.iter().any(|n| n == "number"))
            };
            if !old_types.iter().all(accepted) {
                push(
                    out,
                    path,
                    TypeNarrowed,
                    format!(
                        "type changed from {} to {}",
                        old_types.join(" | "),
                        new_types.join(" | ")
                    ),
                );
            }
        }
    }

    for key in LOWER {
        if let Some(n) = new.get(key).and_then(Value::as_f64) {
            match old.get(key).and_then(Value::as_f64) {
                Some(o) if n <= o => {}
                Some(o) => push(
                    out,
                    path,
                    RangeNarrowed,
                    format!("{key} raised from {} to {}", num(o), num(n)),
                ),
                None => push(out, path, RangeNarrowed, format!("{key} {} added", num(n))),
            }
        }
    }
    for key in UPPER {
        if let Some(n) = new.get(key).and_then(Value::as_f64) {
            match old.get(key).and_then(Value::as_f64) {
                Some(o) if n >= o => {}
                Some(o) => push(
                    out,
                    path,
                    RangeNarrowed,
                    format!("{key} lowered from {} to {}", num(o), num(n)),
                ),
                None => push(out, path, RangeNarrowed, format!("{key} {} added", num(n))),
            }
        }
    }
    for key in ["format", "pattern"] {
        if let Some(n) = new.get(key) {
            match old.get(key) {
                Some(o) if o == n => {}
                Some(o) => push(
                    out,
                    path,
                    FormatChanged,
                    format!("{key} changed from {o} to {n}"),
                ),
                None => push(out, path, FormatChanged, format!("{key} {n} added")),
            }
        }
    }
    if new.get("uniqueItems") == Some(&Value::Bool(true))
        && old.get("uniqueItems") != Some(&Value::Bool(true))
    {
        push(out, path, ValuesNarrowed, "uniqueItems added".to_owned());
    }
    if let Some(n) = new.get("const") {
        if old.get("const") != Some(n) {
            push(
                out,
                path,
                ValuesNarrowed,
                format!("const {n} added or changed"),
            );
        }
    }
    if let Some(Value::Array(n)) = new.get("enum") {
        match old.get("enum") {
            Some(Value::Array(o)) => {
                let lost: Vec<String> = o
                    .iter()
                    .filter(|v| !n.contains(v))
                    .map(Value::to_string)
                    .collect();
                if !lost.is_empty() {
                    push(
                        out,
                        path,
                        ValuesNarrowed,
                        format!("enum lost {}", lost.join(", ")),
                    );
                }
            }
            _ if old.get("const").is_some_and(|c| n.contains(c)) => {}
            _ => push(out, path, ValuesNarrowed, "enum added".to_owned()),
        }
    }
    if let Some(n) = new.get("not") {
        if old.get("not") != Some(n) {
            push(
                out,
                path,
                ValuesNarrowed,
                format!("not {n} added or changed"),
            );
        }
    }
    if let Some(Value::Array(n)) = new.get(RULES_KEYWORD) {
        let old_rules = old.get(RULES_KEYWORD).and_then(Value::as_array);
        for rule in n {
            if !old_rules.is_some_and(|o| o.contains(rule)) {
                push(out, path, RuleAdded, format!("rule {rule} added"));
            }
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(n) = new.get(key) {
            match (old.get(key), n) {
                (Some(Value::Array(o)), Value::Array(n)) if o.len() == n.len() => {
                    for (i, (o, n)) in o.iter().zip(n).enumerate() {
                        compare(&format!("{path}<{key}[{i}]>"), o, n, out);
                    }
                }
                (Some(o), n) if o == n => {}
                _ => push(out, path, Changed, format!("{key} added or changed")),
            }
        }
    }

    // Objects.
    let empty = Map::new();
    let old_props = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_props = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required = |map: &Map<String, Value>| -> Vec<String> {
        map.get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_req, new_req) = (required(&old), required(&new));
    for (name, old_field) in old_props {
        match new_props.get(name) {
            Some(new_field) => compare(&join(path, name), old_field, new_field, out),
            None => push(
                out,
                &join(path, name),
                FieldRemoved,
                "field removed".to_owned(),
            ),
        }
    }
    for name in &new_req {
        if old_req.contains(name) {
            continue;
        }
        let message = if old_props.contains_key(name) {
            "field became required"
        } else {
            "new required field"
        };
        push(out, &join(path, name), FieldRequired, message.to_owned());
    }
    match (
        old.get("additionalProperties"),
        new.get("additionalProperties"),
    ) {
        (_, None) | (_, Some(Value::Bool(true))) => {}
        (Some(Value::Bool(false)), Some(Value::Bool(false))) => {}
        (_, Some(Value::Bool(false))) => push(
            out,
            path,
            UnknownFieldsRefused,
            "unknown fields are now refused".to_owned(),
        ),
        (o, Some(n)) => {
            let any = Value::Object(Map::new());
            compare(&join(path, "*"), o.unwrap_or(&any), n, out);
        }
    }

    // Arrays.
    if let Some(n) = new.get("items") {
        let any = Value::Object(Map::new());
        compare(
            &format!("{path}[]"),
            old.get("items").unwrap_or(&any),
            n,
            out,
        );
    }
}

/// A bound for messages: `64`, not `64.0`.
fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}
