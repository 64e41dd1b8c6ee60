//! The wire as an operations tool sees it: key names, the dead-letter parser and the replay
//! request, for a tool that works from Redis alone, with no events crate linked (the
//! `event-bus` ops CLI, crate `event-bus-cli`).
//!
//! Everything here is the runtime's own code (the same parser [`RedisBus`](crate::RedisBus)'s
//! `dead_letters()` uses, the same key names), so a tool built on it reads what the runtime
//! writes. **Stability**: this module follows the wire format; it is meant for the workspace's
//! ops CLI and may change in a minor version along with the wire.
//!
//! Key layout under a prefix (default [`DEFAULT_PREFIX`]):
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `{prefix}:{EVENT_TYPE}` or `{prefix}:{channel}:{EVENT_TYPE}` | stream | an event stream (per event type, or per channel as the seed runs today) |
//! | `{stream}:dead-letter` | stream | its dead letters, ours and the seed's ([`dead_letter_stream`]) |
//! | `{stream}:replay:{group}` | stream | replay requests for `group`'s dead letters ([`replay_stream`]) |
//! | `{prefix}:replay-requests` | string | a counter of the replay requests written ([`replay_signal`]) |
//! | `{stream}:runs:{group}` | hash | failed handler runs per entry |
//! | `{stream}:trimmed:{group}` | hash | entries trimmed before the group read them |
//! | `{stream}:owner:{group}` | string | a partition stream's owner in `group` (a lease; see below) |
//! | `{stream}:members:{group}` | sorted set | on a type's first partition: `group`'s live consumers |
//!
//! # Partitioned streams
//!
//! An event type partitioned `N` ways
//! ([`RedisBusBuilder::partitions`](crate::RedisBusBuilder::partitions)) has `N` event streams
//! instead of one: partition `i` is `{prefix}:{p<i>of<N>-<k>}:{EVENT_TYPE}` (per channel:
//! `{prefix}:{channel}:{p<i>of<N>-<k>}:{EVENT_TYPE}`), each with its own dead-letter, replay
//! and runs keys derived as above. The event type stays the last segment, so a tool that
//! lists a type's streams by [`event_type_of`] finds every partition. The braces are a Redis
//! Cluster hash tag: [`partition_tag`] picks, for each `i`, the tag whose slot ([`slot`],
//! CRC16 as the cluster computes it) falls in the middle half of the `i`-th of `N` equal
//! ranges of the 16,384 slots, so the partitions land on distinct, evenly spread slots. A
//! tenant's events go to partition [`partition_of`] (CRC16 of the tenant id's text, mod `N`).
//!
//! Each partition is read by one consumer of a group at a time, which keeps each tenant's
//! order with competing consumers: the group's live consumers (heartbeats in
//! `{first partition}:members:{group}`) split the partitions round-robin by name, and each
//! takes its own with a lease on `{partition}:owner:{group}` (lasting `claim_idle`), handing a
//! partition over once what it read from it is handled and acknowledged.
//!
//! # Replay requests
//!
//! A replay is carried out by the running consumers of the failing subscriber's group, and by
//! no other subscriber: [`request_replay`] appends an entry naming the dead letter to
//! `{stream}:replay:{group}` (creating that stream's consumer group, named like the
//! subscriber, at `0`), bumps the counter `{prefix}:replay-requests`, and returns. The request
//! is durable: the caller may exit at once. Every process polls that one counter (at most twice
//! per `claim_interval`, 5 s by default, whatever its number of subscribers); once it moved, every
//! consumer of the group reads its request stream at its next maintenance round, hands the letter to the subscriber's dispatcher (decode,
//! validation, retries with backoff, a new dead letter if it fails again), and acknowledges
//! and deletes the request once the dead letter is gone: deleted after its handler succeeded,
//! or replaced by a new letter. A consumer that dies mid-replay leaves the request pending;
//! another consumer of the group claims it after `claim_idle`. A request written while no
//! consumer runs waits for the first one to start. So a replay runs at least once; a caller
//! that wants to know its outcome watches the dead letter ([`dead_letter`]) disappear.

use event_bus_core::{DeadLetter, DeadLetterFilter};
use redis::aio::ConnectionLike;
use redis::{cmd, RedisResult, Value};

use crate::connection::is_busygroup;
use crate::dead_letter;
use crate::reply::{self, Entry};

