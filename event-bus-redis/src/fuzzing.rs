//! The parsers of what Redis and other services send, reachable from outside the crate for the
//! fuzz targets and property tests (`fuzz/`, `tests/fuzz-targets`). Not public API: it changes
//! without notice.
//!
//! Each function is a thin wrapper over the crate's own parser, with plain types in and out.

use event_bus_core::DeadLetter;
use redis::Value;

use crate::consumer::trimming;
use crate::reply::{self, StreamId};
use crate::{dead_letter, keys, retention, workflow};

/// A stream entry as the reply parser returns it: its id and its fields in order.
pub type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

fn plain(entry: reply::Entry) -> Entry {
    entry.into_parts()
}

/// A list of entries (`XRANGE`, `XCLAIM`).
pub fn entries(value: Value) -> Vec<Entry> {
    reply::entries(value).into_iter().map(plain).collect()
}

/// The entries of a single-stream `XREADGROUP` reply.
pub fn read_reply(value: Value) -> Vec<Entry> {
    reply::read_reply(value).into_iter().map(plain).collect()
}

/// The stream keys of a multi-stream `XREAD` reply.
pub fn read_reply_streams(value: Value) -> Vec<String> {
    reply::read_reply_streams(value)
}

/// An `XAUTOCLAIM` reply: cursor, claimed entries, deleted ids.
pub fn autoclaim_reply(value: Value) -> (String, Vec<Entry>, Vec<String>) {
    let (cursor, claimed, deleted) = reply::autoclaim_reply(value);
    (cursor, claimed.into_iter().map(plain).collect(), deleted)
}

/// An `XINFO` reply as pairs.
pub fn info_pairs(value: Value) -> Vec<(String, Value)> {
    reply::info_pairs(value)
}

/// An `XINFO GROUPS` reply, one pair list per group.
pub fn info_rows(value: Value) -> Vec<Vec<(String, Value)>> {
    reply::info_rows(value)
}

/// A text reply.
pub fn string(value: Value) -> Option<String> {
    reply::string(value)
}

/// An integer reply (`XINFO` counters).
pub fn int(value: &Value) -> Option<i64> {
    reply::int(value)
}

/// What the foreign-trim check reads from `XINFO STREAM`: entries added, length, first entry
/// id, last generated id.
pub type StreamCounters = (u64, u64, Option<(u64, u64)>, (u64, u64));

/// What the foreign-trim check reads of group `name` from `XINFO GROUPS`: last delivered id,
/// entries read.
pub type GroupCounters = ((u64, u64), Option<u64>);

/// The foreign-trim check's reading of an `XINFO STREAM` reply.
pub fn stream_counters(info: Value) -> Option<StreamCounters> {
    trimming::parse_stream(info)
        .map(|s| (s.entries_added, s.length, s.first_entry, s.last_generated))
}

/// The foreign-trim check's reading of group `name` in an `XINFO GROUPS` reply.
pub fn group_counters(groups: Value, name: &str) -> Option<GroupCounters> {
    trimming::parse_group(groups, name).map(|g| (g.last_delivered, g.entries_read))
}

/// The foreign-trim check's count of entries removed before the group read them.
pub fn removed_unread(stream: StreamCounters, group: GroupCounters) -> Option<u64> {
    let (entries_added, length, first_entry, last_generated) = stream;
    trimming::removed_unread(
        trimming::StreamCounters {
            entries_added,
            length,
            first_entry,
            last_generated,
        },
        trimming::GroupCounters {
            last_delivered: group.0,
            entries_read: group.1,
        },
    )
}

/// The dead letter an entry of a dead-letter stream describes, and whether it counts as
/// foreign.
pub fn dead_letter(entry: Entry) -> (DeadLetter, bool) {
    let entry = reply::Entry::from_pairs(entry.0, entry.1);
    let foreign = dead_letter::is_foreign(&entry);
    (dead_letter::parse(entry), foreign)
}

/// A stream entry id, `<ms>-<seq>`, as the consumer parses it (acknowledgements, claims).
pub fn stream_id(id: &str) -> Option<(u64, u64)> {
    StreamId::parse(id).map(StreamId::parts)
}

/// Whether the consumer takes `id` for a stream entry id when acknowledging it (the same as
/// [`stream_id`] accepting it).
pub fn is_stream_id(id: &str) -> bool {
    reply::is_stream_id(id)
}

/// `<ms>-<seq>` as the consumer writes it.
pub fn format_stream_id(ms: u64, seq: u64) -> String {
    StreamId::from_parts(ms, seq).to_string()
}

/// Compares two ids as the consumer's `StreamId` orders them.
pub fn compare_stream_ids(a: (u64, u64), b: (u64, u64)) -> std::cmp::Ordering {
    StreamId::from_parts(a.0, a.1).cmp(&StreamId::from_parts(b.0, b.1))
}

/// A stream entry id as the foreign-trim check parses it.
pub fn trimming_id(id: &str) -> Option<(u64, u64)> {
    trimming::parse_id(id)
}

/// A stream entry id as retention parses it (lenient: `0` for a part it cannot read).
pub fn retention_id(id: &str) -> (u64, u64) {
    retention::parse_id(id)
}

/// The millisecond part of an id, as the dead-letter scan reads it.
pub fn id_millis(id: &str) -> u64 {
    keys::id_millis(id)
}

/// The event type a stream key carries.
pub fn event_type_of(stream: &str) -> &str {
    keys::event_type_of(stream)
}

/// The seed's workflow entry of an envelope.
pub fn workflow_fields(
    envelope_json: &str,
) -> Result<Vec<(&'static str, String)>, serde_json::Error> {
    workflow::fields(envelope_json)
}
