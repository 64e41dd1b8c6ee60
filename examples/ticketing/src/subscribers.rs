//! The subscribers: plain async functions, declared with `#[subscriber]` and discovered by the
//! bus at start. Each one is its own consumer group (on Redis) and receives every event of its
//! type; one failing never blocks or re-runs another.
//!
//! Every subscriber name starts with the component it belongs to (`ticket-email`,
//! `sla-tracker`, `audit-log`, `billing`, `invoice-webhook`); the summary table groups by it.
//!
//! What a handler uses from the application's state it takes as `State<T>` parameters: the
//! bus checks at start that it was given every one of them, so a forgotten `.state(value)`
//! stops the start instead of failing events.

use chrono::Duration;
use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError, State};
use uuid::Uuid;

use crate::events::{
    change_str, change_time, InvoiceFinalized, InvoiceGenerated, ProjectClosed, ProjectCreated,
    ProjectUpdated, TicketClosed, TicketCreated, TicketUpdated, TimeEntryApproved,
    TimeEntrySubmitted, PRIORITIES,
};
use crate::state::{
    AuditEntry, AuditLog, Directory, Email, Mailer, Scoreboard, SlaBoard, WebhookCall, Webhooks,
};

/// Every subscriber this program relies on. `main` hands the list to `.expect_subscribers`, so
/// a subscriber that is not linked into the binary fails the start instead of silently never
/// running.
pub const ALL: [&str; 16] = [
    "ticket-email",
    "ticket-email-closed",
    "sla-tracker-opened",
    "sla-tracker-closed",
    "audit-log-ticket-created",
    "audit-log-ticket-updated",
    "audit-log-ticket-closed",
    "audit-log-project-created",
    "audit-log-project-updated",
    "audit-log-project-closed",
    "audit-log-time-entry-submitted",
    "audit-log-time-entry-approved",
    "audit-log-invoice-generated",
    "audit-log-invoice-finalized",
    "billing-finalize",
    "invoice-webhook",
];

/// The components, in the order of the summary's columns.
pub const COMPONENTS: [&str; 5] = [
    "ticket-email",
    "sla-tracker",
    "audit-log",
    "billing",
    "invoice-webhook",
];

/// The component a subscriber belongs to.
pub fn component_of(subscriber: &str) -> &str {
    COMPONENTS
        .iter()
        .find(|c| subscriber.starts_with(**c))
        .copied()
        .unwrap_or(subscriber)
}

/// Counts the outcome on the scoreboard, and passes it on.
fn score(
    board: &Scoreboard,
    ctx: &Context,
    result: Result<(), HandlerError>,
) -> Result<(), HandlerError> {
    match &result {
        Ok(()) => board.handled(ctx.tenant_id(), ctx.subscriber(), ctx.attempt()),
        Err(_) => board.failed(ctx.tenant_id(), ctx.subscriber()),
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Ticket email notifier: the seed's `ticketEmailSubscriber`, which reads the e-mail service's
// own channel, `emailservice::v7`, like these two (the ticket events are published to it).

/// Emails the tenant's support desk about every ticket change. Up to four emails go out at
/// once, but one tenant's emails stay in order; a busy mail server is retried (3 attempts).
#[subscriber(
    "TICKET_UPDATED",
    name = "ticket-email",
    channel = "emailservice::v7",
    concurrency = 4,
    ordering = "tenant",
    max_attempts = 3
)]
pub async fn email_on_update(
    event: Envelope<TicketUpdated>,
    ctx: Context,
    directory: State<Directory>,
    mailer: State<Mailer>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    let status = change_str(&event.payload.changes, "status").unwrap_or("edited");
    let what = format!("updated: {status}");
    let result = email(&ctx, &directory, &mailer, event.payload.ticket_id, &what);
    score(&board, &ctx, result)
}

