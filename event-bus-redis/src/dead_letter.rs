//! Dead letters on Redis: written to `{stream}:dead-letter` with the seed's field names
//! (`sourceStream`, `sourceMessageId`, `deliveries`, `deadLetteredAt`) plus ours (`subscriber`,
//! `error`, `errorKind`, `runs`, `reason`), read back as [`DeadLetter`]s, and found again after a crash so an
//! entry is never dead-lettered twice.
//!
//! The seed system writes its own dead letters to the same streams, with only its fields (no
//! `subscriber`): they are read back as foreign letters, never replayed here, and deleted only
//! when a purge selects them. The seed also trims each dead-letter stream to about
//! [`SEED_DEAD_LETTER_CAP`] entries with every letter it writes, ours included:
//! [`warn_if_shared_near_cap`] says so at start.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use event_bus_core::{DeadLetter, DeadLetterFilter, Failure, FailureKind};
use redis::aio::ConnectionLike;

use crate::connection::Conn;
use redis::{cmd, RedisResult, Value};

use crate::keys::{event_type_of, id_millis};
use crate::reply::{self, Entry};

/// The fields of a dead letter for an entry of `source_stream`.
pub(crate) struct DeadLetterFields<'a> {
    pub(crate) source_stream: &'a str,
    pub(crate) source_message_id: &'a str,
    pub(crate) subscriber: &'a str,
    pub(crate) deliveries: u32,
    pub(crate) runs: u32,
    pub(crate) reason: &'a str,
    pub(crate) failure: &'a Failure,
}

/// `XADD {dl} * <original fields> sourceStream .. sourceMessageId .. deliveries ..
/// deadLetteredAt .. subscriber .. error .. errorKind .. runs .. reason ..`.
pub(crate) async fn write(
    conn: &mut Conn,
    dl_stream: &str,
    original: &[(String, Vec<u8>)],
    fields: DeadLetterFields<'_>,
) -> RedisResult<String> {
    let mut c = cmd("XADD");
    c.arg(dl_stream).arg("*");
    for (k, v) in original {
        if !is_dead_letter_field(k) {
            c.arg(k).arg(v);
        }
    }
    c.arg("sourceStream")
        .arg(fields.source_stream)
        .arg("sourceMessageId")
        .arg(fields.source_message_id)
        .arg("deliveries")
        .arg(fields.deliveries)
        .arg("deadLetteredAt")
        .arg(event_bus_core::format_timestamp(&Utc::now()))
        .arg("subscriber")
        .arg(fields.subscriber)
        .arg("error")
        .arg(&fields.failure.message)
        .arg("errorKind")
        .arg(fields.failure.kind.as_str())
        .arg("runs")
        .arg(fields.runs)
        .arg("reason")
        .arg(fields.reason);
    let id: Value = c.query_async(conn).await?;
    Ok(reply::string(id).unwrap_or_default())
}

fn is_dead_letter_field(name: &str) -> bool {
    matches!(
        name,
        "sourceStream"
            | "sourceMessageId"
            | "deliveries"
            | "deadLetteredAt"
            | "subscriber"
            | "error"
            | "errorKind"
            | "runs"
            | "reason"
    )
}

/// How many entries the seed keeps in a dead-letter stream: every dead letter it writes is an
/// `XADD {stream}:dead-letter MAXLEN ~ 1000`, which trims the oldest letters, ours included.
pub(crate) const SEED_DEAD_LETTER_CAP: u64 = 1000;

/// From how many entries a shared dead-letter stream counts as near the seed's cap.
const NEAR_CAP: u64 = SEED_DEAD_LETTER_CAP * 8 / 10;

/// Whether a dead-letter entry was written by another implementation (the seed): ours always
/// name their subscriber.
pub(crate) fn is_foreign(entry: &Entry) -> bool {
    entry.field("subscriber").is_none()
}

/// The dead letter an entry of a dead-letter stream describes.
pub(crate) fn parse(entry: Entry) -> DeadLetter {
    let source_stream = entry.field_str("sourceStream").unwrap_or_default();
    let foreign = is_foreign(&entry);
    let deliveries = entry
        .field_str("deliveries")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let reason = match entry.field_str("reason") {
        Some(reason) => reason,
        None if foreign => format!(
            "dead-lettered by another implementation (the seed system) after {deliveries} \
             deliveries; it records no subscriber, error or reason"
        ),
        None => String::new(),
    };
    let kind = match entry.field_str("errorKind") {
        Some(k) => FailureKind::parse(&k).unwrap_or(FailureKind::Handler),
        // The seed gives up on an entry after a number of deliveries, whatever happened.
        None if foreign => FailureKind::Crashed,
        None => FailureKind::Handler,
    };
    let mut letter = DeadLetter {
        id: entry.id.clone(),
        event_type: event_type_of(&source_stream).to_owned(),
        source_message_id: entry.field_str("sourceMessageId").unwrap_or_default(),
        subscriber: entry.field_str("subscriber").unwrap_or_default(),
        deliveries,
        runs: entry
            .field_str("runs")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
        reason,
        error: entry.field_str("error").unwrap_or_default(),
        kind,
        foreign,
        dead_lettered_at: entry
            .field_str("deadLetteredAt")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default(),
        payload: entry.field("event").map(<[u8]>::to_vec).unwrap_or_default(),
        source_stream,
    };
    if letter.event_type.is_empty() {
        letter.event_type = "?".to_owned();
    }
    letter
}

