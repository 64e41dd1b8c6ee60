//! The script of the demo: one working day (2026-11-26) at three tenants of the PSA, with
//! fixed ids and times so that every run tells the same story and ends with the same numbers.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::events::{
    Changes, InvoiceGenerated, ProjectClosed, ProjectCreated, ProjectUpdated, TicketClosed,
    TicketCreated, TicketUpdated, TimeEntryApproved, TimeEntrySubmitted,
};
use crate::state::Tenant;

/// A deterministic, well-formed (version 4) UUID.
pub fn id(tenant: u8, kind: u8, n: u16) -> Uuid {
    let [hi, lo] = n.to_be_bytes();
    let bytes = [
        tenant, kind, hi, lo, 0x5e, 0xed, 0, 0xda, 0, 0x7a, 0xde, 0x30, 0x0d, 0xa7, 0x00, tenant,
    ];
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

const USER: u8 = 1;
const TICKET: u8 = 2;
const PROJECT: u8 = 3;
const TIME_ENTRY: u8 = 4;
const INVOICE: u8 = 5;

/// The day, at `hh:mm` UTC.
pub fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, hour, minute, 0)
        .single()
        .unwrap_or_default()
}

fn day() -> NaiveDate {
    at(0, 0).date_naive()
}

struct TicketSpec {
    title: &'static str,
    priority: &'static str,
    entered: (u32, u32),
    updates: &'static [((u32, u32), &'static str)],
    closed: Option<(u32, u32)>,
}

struct TenantSpec {
    tenant: Tenant,
    prefix: &'static str,
    /// The invoice webhook endpoint on record.
    webhook: &'static str,
    hourly_rate_cents: i64,
    tickets: &'static [TicketSpec],
    /// Name, budget hours, created, optional update (time, column, value).
    projects: &'static [(&'static str, Option<u32>, (u32, u32))],
    project_update: Option<((u32, u32), &'static str, u32)>,
    /// A project that ends today (opened before the day).
    project_closed: Option<(u32, u32)>,
    /// When, on which ticket (index; projects are `100 + index`), minutes, notes.
    time: &'static [((u32, u32), usize, u32, &'static str)],
}