/// Emails the support desk when a ticket is closed.
#[subscriber(
    "TICKET_CLOSED",
    name = "ticket-email-closed",
    channel = "emailservice::v7",
    max_attempts = 3
)]
pub async fn email_on_close(
    event: Envelope<TicketClosed>,
    ctx: Context,
    directory: State<Directory>,
    mailer: State<Mailer>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    let result = email(&ctx, &directory, &mailer, event.payload.ticket_id, "closed");
    score(&board, &ctx, result)
}

fn email(
    ctx: &Context,
    directory: &Directory,
    mailer: &Mailer,
    ticket_id: Uuid,
    what: &str,
) -> Result<(), HandlerError> {
    let tenant = directory
        .tenant(ctx.tenant_id())
        .ok_or_else(|| HandlerError::permanent(format!("unknown tenant {}", ctx.tenant_id())))?;
    let email = Email {
        tenant_id: tenant.id,
        to: tenant.support_email.to_owned(),
        subject: format!("[{}] Ticket {} {what}", tenant.name, short(ticket_id)),
    };
    // A refused message is worth retrying: the error is transient (the default for `?`/`into`).
    mailer
        .send(ticket_id, email)
        .map_err(HandlerError::transient)
}

fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

// ---------------------------------------------------------------------------------------------
// SLA tracker.

/// Starts a ticket's SLA clock: resolution due `PRIORITIES` hours after it was entered.
#[subscriber("TICKET_CREATED", name = "sla-tracker-opened", concurrency = 2)]
pub async fn sla_open(
    event: Envelope<TicketCreated>,
    ctx: Context,
    sla: State<SlaBoard>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    let changes = &event.payload.changes;
    let priority = change_str(changes, "priority").unwrap_or("medium");
    let hours = PRIORITIES
        .iter()
        .find(|(name, _)| *name == priority)
        .map_or(24, |(_, hours)| *hours);
    let entered = change_time(changes, "entered_at").unwrap_or(event.timestamp);
    sla.opened(
        ctx.tenant_id(),
        event.payload.ticket_id,
        entered + Duration::hours(hours),
    );
    score(&board, &ctx, Ok(()))
}

/// Stops a ticket's SLA clock.
#[subscriber("TICKET_CLOSED", name = "sla-tracker-closed", concurrency = 2)]
pub async fn sla_close(
    event: Envelope<TicketClosed>,
    ctx: Context,
    sla: State<SlaBoard>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    let closed = change_time(&event.payload.changes, "closed_at").unwrap_or(event.timestamp);
    sla.closed(ctx.tenant_id(), event.payload.ticket_id, closed);
    score(&board, &ctx, Ok(()))
}

// ---------------------------------------------------------------------------------------------
// Audit log: one subscriber per event type, all writing to the same trail. `start = "earliest"`:
// deployed for the first time, the audit log reads everything still in the streams.

fn audit<E: Event>(
    event: &Envelope<E>,
    ctx: &Context,
    log: &AuditLog,
    board: &Scoreboard,
) -> Result<(), HandlerError> {
    // The envelope as a publish writes it (`encode_envelope` keeps its id and timestamp).
    let json = event_bus_core::transport::encode_envelope(event)
        .map_err(HandlerError::permanent)?
        .json;
    let entry = AuditEntry {
        tenant_id: ctx.tenant_id(),
        event_type: event.event_type.clone(),
        at: event.timestamp,
        json,
    };
    // Keyed by event id, so a redelivery does not write a second line.
    log.record(event.id, entry);
    score(board, ctx, Ok(()))
}

#[subscriber(
    "TICKET_CREATED",
    name = "audit-log-ticket-created",
    start = "earliest"
)]
pub async fn audit_ticket_created(
    e: Envelope<TicketCreated>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber(
    "TICKET_UPDATED",
    name = "audit-log-ticket-updated",
    start = "earliest"
)]
pub async fn audit_ticket_updated(
    e: Envelope<TicketUpdated>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber("TICKET_CLOSED", name = "audit-log-ticket-closed", start = "earliest")]
