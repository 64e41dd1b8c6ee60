//! `event-bus dead-letters list | show | replay | purge`.
//!
//! Letters are read and parsed with the runtime's own code (`event_bus_redis::admin`), so a
//! letter the seed wrote (no `subscriber`, no `error`) is listed as foreign, exactly as
//! `RedisBus::dead_letters()` lists it. Selection uses the library's `DeadLetterFilter`.
//!
//! A replay only writes a request per letter to `{stream}:replay:{group}` and returns: the
//! running consumers of that group carry it out (see `event_bus_redis::admin`). `--wait`
//! watches each letter: gone and not replaced means the handler succeeded; replaced by a new
//! letter of the same subscriber and entry means it failed again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use event_bus_core::{DeadLetter, DeadLetterFilter};
use event_bus_redis::admin;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamInfoConsumersReply;
use serde::Serialize;

use crate::cli::Filter;
use crate::conn::Redacted;
use crate::discover::{self, Streams};
use crate::error::{CliError, Result};
use crate::table::{millis, Table};

/// A group whose consumers were all idle this long gets a note that the replay waits.
const QUIET_GROUP: Duration = Duration::from_secs(300);

/// A dead letter as the CLI prints it.
#[derive(Debug, Serialize)]
pub(crate) struct Letter {
    pub(crate) id: String,
    pub(crate) stream: String,
    pub(crate) event_type: String,
    /// Empty for a foreign letter.
    pub(crate) subscriber: String,
    pub(crate) foreign: bool,
    pub(crate) kind: String,
    pub(crate) runs: u32,
    pub(crate) deliveries: u32,
    pub(crate) error: String,
    pub(crate) reason: String,
    pub(crate) dead_lettered_at: String,
    pub(crate) source_message_id: String,
    /// The event as JSON when it parses, else as text.
    pub(crate) event: serde_json::Value,
}

impl From<&DeadLetter> for Letter {
    fn from(l: &DeadLetter) -> Self {
        let event = serde_json::from_slice(&l.payload)
            .unwrap_or_else(|_| serde_json::Value::String(l.payload_str().into_owned()));
        Self {
            id: l.id.clone(),
            stream: l.source_stream.clone(),
            event_type: l.event_type.clone(),
            subscriber: l.subscriber.clone(),
            foreign: l.foreign,
            kind: l.kind.as_str().to_owned(),
            runs: l.runs,
            deliveries: l.deliveries,
            error: l.error.clone(),
            reason: l.reason.clone(),
            dead_lettered_at: event_bus_core::format_timestamp(&l.dead_lettered_at),
            source_message_id: l.source_message_id.clone(),
            event,
        }
    }
}

/// Which origin a command selects when the user does not say.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DefaultOrigin {
    Any,
    Ours,
}

/// The library's filter for `filter` (the streams are chosen separately).
fn library_filter(filter: &Filter, default: DefaultOrigin) -> DeadLetterFilter {
    let mut f = if filter.foreign {
        DeadLetterFilter::foreign()
    } else if filter.any_origin {
        DeadLetterFilter::all()
    } else if filter.ours {
        DeadLetterFilter::ours()
    } else {
        match default {
            DefaultOrigin::Any => DeadLetterFilter::all(),
            DefaultOrigin::Ours => DeadLetterFilter::ours(),
        }
    };
    for s in &filter.subscribers {
        f = f.subscriber(s.clone());
    }
    if !filter.ids.is_empty() {
        f = f.ids(filter.ids.iter().cloned());
    }
    f
}

/// The event streams whose dead letters `streams` (or, when empty, every one) selects.
fn candidate_streams(found: &Streams, streams: &[String], prefix: &str) -> Result<Vec<String>> {
    if streams.is_empty() {
        return Ok(found.with_dead_letters.iter().cloned().collect());
    }
    let mut out = BTreeSet::new();
    for arg in streams {
        let resolved = found.resolve(arg);
        if resolved.is_empty() {
            return Err(CliError::Usage(format!(
                "no stream `{arg}` under the prefix `{prefix}`: give a stream key or an event type \
                 that `event-bus status` lists (or set --prefix)"
            )));
        }
        out.extend(resolved);
    }
    Ok(out.into_iter().collect())
}

