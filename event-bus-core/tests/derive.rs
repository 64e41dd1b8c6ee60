//! Behaviour of the code `#[derive(Event)]` and `#[subscriber]` generate: names, JSON paths,
//! every rule, the tenant, and the registry entries the runtime reads.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use event_bus_core::{
    registered_events, registered_subscribers, subscriber, Bus, Context, Envelope, Event,
    FailureKind, HandlerError, MemoryBus, Ordering, RunningBus, StartFrom, Subscriber,
    ValidationErrors,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn no_spaces(value: &String) -> Result<(), String> {
    if value.contains(' ') {
        Err(format!("{value:?} contains a space"))
    } else {
        Ok(())
    }
}

mod checks {
    pub fn even(value: &i64) -> Result<(), &'static str> {
        if value % 2 == 0 {
            Ok(())
        } else {
            Err("must be even")
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_UPDATED")]
pub struct TicketUpdated {
    pub tenant_id: Uuid,
    #[event(validate(non_empty, length(min = 2, max = 8), custom = no_spaces))]
    pub ticket_title: String,
    #[event(validate(length(max = 2)))]
    pub changes: Option<serde_json::Map<String, serde_json::Value>>,
    #[event(validate(range(min = -5, max = 5)))]
    pub priority_delta: i32,
    #[event(validate(range(min = 0, max = 1.5)))]
    pub weight: Option<f64>,
    #[event(validate(uuid))]
    #[serde(rename = "extId")]
    pub external_id: Option<String>,
    #[event(validate(custom = checks::even, range(max = 100)))]
    pub minutes_spent: i64,
    #[event(validate(non_empty))]
    pub tags: Vec<String>,
}

fn valid_ticket() -> TicketUpdated {
    TicketUpdated {
        tenant_id: Uuid::new_v4(),
        ticket_title: "title".to_owned(),
        changes: None,
        priority_delta: 0,
        weight: Some(1.0),
        external_id: Some(Uuid::new_v4().to_string()),
        minutes_spent: 10,
        tags: vec!["a".to_owned()],
    }
}

fn issues(errors: ValidationErrors) -> Vec<(String, String)> {
    errors
        .issues()
        .iter()
        .map(|i| (i.path.clone(), i.message.clone()))
        .collect()
}

fn paths(result: Result<(), ValidationErrors>) -> Vec<String> {
    match result {
        Ok(()) => Vec::new(),
        Err(errors) => errors.issues().iter().map(|i| i.path.clone()).collect(),
    }
}

#[derive(Debug, Serialize, Deserialize, Event)]
pub struct TimeEntrySubmitted {
    pub tenant_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, Event)]
#[allow(clippy::upper_case_acronyms)]
pub struct HTTPRequestSeen {
    pub tenant_id: Uuid,
}

/// The tenant in a `String` field marked `#[event(tenant)]`, under kebab-case.
#[derive(Debug, Serialize, Deserialize, Event)]
#[serde(rename_all = "kebab-case")]
pub struct OrgRenamed {
    #[event(tenant)]
    pub org_ref: String,
    #[event(validate(non_empty))]
    pub new_name: String,
}

/// Written to the seed's three ticket channels.
#[derive(Debug, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(channels("global", "internal-notifications", "emailservice::v7"))]
pub struct TicketAssigned {
    pub tenant_id: Uuid,
}

/// The seed's domain shape: the tenant is any non-empty string.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
pub struct TicketCommented {
    #[event(tenant(any_string))]
    pub tenant_id: String,
    #[event(validate(non_empty))]
    pub comment: String,
}

/// `tenant(any_string)` on a marked field with another name.
#[derive(Debug, Serialize, Deserialize, Event)]
pub struct OrgNoted {
    #[event(tenant(any_string))]
    #[serde(rename = "org")]
    pub org_ref: String,
}

#[test]
fn event_type_names() {
    assert_eq!(TicketUpdated::EVENT_TYPE, "TICKET_UPDATED");
    assert_eq!(TimeEntrySubmitted::EVENT_TYPE, "TIME_ENTRY_SUBMITTED");
    assert_eq!(HTTPRequestSeen::EVENT_TYPE, "HTTP_REQUEST_SEEN");
    assert_eq!(OrgRenamed::EVENT_TYPE, "ORG_RENAMED");
}

#[test]
fn channel_names() {
    assert_eq!(TicketUpdated::stream("event"), "event:TICKET_UPDATED");
    assert_eq!(
        TicketUpdated::stream("alga-psa:event-stream:global"),
        "alga-psa:event-stream:global:TICKET_UPDATED"
    );
}

#[test]
fn declared_channels() {
    assert_eq!(
        TicketAssigned::CHANNELS,
        ["global", "internal-notifications", "emailservice::v7"]
    );
    assert_eq!(TicketUpdated::CHANNELS, [event_bus_core::DEFAULT_CHANNEL]);
    assert_eq!(TimeEntrySubmitted::CHANNELS, ["global"]);
}

#[test]
fn any_string_tenants() {
    let acme = TicketCommented {
        tenant_id: "acme".to_owned(),
        comment: "hello".to_owned(),
    };
    assert_eq!(acme.validate(), Ok(()));
    assert_eq!(acme.tenant(), "acme");
    // Stable: the name-based UUID (v5) of the text under TENANT_NAMESPACE, in every process.
    let id = acme.tenant_id();
    assert_eq!(id, event_bus_core::tenant_uuid("acme"));
    assert_eq!(id, Uuid::new_v5(&event_bus_core::TENANT_NAMESPACE, b"acme"));
    assert_eq!(id.to_string(), "ee203e89-c389-5a54-90a4-dbc8593fe042");
    assert_eq!(id.get_version_num(), 5);

    // A UUID string is that UUID, and the tenant text is kept as written.
    let tenant = Uuid::new_v4();
    let spelled = tenant.to_string().to_uppercase();
    let uuid_tenant = TicketCommented {
        tenant_id: spelled.clone(),
        ..acme.clone()
    };
    assert_eq!(uuid_tenant.tenant_id(), tenant);
    assert_eq!(uuid_tenant.tenant(), spelled);
    assert_eq!(uuid_tenant.validate(), Ok(()));

    // Empty is refused, with the field's path; other issues are still reported.
    let empty = TicketCommented {
        tenant_id: String::new(),
        comment: String::new(),
    };
    assert_eq!(
        issues(empty.validate().unwrap_err()),
        vec![
            ("tenantId".to_owned(), "tenant must not be empty".to_owned()),
            ("comment".to_owned(), "must not be empty".to_owned()),
        ]
    );
    let noted = OrgNoted {
        org_ref: String::new(),
    };
    assert_eq!(paths(noted.validate()), ["org"]);
    let noted = OrgNoted {
        org_ref: "acme".to_owned(),
    };
    assert_eq!(noted.tenant_id(), id);

    // Without `any_string`, the tenant must be a UUID.
    let strict = OrgRenamed {
        org_ref: "acme".to_owned(),
        new_name: "Acme".to_owned(),
    };
    assert_eq!(
        issues(strict.validate().unwrap_err()),
        vec![(
            "org-ref".to_owned(),
            "tenant must be a valid UUID".to_owned()
        )]
    );
    assert_eq!(strict.tenant(), "acme");

    // A `Uuid` tenant's text is its hyphenated form.
    let ticket = valid_ticket();
    assert_eq!(ticket.tenant(), ticket.tenant_id.hyphenated().to_string());
}

#[test]
fn any_string_tenants_decode_from_the_wire() {
    let registration = registered_events()
        .find(|e| e.event_type == "TICKET_COMMENTED")
        .expect("TicketCommented is registered");
    let json = envelope_json(
        "TICKET_COMMENTED",
        serde_json::json!({ "tenantId": "acme", "comment": "hi" }),
    );
    let meta = (registration.decode)(&json).expect("a string tenant decodes");
    assert_eq!(meta.tenant_id, event_bus_core::tenant_uuid("acme"));
    let empty = envelope_json(
        "TICKET_COMMENTED",
        serde_json::json!({ "tenantId": "", "comment": "hi" }),
    );
    let failure = (registration.decode)(&empty).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Validation);
    assert_eq!(
        failure.message,
        "payload.tenantId: tenant must not be empty"
    );
}

