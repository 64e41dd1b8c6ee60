//! The application's shared state, handed to the bus with `.state(...)` and taken by handlers
//! as `State<T>` parameters. In the seed these are a database, an SMTP server and HTTP calls;
//! here they are in-memory stand-ins, each a cheap `Clone` around an `Arc<Mutex<..>>` so `main`
//! keeps a handle to read them afterwards.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the handlers share, as `main` holds it. Each field goes to the bus builder as
/// its own `.state(...)` value, so a handler asks for exactly what it uses.
#[derive(Debug, Clone, Default)]
pub struct App {
    pub directory: Directory,
    pub mailer: Mailer,
    pub sla: SlaBoard,
    pub audit: AuditLog,
    pub webhooks: Webhooks,
    pub scoreboard: Scoreboard,
}

/// A customer of the PSA: one tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: Uuid,
    pub name: &'static str,
    pub support_email: &'static str,
}

/// The tenants (read-only).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub tenants: Vec<Tenant>,
}

impl Directory {
    pub fn tenant(&self, id: Uuid) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    pub fn name(&self, id: Uuid) -> &'static str {
        self.tenant(id).map_or("unknown tenant", |t| t.name)
    }
}

/// One email handed to the mail server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub tenant_id: Uuid,
    pub to: String,
    pub subject: String,
}

/// The mail server: an outbox, and a switch to make it refuse a message once (SMTP 421).
#[derive(Debug, Clone, Default)]
pub struct Mailer {
    sent: Arc<Mutex<Vec<Email>>>,
    busy_once: Arc<Mutex<HashSet<Uuid>>>,
}

impl Mailer {
    /// The next email about `ticket_id` is refused once with a transient error.
    pub fn refuse_once(&self, ticket_id: Uuid) {
        lock(&self.busy_once).insert(ticket_id);
    }

    /// Sends, unless the server is "busy" for this ticket.
    pub fn send(&self, ticket_id: Uuid, email: Email) -> Result<(), String> {
        if lock(&self.busy_once).remove(&ticket_id) {
            return Err("SMTP 421 4.7.0 try again later".to_owned());
        }
        lock(&self.sent).push(email);
        Ok(())
    }

    pub fn sent(&self) -> Vec<Email> {
        lock(&self.sent).clone()
    }
}

/// A ticket's service-level clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaClock {
    pub tenant_id: Uuid,
    pub due: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// How a ticket did against its SLA, as of a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaOutcome {
    Met,
    Breached,
    Open,
}

impl SlaClock {
    pub fn outcome(&self, now: DateTime<Utc>) -> SlaOutcome {
        match (self.due, self.closed_at) {
            (Some(due), Some(closed)) if closed <= due => SlaOutcome::Met,
            (Some(due), None) if now <= due => SlaOutcome::Open,
            (Some(_), _) => SlaOutcome::Breached,
            // Closed, but the opening was not seen (yet): nothing to judge.
            (None, _) => SlaOutcome::Open,
        }
    }
}

/// The SLA table, one clock per ticket. Opening and closing arrive on different streams, in
/// no guaranteed order, so each handler fills in its half of the row.
#[derive(Debug, Clone, Default)]
pub struct SlaBoard {
    clocks: Arc<Mutex<HashMap<Uuid, SlaClock>>>,
}

impl SlaBoard {
    pub fn opened(&self, tenant_id: Uuid, ticket_id: Uuid, due: DateTime<Utc>) {
        let mut clocks = lock(&self.clocks);
        let clock = clocks.entry(ticket_id).or_default();
        clock.tenant_id = tenant_id;
        clock.due = Some(due);
    }

    pub fn closed(&self, tenant_id: Uuid, ticket_id: Uuid, at: DateTime<Utc>) {
        let mut clocks = lock(&self.clocks);
        let clock = clocks.entry(ticket_id).or_default();
        clock.tenant_id = tenant_id;
        clock.closed_at = Some(at);
    }

