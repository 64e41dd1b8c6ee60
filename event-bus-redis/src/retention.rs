//! Retention: trimming streams without silently losing entries a group still needs.
//!
//! The oldest entry some group still needs is, per group, its oldest pending entry, or the
//! entry after its last-delivered id when nothing is pending; the minimum over the groups is the
//! safe trim point (`XTRIM MINID`). A `MaxLen` cap that would cut past it is reported.

use crate::connection::Conn;
use redis::{cmd, RedisResult, Value};

use crate::config::Retention;
use crate::reply;
use event_bus_core::transport::SubscriberCounters;

/// `ms-seq` ordering.
pub(crate) fn parse_id(id: &str) -> (u64, u64) {
    let mut parts = id.splitn(2, '-');
    let ms = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let seq = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (ms, seq)
}

/// The oldest id some group of `stream` still needs; `None` when the stream has no groups.
pub(crate) async fn oldest_needed(
    conn: &mut Conn,
    stream: &str,
) -> RedisResult<Option<(u64, u64)>> {
    let groups: Value = cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await?;
    let mut oldest: Option<(u64, u64)> = None;
    for row in reply::info_rows(groups) {
        let get = |k: &str| {
            row.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        let name = get("name").and_then(reply::string).unwrap_or_default();
        let pending = get("pending").as_ref().and_then(reply::int).unwrap_or(0);
        let needed = if pending > 0 {
            let summary: Value = cmd("XPENDING")
                .arg(stream)
                .arg(&name)
                .query_async(conn)
                .await?;
            let min = reply::info_pairs_list(summary)
                .get(1)
                .cloned()
                .and_then(reply::string)
                .unwrap_or_default();
            parse_id(&min)
        } else {
            let last = get("last-delivered-id")
                .and_then(reply::string)
                .unwrap_or_default();
            let (ms, seq) = parse_id(&last);
            (ms, seq.saturating_add(1))
        };
        oldest = Some(oldest.map_or(needed, |o| o.min(needed)));
    }
    Ok(oldest)
}

/// Applies the retention policy to one stream.
pub(crate) async fn apply(
    conn: &Conn,
    stream: &str,
    retention: Retention,
    counters: &SubscriberCounters,
) -> RedisResult<()> {
    let cap = match retention {
        Retention::Unbounded => return Ok(()),
        Retention::TrimHandled => None,
        Retention::MaxLen(n) => Some(n),
    };
    let mut conn = conn.clone();
    let Some((ms, seq)) = oldest_needed(&mut conn, stream).await? else {
        return Ok(());
    };
    let _: Value = cmd("XTRIM")
        .arg(stream)
        .arg("MINID")
        .arg(format!("{ms}-{seq}"))
        .query_async(&mut conn)
        .await?;
    let Some(cap) = cap else { return Ok(()) };
    let len: u64 = cmd("XLEN").arg(stream).query_async(&mut conn).await?;
    if len > cap {
        // Everything left is still needed by some group: the cap drops unhandled entries.
        // Counted from XTRIM's own reply: entries published since the XLEN are dropped too.
        let dropped: u64 = cmd("XTRIM")
            .arg(stream)
            .arg("MAXLEN")
            .arg(cap)
            .query_async(&mut conn)
            .await?;
        if dropped > 0 {
            SubscriberCounters::add(&counters.trimmed_unhandled, dropped);
            tracing::warn!(
                stream,
                cap,
                dropped,
                "retention cap reached: trimmed entries that a consumer group had not handled yet"
            );
        }
    }
    Ok(())
}
