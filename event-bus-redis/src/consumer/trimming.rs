//! Entries removed from the stream before the subscriber's group read them: trimmed by another
//! publisher (the seed's every `XADD ... MAXLEN ~ 1000`), by an `XTRIM`, or deleted with `XDEL`.
//! Nothing in Redis tells a group it missed them; this check finds them from the stream's and
//! the group's counters, counts them in
//! [`SubscriberCounters::trimmed_unhandled`](event_bus_core::transport::SubscriberCounters) and
//! logs a warning with the count, the stream and the group.
//!
//! ## What Redis (7.0) counts
//!
//! `XINFO STREAM` gives `entries-added` (every entry ever added), `length` and the first and last
//! entry ids; `XINFO GROUPS` gives the group's `last-delivered-id` and `entries-read`. For a group
//! whose `entries-read` is valid, the entries removed before it read them are
//!
//! - `entries-added - entries-read - length` while its last-delivered id is below the stream's
//!   first entry (every entry still there is ahead of it);
//! - `entries-added - entries-read` once it has read the last entry (none is ahead of it).
//!
//! In between, the entries still ahead of the group are not known without counting them, and
//! the check waits for a later round. Redis 7.0 keeps a valid `entries-read` by adding one per
//! entry delivered, blindly across a gap left by trimming (its `lag` then stays above zero
//! forever), so the formula above gives the group's cumulative gap, still visible after the
//! group read past it. Two cases lose it:
//!
//! - a counter that is not valid (`nil`): Redis 7.0 creates every group so unless
//!   `XGROUP CREATE` is given `ENTRIESREAD` (ours are: see `groups::ensure_group`); the first
//!   read then re-estimates the counter from the stream's first entry, counting the gap as read;
//! - later Redis versions (redis/redis#13958, 2025) also re-estimate a valid counter when the
//!   group reads past a gap, so there a gap is seen only while the group is below the first
//!   entry: the check runs as soon as the consumer starts and in every maintenance round.
//!
//! ## Counting each entry once
//!
//! The cumulative gap already reported is recorded per group in `{stream}:trimmed:{group}` (a
//! hash: `reported`, and the stream's `entries-added` then), so each entry is counted once per
//! subscriber, across rounds, restarts and the processes that share the group: only the growth
//! of the gap is counted. When the gap shrinks (Redis re-estimated the counter, or the group was
//! reset) the record follows it down; when `entries-added` went back (the stream was recreated)
//! the record starts over. The record expires [`RECORD_TTL`] after its last write.

use std::time::{Duration, Instant};

use event_bus_core::transport::SubscriberCounters;
use redis::{RedisResult, Script, Value};

use super::ConsumerShared;
use crate::connection::is_no_such_key;
use crate::reply;

/// How long the record of reported gaps outlives its last write.
pub(crate) const RECORD_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// How often an unchanged record is written again (to keep it from expiring).
const REFRESH: Duration = Duration::from_secs(3600);

/// The record of the gap already reported, `{stream}:trimmed:{group}`.
pub(crate) fn record_key(stream: &str, group: &str) -> String {
    format!("{stream}:trimmed:{group}")
}

/// Records the group's cumulative gap (`ARGV[1]`) with the stream's `entries-added`
/// (`ARGV[2]`), expiring after `ARGV[3]` ms; returns how much of it was not reported before.
const RECORD: &str = r"
local gap = tonumber(ARGV[1])
local added = tonumber(ARGV[2])
local rec = redis.call('HMGET', KEYS[1], 'reported', 'added')
local reported = tonumber(rec[1]) or 0
if added < (tonumber(rec[2]) or 0) then reported = 0 end
redis.call('HSET', KEYS[1], 'reported', gap, 'added', added)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if gap > reported then return gap - reported end
return 0
";

/// A stream entry id, ordered.
type Id = (u64, u64);

pub(crate) fn parse_id(id: &str) -> Option<Id> {
    crate::reply::StreamId::parse(id).map(crate::reply::StreamId::parts)
}

/// What `XINFO STREAM` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamCounters {
    pub(crate) entries_added: u64,
    pub(crate) length: u64,
    /// `None` when the stream is empty.
    pub(crate) first_entry: Option<Id>,
    pub(crate) last_generated: Id,
}

/// What `XINFO GROUPS` says of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupCounters {
    pub(crate) last_delivered: Id,
    /// `None` when Redis does not know it (`nil`).
    pub(crate) entries_read: Option<u64>,
}