#[test]
fn a_valid_event_passes() {
    assert_eq!(valid_ticket().validate(), Ok(()));
    let boundaries = TicketUpdated {
        ticket_title: "12345678".to_owned(),
        changes: Some(serde_json::Map::new()),
        priority_delta: -5,
        weight: None,
        external_id: None,
        minutes_spent: 100,
        ..valid_ticket()
    };
    assert_eq!(boundaries.validate(), Ok(()));
}

#[test]
fn every_rule_fails_with_its_json_path() {
    let mut changes = serde_json::Map::new();
    for key in ["a", "b", "c"] {
        changes.insert(key.to_owned(), serde_json::Value::Null);
    }
    let event = TicketUpdated {
        tenant_id: Uuid::nil(),
        ticket_title: "a b".to_owned(),
        changes: Some(changes),
        priority_delta: 6,
        weight: Some(-0.5),
        external_id: Some("not-a-uuid".to_owned()),
        minutes_spent: 101,
        tags: Vec::new(),
    };
    let errors = event.validate().unwrap_err();
    assert_eq!(
        issues(errors),
        vec![
            (
                "tenantId".to_owned(),
                "tenant must not be the nil UUID".to_owned()
            ),
            (
                "ticketTitle".to_owned(),
                "\"a b\" contains a space".to_owned()
            ),
            (
                "changes".to_owned(),
                "length 3 is above the maximum 2".to_owned()
            ),
            (
                "priorityDelta".to_owned(),
                "6 is above the maximum 5".to_owned()
            ),
            (
                "weight".to_owned(),
                "-0.5 is below the minimum 0".to_owned()
            ),
            ("extId".to_owned(), "must be a UUID".to_owned()),
            ("minutesSpent".to_owned(), "must be even".to_owned()),
            (
                "minutesSpent".to_owned(),
                "101 is above the maximum 100".to_owned()
            ),
            ("tags".to_owned(), "must not be empty".to_owned()),
        ]
    );
}