pub async fn audit_ticket_closed(
    e: Envelope<TicketClosed>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber(
    "PROJECT_CREATED",
    name = "audit-log-project-created",
    start = "earliest"
)]
pub async fn audit_project_created(
    e: Envelope<ProjectCreated>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber(
    "PROJECT_UPDATED",
    name = "audit-log-project-updated",
    start = "earliest"
)]
pub async fn audit_project_updated(
    e: Envelope<ProjectUpdated>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber(
    "PROJECT_CLOSED",
    name = "audit-log-project-closed",
    start = "earliest"
)]
pub async fn audit_project_closed(
    e: Envelope<ProjectClosed>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber(
    "TIME_ENTRY_SUBMITTED",
    name = "audit-log-time-entry-submitted",
    start = "earliest"
)]
pub async fn audit_time_entry_submitted(
    e: Envelope<TimeEntrySubmitted>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber(
    "TIME_ENTRY_APPROVED",
    name = "audit-log-time-entry-approved",
    start = "earliest"
)]
pub async fn audit_time_entry_approved(
    e: Envelope<TimeEntryApproved>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber(
    "INVOICE_GENERATED",
    name = "audit-log-invoice-generated",
    start = "earliest"
)]
pub async fn audit_invoice_generated(
    e: Envelope<InvoiceGenerated>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

#[subscriber(
    "INVOICE_FINALIZED",
    name = "audit-log-invoice-finalized",
    start = "earliest"
)]
pub async fn audit_invoice_finalized(
    e: Envelope<InvoiceFinalized>,
    ctx: Context,
    log: State<AuditLog>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    audit(&e, &ctx, &log, &board)
}

// ---------------------------------------------------------------------------------------------
// Billing: finalizes generated invoices, publishing a follow-up event on the same bus.

/// Locks a generated invoice and announces it with `INVOICE_FINALIZED`.
#[subscriber("INVOICE_GENERATED", name = "billing-finalize")]
pub async fn finalize_invoice(
    event: Envelope<InvoiceGenerated>,
    ctx: Context,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    let invoice = event.payload;
    let result = ctx
        .publish(InvoiceFinalized {
            tenant_id: invoice.tenant_id,
            invoice_id: invoice.invoice_id,
            user_id: invoice.user_id,
            invoice_number: invoice.invoice_number,
            total_cents: invoice.total_cents,
            currency: invoice.currency,
        })
        .await
        .map(drop)
        .map_err(HandlerError::from);
    score(&board, &ctx, result)
}

// ---------------------------------------------------------------------------------------------
// Invoice webhook.

/// POSTs every finalized invoice to the endpoint the tenant registered. A missing or malformed
/// endpoint is a bad record that no retry fixes: the error is permanent, the event goes to the
/// dead letters at once, and is replayed once someone corrects the record.
#[subscriber("INVOICE_FINALIZED", name = "invoice-webhook", max_attempts = 5)]
pub async fn post_invoice_webhook(
    event: Envelope<InvoiceFinalized>,
    ctx: Context,
    webhooks: State<Webhooks>,
    directory: State<Directory>,
    board: State<Scoreboard>,
) -> Result<(), HandlerError> {
    let result = (|| -> Result<(), HandlerError> {
        let url = webhooks.endpoint(ctx.tenant_id()).ok_or_else(|| {
            let name = directory.name(ctx.tenant_id());
            HandlerError::permanent(format!("{name} has no invoice webhook endpoint"))
        })?;
        webhooks
            .post(WebhookCall {
                tenant_id: ctx.tenant_id(),
                url,
                invoice_number: event.payload.invoice_number.clone(),
            })
            .map_err(HandlerError::permanent)
    })();
    score(&board, &ctx, result)
}

#[cfg(test)]
mod tests {
    use event_bus_core::{Bus, MemoryBus, StartError, StateMap};