/// How many entries were removed before the group read them, cumulatively, as Redis's counters
/// tell it now; `None` when they cannot tell (no valid read counter, or the group is between the
/// stream's first and last entries).
pub(crate) fn removed_unread(stream: StreamCounters, group: GroupCounters) -> Option<u64> {
    let read = group.entries_read?;
    if stream.entries_added == 0 {
        return Some(0);
    }
    let ahead = match stream.first_entry {
        None => 0,
        Some(first) if group.last_delivered < first => stream.length,
        Some(_) if group.last_delivered >= stream.last_generated => 0,
        Some(_) => return None,
    };
    Some(
        stream
            .entries_added
            .saturating_sub(read)
            .saturating_sub(ahead),
    )
}

pub(crate) fn parse_stream(info: Value) -> Option<StreamCounters> {
    let mut added = None;
    let mut length = None;
    let mut first = None;
    let mut recorded_first = None;
    let mut last = None;
    for (key, value) in reply::info_pairs(info) {
        match key.as_str() {
            "entries-added" => added = reply::int(&value),
            "length" => length = reply::int(&value),
            "last-generated-id" => last = reply::string(value).as_deref().and_then(parse_id),
            "recorded-first-entry-id" => {
                recorded_first = reply::string(value).as_deref().and_then(parse_id);
            }
            "first-entry" => {
                first = reply::info_pairs_list(value)
                    .into_iter()
                    .next()
                    .and_then(reply::string)
                    .as_deref()
                    .and_then(parse_id);
            }
            _ => {}
        }
    }
    let length = u64::try_from(length?).ok()?;
    Some(StreamCounters {
        // `entries-added` is Redis 7's: without it nothing can be told.
        entries_added: u64::try_from(added?).ok()?,
        length,
        first_entry: if length == 0 {
            None
        } else {
            first.or(recorded_first)
        },
        last_generated: last?,
    })
}

pub(crate) fn parse_group(groups: Value, name: &str) -> Option<GroupCounters> {
    reply::info_rows(groups).into_iter().find_map(|row| {
        let get = |k: &str| row.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        if get("name").and_then(reply::string).as_deref() != Some(name) {
            return None;
        }
        Some(GroupCounters {
            last_delivered: get("last-delivered-id")
                .and_then(reply::string)
                .as_deref()
                .and_then(parse_id)?,
            entries_read: get("entries-read")
                .as_ref()
                .and_then(reply::int)
                .and_then(|n| u64::try_from(n).ok()),
        })
    })
}

/// One subscriber's check, kept across its maintenance rounds.
#[derive(Debug, Default)]
pub(crate) struct TrimCheck {
    /// The gap last recorded by this process, and when.
    recorded: Option<(u64, Instant)>,
    /// Whether the last check could not tell (the group was between the stream's first and
    /// last entries): maintenance then checks again next round, not after the slow interval.
    pub(crate) inconclusive: bool,
}