#[test]
fn each_rule_alone() {
    let check = |event: TicketUpdated| paths(event.validate());
    let empty = TicketUpdated {
        ticket_title: String::new(),
        ..valid_ticket()
    };
    let errors = empty.validate().unwrap_err();
    assert_eq!(
        issues(errors),
        vec![
            ("ticketTitle".to_owned(), "must not be empty".to_owned()),
            (
                "ticketTitle".to_owned(),
                "length 0 is below the minimum 2".to_owned()
            ),
        ]
    );
    let long = TicketUpdated {
        ticket_title: "123456789".to_owned(),
        ..valid_ticket()
    };
    assert_eq!(check(long), ["ticketTitle"]);
    // Length counts characters, not bytes.
    let unicode = TicketUpdated {
        ticket_title: "ééééé".to_owned(),
        ..valid_ticket()
    };
    assert_eq!(check(unicode), Vec::<String>::new());
    let low = TicketUpdated {
        priority_delta: -6,
        ..valid_ticket()
    };
    assert_eq!(check(low), ["priorityDelta"]);
    let heavy = TicketUpdated {
        weight: Some(1.6),
        ..valid_ticket()
    };
    assert_eq!(check(heavy), ["weight"]);
    let odd = TicketUpdated {
        minutes_spent: 7,
        ..valid_ticket()
    };
    assert_eq!(check(odd), ["minutesSpent"]);
    let bad_id = TicketUpdated {
        external_id: Some(String::new()),
        ..valid_ticket()
    };
    assert_eq!(check(bad_id), ["extId"]);
}

#[test]
fn tenant_in_a_marked_string_field() {
    let tenant = Uuid::new_v4();
    let event = OrgRenamed {
        org_ref: tenant.to_string(),
        new_name: "Acme".to_owned(),
    };
    assert_eq!(event.tenant_id(), tenant);
    assert_eq!(event.validate(), Ok(()));

    let invalid = OrgRenamed {
        org_ref: "acme".to_owned(),
        new_name: String::new(),
    };
    assert_eq!(invalid.tenant_id(), Uuid::nil());
    assert_eq!(
        issues(invalid.validate().unwrap_err()),
        vec![
            (
                "org-ref".to_owned(),
                "tenant must be a valid UUID".to_owned()
            ),
            ("new-name".to_owned(), "must not be empty".to_owned()),
        ]
    );

    let nil = OrgRenamed {
        org_ref: Uuid::nil().to_string(),
        new_name: "Acme".to_owned(),
    };
    assert_eq!(paths(nil.validate()), ["org-ref"]);
}

