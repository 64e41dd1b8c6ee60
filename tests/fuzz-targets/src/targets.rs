//! The targets: each runs every parser its input reaches and checks what they promise. A
//! panic, here or in a parser, is a finding.

use chrono::{DateTime, Utc};
use event_bus_core::transport::{decode, encode_envelope};
use event_bus_core::{registered_events, Envelope, Event, FailureKind};
use event_bus_redis::__fuzz as parse;
use redis::streams::{
    StreamInfoConsumersReply, StreamInfoGroupsReply, StreamPendingCountReply, StreamPendingReply,
};
use redis::{FromRedisValue, Value};

use crate::events::{AnyTenant, Probe, Rules, TicketUpdated};
use crate::value;

/// Raw bytes from a Redis connection: parsed by redis-rs (RESP2 and RESP3), then by every reply
/// parser of the runtime.
pub fn resp(data: &[u8]) {
    if let Ok(value) = redis::parse_redis_value(data) {
        replies(value);
    }
}

/// A reply tree built from the bytes (see [`value`]), through every reply parser.
pub fn reply(data: &[u8]) {
    replies(value::build(data));
}

/// Every parser the runtime applies to a reply, on `value`.
pub fn replies(value: Value) {
    for entry in parse::entries(value.clone()) {
        check_entry(entry);
    }
    for entry in parse::read_reply(value.clone()) {
        check_entry(entry);
    }
    for stream in parse::read_reply_streams(value.clone()) {
        let _ = parse::event_type_of(&stream);
    }
    let (cursor, claimed, deleted) = parse::autoclaim_reply(value.clone());
    stream_id_text(&cursor);
    claimed.into_iter().for_each(check_entry);
    deleted.iter().for_each(|id| stream_id_text(id));
    for (_, v) in parse::info_pairs(value.clone()) {
        let _ = parse::int(&v);
    }
    // `XINFO STREAM`, then `XINFO GROUPS` (the foreign-trim check reads both).
    let stream = parse::stream_counters(value.clone());
    if let Some((_, length, first, _)) = stream {
        assert!(
            first.is_none() || length > 0,
            "a first entry in an empty stream"
        );
    }
    // The groups a reply names (a few: each look-up reads the whole reply again).
    let names: Vec<String> = parse::info_rows(value.clone())
        .into_iter()
        .flatten()
        .filter(|(key, _)| key == "name")
        .filter_map(|(_, v)| parse::string(v))
        .take(3)
        .collect();
    for name in names {
        let group = parse::group_counters(value.clone(), &name);
        if let (Some(stream), Some(group)) = (stream, group) {
            if let Some(gap) = parse::removed_unread(stream, group) {
                assert!(gap <= stream.0, "more removed than added");
            }
        }
    }
    // The typed replies of the cold paths (redis-rs's parsers): an error, never a panic.
    let _ = StreamInfoGroupsReply::from_redis_value(value.clone());
    let _ = StreamInfoConsumersReply::from_redis_value(value.clone());
    let _ = StreamPendingCountReply::from_redis_value(value.clone());
    let _ = StreamPendingReply::from_redis_value(value.clone());
    let _ = <Vec<Option<u32>>>::from_redis_value(value.clone());
    let _ = u64::from_redis_value(value);
}

fn check_entry(entry: parse::Entry) {
    stream_id_text(&entry.0);
    let fields = entry.1.clone();
    let (letter, foreign) = parse::dead_letter(entry);
    let has = |name: &str| fields.iter().any(|(k, _)| k == name.as_bytes());
    assert_eq!(letter.foreign, foreign);
    assert_eq!(foreign, !has("subscriber"));
    assert!(!letter.event_type.is_empty());
    if foreign {
        assert!(letter.subscriber.is_empty());
        // One that records a reason (possibly empty) keeps it; the seed's record none.
        if !has("reason") {
            assert!(
                !letter.reason.is_empty(),
                "a foreign letter says why it has no reason"
            );
        }
    }
}