impl TrimCheck {
    /// Looks for entries removed before the group read them since the last report; counts and
    /// logs those not reported yet, less `already_counted` (entries this process's own
    /// retention cap trimmed in this round and counted itself). Returns how many it counted.
    pub(crate) async fn run(
        &mut self,
        shared: &ConsumerShared,
        already_counted: u64,
    ) -> RedisResult<u64> {
        let mut conn = shared.conn.clone();
        let result: RedisResult<(Value, Value)> = redis::pipe()
            .atomic()
            .cmd("XINFO")
            .arg("STREAM")
            .arg(&shared.stream)
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(&shared.stream)
            .query_async(&mut conn)
            .await;
        let (stream_info, groups) = match result {
            Ok(replies) => replies,
            Err(e) if is_no_such_key(&e) => return Ok(0),
            Err(e) => return Err(e),
        };
        let (Some(stream), Some(group)) = (
            parse_stream(stream_info),
            parse_group(groups, &shared.group),
        ) else {
            return Ok(0);
        };
        let gap = removed_unread(stream, group);
        self.inconclusive = gap.is_none();
        let Some(gap) = gap else {
            tracing::trace!(stream = %shared.stream, group = %shared.group, ?group,
                "cannot tell yet whether entries were trimmed before the group read them");
            return Ok(0);
        };
        if let Some((recorded, at)) = self.recorded {
            if recorded == gap && at.elapsed() < REFRESH {
                return Ok(0);
            }
        }
        let ttl_ms = u64::try_from(RECORD_TTL.as_millis()).unwrap_or(u64::MAX);
        let new: u64 = Script::new(RECORD)
            .key(record_key(&shared.stream, &shared.group))
            .arg(gap)
            .arg(stream.entries_added)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await?;
        self.recorded = Some((gap, Instant::now()));
        let counted = new.saturating_sub(already_counted);
        if counted > 0 {
            SubscriberCounters::add(&shared.counters.trimmed_unhandled, counted);
            tracing::warn!(
                stream = %shared.stream,
                group = %shared.group,
                trimmed = counted,
                "{counted} entries were removed from the stream before this subscriber's group read them \
                 (trimmed, e.g. by another publisher's XADD MAXLEN ~ 1000, or deleted): they will never be \
                 handled; counted in trimmed_unhandled"
            );
        }
        Ok(counted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(added: u64, length: u64, first: Option<Id>, last: Id) -> StreamCounters {
        StreamCounters {
            entries_added: added,
            length,
            first_entry: first,
            last_generated: last,
        }
    }

    fn group(last: Id, read: Option<u64>) -> GroupCounters {
        GroupCounters {
            last_delivered: last,
            entries_read: read,
        }
    }

    #[test]
    fn a_group_below_the_first_entry_missed_what_was_trimmed_ahead_of_it() {
        // 3,000 added while the group (read counter 0) was away, then an XADD MAXLEN ~ 1000.
        let s = stream(3001, 1001, Some((100, 13)), (200, 0));
        assert_eq!(removed_unread(s, group((0, 0), Some(0))), Some(2000));
        // The group had read 50 of them first.
        assert_eq!(removed_unread(s, group((50, 0), Some(50))), Some(1950));
    }

    #[test]
    fn redis_7_0_keeps_the_gap_in_the_read_counter_once_read_past() {
        // After reading the 1,001 entries left, Redis 7.0 counts 0 + 1,001 read.
        let s = stream(3001, 1001, Some((100, 13)), (200, 0));
        assert_eq!(removed_unread(s, group((200, 0), Some(1001))), Some(2000));
        // Nothing removed: caught up, the counter matches what was added.
        assert_eq!(removed_unread(s, group((200, 0), Some(3001))), Some(0));
    }

    #[test]
    fn unknown_in_between_or_without_a_counter() {
        let s = stream(3001, 1001, Some((100, 13)), (200, 0));
        assert_eq!(removed_unread(s, group((150, 0), Some(1001))), None);
        assert_eq!(removed_unread(s, group((0, 0), None)), None);
    }

    #[test]
    fn empty_streams() {
        assert_eq!(
            removed_unread(stream(0, 0, None, (0, 0)), group((0, 0), Some(0))),
            Some(0)
        );
        // Everything deleted, 10 of 40 read.
        assert_eq!(
            removed_unread(stream(40, 0, None, (9, 0)), group((3, 0), Some(10))),
            Some(30)
        );
    }

    #[test]
    fn a_counter_above_what_was_added_is_no_gap() {
        let s = stream(10, 10, Some((1, 0)), (10, 0));
        assert_eq!(removed_unread(s, group((10, 0), Some(12))), Some(0));
    }

    #[test]
    fn parses_xinfo_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let info = Value::Array(vec![
            bulk("length"),
            Value::Int(1001),
            bulk("last-generated-id"),
            bulk("200-0"),
            bulk("max-deleted-entry-id"),
            bulk("0-0"),
            bulk("entries-added"),
            Value::Int(3001),
            bulk("recorded-first-entry-id"),
            bulk("100-13"),
            bulk("first-entry"),
            Value::Array(vec![
                bulk("100-13"),
                Value::Array(vec![bulk("event"), bulk("{}")]),
            ]),
        ]);
        assert_eq!(
            parse_stream(info),
            Some(stream(3001, 1001, Some((100, 13)), (200, 0)))
        );
        let groups = Value::Array(vec![
            Value::Array(vec![
                bulk("name"),
                bulk("other"),
                bulk("last-delivered-id"),
                bulk("1-0"),
                bulk("entries-read"),
                Value::Int(1),
            ]),
            Value::Array(vec![
                bulk("name"),
                bulk("mine"),
                bulk("last-delivered-id"),
                bulk("0-0"),
                bulk("entries-read"),
                Value::Nil,
            ]),
        ]);
        assert_eq!(
            parse_group(groups.clone(), "mine"),
            Some(group((0, 0), None))
        );
        assert_eq!(
            parse_group(groups.clone(), "other"),
            Some(group((1, 0), Some(1)))
        );
        assert_eq!(parse_group(groups, "absent"), None);
    }
}