macro_rules! rename_all_cases {
    ($($name:ident: $rule:literal => $tenant:literal, $field:literal;)*) => {
        $(
            #[derive(Debug, Serialize, Deserialize, Event)]
            #[serde(rename_all = $rule)]
            pub struct $name {
                pub tenant_id: Uuid,
                #[event(validate(non_empty))]
                pub display_name: String,
            }
        )*

        #[test]
        fn json_paths_follow_rename_all() {
            $(
                let event = $name { tenant_id: Uuid::nil(), display_name: String::new() };
                let json = serde_json::to_value(&Envelope::new($name {
                    tenant_id: Uuid::new_v4(),
                    display_name: String::new(),
                }))
                .unwrap();
                assert!(json["payload"].get($tenant).is_some(), "{}: {json}", $rule);
                assert!(json["payload"].get($field).is_some(), "{}: {json}", $rule);
                assert_eq!(paths(event.validate()), [$tenant, $field], "{}", $rule);
            )*
        }
    };
}

rename_all_cases! {
    Lower: "lowercase" => "tenant_id", "display_name";
    Upper: "UPPERCASE" => "TENANT_ID", "DISPLAY_NAME";
    Pascal: "PascalCase" => "TenantId", "DisplayName";
    Camel: "camelCase" => "tenantId", "displayName";
    Snake: "snake_case" => "tenant_id", "display_name";
    ScreamingSnake: "SCREAMING_SNAKE_CASE" => "TENANT_ID", "DISPLAY_NAME";
    Kebab: "kebab-case" => "tenant-id", "display-name";
    ScreamingKebab: "SCREAMING-KEBAB-CASE" => "TENANT-ID", "DISPLAY-NAME";
}

#[derive(Debug, Serialize, Deserialize, Event)]
pub struct NoRenameAll {
    #[serde(rename = "tenant")]
    pub tenant_id: Uuid,
    #[event(validate(non_empty))]
    #[serde(rename(serialize = "label", deserialize = "label"))]
    pub name: String,
}

#[test]
fn json_paths_follow_rename() {
    let event = NoRenameAll {
        tenant_id: Uuid::nil(),
        name: String::new(),
    };
    assert_eq!(paths(event.validate()), ["tenant", "label"]);
}

fn envelope_json(event_type: &str, payload: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": Uuid::new_v4(),
        "eventType": event_type,
        "timestamp": "2026-11-26T18:00:00.000Z",
        "payload": payload,
    }))
    .unwrap()
}

fn valid_ticket_json(tenant: Uuid) -> serde_json::Value {
    serde_json::json!({
        "tenantId": tenant,
        "ticketTitle": "title",
        "changes": null,
        "priorityDelta": 1,
        "weight": 0.5,
        "extId": null,
        "minutesSpent": 2,
        "tags": ["x"],
    })
}