/// The letters `filter` selects, oldest first per stream.
pub(crate) async fn select(
    conn: &mut MultiplexedConnection,
    url: &Redacted,
    prefix: &str,
    filter: &Filter,
    default: DefaultOrigin,
) -> Result<Vec<DeadLetter>> {
    let found = discover::streams(conn, url, prefix).await?;
    let streams = candidate_streams(&found, &filter.streams, prefix)?;
    let selected = library_filter(filter, default);
    let mut out = Vec::new();
    for stream in streams {
        let dl = admin::dead_letter_stream(&stream);
        let letters = admin::dead_letters(conn, &dl)
            .await
            .map_err(|e| CliError::redis(format!("reading {dl}"), url, &e))?;
        out.extend(letters.into_iter().filter(|l| selected.matches(l)));
    }
    Ok(out)
}

/// `dead-letters list`.
pub(crate) async fn list(
    conn: &mut MultiplexedConnection,
    url: &Redacted,
    prefix: &str,
    filter: &Filter,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let letters = select(conn, url, prefix, filter, DefaultOrigin::Any).await?;
    if json {
        let rows: Vec<Letter> = letters.iter().map(Letter::from).collect();
        serde_json::to_writer_pretty(&mut *out, &rows).map_err(std::io::Error::other)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut table = Table::new(vec![
        "ID",
        "STREAM",
        "SUBSCRIBER",
        "KIND",
        "RUNS",
        "DEAD-LETTERED AT",
        "ERROR",
    ]);
    for l in &letters {
        table.row(vec![
            l.id.clone(),
            l.source_stream.clone(),
            if l.foreign {
                "(foreign)".to_owned()
            } else {
                l.subscriber.clone()
            },
            l.kind.as_str().to_owned(),
            l.runs.to_string(),
            event_bus_core::format_timestamp(&l.dead_lettered_at),
            short(if l.foreign { &l.reason } else { &l.error }, 60),
        ]);
    }
    let foreign = letters.iter().filter(|l| l.foreign).count();
    if !table.is_empty() {
        table.write(out)?;
        writeln!(out)?;
    }
    writeln!(
        out,
        "{} dead letter(s): {} ours, {foreign} foreign (written by the seed system: no subscriber \
         or error recorded)",
        letters.len(),
        letters.len() - foreign
    )?;
    Ok(())
}

fn short(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut s: String = one_line.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// `dead-letters show`.
pub(crate) async fn show(
    conn: &mut MultiplexedConnection,
    url: &Redacted,
    prefix: &str,
    id: &str,
    stream: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let found = discover::streams(conn, url, prefix).await?;
    let wanted: Vec<String> = stream.map(str::to_owned).into_iter().collect();
    let streams = candidate_streams(&found, &wanted, prefix)?;
    let mut letter = None;
    for stream in streams {
        let dl = admin::dead_letter_stream(&stream);
        let got = admin::dead_letter(conn, &dl, id).await.map_err(|e| {
            let what = if e.code() == Some("ERR") {
                format!("reading {dl} (is `{id}` an entry id like 1732665600123-0?)")
            } else {
                format!("reading {dl}")
            };
            CliError::redis(what, url, &e)
        })?;
        if got.is_some() {
            letter = got;
            break;
        }
    }
    let Some(letter) = letter else {
        return Err(CliError::Usage(format!(
            "no dead letter `{id}` under the prefix `{prefix}`: `event-bus dead-letters list` shows \
             the ids"
        )));
    };
    let letter = Letter::from(&letter);
    if json {
        serde_json::to_writer_pretty(&mut *out, &letter).map_err(std::io::Error::other)?;
        writeln!(out)?;
        return Ok(());
    }
    let subscriber = if letter.foreign {
        "(foreign: written by the seed system)".to_owned()
    } else {
        letter.subscriber.clone()
    };
    for (name, value) in [
        ("id", letter.id.as_str()),
        ("stream", letter.stream.as_str()),
        ("event type", letter.event_type.as_str()),
        ("entry", letter.source_message_id.as_str()),
        ("subscriber", subscriber.as_str()),
        ("kind", letter.kind.as_str()),
        ("dead-lettered", letter.dead_lettered_at.as_str()),
        ("reason", letter.reason.as_str()),
        ("error", letter.error.as_str()),
    ] {
        writeln!(out, "{name:<14} {value}")?;
    }
    writeln!(
        out,
        "{:<14} {} handler run(s) failed, {} deliveries",
        "runs", letter.runs, letter.deliveries
    )?;
    let event = serde_json::to_string_pretty(&letter.event).map_err(std::io::Error::other)?;
    writeln!(out, "event:\n{event}")?;
    Ok(())
}

/// `--all` and `--yes` as the destructive commands need them.
fn check_scope(verb: &str, filter: &Filter, all: bool, yes: bool) -> Result<()> {
    if !filter.narrows() && !all {
        return Err(CliError::Usage(format!(
            "say which dead letters to {verb}: --id, --subscriber or --stream, or --all for every one"
        )));
    }
    if !filter.narrows() && !yes {
        return Err(CliError::Usage(format!(
            "--all without --id, --subscriber or --stream would {verb} every dead letter under the \
             prefix: add --yes to confirm"
        )));
    }
    Ok(())
}

/// Ids asked for with `--id` that selected no letter.
fn missing_ids(filter: &Filter, letters: &[DeadLetter]) -> Vec<String> {
    let found: BTreeSet<&str> = letters.iter().map(|l| l.id.as_str()).collect();
    filter
        .ids
        .iter()
        .filter(|id| !found.contains(id.as_str()))
        .cloned()
        .collect()
}

/// Who asks, for the request's `requestedBy`.
fn requested_by() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "?".to_owned());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!("event-bus-cli {user}@{host} pid {}", std::process::id())
}

