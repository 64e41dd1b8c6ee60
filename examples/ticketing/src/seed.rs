//! "Beside the seed", the demo's last section: a Rust service joined to a deployment of the
//! seed (the TypeScript event bus this project grows from), shown by what one of the day's
//! ticket updates looks like on the seed's streams.
//!
//! The ticket events declare the seed's three channels (`events.rs`) and the e-mail subscribers
//! read `emailservice::v7` (`subscribers.rs`). The day runs in the default layout, one stream
//! per event type that every channel shares, so none of its numbers depend on channels. A bus
//! built with `.seed_compatible(SeedGeneration::Current)` writes the seed's layout instead: one
//! stream per channel, `alga-psa:event-stream:{channel}:{EVENT_TYPE}`, each entry `event` (the
//! envelope JSON) then `channel` (the channel's name), and, for a publish on `global`, a flat
//! entry on the workflow runtime's stream, `workflow:events:global`.
//!
//! With `REDIS_URL` set, that bus writes for real, moved under the run's own prefix
//! (`{run}:alga-psa:event-stream:...` and `{run}:workflow:events:global`), never to a live
//! deployment's `alga-psa:*` keys or its `workflow:events:global`; the section reads the entries
//! back with `XRANGE`, checks them against the seed's format, and deletes every key of the run.
//! In memory nothing is written: the keys are computed with `StreamLayout::PerChannel` and the
//! envelope is encoded as a publish writes it.

use std::fmt::Write as _;

use event_bus_core::transport::encode;
use event_bus_core::{BoxError, Bus, Event, StreamLayout, DEFAULT_CHANNEL};
use event_bus_redis::{RedisBus, SeedGeneration, SEED_PREFIX, WORKFLOW_STREAM};
use serde_json::Value;

use crate::bus::RedisRun;
use crate::day::{Activity, Day};
use crate::events::TicketUpdated;

/// The fields of a workflow entry, in the seed's order (`shared/seed/LIVE-SEED.md`).
pub const WORKFLOW_FIELDS: [&str; 10] = [
    "event_id",
    "execution_id",
    "event_name",
    "event_type",
    "tenant",
    "timestamp",
    "user_id",
    "from_state",
    "to_state",
    "payload_json",
];

/// Where the section's lines wrap.
const WIDTH: usize = 100;

/// One stream a publish writes in the seed's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedStream {
    /// The channel.
    pub channel: &'static str,
    /// The stream's key.
    pub key: String,
    /// The demo's subscribers of the event type that read this channel.
    pub readers: Vec<&'static str>,
}

/// The streams a publish of `E` writes in the seed's layout under `prefix`, one per channel of
/// `E`, in order.
pub fn seed_streams<E: Event>(prefix: &str) -> Vec<SeedStream> {
    E::CHANNELS
        .iter()
        .map(|&channel| {
            let mut readers: Vec<&'static str> = event_bus_core::registered_subscribers()
                .filter(|s| {
                    s.event_type == E::EVENT_TYPE
                        && s.options.channel.unwrap_or(DEFAULT_CHANNEL) == channel
                })
                .map(|s| s.name)
                .collect();
            readers.sort_unstable();
            SeedStream {
                channel,
                key: StreamLayout::PerChannel.stream(prefix, channel, E::EVENT_TYPE),
                readers,
            }
        })
        .collect()
}

/// The section: on Redis when `redis` is given (and then every key of the run is deleted at
/// the end), else computed in memory. `Err` when an entry read back is not in the seed's format.
pub async fn beside_the_seed(day: &Day, redis: Option<&RedisRun>) -> Result<(), BoxError> {
    let (what, update) = first_update(day)?;
    println!("\nBeside the seed: a Rust service joined to a seed deployment");
    match redis {
        Some(run) => {
            let outcome = on_redis(run, &what, update).await;
            // Clean up whatever happened, then report the first failure.
            let deleted = run.delete_keys().await;
            outcome?;
            println!("  (deleted the section's {} Redis keys)", deleted?);
            Ok(())
        }
        None => {
            print!("{}", in_memory(&what, update)?);
            Ok(())
        }
    }
}

/// The day's first ticket update, and a few words on it.
fn first_update(day: &Day) -> Result<(String, TicketUpdated), BoxError> {
    day.timeline
        .iter()
        .find_map(|(when, activity)| match activity {
            Activity::TicketUpdated(e) => {
                let tenant = day
                    .tenants
                    .iter()
                    .find(|t| t.id == e.tenant_id)
                    .map_or("a tenant", |t| t.name);
                Some((
                    format!("the ticket update of {} at {tenant}", when.format("%H:%M")),
                    e.clone(),
                ))
            }
            _ => None,
        })
        .ok_or_else(|| "the day has no ticket update".into())
}

