//! The ticketing demo: one day at a multi-tenant PSA (tickets, projects, time, invoices) on
//! event-bus, modelled on the TypeScript system the project grew from.
//!
//! ```text
//! cargo run -p ticketing                                        # the in-memory bus
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p ticketing       # the same code on Redis
//! RUST_LOG=info cargo run -p ticketing                          # with the bus's own logs
//! cargo run -p ticketing -- --metrics-addr 127.0.0.1:9000       # serve the bus's metrics
//! cargo run -p ticketing -- --asyncapi                          # the AsyncAPI document, then exit
//! ```
//!
//! Where to look: `events.rs` (the ten payload types), `subscribers.rs` (the handlers),
//! `state.rs` (what they share), `day.rs` (the script), `bus.rs` (memory or Redis), `seed.rs`
//! (the last section: the same events in the format of a seed deployment). This file runs the
//! story on any [`Bus`] (`run<B: Bus>`), checks that every number came out as expected, and
//! exits non-zero if not.

mod bus;
mod day;
mod events;
mod metrics;
mod schema;
mod seed;
mod state;
mod subscribers;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::NaiveDate;
use event_bus_core::{
    BoxError, Bus, BusStats, Envelope, Event, FailureKind, PublishError, Published,
};
use uuid::Uuid;

use crate::bus::RedisRun;
use crate::day::{Activity, Day};
use crate::events::{InvoiceFinalized, TimeEntrySubmitted, EVENT_TYPES};
use crate::state::{App, Counts};
use crate::subscribers::{component_of, COMPONENTS};

const DEFAULT_LOG: &str = "warn,event_bus_core=error,event_bus_redis=error";

#[tokio::main]
async fn main() -> ExitCode {
    // `--asyncapi`: the application's AsyncAPI document (from the registry: no bus is built).
    if std::env::args().skip(1).any(|arg| arg == "--asyncapi") {
        return match serde_json::to_string_pretty(&schema::asyncapi()) {
            Ok(doc) => {
                println!("{doc}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cannot write the AsyncAPI document: {error}");
                ExitCode::FAILURE
            }
        };
    }

    // The demo tells its own story on stdout; the bus's logs go to stderr, and only when asked
    // for (the expected dead letter would otherwise be logged as a warning).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let metrics_addr =
        match metrics::metrics_addr(std::env::args().skip(1), std::env::var("METRICS_ADDR").ok()) {
            Ok(addr) => addr,
            Err(error) => {
                eprintln!("ticketing: {error}");
                return ExitCode::from(2);
            }
        };
    if let Some(addr) = metrics_addr {
        // Before the bus is built: its metrics are bound to the recorder installed then.
        if let Err(error) = metrics::serve(addr) {
            eprintln!("ticketing: {error}");
            return ExitCode::FAILURE;
        }
        println!("metrics: serving the Prometheus format at http://{addr}/metrics");
    }

    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let code = match demo(redis_url.as_deref()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nticketing demo FAILED: {error}");
            ExitCode::FAILURE
        }
    };
    if let Some(addr) = metrics_addr {
        println!("\nmetrics: the day's numbers stay at http://{addr}/metrics; Ctrl-C to exit");
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("ticketing: cannot wait for Ctrl-C: {error}");
        }
    }
    code
}