/// What became of one replay request.
#[derive(Debug, Serialize)]
pub(crate) struct Requested {
    pub(crate) dead_letter: String,
    pub(crate) stream: String,
    pub(crate) subscriber: String,
    pub(crate) request_id: String,
    pub(crate) request_stream: String,
    /// With --wait: `replayed`, `failed-again` or `waiting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) outcome: Option<&'static str>,
    /// With --wait, when it failed again: the new dead letter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) new_dead_letter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// The replay command's options.
#[derive(Debug)]
pub(crate) struct ReplayOptions {
    pub(crate) all: bool,
    pub(crate) yes: bool,
    pub(crate) wait: bool,
    pub(crate) timeout: Duration,
}

/// `dead-letters replay`.
pub(crate) async fn replay(
    conn: &mut MultiplexedConnection,
    url: &Redacted,
    prefix: &str,
    filter: &Filter,
    options: ReplayOptions,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if filter.foreign {
        return Err(CliError::Usage(
            "foreign dead letters (the seed system's) name no subscriber, so none of ours replays \
             them: replay them with the seed's own tooling"
                .to_owned(),
        ));
    }
    check_scope("replay", filter, options.all, options.yes)?;
    let selected = select(conn, url, prefix, filter, DefaultOrigin::Ours).await?;
    let missing = missing_ids(filter, &selected);
    if !missing.is_empty() {
        return Err(CliError::Usage(format!(
            "no dead letter of ours with id {} matches: `event-bus dead-letters list` shows the \
             ids (foreign letters cannot be replayed here)",
            missing.join(", ")
        )));
    }
    let (foreign, ours): (Vec<_>, Vec<_>) = selected.into_iter().partition(|l| l.foreign);
    let by = requested_by();
    let mut requested = Vec::new();
    for letter in &ours {
        let request = admin::request_replay(conn, prefix, letter, &by)
            .await
            .map_err(|e| match e {
                admin::ReplayRequestError::Redis(e) => {
                    CliError::redis(format!("requesting the replay of {}", letter.id), url, &e)
                }
                other => CliError::Usage(other.to_string()),
            })?;
        requested.push(Requested {
            dead_letter: letter.id.clone(),
            stream: letter.source_stream.clone(),
            subscriber: letter.subscriber.clone(),
            request_id: request.request_id,
            request_stream: request.stream,
            outcome: None,
            new_dead_letter: None,
            error: None,
        });
    }
    // Groups that no running consumer seems to serve: the request waits for one.
    let mut quiet = Vec::new();
    let groups: BTreeSet<(&str, &str)> = ours
        .iter()
        .map(|l| (l.source_stream.as_str(), l.subscriber.as_str()))
        .collect();
    for (stream, group) in groups {
        let consumers: redis::RedisResult<StreamInfoConsumersReply> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(stream)
            .arg(group)
            .query_async(conn)
            .await;
        let live = consumers.is_ok_and(|c| {
            c.consumers
                .iter()
                .any(|c| (c.idle as u128) < QUIET_GROUP.as_millis())
        });
        if !live {
            quiet.push(format!("{group} on {stream}"));
        }
    }
    if options.wait {
        wait(conn, url, &mut requested, options.timeout).await?;
    }
    if json {
        #[derive(Serialize)]
        struct Report<'a> {
            requested: &'a [Requested],
            skipped_foreign: usize,
            groups_without_running_consumers: &'a [String],
        }
        serde_json::to_writer_pretty(
            &mut *out,
            &Report {
                requested: &requested,
                skipped_foreign: foreign.len(),
                groups_without_running_consumers: &quiet,
            },
        )
        .map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        print_requested(&requested, foreign.len(), &quiet, options.wait, out)?;
    }
    let unfinished = requested
        .iter()
        .filter(|r| matches!(r.outcome, Some("failed-again" | "waiting")))
        .count();
    if unfinished > 0 {
        return Err(CliError::Incomplete(format!(
            "{unfinished} of {} replay(s) did not succeed within {}: see above; a request not yet \
             carried out stays queued (`event-bus status` counts them)",
            requested.len(),
            millis(u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX))
        )));
    }
    Ok(())
}