/// The in-memory version: the keys and the envelope a seed-compatible bus would write.
fn in_memory(what: &str, update: TicketUpdated) -> Result<String, BoxError> {
    let encoded = encode(update)?;
    let streams = seed_streams::<TicketUpdated>(SEED_PREFIX);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  A bus built with .seed_compatible(SeedGeneration::Current) writes {what} as:"
    );
    let width = streams.iter().map(|s| s.key.len()).max().unwrap_or(0);
    for stream in &streams {
        let _ = writeln!(
            out,
            "    {:<width$}  event, channel={}{}",
            stream.key,
            stream.channel,
            read_by(&stream.readers)
        );
    }
    let _ = writeln!(
        out,
        "    {WORKFLOW_STREAM:<width$}  flat fields, in the seed's order:"
    );
    let _ = writeln!(out, "      {}", WORKFLOW_FIELDS.join(" "));
    let _ = writeln!(out, "  event, the same envelope in each stream:");
    let _ = writeln!(out, "    {}", encoded.json);
    let _ = writeln!(
        out,
        "  (computed here; with REDIS_URL set it is written for real, under the run's own prefix)"
    );
    Ok(out)
}

/// The Redis version: a second bus, seed-compatible but under the run's prefix, publishes the
/// update; the entries are read back, printed and checked.
async fn on_redis(run: &RedisRun, what: &str, update: TicketUpdated) -> Result<(), BoxError> {
    let prefix = format!("{}:{SEED_PREFIX}", run.prefix());
    let workflow = format!("{}:{WORKFLOW_STREAM}", run.prefix());
    let bus = RedisBus::builder()
        .url(run.url())
        .seed_compatible(SeedGeneration::Current)
        // The seed's layout, but under this run's prefix: never a live deployment's keys.
        .prefix(prefix.as_str())
        .workflow_stream(workflow.as_str())
        // Publish-only: no subscriber of this binary joins these streams (a publish before
        // start would create their consumer groups).
        .discover(false)
        .register_event::<TicketUpdated>()
        .allow_no_subscribers(true)
        .build()
        .await?;
    println!("  bus: .seed_compatible(SeedGeneration::Current), moved under this run's prefix:");
    println!("       .prefix({prefix:?})");
    println!("       .workflow_stream({workflow:?})");
    let published = bus.publish(update).await?;
    println!(
        "  publish({what}): {} entries and a workflow entry; XRANGE reads:",
        published.entries.len()
    );

    let client = redis::Client::open(run.url())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let mut problems = Vec::new();
    let mut envelopes = Vec::new();
    let streams = seed_streams::<TicketUpdated>(&prefix);
    let written: Vec<&str> = published
        .entries
        .iter()
        .map(|e| e.channel.as_str())
        .collect();
    let declared: Vec<&str> = streams.iter().map(|s| s.channel).collect();
    if written != declared {
        problems.push(format!(
            "written to channels {written:?}, expected {declared:?}"
        ));
    }
    for (stream, entry) in streams.iter().zip(&published.entries) {
        println!("    {}{}", stream.key, read_by(&stream.readers));
        let entries = xrange(&mut con, &stream.key).await?;
        let [(id, fields)] = entries.as_slice() else {
            problems.push(format!(
                "{}: {} entries, expected 1",
                stream.key,
                entries.len()
            ));
            continue;
        };
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        let value = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let event = value("event").cloned().unwrap_or_default();
        let channel = value("channel").map_or("", String::as_str);
        println!(
            "      {id}  event={}  channel={channel}",
            abbreviate(&event)
        );
        if *id != entry.entry_id || names != ["event", "channel"] || channel != stream.channel {
            problems.push(format!(
                "{}: entry {id} with fields {names:?}, channel {channel:?}",
                stream.key
            ));
        }
        envelopes.push(event);
    }
    let Some(envelope) = envelopes.first() else {
        return Err("no entry was read back".into());
    };
    if envelopes.iter().any(|e| e != envelope) {
        problems.push("the entries hold different envelopes".to_owned());
    }
    let envelope: Value = serde_json::from_str(envelope)?;
    let payload = &envelope["payload"];
    if envelope["id"].as_str() != Some(published.event_id.to_string().as_str()) {
        problems.push(format!(
            "the envelope's id is {}, expected {}",
            envelope["id"], published.event_id
        ));
    }

    println!("    {workflow}");
    let entries = xrange(&mut con, &workflow).await?;
    match entries.as_slice() {
        [(id, fields)] => {
            let pairs = fields.iter().map(|(k, v)| {
                let v = if v.is_empty() { "''" } else { v.as_str() };
                format!("{k}={v}")
            });
            println!("      {id}  {}", wrap(pairs, 6 + id.len() + 2));
            let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
            let value = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or("", |(_, v)| v.as_str())
            };
            let payload_json: Value = serde_json::from_str(value("payload_json"))?;
            if names != WORKFLOW_FIELDS
                || value("event_id") != published.event_id.to_string()
                || value("event_type") != TicketUpdated::EVENT_TYPE
                || Some(value("tenant")) != payload["tenantId"].as_str()
                || Some(value("user_id")) != payload["userId"].as_str()
                || payload_json != *payload
            {
                problems.push(format!("{workflow}: unexpected entry {fields:?}"));
            }
        }
        other => problems.push(format!("{workflow}: {} entries, expected 1", other.len())),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        for problem in &problems {
            println!("  MISMATCH: {problem}");
        }
        Err(format!("{} entries differ from the seed's format", problems.len()).into())
    }
}