pub use crate::keys::{dead_letter_stream, event_type_of, replay_signal, replay_stream};
pub use crate::partition::{
    crc16, partition_of, partition_stream, partition_tag, slot, MAX_PARTITIONS, SLOTS,
};

/// The key prefix a bus uses unless told otherwise (`RedisBus::builder().prefix(...)`).
pub const DEFAULT_PREFIX: &str = "event";

/// The suffix of a dead-letter stream: `{stream}:dead-letter`.
pub const DEAD_LETTER_SUFFIX: &str = ":dead-letter";

/// The segment between a stream and a group in a replay-request stream:
/// `{stream}:replay:{group}`.
pub const REPLAY_SEGMENT: &str = ":replay:";

/// The field of a replay request naming the dead letter to replay (its id in
/// `{stream}:dead-letter`).
pub const REPLAY_FIELD_DEAD_LETTER: &str = "deadLetter";
/// The field of a replay request holding the request's id (a UUID, for logs).
pub const REPLAY_FIELD_REQUEST_ID: &str = "requestId";
/// The field of a replay request saying who asked (free text, for logs).
pub const REPLAY_FIELD_REQUESTED_BY: &str = "requestedBy";
/// The field of a replay request saying when it was asked (`toISOString()` form).
pub const REPLAY_FIELD_REQUESTED_AT: &str = "requestedAt";

/// What a stream key under the prefix is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamKind<'a> {
    /// An event stream.
    Events,
    /// The dead letters of `stream`.
    DeadLetters {
        /// The event stream.
        stream: &'a str,
    },
    /// Replay requests for `group`'s dead letters of `stream`.
    ReplayRequests {
        /// The event stream.
        stream: &'a str,
        /// The subscriber's group.
        group: &'a str,
    },
}

/// What the stream `key` is, by its name.
///
/// ```
/// use event_bus_redis::admin::{stream_kind, StreamKind};
///
/// assert_eq!(stream_kind("event:TICKET_UPDATED"), StreamKind::Events);
/// assert_eq!(
///     stream_kind("event:TICKET_UPDATED:dead-letter"),
///     StreamKind::DeadLetters { stream: "event:TICKET_UPDATED" }
/// );
/// assert_eq!(
///     stream_kind("event:TICKET_UPDATED:replay:ticket-email"),
///     StreamKind::ReplayRequests { stream: "event:TICKET_UPDATED", group: "ticket-email" }
/// );
/// ```
pub fn stream_kind(key: &str) -> StreamKind<'_> {
    if let Some(stream) = key.strip_suffix(DEAD_LETTER_SUFFIX) {
        return StreamKind::DeadLetters { stream };
    }
    if let Some((stream, group)) = key.rsplit_once(REPLAY_SEGMENT) {
        if !group.is_empty() && !group.contains(':') {
            return StreamKind::ReplayRequests { stream, group };
        }
    }
    StreamKind::Events
}

/// The dead letter an entry of a dead-letter stream describes, parsed as the runtime parses
/// it (a letter without a `subscriber` field is [foreign](DeadLetter::foreign)).
pub fn parse_dead_letter(id: impl Into<String>, fields: Vec<(Vec<u8>, Vec<u8>)>) -> DeadLetter {
    dead_letter::parse(Entry::from_pairs(id.into(), fields))
}

/// Every dead letter of the dead-letter stream `dl_stream`, oldest first (none when it does
/// not exist).
pub async fn dead_letters(
    conn: &mut (impl ConnectionLike + Send),
    dl_stream: &str,
) -> RedisResult<Vec<DeadLetter>> {
    Ok(dead_letter::read_all(conn, dl_stream, "-")
        .await?
        .into_iter()
        .map(dead_letter::parse)
        .collect())
}

/// The dead letter `id` of `dl_stream`, if it is still there.
pub async fn dead_letter(
    conn: &mut (impl ConnectionLike + Send),
    dl_stream: &str,
    id: &str,
) -> RedisResult<Option<DeadLetter>> {
    let reply: Value = cmd("XRANGE")
        .arg(dl_stream)
        .arg(id)
        .arg(id)
        .query_async(conn)
        .await?;
    Ok(reply::entries(reply)
        .into_iter()
        .next()
        .map(dead_letter::parse))
}