fn print_requested(
    requested: &[Requested],
    foreign: usize,
    quiet: &[String],
    waited: bool,
    out: &mut impl Write,
) -> Result<()> {
    if requested.is_empty() {
        writeln!(out, "no dead letter of ours matches: nothing to replay")?;
    } else {
        let mut header = vec!["DEAD LETTER", "STREAM", "SUBSCRIBER", "REQUEST"];
        if waited {
            header.push("OUTCOME");
        }
        let mut table = Table::new(header);
        for r in requested {
            let mut row = vec![
                r.dead_letter.clone(),
                r.stream.clone(),
                r.subscriber.clone(),
                r.request_id.clone(),
            ];
            if waited {
                row.push(match (r.outcome, &r.new_dead_letter) {
                    (Some("failed-again"), Some(new)) => format!(
                        "failed again: new dead letter {new}: {}",
                        r.error.as_deref().unwrap_or("")
                    ),
                    (Some(outcome), _) => outcome.to_owned(),
                    (None, _) => String::new(),
                });
            }
            table.row(row);
        }
        table.write(out)?;
        if !waited {
            writeln!(
                out,
                "\n{} replay(s) requested: the running consumers of each subscriber carry them out \
                 within about 1.5 maintenance rounds (claim_interval, 5 s by default) and delete each dead \
                 letter once its handler succeeded; add --wait to wait for that.",
                requested.len()
            )?;
        }
    }
    if foreign > 0 {
        writeln!(
            out,
            "{foreign} foreign dead letter(s) skipped: the seed system wrote them; replay them with its own tooling"
        )?;
    }
    for group in quiet {
        writeln!(
            out,
            "note: no running consumer of {group} was seen in the last {}: its replays wait until \
             one starts",
            millis(u64::try_from(QUIET_GROUP.as_millis()).unwrap_or(u64::MAX))
        )?;
    }
    Ok(())
}

