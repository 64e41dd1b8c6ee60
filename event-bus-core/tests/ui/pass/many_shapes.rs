//! Every supported shape compiles, without a warning.
#![deny(warnings)]

use std::sync::Arc;

use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError, State, StateMap};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Shared state, handed to the bus with `.state(value)`.
pub struct Mailer {
    pub from: &'static str,
}

/// More shared state.
#[derive(Debug, Default)]
pub struct Stats;

fn short(value: &String) -> Result<(), String> {
    if value.len() < 100 {
        Ok(())
    } else {
        Err("too long".to_owned())
    }
}

mod checks {
    pub fn positive(value: &i64) -> Result<(), &'static str> {
        if *value > 0 {
            Ok(())
        } else {
            Err("must be positive")
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_UPDATED")]
pub struct TicketUpdated {
    pub tenant_id: Uuid,
    #[event(validate(non_empty, length(min = 1, max = 64), custom = short))]
    pub title: String,
    #[event(validate(length(max = 64)))]
    pub changes: Option<serde_json::Map<String, serde_json::Value>>,
    #[event(validate(range(min = -10, max = 10)))]
    pub delta: i32,
    #[event(validate(range(min = 0, max = 2.5)))]
    pub ratio: f64,
    #[event(validate(range(max = 5)))]
    pub priority: Option<u8>,
    #[event(validate(uuid))]
    pub external_id: Option<String>,
    #[event(validate(custom = checks::positive))]
    #[serde(rename = "minutes")]
    pub minutes_spent: i64,
    #[event(validate(non_empty), validate(length(max = 3)))]
    pub tags: Vec<String>,
}

// `#[event(tenant)]` on a `String` field, default name, other serde attributes left alone.
#[derive(Debug, Serialize, Deserialize, Event)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE", deny_unknown_fields)]
struct HTTPRequestSeen {
    #[event(tenant)]
    #[event(validate(uuid))]
    #[serde(default)]
    org: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<String>,
}

macro_rules! rename_all {
    ($($name:ident: $rule:literal),* $(,)?) => {$(
        #[derive(Debug, Serialize, Deserialize, Event)]
        #[serde(rename_all = $rule)]
        pub struct $name {
            pub tenant_id: Uuid,
        }
    )*};
}

rename_all! {
    CaseLower: "lowercase",
    CaseUpper: "UPPERCASE",
    CasePascal: "PascalCase",
    CaseCamel: "camelCase",
    CaseSnake: "snake_case",
    CaseScreamingSnake: "SCREAMING_SNAKE_CASE",
    CaseKebab: "kebab-case",
    CaseScreamingKebab: "SCREAMING-KEBAB-CASE",
}

#[derive(Debug, Serialize, Deserialize, Event)]
#[serde(rename_all(serialize = "camelCase", deserialize = "camelCase"))]
pub struct TimeEntrySubmitted {
    pub tenant_id: Uuid,
    #[serde(rename(serialize = "mins", deserialize = "mins"))]
    #[event(validate(range(min = 1)))]
    pub minutes: u32,
}

#[subscriber("TICKET_UPDATED")]
async fn on_update(event: Envelope<TicketUpdated>, ctx: Context) -> Result<(), HandlerError> {
    assert_eq!(event.payload.tenant_id, ctx.tenant_id());
    Ok(())
}

#[subscriber(
    "TICKET_UPDATED",
    name = "ticket-io",
    concurrency = 4,
    max_attempts = 5,
    start = "earliest",
    ordering = "tenant"
)]
pub async fn io_errors(
    _event: event_bus_core::Envelope<TicketUpdated>,
    _: Context,
) -> Result<(), std::io::Error> {
    Ok(())
}

#[subscriber("HTTP_REQUEST_SEEN", start = "latest", ordering = "none")]
async fn seen(
    _: Envelope<HTTPRequestSeen>,
    _ctx: event_bus_core::Context,
) -> Result<(), HandlerError> {
    Ok(())
}

// `State<T>` parameters after the context: none, one, or several, through any path ending in
// `State`, with any pattern.
#[subscriber("TICKET_UPDATED", name = "ticket-mail")]
async fn mail(
    event: Envelope<TicketUpdated>,
    ctx: Context,
    mailer: State<Mailer>,
) -> Result<(), HandlerError> {
    assert_eq!(event.payload.tenant_id, ctx.tenant_id());
    assert!(!mailer.from.is_empty());
    Ok(())
}

#[subscriber("TICKET_UPDATED", name = "ticket-stats", concurrency = 2)]
pub async fn stats(
    _event: Envelope<TicketUpdated>,
    _: Context,
    _mailer: event_bus_core::State<Mailer>,
    stats: State<Arc<Stats>>,
    _: State<std::collections::HashMap<String, Vec<u8>>>,
) -> Result<(), std::io::Error> {
    let _arc: &Arc<Stats> = &stats;
    let _again: Arc<Arc<Stats>> = State::into_arc(stats);
    Ok(())
}

mod nested {
    use super::*;

    #[subscriber("TIME_ENTRY_SUBMITTED", max_attempts = 1)]
    pub(crate) async fn r#submitted(
        event: Envelope<crate::TimeEntrySubmitted>,
        _ctx: Context,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if event.payload.minutes == 0 {
            return Err("no minutes".into());
        }
        Ok(())
    }
}

fn main() {
    assert_eq!(TicketUpdated::EVENT_TYPE, "TICKET_UPDATED");
    assert_eq!(HTTPRequestSeen::EVENT_TYPE, "HTTP_REQUEST_SEEN");
    assert_eq!(TimeEntrySubmitted::EVENT_TYPE, "TIME_ENTRY_SUBMITTED");
    assert_eq!(CaseScreamingKebab::EVENT_TYPE, "CASE_SCREAMING_KEBAB");

    let tenant = Uuid::new_v4();
    let event = HTTPRequestSeen {
        org: tenant.to_string(),
        r#type: None,
    };
    assert_eq!(event.tenant_id(), tenant);

    // Handlers stay ordinary functions.
    let ctx = Context::for_test(tenant, Default::default());
    let _future = seen(Envelope::new(event), ctx);
    let _ = (on_update, io_errors, nested::submitted, stats);

    // State parameters are ordinary arguments when the function is called directly.
    let mut state = StateMap::new();
    state.insert(Mailer { from: "desk" });
    let ctx = Context::for_test(tenant, state);
    let mailer = State::<Mailer>::from_context(&ctx).expect("the map holds a Mailer");
    let _ = (
        State::new(Mailer { from: "x" }),
        State::<Stats>::from(Arc::new(Stats)),
    );
    let _future = mail(
        Envelope::new(TicketUpdated {
            tenant_id: tenant,
            title: "t".to_owned(),
            changes: None,
            delta: 0,
            ratio: 1.0,
            priority: None,
            external_id: None,
            minutes_spent: 1,
            tags: Vec::new(),
        }),
        ctx,
        mailer,
    );
}