fn specs() -> Vec<TenantSpec> {
    vec![
        TenantSpec {
            tenant: Tenant {
                id: Uuid::nil(), // filled in by `day_plan`
                name: "Acme Plumbing",
                support_email: "support@acme-plumbing.example",
            },
            prefix: "ACME",
            webhook: "https://erp.acme-plumbing.example/hooks/invoices",
            hourly_rate_cents: 9_500,
            tickets: &[
                TicketSpec {
                    title: "Boiler leaking in plant room",
                    priority: "urgent",
                    entered: (8, 5),
                    updates: &[((8, 20), "in_progress")],
                    closed: Some((10, 40)),
                },
                TicketSpec {
                    title: "Invoice portal login fails",
                    priority: "high",
                    entered: (9, 10),
                    updates: &[((9, 45), "in_progress"), ((13, 30), "waiting_on_customer")],
                    closed: Some((17, 50)),
                },
                TicketSpec {
                    title: "Order more PEX fittings",
                    priority: "low",
                    entered: (11, 0),
                    updates: &[],
                    closed: None,
                },
                TicketSpec {
                    title: "Van 3 GPS tracker offline",
                    priority: "medium",
                    entered: (14, 15),
                    updates: &[((15, 0), "in_progress")],
                    closed: Some((16, 30)),
                },
            ],
            projects: &[("Spring boiler service round", Some(120), (8, 0))],
            project_update: Some(((12, 30), "budget_hours", 140)),
            project_closed: None,
            time: &[
                (
                    (10, 45),
                    0,
                    150,
                    "Replaced valve and pressure-tested the loop",
                ),
                (
                    (12, 0),
                    100,
                    90,
                    "Planned the service round with the office",
                ),
                ((16, 35), 3, 45, "Re-seated the GPS unit, checked the fuse"),
                ((17, 0), 1, 60, "Reset SSO mapping for the portal"),
                (
                    (17, 20),
                    100,
                    120,
                    "Surveyed three sites for the service round",
                ),
            ],
        },
        TenantSpec {
            tenant: Tenant {
                id: Uuid::nil(), // filled in by `day_plan`
                name: "Birch & Stone Legal",
                support_email: "helpdesk@birchstone.example",
            },
            prefix: "BSL",
            webhook: "https://billing.birchstone.example/psa/invoices",
            hourly_rate_cents: 14_000,
            tickets: &[
                TicketSpec {
                    title: "Partner's phone stopped syncing mail",
                    priority: "high",
                    entered: (8, 30),
                    updates: &[((8, 35), "in_progress")],
                    closed: Some((11, 15)),
                },
                // The mail server refuses the first email about this one (see `main`).
                TicketSpec {
                    title: "Laptop for the new trainee",
                    priority: "medium",
                    entered: (9, 0),
                    updates: &[((10, 0), "in_progress"), ((15, 20), "waiting_on_parts")],
                    closed: None,
                },
                TicketSpec {
                    title: "Printer on floor 2 jams",
                    priority: "low",
                    entered: (13, 40),
                    updates: &[((16, 0), "in_progress")],
                    closed: Some((16, 45)),
                },
            ],
            projects: &[("Office move to Dock Street", Some(80), (8, 15))],
            project_update: Some(((13, 0), "budget_hours", 96)),
            project_closed: Some((17, 30)),
            time: &[
                (
                    (11, 20),
                    0,
                    75,
                    "Re-enrolled the phone, rebuilt the mail profile",
                ),
                ((14, 30), 100, 180, "Cabling plan for Dock Street"),
                ((16, 50), 2, 30, "Cleared the fuser, ordered a roller kit"),
                ((17, 10), 1, 90, "Imaged the laptop, waiting for the dock"),
            ],
        },
        TenantSpec {
            tenant: Tenant {
                id: Uuid::nil(), // filled in by `day_plan`
                name: "Cobalt Labs",
                support_email: "it@cobalt-labs.example",
            },
            prefix: "COB",
            // The bad record: a typo in the scheme. The webhook refuses it.
            webhook: "htp://finance.cobalt-labs.example/invoices",
            hourly_rate_cents: 12_000,
            tickets: &[
                TicketSpec {
                    title: "Lab VPN drops every hour",
                    priority: "urgent",
                    entered: (8, 0),
                    updates: &[((8, 10), "in_progress"), ((10, 30), "waiting_on_vendor")],
                    closed: Some((12, 10)),
                },
                TicketSpec {
                    title: "Backup job failed overnight",
                    priority: "high",
                    entered: (8, 10),
                    updates: &[((8, 15), "in_progress")],
                    closed: Some((11, 0)),
                },
                TicketSpec {
                    title: "Share access for the new postdoc",
                    priority: "medium",
                    entered: (9, 30),
                    updates: &[((9, 40), "in_progress")],
                    closed: Some((10, 5)),
                },
                TicketSpec {
                    title: "File server slow in the afternoons",
                    priority: "medium",
                    entered: (10, 45),
                    updates: &[((11, 30), "in_progress"), ((16, 10), "monitoring")],
                    closed: None,
                },
                TicketSpec {
                    title: "Replace UPS battery in rack B",
                    priority: "low",
                    entered: (15, 30),
                    updates: &[],
                    closed: None,
                },
            ],
            projects: &[("Sequencer cluster upgrade", Some(200), (8, 40))],
            project_update: None,
            project_closed: Some((17, 40)),
            time: &[
                (
                    (10, 10),
                    2,
                    20,
                    "Granted group access, verified from the postdoc's login",
                ),
                (
                    (11, 5),
                    1,
                    95,
                    "Rotated the backup credentials, re-ran the job",
                ),
                ((12, 15), 0, 140, "Worked the VPN drops with the vendor"),
                ((15, 0), 100, 240, "Staged the new sequencer nodes"),
                (
                    (16, 20),
                    3,
                    35,
                    "Baseline I/O measurements on the file server",
                ),
            ],
        },
    ]
}

/// One thing that happens during the day.
#[derive(Debug, Clone)]
pub enum Activity {
    TicketCreated(TicketCreated),
    TicketUpdated(TicketUpdated),
    TicketClosed(TicketClosed),
    ProjectCreated(ProjectCreated),
    ProjectUpdated(ProjectUpdated),
    ProjectClosed(ProjectClosed),
    TimeEntrySubmitted(TimeEntrySubmitted),
    TimeEntryApproved(TimeEntryApproved),
    InvoiceGenerated(InvoiceGenerated),
}