#[test]
fn events_are_registered() {
    let registration = registered_events()
        .find(|e| e.event_type == "TICKET_UPDATED")
        .expect("TicketUpdated is registered");
    assert_eq!(
        registration.rust_type,
        std::any::type_name::<TicketUpdated>()
    );
    assert_eq!(registration.rust_type, "derive::TicketUpdated");
    for name in [
        "TIME_ENTRY_SUBMITTED",
        "HTTP_REQUEST_SEEN",
        "ORG_RENAMED",
        "PASCAL",
    ] {
        assert!(registered_events().any(|e| e.event_type == name), "{name}");
    }

    let tenant = Uuid::new_v4();
    let meta = (registration.decode)(&envelope_json("TICKET_UPDATED", valid_ticket_json(tenant)))
        .expect("a valid envelope decodes");
    assert_eq!(meta.tenant_id, tenant);

    let mut invalid = valid_ticket_json(tenant);
    invalid["tags"] = serde_json::json!([]);
    invalid["tenantId"] = serde_json::json!(Uuid::nil());
    let failure = (registration.decode)(&envelope_json("TICKET_UPDATED", invalid)).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Validation);
    assert!(failure.message.contains("payload.tenantId"), "{failure}");
    assert!(failure.message.contains("payload.tags"), "{failure}");

    let wrong_type = envelope_json("TICKET_CLOSED", valid_ticket_json(tenant));
    assert_eq!(
        (registration.decode)(&wrong_type).unwrap_err().kind,
        FailureKind::Decode
    );
    assert_eq!(
        (registration.decode)(b"{not json").unwrap_err().kind,
        FailureKind::Decode
    );
    let missing_field = envelope_json("TICKET_UPDATED", serde_json::json!({ "tenantId": tenant }));
    assert_eq!(
        (registration.decode)(&missing_field).unwrap_err().kind,
        FailureKind::Decode
    );
}

static HANDLED: AtomicUsize = AtomicUsize::new(0);

#[subscriber("TICKET_UPDATED")]
async fn count_updates(event: Envelope<TicketUpdated>, ctx: Context) -> Result<(), HandlerError> {
    assert_eq!(ctx.tenant_id(), event.payload.tenant_id);
    HANDLED.fetch_add(1, AtomicOrdering::SeqCst);
    Ok(())
}

#[subscriber(
    "TIME_ENTRY_SUBMITTED",
    name = "derive-test-time",
    concurrency = 4,
    max_attempts = 7,
    start = "earliest",
    ordering = "tenant"
)]
async fn on_time_entry(
    _event: Envelope<TimeEntrySubmitted>,
    _ctx: Context,
) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("always fails"))
}

#[subscriber(
    "TICKET_ASSIGNED",
    name = "derive-test-assigned-email",
    channel = "emailservice::v7"
)]
async fn email_on_assign(
    _event: Envelope<TicketAssigned>,
    _ctx: Context,
) -> Result<(), HandlerError> {
    Ok(())
}

mod nested {
    use super::*;