/// The whole demo, on Redis when `redis_url` is given; returns the application's state at the
/// end. `Err` when anything did not go as the script says.
async fn demo(redis_url: Option<&str>) -> Result<App, BoxError> {
    let day = day::day_plan();
    let app = App {
        directory: state::Directory {
            tenants: day.tenants.clone(),
        },
        ..App::default()
    };
    for (tenant_id, url) in &day.webhooks {
        app.webhooks.set_endpoint(*tenant_id, *url);
    }
    app.mailer.refuse_once(day.busy_ticket);

    println!("event-bus ticketing demo: a day at a PSA with three tenants");
    let expected = expected_deliveries(&day);
    let redis = redis_url.map(RedisRun::new);
    let stats = match &redis {
        Some(redis) => {
            println!("  bus: {}", redis.describe());
            let outcome = match redis.bus(&app).await {
                Ok(bus) => run(bus, &app, &day, &expected).await,
                Err(e) => Err(e.into()),
            };
            // Clean up whatever happened, then report the first failure.
            let deleted = redis.delete_keys().await;
            let stats = outcome?;
            let deleted = deleted?;
            if deleted > 0 {
                println!("\n(deleted this run's {deleted} Redis keys)");
            }
            stats
        }
        None => {
            let bus = bus::memory(&app).await?;
            println!("  bus: the in-memory bus");
            println!("  (set REDIS_URL=redis://127.0.0.1:6379 to run the same code on Redis)");
            run(bus, &app, &day, &expected).await?
        }
    };

    print_summary(&app, &day);
    check(&app, &day, &expected, &stats)?;
    seed::beside_the_seed(&day, redis.as_ref()).await?;
    Ok(app)
}

/// The demo on any bus: start, the story, shutdown. Returns what the bus counted.
async fn run<B: Bus>(
    bus: B,
    app: &App,
    day: &Day,
    expected: &BTreeMap<(Uuid, String), u64>,
) -> Result<BusStats, BoxError> {
    // Start: every #[subscriber] linked into the binary, checked against `subscribers::ALL`
    // and against the state the bus was given.
    let running = bus.start().await?;
    let outcome = story(app, day, &bus, &running, expected).await;
    // Shut down whatever happened, then report the first failure.
    let stopped = bus::shutdown(running).await;
    outcome?;
    stopped?;
    Ok(bus.stats())
}

/// Everything between start and shutdown.
async fn story<B: Bus>(
    app: &App,
    day: &Day,
    bus: &B,
    running: &B::Running,
    expected: &BTreeMap<(Uuid, String), u64>,
) -> Result<(), BoxError> {
    print_subscribers();

    // Validation runs before anything is written.
    println!("\nA bad event never reaches the bus:");
    let bad = TimeEntrySubmitted {
        tenant_id: day.tenants[0].id,
        time_entry_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        work_item_id: "TCK-1042".to_owned(),
        work_date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap_or_default(),
        minutes: 0,
        notes: String::new(),
    };
    println!(
        "  publish(TimeEntrySubmitted {{ workItemId: \"TCK-1042\", minutes: 0, notes: \"\", .. }})"
    );
    match bus.publish(bad).await {
        Err(PublishError::Invalid { errors, .. }) => {
            for issue in errors.issues() {
                println!("    rejected: {issue}");
            }
        }
        Err(other) => return Err(format!("expected a validation error, got: {other}").into()),
        Ok(_) => return Err("an invalid time entry was published".into()),
    }

    // The day.
    let expected_total: u64 = expected.values().sum();
    println!("\nThe day (2026-11-26):");
    publish_day(bus, day).await?;

    // Everything settles, except one webhook: Cobalt Labs' endpoint on record is malformed.
    let board = &app.scoreboard;
    bus::settle(running, "the day's deliveries", || async move {
        let dead = bus.dead_letters().await?;
        Ok::<bool, BoxError>(board.totals().handled + 1 >= expected_total && !dead.is_empty())
    })
    .await?;
    println!(
        "  {expected_total} deliveries to {} subscribers; all handled but one.",
        subscribers::ALL.len()
    );

    let dead = bus.dead_letters().await?;
    let [letter] = dead.as_slice() else {
        return Err(format!("expected exactly one dead letter, found {}", dead.len()).into());
    };
    let envelope: Envelope<InvoiceFinalized> = serde_json::from_slice(&letter.payload)?;
    let (bad_tenant, fixed_url) = &day.bad_webhook;
    if letter.subscriber != "invoice-webhook"
        || letter.kind != FailureKind::Handler
        || letter.deliveries != 1
        || letter.runs != 1
        || envelope.payload.tenant_id != *bad_tenant
    {
        return Err(format!("unexpected dead letter: {letter:?}").into());
    }
    let tenant = app.directory.name(*bad_tenant);
    println!("\nSomething went wrong at {tenant}:");
    println!(
        "  invoice-webhook failed {} {} and dead-lettered it",
        letter.event_type, envelope.payload.invoice_number
    );
    println!("    error:   {}", letter.error);
    println!(
        "    kind:    {} (a permanent error: no retries)",
        letter.kind
    );
    println!("    reason:  {}", letter.reason);
    println!(
        "    source:  {}, entry {}",
        letter.source_stream, letter.source_message_id
    );
    println!("  The event's other subscriber, audit-log-invoice-finalized, handled it and is not re-run.");

    app.webhooks.set_endpoint(*bad_tenant, fixed_url.as_str());
    println!("  Fix the record: the endpoint on file for {tenant} is now {fixed_url}");
    bus.replay_dead_letter(letter).await?;
    bus::settle(running, "the replay", || async move {
        let dead = bus.dead_letters().await?;
        Ok::<bool, BoxError>(board.totals().handled >= expected_total && dead.is_empty())
    })
    .await?;
    let dead = bus.dead_letters().await?.len();
    println!(
        "  Replay the dead letter to invoice-webhook alone: posted; dead letters left: {dead}"
    );
    Ok(())
}