impl Activity {
    pub fn tenant_id(&self) -> Uuid {
        match self {
            Activity::TicketCreated(e) => e.tenant_id,
            Activity::TicketUpdated(e) => e.tenant_id,
            Activity::TicketClosed(e) => e.tenant_id,
            Activity::ProjectCreated(e) => e.tenant_id,
            Activity::ProjectUpdated(e) => e.tenant_id,
            Activity::ProjectClosed(e) => e.tenant_id,
            Activity::TimeEntrySubmitted(e) => e.tenant_id,
            Activity::TimeEntryApproved(e) => e.tenant_id,
            Activity::InvoiceGenerated(e) => e.tenant_id,
        }
    }

    pub fn event_type(&self) -> &'static str {
        use event_bus_core::Event;
        match self {
            Activity::TicketCreated(_) => TicketCreated::EVENT_TYPE,
            Activity::TicketUpdated(_) => TicketUpdated::EVENT_TYPE,
            Activity::TicketClosed(_) => TicketClosed::EVENT_TYPE,
            Activity::ProjectCreated(_) => ProjectCreated::EVENT_TYPE,
            Activity::ProjectUpdated(_) => ProjectUpdated::EVENT_TYPE,
            Activity::ProjectClosed(_) => ProjectClosed::EVENT_TYPE,
            Activity::TimeEntrySubmitted(_) => TimeEntrySubmitted::EVENT_TYPE,
            Activity::TimeEntryApproved(_) => TimeEntryApproved::EVENT_TYPE,
            Activity::InvoiceGenerated(_) => InvoiceGenerated::EVENT_TYPE,
        }
    }
}