/// `<ms>-<seq>` as a pair, for ordering ids.
fn id_pair(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Polls until every requested letter is gone, or `timeout`; then tells replayed from failed
/// again (a newer letter of the same subscriber for the same entry).
async fn wait(
    conn: &mut MultiplexedConnection,
    url: &Redacted,
    requested: &mut [Requested],
    timeout: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut waiting = 0;
        for r in requested.iter_mut().filter(|r| r.outcome.is_none()) {
            let dl = admin::dead_letter_stream(&r.stream);
            let letter = admin::dead_letter(conn, &dl, &r.dead_letter)
                .await
                .map_err(|e| CliError::redis(format!("reading {dl}"), url, &e))?;
            match letter {
                Some(letter) => {
                    sources.insert(r.dead_letter.clone(), letter.source_message_id);
                    waiting += 1;
                }
                None => r.outcome = Some("gone"),
            }
        }
        if waiting == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for r in requested.iter_mut() {
        match r.outcome {
            None => r.outcome = Some("waiting"),
            Some(_) => {
                let dl = admin::dead_letter_stream(&r.stream);
                let letters = admin::dead_letters(conn, &dl)
                    .await
                    .map_err(|e| CliError::redis(format!("reading {dl}"), url, &e))?;
                let source = sources.get(&r.dead_letter);
                let newer = letters.into_iter().find(|l| {
                    !l.foreign
                        && l.subscriber == r.subscriber
                        && Some(&l.source_message_id) == source
                        && id_pair(&l.id) > id_pair(&r.dead_letter)
                });
                match newer {
                    Some(l) => {
                        r.outcome = Some("failed-again");
                        r.new_dead_letter = Some(l.id);
                        r.error = Some(l.error);
                    }
                    None => r.outcome = Some("replayed"),
                }
            }
        }
    }
    Ok(())
}

/// `--all` and `--yes` of a purge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope {
    pub(crate) all: bool,
    pub(crate) yes: bool,
}

/// `dead-letters purge`.
pub(crate) async fn purge(
    conn: &mut MultiplexedConnection,
    url: &Redacted,
    prefix: &str,
    filter: &Filter,
    scope: Scope,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    check_scope("purge", filter, scope.all, scope.yes)?;
    let found = discover::streams(conn, url, prefix).await?;
    let streams = candidate_streams(&found, &filter.streams, prefix)?;
    let selected = library_filter(filter, DefaultOrigin::Ours);
    // Foreign letters the other conditions select, but the origin keeps.
    let keeps_foreign = !(filter.foreign || filter.any_origin);
    let mut as_foreign = filter.clone();
    as_foreign.foreign = true;
    as_foreign.ours = false;
    let foreign_filter = library_filter(&as_foreign, DefaultOrigin::Ours);
    let mut purged = 0;
    let mut foreign_kept = 0;
    for stream in streams {
        let dl = admin::dead_letter_stream(&stream);
        if keeps_foreign {
            foreign_kept += admin::dead_letters(conn, &dl)
                .await
                .map_err(|e| CliError::redis(format!("reading {dl}"), url, &e))?
                .iter()
                .filter(|l| foreign_filter.matches(l))
                .count();
        }
        purged += admin::purge_dead_letters(conn, &dl, &selected)
            .await
            .map_err(|e| CliError::redis(format!("purging {dl}"), url, &e))?;
    }
    if json {
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({ "purged": purged, "foreign_kept": foreign_kept }),
        )
        .map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        writeln!(out, "purged {purged} dead letter(s)")?;
        if foreign_kept > 0 {
            writeln!(
                out,
                "kept {foreign_kept} foreign dead letter(s) (the seed system's) that the other \
                 conditions select: add --foreign or --any-origin to delete them too"
            )?;
        }
    }
    Ok(())
}
