//! The demo's schemas: its AsyncAPI document (`--asyncapi`), and the tests that hold what it
//! publishes to its JSON Schemas, the document to the official AsyncAPI parser, and the event
//! types to the snapshot committed in `schemas/` (schema evolution).

use event_bus_core::schema::AppInfo;

/// The application, as the AsyncAPI document describes it: the demo's bus uses the default
/// prefix (`event`) and layout (one stream per event type).
pub fn app_info() -> AppInfo {
    AppInfo::new("ticketing", env!("CARGO_PKG_VERSION"))
        .description(
            "The event-bus ticketing demo: tickets, projects, time entries and invoices of a \
             multi-tenant PSA, on Redis Streams.",
        )
        .server("local", "127.0.0.1:6379")
}

/// The AsyncAPI 3.0 document of the demo: every event type and subscriber in the binary.
pub fn asyncapi() -> serde_json::Value {
    event_bus_core::schema::asyncapi(&app_info())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use chrono::NaiveDate;
    use event_bus_core::schema::{self, SchemaSnapshot};
    use event_bus_core::{Envelope, Event, StreamLayout};
    use serde_json::{json, Value};
    use uuid::Uuid;

    use crate::events::{InvoiceGenerated, TicketUpdated, TimeEntrySubmitted, EVENT_TYPES};
    use crate::subscribers;

    fn validator(event_type: &str) -> jsonschema::Validator {
        let schema = schema::json_schema_for(event_type)
            .unwrap_or_else(|| panic!("{event_type} is registered"));
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("the schema of {event_type} is a valid JSON Schema: {e}"))
    }

    /// The instance paths of every error `value` has against the schema of `event_type`.
    fn errors(event_type: &str, value: &Value) -> Vec<String> {
        let validator = validator(event_type);
        let mut paths: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.instance_path().to_string())
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_event_the_demo_publishes_matches_its_schema() {
        // The whole day on the in-memory bus; the audit log keeps every event of every type
        // exactly as a publish writes it.
        let app = crate::demo(None).await.expect("the demo succeeds");
        let entries = app.audit.entries();
        let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
        for entry in &entries {
            let value: Value = serde_json::from_str(&entry.json).expect("the wire is JSON");
            let validator = validator(&entry.event_type);
            let problems: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(
                problems.is_empty(),
                "{} does not match its schema: {problems:?}\n{}",
                entry.event_type,
                entry.json
            );
            *per_type.entry(entry.event_type.clone()).or_default() += 1;
        }
        // Every one of the ten types was published (the day has all of them), and each event
        // was checked once.
        let types: Vec<&str> = per_type.keys().map(String::as_str).collect();
        let mut expected = EVENT_TYPES.to_vec();
        expected.sort_unstable();
        assert_eq!(types, expected);
        assert_eq!(per_type.values().sum::<usize>(), entries.len());
        assert!(entries.len() > 50, "{} events", entries.len());
    }

    #[test]
    fn events_that_break_a_rule_fail_their_schema() {
        // The demo's own bad time entry: three rules fail, and the schema says the same.
        let bad = TimeEntrySubmitted {
            tenant_id: Uuid::from_u128(7),
            time_entry_id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            work_item_id: "TCK-1042".to_owned(),
            work_date: NaiveDate::from_ymd_opt(2026, 11, 26).expect("a date"),
            minutes: 0,
            notes: String::new(),
        };
        assert_eq!(bad.validate().expect_err("invalid").len(), 3);
        let value = serde_json::to_value(Envelope::new(bad)).expect("serialises");
        assert_eq!(
            errors(TimeEntrySubmitted::EVENT_TYPE, &value),
            ["/payload/minutes", "/payload/notes", "/payload/workItemId"]
        );

        // An invoice with a nil tenant, a negative total and a currency that is not ISO 4217.
        let invoice = InvoiceGenerated {
            tenant_id: Uuid::nil(),
            invoice_id: Uuid::from_u128(3),
            user_id: Uuid::from_u128(2),
            invoice_number: "INV-0001".to_owned(),
            total_cents: -1,
            currency: "dollars".to_owned(),
        };
        let value = serde_json::to_value(Envelope::new(invoice)).expect("serialises");
        assert_eq!(
            errors(InvoiceGenerated::EVENT_TYPE, &value),
            [
                "/payload/currency",
                "/payload/tenantId",
                "/payload/totalCents"
            ]
        );

        // A ticket update with too many changes (length(max = 64) on a map), a missing field,
        // a malformed id and the wrong event type.
        let changes: serde_json::Map<String, Value> =
            (0..65).map(|i| (format!("column_{i}"), json!(i))).collect();
        let update = TicketUpdated {
            tenant_id: Uuid::from_u128(7),
            ticket_id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            changes: Some(changes),
        };
        let mut value = serde_json::to_value(Envelope::new(update)).expect("serialises");
        assert_eq!(
            errors(TicketUpdated::EVENT_TYPE, &value),
            ["/payload/changes"]
        );
        value["payload"]["changes"] = json!({"status": "closed"});
        assert!(errors(TicketUpdated::EVENT_TYPE, &value).is_empty());
        value["eventType"] = json!("TICKET_CREATED");
        value["id"] = json!("not-a-uuid");
        value["payload"]
            .as_object_mut()
            .expect("an object")
            .remove("userId");
        assert_eq!(
            errors(TicketUpdated::EVENT_TYPE, &value),
            ["/eventType", "/id", "/payload"]
        );
    }

    #[test]
    fn the_schemas_say_what_the_derive_checks() {
        let schema = schema::json_schema_for("TICKET_UPDATED").expect("registered");
        let payload = &schema["properties"]["payload"];
        assert_eq!(
            payload["required"],
            json!(["tenantId", "ticketId", "userId"])
        );
        let changes = &payload["properties"]["changes"];
        // `Option<Changes>`: optional, not nullable (an absent change is absent on the wire);
        // the alias resolves to serde_json's map; the custom rule is named.
        assert_eq!(changes["type"], "object");
        assert_eq!(changes["maxProperties"], 64);
        assert_eq!(
            changes["x-event-bus-rules"],
            json!(["custom = crate::events::ticket_changes"])
        );
        let tenant = &payload["properties"]["tenantId"];
        assert_eq!(tenant["format"], "uuid");
        assert_eq!(
            tenant["not"],
            json!({"const": "00000000-0000-0000-0000-000000000000"})
        );

        let schema = schema::json_schema_for("TIME_ENTRY_SUBMITTED").expect("registered");
        let fields = &schema["properties"]["payload"]["properties"];
        assert_eq!(
            fields["workDate"],
            json!({"type": "string", "format": "date"})
        );
        assert_eq!(fields["minutes"]["minimum"], 1);
        assert_eq!(fields["minutes"]["maximum"], 1440);
        assert_eq!(fields["notes"]["minLength"], 1);
        assert_eq!(fields["notes"]["maxLength"], 500);
        assert_eq!(fields["workItemId"]["format"], "uuid");
        assert_eq!(
            fields["workItemId"]["description"],
            "What the time was spent on: a ticket or a project id, as text (the seed stores both)."
        );
        assert_eq!(
            schema["description"],
            "A technician logged time, against a ticket or a project."
        );
    }

    #[test]
    fn the_event_types_match_the_committed_snapshot() {
        // A change that breaks consumers of the committed schemas fails here; a compatible one
        // asks for `EVENT_BUS_UPDATE_SCHEMAS=1 cargo test -p ticketing`.
        SchemaSnapshot::new(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"))
            .only(EVENT_TYPES)
            .assert();
    }

    #[test]
    fn the_asyncapi_document_has_a_channel_per_stream_and_an_operation_per_subscriber() {
        let doc = super::asyncapi();
        assert_eq!(doc["asyncapi"], "3.0.0");
        let channels = doc["channels"].as_object().expect("channels");
        assert_eq!(channels.len(), EVENT_TYPES.len());
        assert_eq!(
            channels["TICKET_UPDATED"]["address"],
            "event:TICKET_UPDATED"
        );
        let operations = doc["operations"].as_object().expect("operations");
        for name in subscribers::ALL {
            let op = &operations[name];
            assert_eq!(op["action"], "receive", "{name}");
        }
        let sends = operations
            .values()
            .filter(|op| op["action"] == "send")
            .count();
        assert_eq!(sends, EVENT_TYPES.len());
        assert_eq!(operations.len(), subscribers::ALL.len() + EVENT_TYPES.len());
        assert_eq!(
            operations["ticket-email"]["channel"]["$ref"],
            "#/channels/TICKET_UPDATED"
        );
        let message = &doc["components"]["messages"]["TICKET_UPDATED"];
        assert_eq!(
            message["payload"]["properties"]["eventType"]["const"],
            "TICKET_UPDATED"
        );

        // The seed's layout: one stream per channel and event type.
        let seed = schema::asyncapi(
            &super::app_info()
                .prefix("alga-psa:event-stream")
                .layout(StreamLayout::PerChannel),
        );
        let addresses: Vec<&str> = seed["channels"]
            .as_object()
            .expect("channels")
            .values()
            .filter_map(|c| c["address"].as_str())
            .filter(|a| a.ends_with(":TICKET_UPDATED"))
            .collect();
        assert_eq!(
            addresses,
            [
                "alga-psa:event-stream:global:TICKET_UPDATED",
                "alga-psa:event-stream:internal-notifications:TICKET_UPDATED",
                "alga-psa:event-stream:emailservice::v7:TICKET_UPDATED",
            ]
        );
    }

    /// `tests/asyncapi-check`: the official parser, installed from its lock file when missing.
    fn checker() -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/asyncapi-check");
        if !dir.join("node_modules/.package-lock.json").is_file() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .unwrap_or_else(|e| panic!("cannot run npm (install Node.js 20+ with npm): {e}"));
            assert!(status.success(), "`npm ci` failed in {}", dir.display());
        }
        dir.join("check.mjs")
    }

    /// Runs the official parser on `doc`; panics on any diagnostic of error severity.
    fn assert_parses(doc: &Value) {
        use std::io::Write as _;

        let mut child = Command::new("node")
            .arg(checker())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node (install Node.js 20+): {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(doc.to_string().as_bytes())
            .expect("the document is written");
        let out = child.wait_with_output().expect("node runs");
        assert!(
            out.status.success(),
            "the checker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("the checker prints JSON");
        let errors: Vec<&Value> = report["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .filter(|d| d["severity"] == "error")
            .collect();
        assert!(errors.is_empty(), "the parser reports errors: {errors:#?}");
        assert_eq!(report["parsed"], true, "{report}");
    }

    #[test]
    fn the_asyncapi_document_passes_the_official_parser() {
        assert_parses(&super::asyncapi());
        assert_parses(&schema::asyncapi(
            &super::app_info()
                .prefix("alga-psa:event-stream")
                .layout(StreamLayout::PerChannel),
        ));
    }

    #[test]
    fn the_checker_catches_an_invalid_document() {
        // The check above could not pass on a broken document: an operation on a channel
        // that does not exist is an error.
        let mut doc = super::asyncapi();
        doc["operations"]["ticket-email"]["channel"]["$ref"] = json!("#/channels/NO_SUCH");
        let report = std::panic::catch_unwind(|| assert_parses(&doc));
        assert!(report.is_err(), "a dangling $ref must be reported");
    }
}