    /// `(met, breached, open)` for a tenant.
    pub fn tally(&self, tenant_id: Uuid, now: DateTime<Utc>) -> (usize, usize, usize) {
        let clocks = lock(&self.clocks);
        let mut tally = (0, 0, 0);
        for clock in clocks.values().filter(|c| c.tenant_id == tenant_id) {
            match clock.outcome(now) {
                SlaOutcome::Met => tally.0 += 1,
                SlaOutcome::Breached => tally.1 += 1,
                SlaOutcome::Open => tally.2 += 1,
            }
        }
        tally
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub tenant_id: Uuid,
    pub event_type: String,
    pub at: DateTime<Utc>,
    /// The event as the wire carries it: its envelope, encoded as a publish writes it.
    pub json: String,
}

/// The audit trail, keyed by event id: delivery is at-least-once, so recording an event twice
/// must not write two lines.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    entries: Arc<Mutex<BTreeMap<Uuid, AuditEntry>>>,
}

impl AuditLog {
    /// Records an event; `false` when it was already there (a redelivery).
    pub fn record(&self, event_id: Uuid, entry: AuditEntry) -> bool {
        lock(&self.entries).insert(event_id, entry).is_none()
    }

    /// Every event recorded, in event-id order (the schema tests read them).
    #[cfg(test)]
    pub fn entries(&self) -> Vec<AuditEntry> {
        lock(&self.entries).values().cloned().collect()
    }

    pub fn count(&self, tenant_id: Uuid) -> usize {
        lock(&self.entries)
            .values()
            .filter(|e| e.tenant_id == tenant_id)
            .count()
    }
}

/// A webhook call that went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCall {
    pub tenant_id: Uuid,
    pub url: String,
    pub invoice_number: String,
}

/// Where each tenant wants its invoices announced, and what was sent.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    endpoints: Arc<Mutex<HashMap<Uuid, String>>>,
    calls: Arc<Mutex<Vec<WebhookCall>>>,
}

impl Webhooks {
    pub fn set_endpoint(&self, tenant_id: Uuid, url: impl Into<String>) {
        lock(&self.endpoints).insert(tenant_id, url.into());
    }

    pub fn endpoint(&self, tenant_id: Uuid) -> Option<String> {
        lock(&self.endpoints).get(&tenant_id).cloned()
    }

    /// "POSTs" to an endpoint. Only `https://` URLs are accepted.
    pub fn post(&self, call: WebhookCall) -> Result<(), String> {
        if !call.url.starts_with("https://") {
            return Err(format!(
                "refusing to post to {:?}: not an https:// URL",
                call.url
            ));
        }
        lock(&self.calls).push(call);
        Ok(())
    }

    pub fn calls(&self) -> Vec<WebhookCall> {
        lock(&self.calls).clone()
    }
}

/// What each subscriber did, per tenant: the numbers of the summary table, and what the demo
/// checks before it exits 0.
#[derive(Debug, Clone, Default)]
pub struct Scoreboard {
    counts: Arc<Mutex<BTreeMap<(Uuid, String), Counts>>>,
}

/// One cell of the scoreboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Deliveries the handler finished (`Ok`).
    pub handled: u64,
    /// Deliveries the handler failed (`Err`), retried or dead-lettered.
    pub failed: u64,
    /// Of the handled ones, those that succeeded on a retry.
    pub recovered: u64,
}

impl Scoreboard {
    pub fn handled(&self, tenant_id: Uuid, subscriber: &str, attempt: u32) {
        let mut counts = lock(&self.counts);
        let cell = counts
            .entry((tenant_id, subscriber.to_owned()))
            .or_default();
        cell.handled += 1;
        if attempt > 1 {
            cell.recovered += 1;
        }
    }

    pub fn failed(&self, tenant_id: Uuid, subscriber: &str) {
        lock(&self.counts)
            .entry((tenant_id, subscriber.to_owned()))
            .or_default()
            .failed += 1;
    }

    /// Every cell, by (tenant, subscriber).
    pub fn snapshot(&self) -> BTreeMap<(Uuid, String), Counts> {
        lock(&self.counts).clone()
    }

    /// Totals over every cell.
    pub fn totals(&self) -> Counts {
        lock(&self.counts)
            .values()
            .fold(Counts::default(), |mut sum, c| {
                sum.handled += c.handled;
                sum.failed += c.failed;
                sum.recovered += c.recovered;
                sum
            })
    }
}
