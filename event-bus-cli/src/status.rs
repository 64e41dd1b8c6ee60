//! `event-bus status`: every stream under the prefix with its length and dead letters, every
//! consumer group with its lag, pending entries, consumers (and their idle time), queued
//! replays, and whether it is orphaned.
//!
//! Orphaned: a group with no consumer, or none seen for `--orphan-after`. A running bus
//! touches its consumer in the group with every read, and at least once per maintenance round
//! (its `XAUTOCLAIM`, every `claim_interval`), so only a group that no running process serves
//! goes quiet that long. Redis forgets nothing about the group meanwhile: its lag grows, and
//! its pending entries wait.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use event_bus_redis::admin::{self, event_type_of};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoConsumersReply, StreamInfoGroupsReply};
use serde::Serialize;

use crate::conn::Redacted;
use crate::discover;
use crate::error::{CliError, Result};
use crate::table::{maybe, millis, Table};

/// The whole report (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub(crate) prefix: String,
    pub(crate) streams: Vec<StreamStatus>,
    pub(crate) groups: Vec<GroupStatus>,
}

/// One event stream.
#[derive(Debug, Serialize)]
pub(crate) struct StreamStatus {
    pub(crate) stream: String,
    pub(crate) event_type: String,
    /// Entries in the stream (`XLEN`; 0 when only its dead letters are left).
    pub(crate) length: u64,
    pub(crate) groups: usize,
    /// Dead letters this runtime wrote.
    pub(crate) dead_letters: usize,
    /// Dead letters another implementation (the seed) wrote.
    pub(crate) foreign_dead_letters: usize,
}

/// One consumer group.
#[derive(Debug, Serialize)]
pub(crate) struct GroupStatus {
    pub(crate) stream: String,
    pub(crate) group: String,
    /// Entries not yet delivered to the group (`None` when Redis cannot tell).
    pub(crate) lag: Option<u64>,
    /// Entries delivered and not acknowledged.
    pub(crate) pending: u64,
    pub(crate) last_delivered_id: String,
    pub(crate) consumers: Vec<ConsumerStatus>,
    /// Milliseconds since the group's most recently seen consumer was seen (`None`: no
    /// consumer).
    pub(crate) idle_ms: Option<u64>,
    /// Dead letters of this subscriber in the stream's dead-letter stream.
    pub(crate) dead_letters: usize,
    /// Replay requests written and not yet carried out.
    pub(crate) replays_queued: u64,
    /// No consumer seen for `--orphan-after` (or none at all).
    pub(crate) orphaned: bool,
}

/// One consumer of a group.
#[derive(Debug, Serialize)]
pub(crate) struct ConsumerStatus {
    pub(crate) name: String,
    pub(crate) pending: u64,
    pub(crate) idle_ms: u64,
}

fn redis_err(what: String, url: &Redacted) -> impl FnOnce(redis::RedisError) -> CliError + '_ {
    move |e| CliError::redis(what, url, &e)
}