    #[subscriber("HTTP_REQUEST_SEEN", start = "latest", ordering = "none")]
    pub async fn seen(
        _event: event_bus_core::Envelope<HTTPRequestSeen>,
        _: Context,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

// Two modules deep, no `name = ...`: named after the function alone, so moving it to another
// module keeps its consumer group.
mod billing {
    pub mod handlers {
        use crate::{Envelope, HandlerError, TicketUpdated};

        #[event_bus_core::subscriber("TICKET_UPDATED")]
        pub async fn bill_on_update(
            _event: Envelope<TicketUpdated>,
            _ctx: event_bus_core::Context,
        ) -> Result<(), HandlerError> {
            Ok(())
        }
    }
}

#[test]
fn the_default_name_is_the_bare_function_name() {
    let registration = registered_subscribers()
        .find(|s| s.handler.ends_with("::bill_on_update"))
        .expect("bill_on_update is registered");
    assert_eq!(registration.name, "bill_on_update");
    assert_eq!(
        registration.handler,
        "derive::billing::handlers::bill_on_update"
    );
    let subscriber = Subscriber::from_registration(registration);
    assert_eq!(subscriber.name(), "bill_on_update");
    assert!(
        subscriber
            .location()
            .contains("(derive::billing::handlers::bill_on_update)"),
        "{}",
        subscriber.location()
    );

    let nested = registered_subscribers()
        .find(|s| s.handler == "derive::nested::seen")
        .expect("nested::seen is registered");
    assert_eq!(nested.name, "seen");
}

#[test]
fn subscribers_are_registered_with_their_options() {
    let default = registered_subscribers()
        .find(|s| s.handler.ends_with("::count_updates"))
        .expect("count_updates is registered");
    // The default name is the bare function name; the handler keeps the full path.
    assert_eq!(default.name, "count_updates");
    assert_eq!(default.handler, "derive::count_updates");
    assert!(default.state.is_empty());
    assert_eq!(default.event_type, "TICKET_UPDATED");
    assert_eq!(default.options.concurrency, 1);
    assert_eq!(default.options.max_attempts, None);
    assert_eq!(default.options.start, StartFrom::Latest);
    assert_eq!(default.options.ordering, Ordering::None);
    assert!(default.file.ends_with("derive.rs"), "{}", default.file);
    assert!(default.line > 0);

    let named = registered_subscribers()
        .find(|s| s.name == "derive-test-time")
        .expect("on_time_entry is registered");
    assert_eq!(named.handler, "derive::on_time_entry");
    assert_eq!(named.event_type, "TIME_ENTRY_SUBMITTED");
    assert_eq!(named.options.concurrency, 4);
    assert_eq!(named.options.max_attempts, Some(7));
    assert_eq!(named.options.start, StartFrom::Earliest);
    assert_eq!(named.options.ordering, Ordering::PerTenant);

    let nested = registered_subscribers()
        .find(|s| s.handler == "derive::nested::seen")
        .expect("nested::seen is registered");
    assert_eq!(nested.options.start, StartFrom::Latest);
    assert_eq!(nested.options.ordering, Ordering::None);
}

#[test]
fn a_subscriber_reads_its_channel() {
    let email = registered_subscribers()
        .find(|s| s.name == "derive-test-assigned-email")
        .expect("email_on_assign is registered");
    assert_eq!(email.options.channel, Some("emailservice::v7"));
    assert_eq!(
        Subscriber::from_registration(email).channel_name(),
        "emailservice::v7"
    );

    let default = registered_subscribers()
        .find(|s| s.name == "count_updates")
        .expect("count_updates is registered");
    assert_eq!(default.options.channel, None);
    assert_eq!(
        Subscriber::from_registration(default).channel_name(),
        event_bus_core::DEFAULT_CHANNEL
    );
}

#[test]
fn the_registered_thunk_decodes_and_validates() {
    let registration = registered_subscribers()
        .find(|s| s.name == "count_updates")
        .expect("count_updates is registered");
    let tenant = Uuid::new_v4();
    let prepared =
        (registration.prepare)(&envelope_json("TICKET_UPDATED", valid_ticket_json(tenant)))
            .expect("a valid envelope prepares");
    assert_eq!(prepared.meta().tenant_id, tenant);

    let mut invalid = valid_ticket_json(tenant);
    invalid["ticketTitle"] = serde_json::json!("");
    let failure = (registration.prepare)(&envelope_json("TICKET_UPDATED", invalid)).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Validation);
    assert!(failure.message.contains("payload.ticketTitle"), "{failure}");

    let subscriber = Subscriber::from_registration(registration);
    assert_eq!(subscriber.name(), "count_updates");
    assert!(
        subscriber.location().contains("derive.rs"),
        "{}",
        subscriber.location()
    );
}

#[tokio::test]
async fn handlers_stay_callable_directly() {
    let tenant = Uuid::new_v4();
    let event = TimeEntrySubmitted { tenant_id: tenant };
    let ctx = Context::for_test(tenant, Default::default());
    let error = on_time_entry(Envelope::new(event), ctx).await.unwrap_err();
    assert_eq!(error.to_string(), "always fails");

    let ctx = Context::for_test(tenant, Default::default());
    let event = HTTPRequestSeen { tenant_id: tenant };
    nested::seen(Envelope::new(event), ctx).await.unwrap();
}

#[tokio::test]
async fn a_discovered_subscriber_runs_on_the_memory_bus() {
    let bus = MemoryBus::builder()
        .only(["count_updates"])
        .build()
        .await
        .expect("the bus builds");
    let running = bus.start().await.expect("the bus starts");
    let before = HANDLED.load(AtomicOrdering::SeqCst);
    bus.publish(valid_ticket())
        .await
        .expect("a valid event is published");
    running.idle().await;
    assert_eq!(HANDLED.load(AtomicOrdering::SeqCst), before + 1);
    running.shutdown().await.expect("the bus shuts down");

    // Publishing validates first.
    let invalid = TicketUpdated {
        tags: Vec::new(),
        ..valid_ticket()
    };
    assert!(bus.publish(invalid).await.is_err());
}