/// Lists the subscribers the bus found, by component.
fn print_subscribers() {
    let mut by_component: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for sub in event_bus_core::registered_subscribers() {
        let component = component_of(sub.name);
        let column = COMPONENTS
            .iter()
            .position(|c| *c == component)
            .unwrap_or(usize::MAX);
        by_component
            .entry(column)
            .or_default()
            .push(format!("{} ({})", sub.name, sub.event_type));
    }
    println!(
        "\nSubscribers found in the binary ({} of {} expected):",
        by_component.values().map(Vec::len).sum::<usize>(),
        subscribers::ALL.len()
    );
    for (column, mut subs) in by_component {
        subs.sort();
        let component = COMPONENTS.get(column).copied().unwrap_or("other");
        let list = if subs.len() > 3 {
            format!("{} subscribers, one per event type", subs.len())
        } else {
            subs.join(", ")
        };
        println!("  {component:<16} {list}");
    }
}

async fn publish<B: Bus>(bus: &B, activity: &Activity) -> Result<Published, PublishError> {
    match activity.clone() {
        Activity::TicketCreated(e) => bus.publish(e).await,
        Activity::TicketUpdated(e) => bus.publish(e).await,
        Activity::TicketClosed(e) => bus.publish(e).await,
        Activity::ProjectCreated(e) => bus.publish(e).await,
        Activity::ProjectUpdated(e) => bus.publish(e).await,
        Activity::ProjectClosed(e) => bus.publish(e).await,
        Activity::TimeEntrySubmitted(e) => bus.publish(e).await,
        Activity::TimeEntryApproved(e) => bus.publish(e).await,
        Activity::InvoiceGenerated(e) => bus.publish(e).await,
    }
}

/// Publishes the timeline, printing one line per part of the day.
async fn publish_day<B: Bus>(bus: &B, day: &Day) -> Result<(), BoxError> {
    let parts = [
        ("08:00-11:59", day::at(12, 0)),
        ("12:00-16:59", day::at(17, 0)),
        ("17:00-17:59", day::at(18, 0)),
        ("18:00 billing", day::at(23, 59)),
    ];
    let mut timeline = day.timeline.iter().peekable();
    for (label, until) in parts {
        let mut kinds = [0usize; EVENT_TYPES.len()];
        while let Some((_, activity)) = timeline.next_if(|(when, _)| *when < until) {
            publish(bus, activity).await?;
            if let Some(i) = EVENT_TYPES.iter().position(|t| *t == activity.event_type()) {
                kinds[i] += 1;
            }
        }
        let total: usize = kinds.iter().sum();
        let mut line = String::new();
        for (kind, n) in EVENT_TYPES.iter().zip(kinds).filter(|(_, n)| *n > 0) {
            let sep = if line.is_empty() { "" } else { ", " };
            let _ = write!(line, "{sep}{kind} {n}");
        }
        println!("  {label:<13} {total:>2} events: {line}");
    }
    println!(
        "  {:<13} + billing-finalize publishes INVOICE_FINALIZED for each invoice",
        ""
    );
    Ok(())
}