/// Every entry of a stream, read in pages.
pub(crate) async fn read_all(
    conn: &mut (impl ConnectionLike + Send),
    stream: &str,
    from: &str,
) -> RedisResult<Vec<Entry>> {
    let mut out = Vec::new();
    let mut start = from.to_owned();
    loop {
        let page: Value = cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(500)
            .query_async(conn)
            .await?;
        let page = reply::entries(page);
        let full = page.len() == 500;
        if let Some(last) = page.last() {
            start = format!("({}", last.id);
        }
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// Which of `ids` (entries of the source stream) `subscriber` already dead-lettered: after a
/// crash between writing a dead letter and acknowledging the entry, the entry comes back, and
/// must only be acknowledged.
pub(crate) async fn already_dead_lettered(
    conn: &mut Conn,
    dl_stream: &str,
    subscriber: &str,
    ids: &[String],
) -> RedisResult<HashSet<String>> {
    let Some(oldest) = ids.iter().map(|id| id_millis(id)).min() else {
        return Ok(HashSet::new());
    };
    // A dead letter is written after its entry was created, so only entries from then on can
    // match.
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let entries = read_all(conn, dl_stream, &format!("{oldest}-0")).await?;
    Ok(entries
        .iter()
        .filter(|e| e.field("subscriber") == Some(subscriber.as_bytes()))
        .filter_map(|e| e.field_str("sourceMessageId"))
        .filter(|id| wanted.contains(id.as_str()))
        .collect())
}

/// Deletes the letters of `dl_stream` that `filter` selects, by id (`XDEL`, never `DEL`: the
/// letters it leaves out, and those written meanwhile, stay as they are); returns how many
/// Redis deleted.
pub(crate) async fn purge(
    conn: &mut (impl ConnectionLike + Send),
    dl_stream: &str,
    filter: &DeadLetterFilter,
) -> RedisResult<usize> {
    let ids: Vec<String> = read_all(conn, dl_stream, "-")
        .await?
        .into_iter()
        .map(parse)
        .filter(|letter| filter.matches(letter))
        .map(|letter| letter.id)
        .collect();
    let mut deleted = 0;
    for chunk in ids.chunks(500) {
        let n: u64 = cmd("XDEL")
            .arg(dl_stream)
            .arg(chunk)
            .query_async(conn)
            .await?;
        deleted += usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(deleted)
}

/// Warns when `dl_stream` is shared with the seed (it holds foreign letters) and near the seed's
/// cap: each dead letter the seed writes trims the stream to about [`SEED_DEAD_LETTER_CAP`]
/// entries, the oldest first, so `subscriber`'s letters there are deleted unseen once the seed
/// has written that many more. Looks at the newest [`SEED_DEAD_LETTER_CAP`] entries only.
pub(crate) async fn warn_if_shared_near_cap(
    conn: &mut Conn,
    dl_stream: &str,
    subscriber: &str,
) -> RedisResult<()> {
    let len: u64 = cmd("XLEN").arg(dl_stream).query_async(conn).await?;
    if len < NEAR_CAP {
        return Ok(());
    }
    let newest: Value = cmd("XREVRANGE")
        .arg(dl_stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(SEED_DEAD_LETTER_CAP)
        .query_async(conn)
        .await?;
    let newest = reply::entries(newest);
    let foreign = newest.iter().filter(|e| is_foreign(e)).count();
    if foreign == 0 {
        return Ok(());
    }
    let ours = newest
        .iter()
        .filter(|e| e.field("subscriber") == Some(subscriber.as_bytes()))
        .count();
    tracing::warn!(
        stream = %dl_stream,
        subscriber,
        entries = len,
        foreign,
        ours,
        cap = SEED_DEAD_LETTER_CAP,
        "this dead-letter stream is shared with the seed system, which trims it to about {SEED_DEAD_LETTER_CAP} \
         entries (oldest first, ours included) with every dead letter it writes: replay or purge this \
         subscriber's letters (or copy them elsewhere) before the seed writes that many more"
    );
    Ok(())
}