/// The day: tenants, what happens when, and the few facts the demo's story needs.
#[derive(Debug, Clone)]
pub struct Day {
    pub tenants: Vec<Tenant>,
    /// Webhook endpoints as configured in the morning (one of them wrong).
    pub webhooks: Vec<(Uuid, &'static str)>,
    /// The ticket whose first email the mail server refuses.
    pub busy_ticket: Uuid,
    /// The tenant whose webhook record is wrong, and the corrected URL.
    pub bad_webhook: (Uuid, String),
    /// Everything, in time order.
    pub timeline: Vec<(DateTime<Utc>, Activity)>,
}

fn changes(value: Value) -> Option<Changes> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn time((h, m): (u32, u32)) -> DateTime<Utc> {
    at(h, m)
}

fn stamp(t: DateTime<Utc>) -> String {
    event_bus_core::format_timestamp(&t)
}

/// Builds the day.
pub fn day_plan() -> Day {
    let mut tenants = Vec::new();
    let mut webhooks = Vec::new();
    let mut timeline = Vec::new();
    for (index, spec) in specs().into_iter().enumerate() {
        let t = u8::try_from(index + 1).unwrap_or(u8::MAX);
        let tenant_id = id(t, 0, 0);
        let technician = id(t, USER, 1);
        let manager = id(t, USER, 2);
        tenants.push(Tenant {
            id: tenant_id,
            ..spec.tenant.clone()
        });
        webhooks.push((tenant_id, spec.webhook));
        let mut push = |when: DateTime<Utc>, activity: Activity| timeline.push((when, activity));

        for (n, ticket) in (0u16..).zip(spec.tickets) {
            let ticket_id = id(t, TICKET, n);
            let entered = time(ticket.entered);
            push(
                entered,
                Activity::TicketCreated(TicketCreated {
                    tenant_id,
                    ticket_id,
                    user_id: technician,
                    changes: changes(json!({
                        "title": ticket.title,
                        "priority": ticket.priority,
                        "status": "new",
                        "entered_at": stamp(entered),
                    })),
                }),
            );
            for (when, status) in ticket.updates {
                push(
                    time(*when),
                    Activity::TicketUpdated(TicketUpdated {
                        tenant_id,
                        ticket_id,
                        user_id: technician,
                        changes: changes(json!({
                            "status": status,
                            "updated_at": stamp(time(*when)),
                        })),
                    }),
                );
            }
            if let Some(when) = ticket.closed {
                push(
                    time(when),
                    Activity::TicketClosed(TicketClosed {
                        tenant_id,
                        ticket_id,
                        user_id: technician,
                        changes: changes(json!({
                            "status": "closed",
                            "closed_at": stamp(time(when)),
                        })),
                    }),
                );
            }
        }
        for (n, (name, budget, when)) in (0u16..).zip(spec.projects) {
            push(
                time(*when),
                Activity::ProjectCreated(ProjectCreated {
                    tenant_id,
                    project_id: id(t, PROJECT, n),
                    user_id: manager,
                    name: (*name).to_owned(),
                    budget_hours: *budget,
                }),
            );
        }
        if let Some((when, column, value)) = spec.project_update {
            push(
                time(when),
                Activity::ProjectUpdated(ProjectUpdated {
                    tenant_id,
                    project_id: id(t, PROJECT, 0),
                    user_id: manager,
                    changes: changes(json!({ column: value })),
                }),
            );
        }
        if let Some(when) = spec.project_closed {
            push(
                time(when),
                Activity::ProjectClosed(ProjectClosed {
                    tenant_id,
                    project_id: id(t, PROJECT, 99),
                    user_id: manager,
                }),
            );
        }
        let mut approved_minutes = 0;
        for (n, (when, item, minutes, notes)) in (0u16..).zip(spec.time) {
            let work_item = match item.checked_sub(100) {
                Some(project) => id(t, PROJECT, u16::try_from(project).unwrap_or(0)),
                None => id(t, TICKET, u16::try_from(*item).unwrap_or(0)),
            };
            let time_entry_id = id(t, TIME_ENTRY, n);
            push(
                time(*when),
                Activity::TimeEntrySubmitted(TimeEntrySubmitted {
                    tenant_id,
                    time_entry_id,
                    user_id: technician,
                    work_item_id: work_item.to_string(),
                    work_date: day(),
                    minutes: *minutes,
                    notes: (*notes).to_owned(),
                }),
            );
            // The manager approves the day's time at 17:45.
            push(
                at(17, 45),
                Activity::TimeEntryApproved(TimeEntryApproved {
                    tenant_id,
                    time_entry_id,
                    user_id: manager,
                    minutes: *minutes,
                }),
            );
            approved_minutes += i64::from(*minutes);
        }
        // The billing run at 18:00 invoices the approved time.
        push(
            at(18, 0),
            Activity::InvoiceGenerated(InvoiceGenerated {
                tenant_id,
                invoice_id: id(t, INVOICE, 1),
                user_id: manager,
                invoice_number: format!("{}-2026-{:04}", spec.prefix, 40 + index),
                total_cents: approved_minutes * spec.hourly_rate_cents / 60,
                currency: "USD".to_owned(),
            }),
        );
    }
    // Stable: same-minute activities keep their order.
    timeline.sort_by_key(|(when, _)| *when);
    Day {
        busy_ticket: id(2, TICKET, 1),
        bad_webhook: (
            tenants[2].id,
            "https://finance.cobalt-labs.example/invoices".to_owned(),
        ),
        tenants,
        webhooks,
        timeline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_valid_and_deterministic() {
        let day = day_plan();
        assert_eq!(day.tenants.len(), 3);
        assert_eq!(day.timeline.len(), day_plan().timeline.len());
        for (_, activity) in &day.timeline {
            use event_bus_core::Event;
            let result = match activity {
                Activity::TicketCreated(e) => e.validate(),
                Activity::TicketUpdated(e) => e.validate(),
                Activity::TicketClosed(e) => e.validate(),
                Activity::ProjectCreated(e) => e.validate(),
                Activity::ProjectUpdated(e) => e.validate(),
                Activity::ProjectClosed(e) => e.validate(),
                Activity::TimeEntrySubmitted(e) => e.validate(),
                Activity::TimeEntryApproved(e) => e.validate(),
                Activity::InvoiceGenerated(e) => e.validate(),
            };
            assert!(result.is_ok(), "{activity:?}: {result:?}");
        }
        assert_eq!(id(1, 2, 3), id(1, 2, 3));
        assert_eq!(id(1, 2, 3).get_version_num(), 4);
    }
}