    use super::*;
    use crate::state::Tenant;

    fn tenant() -> Tenant {
        Tenant {
            id: Uuid::from_u128(0x7e57),
            name: "Test Tenant",
            support_email: "support@test.example",
        }
    }

    fn directory() -> State<Directory> {
        State::new(Directory {
            tenants: vec![tenant()],
        })
    }

    fn invoice(tenant_id: Uuid) -> InvoiceFinalized {
        InvoiceFinalized {
            tenant_id,
            invoice_id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            invoice_number: "INV-0007".to_owned(),
            total_cents: 4_200,
            currency: "USD".to_owned(),
        }
    }

    /// A handler called directly, as in a unit test: its `State<T>` values are passed in.
    async fn post(t: &Tenant, webhooks: &Webhooks) -> Result<(), HandlerError> {
        post_invoice_webhook(
            Envelope::new(invoice(t.id)),
            Context::for_test(t.id, StateMap::new()),
            State::new(webhooks.clone()),
            directory(),
            State::new(Scoreboard::default()),
        )
        .await
    }

    #[tokio::test]
    async fn webhook_is_posted_to_the_tenants_endpoint() {
        let t = tenant();
        let webhooks = Webhooks::default();
        webhooks.set_endpoint(t.id, "https://hooks.test.example/invoices");

        post(&t, &webhooks).await.expect("posted");
        assert_eq!(
            webhooks.calls(),
            [WebhookCall {
                tenant_id: t.id,
                url: "https://hooks.test.example/invoices".to_owned(),
                invoice_number: "INV-0007".to_owned(),
            }]
        );
    }

    #[tokio::test]
    async fn a_bad_endpoint_is_a_permanent_failure() {
        let t = tenant();
        let webhooks = Webhooks::default();

        let missing = post(&t, &webhooks).await.expect_err("no endpoint");
        assert!(missing.is_permanent());
        assert_eq!(
            missing.to_string(),
            "Test Tenant has no invoice webhook endpoint"
        );

        webhooks.set_endpoint(t.id, "htp://hooks.test.example");
        let malformed = post(&t, &webhooks).await.expect_err("not https");
        assert!(malformed.is_permanent());
        assert!(webhooks.calls().is_empty());
    }

    #[tokio::test]
    async fn missing_state_stops_the_start() {
        // Everything invoice-webhook takes but the webhooks: the bus refuses to start, instead
        // of dead-lettering every invoice.
        let bus = MemoryBus::builder()
            .state(Directory::default())
            .state(Scoreboard::default())
            .only(["invoice-webhook"])
            .build()
            .await
            .expect("built");
        let err = bus.start().await.expect_err("no webhooks");
        assert!(matches!(err, StartError::MissingState { .. }), "{err}");
        assert!(err.to_string().contains("Webhooks"), "{err}");
    }

    #[tokio::test]
    async fn a_busy_mail_server_is_retried() {
        let t = tenant();
        let mailer = Mailer::default();
        let ticket_id = Uuid::from_u128(9);
        mailer.refuse_once(ticket_id);
        let close = || {
            email_on_close(
                Envelope::new(TicketClosed {
                    tenant_id: t.id,
                    ticket_id,
                    user_id: Uuid::from_u128(2),
                    changes: None,
                }),
                Context::for_test(t.id, StateMap::new()),
                directory(),
                State::new(mailer.clone()),
                State::new(Scoreboard::default()),
            )
        };

        let err = close().await.expect_err("busy");
        assert!(err.is_transient());
        close().await.expect("sent on the second try");
        assert_eq!(mailer.sent().len(), 1);
        assert!(mailer.sent()[0]
            .subject
            .starts_with("[Test Tenant] Ticket 00000000 closed"));
    }

    #[test]
    fn subscriber_names_map_to_components() {
        for name in ALL {
            assert!(COMPONENTS.contains(&component_of(name)), "{name}");
        }
    }
}