/// A dead-letter entry, `id\0field\0value\0field\0value...`: the dead-letter parser, and the
/// parsers of the ids it holds.
pub fn dead_letter(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0);
    let id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut fields = Vec::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        fields.push((k.to_vec(), v.to_vec()));
    }
    let (letter, _) = parse::dead_letter((id.clone(), fields.clone()));
    check_entry((id, fields));
    stream_id_text(&letter.source_message_id);
    let _ = parse::event_type_of(&letter.source_stream);
    // What a replay hands to the dispatcher.
    envelope(&letter.payload);
}

/// Envelope JSON: decoded and validated by name through the registry, by every event type
/// linked in; a typed decode re-encodes to what decodes again to the same, and gives a workflow
/// entry.
pub fn envelope(data: &[u8]) {
    // The `eventType` as the seed reads it: its Redis client turns the entry's bytes into text
    // (invalid UTF-8 becomes U+FFFD) before `JSON.parse`. Read strictly, invalid UTF-8 in a
    // string no decoder looks at (an unknown payload key, which serde_json skips without
    // checking) would hide a declared type that the decode rightly found.
    let declared = serde_json::from_str::<serde_json::Value>(&String::from_utf8_lossy(data))
        .ok()
        .and_then(|v| {
            v.get("eventType")
                .and_then(|t| t.as_str().map(str::to_owned))
        });
    let _ = crate::events::linked();
    for registration in registered_events() {
        match (registration.decode)(data) {
            Ok(meta) => {
                assert_eq!(
                    declared.as_deref(),
                    Some(registration.event_type),
                    "decoded as another event type"
                );
                assert!(!meta.tenant_id.is_nil(), "a valid event of the nil tenant");
            }
            Err(failure) => {
                assert!(
                    matches!(failure.kind, FailureKind::Decode | FailureKind::Validation),
                    "{failure:?}"
                );
            }
        }
    }
    round_trip::<TicketUpdated>(data);
    round_trip::<Probe>(data);
    round_trip::<Rules>(data);
    round_trip::<AnyTenant>(data);
    round_trip::<ticket_events::CrossTicketUpdated>(data);
}

fn round_trip<E: Event + std::fmt::Debug>(data: &[u8]) {
    let Ok(first) = decode::<E>(data) else { return };
    let encoded = encode_envelope(&first)
        .unwrap_or_else(|e| panic!("a decoded {} does not encode: {e}", E::EVENT_TYPE));
    let again: Envelope<E> = decode(encoded.json.as_bytes())
        .unwrap_or_else(|e| panic!("{} does not decode what it wrote: {e:?}", E::EVENT_TYPE));
    assert_eq!(again.id, first.id);
    assert_eq!(again.event_type, first.event_type);
    assert_eq!(again.timestamp, to_millis(first.timestamp));
    let reencoded = encode_envelope(&again).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reencoded.json, encoded.json, "the wire form is not stable");
    let workflow = parse::workflow_fields(&encoded.json)
        .unwrap_or_else(|e| panic!("no workflow entry for {}: {e}", encoded.json));
    assert_eq!(workflow[0].1, first.id.to_string());
}

/// `t` cut to whole milliseconds, as the wire writes it.
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.timestamp_subsec_nanos();
    t - chrono::Duration::nanoseconds(i64::from(nanos % 1_000_000))
}

/// A stream entry id from text.
pub fn stream_id(data: &[u8]) {
    stream_id_text(&String::from_utf8_lossy(data));
}

/// Every id parser agrees on `id`, and a parsed id writes back as what it parses from.
pub fn stream_id_text(id: &str) {
    let parsed = parse::stream_id(id);
    assert_eq!(parse::trimming_id(id), parsed);
    assert_eq!(parse::is_stream_id(id), parsed.is_some());
    let millis = parse::id_millis(id);
    if let Some((ms, seq)) = parsed {
        assert_eq!(parse::retention_id(id), (ms, seq));
        assert_eq!(millis, ms);
        let text = parse::format_stream_id(ms, seq);
        assert_eq!(parse::stream_id(&text), Some((ms, seq)));
    }
}