/// Deletes the letters of `dl_stream` that `filter` selects, one `XDEL` per 500 ids (never the
/// stream); returns how many Redis deleted. The same as the bus's `purge_dead_letters`, for one
/// stream.
pub async fn purge_dead_letters(
    conn: &mut (impl ConnectionLike + Send),
    dl_stream: &str,
    filter: &DeadLetterFilter,
) -> RedisResult<usize> {
    dead_letter::purge(conn, dl_stream, filter).await
}

/// One stream entry: its id and its fields in order, as Redis sent them.
pub type RawEntry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// The entries of a one-stream `XREAD` or `XREADGROUP` reply (none on a timeout's nil), with
/// the runtime's own reply parser (RESP2 and RESP3).
pub fn read_reply_entries(reply: Value) -> Vec<RawEntry> {
    reply::read_reply(reply)
        .into_iter()
        .map(Entry::into_parts)
        .collect()
}

/// A replay request, as written by [`request_replay`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayRequest {
    /// The request's id (a UUID).
    pub request_id: String,
    /// The stream it was written to, `{stream}:replay:{group}`.
    pub stream: String,
    /// Its entry id there.
    pub entry_id: String,
}

/// Why a replay could not be requested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayRequestError {
    /// The letter was written by another implementation (the seed): no subscriber of ours
    /// failed it, so none replays it.
    #[error("dead letter {id} was written by another implementation (the seed system) and names no subscriber: replay it with that system's own tooling")]
    Foreign {
        /// The dead letter's id.
        id: String,
    },
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Asks the running consumers of `letter`'s subscriber to replay it (see
/// [the module docs](self#replay-requests)): creates the consumer group of
/// `{stream}:replay:{group}` if needed (`XGROUP CREATE ... 0 MKSTREAM`), then appends the
/// request (`XADD`), and bumps the counter [`replay_signal`]`(prefix)` (`INCR`), which tells
/// the processes of the deployment to look. Three commands, each on one key. Returns once
/// Redis has the request. `prefix` is the deployment's stream prefix.
pub async fn request_replay(
    conn: &mut (impl ConnectionLike + Send),
    prefix: &str,
    letter: &DeadLetter,
    requested_by: &str,
) -> Result<ReplayRequest, ReplayRequestError> {
    if letter.foreign || letter.subscriber.is_empty() {
        return Err(ReplayRequestError::Foreign {
            id: letter.id.clone(),
        });
    }
    let stream = replay_stream(&letter.source_stream, &letter.subscriber);
    let created: RedisResult<Value> = cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg(&letter.subscriber)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(_) => {}
        Err(e) if is_busygroup(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let reply: Value = cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg(REPLAY_FIELD_DEAD_LETTER)
        .arg(&letter.id)
        .arg(REPLAY_FIELD_REQUEST_ID)
        .arg(&request_id)
        .arg(REPLAY_FIELD_REQUESTED_BY)
        .arg(requested_by)
        .arg(REPLAY_FIELD_REQUESTED_AT)
        .arg(event_bus_core::format_timestamp(&chrono::Utc::now()))
        .query_async(conn)
        .await?;
    let entry_id = reply::string(reply).unwrap_or_default();
    let _: i64 = cmd("INCR")
        .arg(replay_signal(prefix))
        .query_async(conn)
        .await?;
    Ok(ReplayRequest {
        request_id,
        stream,
        entry_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            stream_kind("alga-psa:event-stream:global:TICKET_UPDATED"),
            StreamKind::Events
        );
        assert_eq!(
            stream_kind("p:emailservice::v7:TICKET_UPDATED:dead-letter"),
            StreamKind::DeadLetters {
                stream: "p:emailservice::v7:TICKET_UPDATED"
            }
        );
        assert_eq!(
            stream_kind("p:T:replay:a:b"),
            StreamKind::Events,
            "a group name has no colon"
        );
    }

    #[test]
    fn parses_a_foreign_letter() {
        let letter = parse_dead_letter(
            "1-0",
            vec![
                (b"event".to_vec(), b"{}".to_vec()),
                (b"sourceStream".to_vec(), b"event:PROBE".to_vec()),
                (b"deliveries".to_vec(), b"10".to_vec()),
            ],
        );
        assert!(letter.foreign);
        assert_eq!(letter.event_type, "PROBE");
        assert_eq!(letter.deliveries, 10);
    }
}