/// `XRANGE key - +`: each entry's id and its fields, in order.
async fn xrange(
    con: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Result<Vec<(String, Vec<(String, String)>)>, BoxError> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(con)
        .await?;
    Ok(entries
        .into_iter()
        .map(|(id, flat)| {
            let fields = flat
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
                .collect();
            (id, fields)
        })
        .collect())
}

/// `  (read by ticket-email)`, or nothing when no subscriber of the demo reads the channel.
fn read_by(readers: &[&str]) -> String {
    if readers.is_empty() {
        String::new()
    } else {
        format!("  (read by {})", readers.join(", "))
    }
}

/// An envelope's JSON cut after its event type: `{"id":"6c1e2f3a…","eventType":"…",…}`.
fn abbreviate(json: &str) -> String {
    let Ok(Value::Object(envelope)) = serde_json::from_str::<Value>(json) else {
        return json.chars().take(40).chain(['…']).collect();
    };
    let id = envelope.get("id").and_then(Value::as_str).unwrap_or("");
    let event_type = envelope
        .get("eventType")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!(
        r#"{{"id":"{}…","eventType":"{event_type}",…}}"#,
        id.chars().take(8).collect::<String>()
    )
}

/// `items` separated by spaces, wrapped at [`WIDTH`] onto lines indented by `indent`.
fn wrap(items: impl IntoIterator<Item = String>, indent: usize) -> String {
    let mut out = String::new();
    let mut column = indent;
    for item in items {
        if !out.is_empty() {
            if column + 1 + item.chars().count() > WIDTH {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                column = indent;
            } else {
                out.push(' ');
                column += 1;
            }
        }
        column += item.chars().count();
        out.push_str(&item);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::day_plan;

    #[test]
    fn ticket_updates_go_to_the_seeds_three_streams() {
        let streams = seed_streams::<TicketUpdated>(SEED_PREFIX);
        let keys: Vec<&str> = streams.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alga-psa:event-stream:global:TICKET_UPDATED",
                "alga-psa:event-stream:internal-notifications:TICKET_UPDATED",
                "alga-psa:event-stream:emailservice::v7:TICKET_UPDATED",
            ]
        );
        // The e-mail notifier reads its own channel, the audit log `global`.
        let readers: Vec<&[&str]> = streams.iter().map(|s| s.readers.as_slice()).collect();
        assert_eq!(
            readers,
            [&["audit-log-ticket-updated"][..], &[], &["ticket-email"]]
        );
    }

    #[test]
    fn the_memory_section_shows_the_seeds_keys_and_envelope() {
        let (what, update) = first_update(&day_plan()).expect("an update");
        assert_eq!(what, "the ticket update of 08:10 at Cobalt Labs");
        let out = in_memory(&what, update).expect("encodes");
        let email = out
            .lines()
            .find(|l| {
                l.trim_start()
                    .starts_with("alga-psa:event-stream:emailservice::v7:")
            })
            .unwrap_or_default();
        assert!(
            email.ends_with("event, channel=emailservice::v7  (read by ticket-email)"),
            "{out}"
        );
        assert!(out.contains("workflow:events:global"), "{out}");
        assert!(out.contains(r#","eventType":"TICKET_UPDATED","#), "{out}");
        assert!(out.contains("REDIS_URL"), "{out}");
    }

    #[test]
    fn an_absent_change_is_absent_on_the_wire() {
        let (_, mut update) = first_update(&day_plan()).expect("an update");
        update.changes = None;
        let json = encode(update).expect("encodes").json;
        assert!(!json.contains("changes"), "{json}");
        assert!(!json.contains("null"), "{json}");
    }

    #[test]
    fn envelopes_are_abbreviated_and_fields_wrapped() {
        let json = r#"{"id":"6c1e2f3a-0000-4000-8000-000000000000","eventType":"TICKET_UPDATED","timestamp":"t","payload":{}}"#;
        assert_eq!(
            abbreviate(json),
            r#"{"id":"6c1e2f3a…","eventType":"TICKET_UPDATED",…}"#
        );
        let items = WORKFLOW_FIELDS.iter().map(|f| (*f).to_owned());
        let wrapped = wrap(items, 90);
        assert!(wrapped.lines().count() > 1);
        assert!(wrapped
            .lines()
            .skip(1)
            .all(|l| l.starts_with(&" ".repeat(90))));
    }
}