/// What the scoreboard must show at the end: every event delivered once to every subscriber of
/// its type (from the registry), plus the INVOICE_FINALIZED that billing publishes for each
/// INVOICE_GENERATED.
fn expected_deliveries(day: &Day) -> BTreeMap<(Uuid, String), u64> {
    let mut expected = BTreeMap::new();
    let mut deliver = |tenant_id: Uuid, event_type: &str| {
        for sub in event_bus_core::registered_subscribers().filter(|s| s.event_type == event_type) {
            *expected
                .entry((tenant_id, sub.name.to_owned()))
                .or_insert(0) += 1;
        }
    };
    for (_, activity) in &day.timeline {
        deliver(activity.tenant_id(), activity.event_type());
        if let Activity::InvoiceGenerated(_) = activity {
            deliver(activity.tenant_id(), InvoiceFinalized::EVENT_TYPE);
        }
    }
    expected
}

/// Sums the scoreboard by (tenant, component).
fn by_component(app: &App) -> BTreeMap<(Uuid, &'static str), Counts> {
    let mut cells: BTreeMap<(Uuid, &'static str), Counts> = BTreeMap::new();
    for ((tenant_id, subscriber), counts) in app.scoreboard.snapshot() {
        let component = COMPONENTS
            .iter()
            .find(|c| **c == component_of(&subscriber))
            .copied()
            .unwrap_or("other");
        let cell = cells.entry((tenant_id, component)).or_default();
        cell.handled += counts.handled;
        cell.failed += counts.failed;
        cell.recovered += counts.recovered;
    }
    cells
}

fn print_summary(app: &App, day: &Day) {
    let cells = by_component(app);
    let mut header: Vec<String> = vec!["tenant".to_owned()];
    header.extend(COMPONENTS.iter().map(|c| (*c).to_owned()));
    header.push("SLA met/late/open".to_owned());
    let mut rows = vec![header];
    for tenant in &day.tenants {
        let mut row = vec![tenant.name.to_owned()];
        for component in COMPONENTS {
            let c = cells
                .get(&(tenant.id, component))
                .copied()
                .unwrap_or_default();
            let mut cell = c.handled.to_string();
            if c.recovered > 0 {
                let _ = write!(cell, " ({} retried)", c.recovered);
            } else if c.failed > 0 {
                cell.push_str(" (replayed)");
            }
            row.push(cell);
        }
        let (met, late, open) = app.sla.tally(tenant.id, day::at(18, 0));
        row.push(format!("{met}/{late}/{open}"));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|col| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();

    println!("\nSummary: deliveries handled per tenant and subscriber");
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::from(" ");
        for (col, cell) in row.iter().enumerate() {
            if col == 0 {
                let _ = write!(line, " {cell:<w$}", w = widths[col]);
            } else {
                let _ = write!(line, "  {cell:>w$}", w = widths[col]);
            }
        }
        println!("{line}");
        if i == 0 {
            println!("  {}", "-".repeat(line.chars().count() - 2));
        }
    }
    let totals = app.scoreboard.totals();
    println!(
        "  {} deliveries handled, {} failed ({} retried, {} dead-lettered and replayed); {} emails, {} audit lines, {} webhooks",
        totals.handled,
        totals.failed,
        totals.recovered,
        totals.failed - totals.recovered,
        app.mailer.sent().len(),
        day.tenants.iter().map(|t| app.audit.count(t.id)).sum::<usize>(),
        app.webhooks.calls().len(),
    );
}

/// Compares what happened with what the script implies; `Err` lists every difference.
fn check(
    app: &App,
    day: &Day,
    expected: &BTreeMap<(Uuid, String), u64>,
    stats: &BusStats,
) -> Result<(), BoxError> {
    let mut problems = Vec::new();
    let actual = app.scoreboard.snapshot();
    for (key, want) in expected {
        let got = actual.get(key).map_or(0, |c| c.handled);
        if got != *want {
            problems.push(format!(
                "{} / {}: handled {got}, expected {want}",
                app.directory.name(key.0),
                key.1
            ));
        }
    }
    for (key, counts) in &actual {
        if !expected.contains_key(key) {
            problems.push(format!(
                "{} / {}: {counts:?}, expected nothing",
                app.directory.name(key.0),
                key.1
            ));
        }
    }
    let totals = app.scoreboard.totals();
    if (totals.failed, totals.recovered) != (2, 1) {
        problems.push(format!(
            "{} failures and {} recoveries, expected 2 and 1 (one SMTP retry, one dead letter)",
            totals.failed, totals.recovered
        ));
    }
    let emails: u64 = expected
        .iter()
        .filter(|((_, sub), _)| component_of(sub) == "ticket-email")
        .map(|(_, n)| n)
        .sum();
    if app.mailer.sent().len() as u64 != emails {
        problems.push(format!(
            "{} emails sent, expected {emails}",
            app.mailer.sent().len()
        ));
    }
    for tenant in &day.tenants {
        let want: u64 = expected
            .iter()
            .filter(|((t, sub), _)| *t == tenant.id && component_of(sub) == "audit-log")
            .map(|(_, n)| n)
            .sum();
        if app.audit.count(tenant.id) as u64 != want {
            problems.push(format!(
                "{}: {} audit lines, expected {want}",
                tenant.name,
                app.audit.count(tenant.id)
            ));
        }
    }
    let calls = app.webhooks.calls();
    let fixed = &day.bad_webhook;
    if calls.len() != day.tenants.len()
        || !calls
            .iter()
            .any(|c| c.tenant_id == fixed.0 && c.url == fixed.1)
    {
        problems.push(format!("webhook calls: {calls:?}"));
    }
    // The bus's own counters tell the same story as the scoreboard: every event the day
    // published and every INVOICE_FINALIZED billing published (the rejected one is not
    // counted), each handled by every subscriber; one retry, one dead letter.
    let published = day.timeline.len()
        + day
            .timeline
            .iter()
            .filter(|(_, a)| matches!(a, Activity::InvoiceGenerated(_)))
            .count();
    let bus_counts = (
        stats.published,
        stats.handled,
        stats.failed,
        stats.retried,
        stats.dead_lettered,
    );
    let want = (published as u64, totals.handled, 2, 1, 1);
    if bus_counts != want {
        problems.push(format!(
            "the bus counted (published, handled, failed, retried, dead-lettered) = \
             {bus_counts:?}, expected {want:?}"
        ));
    }
    for name in subscribers::ALL {
        let want: u64 = expected
            .iter()
            .filter(|((_, sub), _)| sub == name)
            .map(|(_, n)| n)
            .sum();
        let got = stats.subscriber(name).map(|s| s.handled);
        if got != Some(want) {
            problems.push(format!(
                "the bus counted {got:?} deliveries handled by {name}, expected {want}"
            ));
        }
    }
    if problems.is_empty() {
        println!("  All numbers as expected.");
        Ok(())
    } else {
        for problem in &problems {
            println!("  MISMATCH: {problem}");
        }
        Err(format!(
            "{} numbers differ from the script (see above)",
            problems.len()
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_whole_day_runs_on_the_memory_bus() {
        super::demo(None).await.expect("the demo succeeds");
    }

    /// Runs when `REDIS_URL` is set (`REDIS_URL=redis://127.0.0.1:6379 cargo test -p ticketing`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_whole_day_runs_on_redis() {
        let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) else {
            return;
        };
        super::demo(Some(&url))
            .await
            .expect("the demo succeeds on Redis");
    }
}