/// Gathers the report.
pub(crate) async fn gather(
    conn: &mut MultiplexedConnection,
    url: &Redacted,
    prefix: &str,
    orphan_after: Duration,
) -> Result<Status> {
    let found = discover::streams(conn, url, prefix).await?;
    let mut all: Vec<String> = found
        .events
        .iter()
        .chain(&found.with_dead_letters)
        .cloned()
        .collect();
    all.sort();
    all.dedup();
    let orphan_ms = u64::try_from(orphan_after.as_millis()).unwrap_or(u64::MAX);
    let mut status = Status {
        prefix: prefix.to_owned(),
        streams: Vec::new(),
        groups: Vec::new(),
    };
    for stream in all {
        let length: u64 = if found.events.contains(&stream) {
            redis::cmd("XLEN")
                .arg(&stream)
                .query_async(conn)
                .await
                .map_err(redis_err(format!("reading the length of {stream}"), url))?
        } else {
            0
        };
        let mut by_subscriber: BTreeMap<String, usize> = BTreeMap::new();
        let mut foreign = 0;
        if found.with_dead_letters.contains(&stream) {
            let dl = admin::dead_letter_stream(&stream);
            for letter in admin::dead_letters(conn, &dl)
                .await
                .map_err(redis_err(format!("reading {dl}"), url))?
            {
                if letter.foreign {
                    foreign += 1;
                } else {
                    *by_subscriber.entry(letter.subscriber).or_default() += 1;
                }
            }
        }
        let groups: StreamInfoGroupsReply = if found.events.contains(&stream) {
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&stream)
                .query_async(conn)
                .await
                .map_err(redis_err(format!("reading the groups of {stream}"), url))?
        } else {
            StreamInfoGroupsReply::default()
        };
        status.streams.push(StreamStatus {
            event_type: event_type_of(&stream).to_owned(),
            stream: stream.clone(),
            length,
            groups: groups.groups.len(),
            dead_letters: by_subscriber.values().sum(),
            foreign_dead_letters: foreign,
        });
        for group in groups.groups {
            let consumers: StreamInfoConsumersReply = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&stream)
                .arg(&group.name)
                .query_async(conn)
                .await
                .map_err(redis_err(
                    format!("reading the consumers of {} on {stream}", group.name),
                    url,
                ))?;
            let consumers: Vec<ConsumerStatus> = consumers
                .consumers
                .into_iter()
                .map(|c| ConsumerStatus {
                    name: c.name,
                    pending: c.pending as u64,
                    idle_ms: c.idle as u64,
                })
                .collect();
            let idle_ms = consumers.iter().map(|c| c.idle_ms).min();
            let replays_queued = match found.replays.get(&(stream.clone(), group.name.clone())) {
                Some(key) => redis::cmd("XLEN")
                    .arg(key)
                    .query_async(conn)
                    .await
                    .map_err(redis_err(format!("reading the length of {key}"), url))?,
                None => 0,
            };
            status.groups.push(GroupStatus {
                dead_letters: by_subscriber.get(&group.name).copied().unwrap_or(0),
                stream: stream.clone(),
                lag: group.lag.map(|l| l as u64),
                pending: group.pending as u64,
                last_delivered_id: group.last_delivered_id,
                orphaned: idle_ms.is_none_or(|idle| idle >= orphan_ms),
                idle_ms,
                consumers,
                replays_queued,
                group: group.name,
            });
        }
    }
    Ok(status)
}

/// Prints the report as tables.
pub(crate) fn print(status: &Status, orphan_after: Duration, out: &mut impl Write) -> Result<()> {
    if status.streams.is_empty() {
        writeln!(
            out,
            "no streams under the prefix `{}`: check --prefix (the seed's is alga-psa:event-stream) and --url",
            status.prefix
        )?;
        return Ok(());
    }
    let mut streams = Table::new(vec![
        "STREAM",
        "TYPE",
        "LENGTH",
        "GROUPS",
        "DEAD LETTERS",
        "FOREIGN",
    ]);
    for s in &status.streams {
        streams.row(vec![
            s.stream.clone(),
            s.event_type.clone(),
            s.length.to_string(),
            s.groups.to_string(),
            s.dead_letters.to_string(),
            s.foreign_dead_letters.to_string(),
        ]);
    }
    streams.write(out)?;
    writeln!(out)?;
    if status.groups.is_empty() {
        writeln!(out, "no consumer groups")?;
        return Ok(());
    }
    let mut groups = Table::new(vec![
        "STREAM",
        "GROUP",
        "LAG",
        "PENDING",
        "CONSUMERS",
        "IDLE",
        "DEAD LETTERS",
        "REPLAYS QUEUED",
        "STATE",
    ]);
    for g in &status.groups {
        groups.row(vec![
            g.stream.clone(),
            g.group.clone(),
            maybe(g.lag),
            g.pending.to_string(),
            g.consumers.len().to_string(),
            g.idle_ms.map_or_else(|| "-".to_owned(), millis),
            g.dead_letters.to_string(),
            g.replays_queued.to_string(),
            if g.orphaned { "orphaned" } else { "ok" }.to_owned(),
        ]);
    }
    groups.write(out)?;
    let mut consumers = Table::new(vec!["STREAM", "GROUP", "CONSUMER", "PENDING", "IDLE"]);
    for g in &status.groups {
        for c in &g.consumers {
            consumers.row(vec![
                g.stream.clone(),
                g.group.clone(),
                c.name.clone(),
                c.pending.to_string(),
                millis(c.idle_ms),
            ]);
        }
    }
    if !consumers.is_empty() {
        writeln!(out)?;
        consumers.write(out)?;
    }
    let orphaned = status.groups.iter().filter(|g| g.orphaned).count();
    if orphaned > 0 {
        writeln!(
            out,
            "\n{orphaned} orphaned group(s): no consumer seen for {} or more. Start the service \
             that runs it, or, if it is the old name of a renamed subscriber, delete it once \
             drained: XGROUP DESTROY <stream> <group>",
            millis(u64::try_from(orphan_after.as_millis()).unwrap_or(u64::MAX))
        )?;
    }
    Ok(())
}
