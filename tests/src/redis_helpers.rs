//! Helpers shared by the Redis fault tests (`tests/tests/redis_*.rs`): a raw connection to
//! issue commands as another process would, consumer-group commands that play a crashed
//! consumer (`create_group`, `read_as`), the pending-list count, reply flattening, bounded
//! waits on the pending list and on the bus's counters, and writes as another implementation
//! makes them (`xadd_probes`, with the seed's `MAXLEN ~ n`; `xadd_seed_dead_letter`).
//!
//! Everything here panics on a Redis error: it is test code, and a failed command is a failed
//! test.

use std::time::Duration;

use event_bus_core::Bus;
use event_bus_redis::RedisBus;
use redis::aio::MultiplexedConnection;
use redis::Value;

/// How long a fault test waits for something that should happen (30 s).
pub const WAIT: Duration = Duration::from_secs(30);

/// A multiplexed connection of the test's own to the Redis at `url`.
pub async fn raw(url: &str) -> MultiplexedConnection {
    crate::connect(url).await.expect("connect")
}

/// [`crate::pending_count`], panicking on an error: how many entries of `stream` the group
/// `group` has delivered and not acknowledged.
pub async fn pending_count(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> i64 {
    crate::pending_count(conn, stream, group)
        .await
        .expect("XPENDING")
}

/// Every string in a reply, depth first.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::BulkString(b) => vec![String::from_utf8_lossy(b).into_owned()],
        Value::SimpleString(s) => vec![s.clone()],
        Value::Array(items) | Value::Set(items) => items.iter().flat_map(strings).collect(),
        Value::Map(pairs) => pairs
            .iter()
            .flat_map(|(k, v)| strings(k).into_iter().chain(strings(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Makes `consumer` read every new entry of the group (so they are pending with it).
pub async fn read_as(
    conn: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
    consumer: &str,
) -> Vec<String> {
    let v: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(conn)
        .await
        .expect("xreadgroup");
    let mut ids = Vec::new();
    if let Value::Array(streams) = v {
        for stream in streams {
            let Value::Array(mut parts) = stream else {
                continue;
            };
            let Some(Value::Array(entries)) = parts.pop() else {
                continue;
            };
            for entry in entries {
                if let Value::Array(e) = entry {
                    if let Some(Value::BulkString(id)) = e.first() {
                        ids.push(String::from_utf8_lossy(id).into_owned());
                    }
                }
            }
        }
    }
    ids
}

/// Creates the consumer group `group` on `stream` at its start (`0`), creating the stream.
pub async fn create_group(conn: &mut MultiplexedConnection, stream: &str, group: &str) {
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .expect("xgroup create");
}

/// Waits up to `within` until `group` has no pending entries; returns the last count seen.
/// Keep `within` under the bus's `claim_idle` (30 s), or a claim could clear what the test
/// expects the acknowledgement to clear.
pub async fn wait_no_pending(
    conn: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
    within: Duration,
) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = pending_count(conn, stream, group).await;
        if n == 0 || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the bus has counted `n` entries handled (acknowledged); returns the count.
pub async fn wait_handled_stat(bus: &RedisBus, n: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let handled = bus.stats().handled;
        if handled >= n || tokio::time::Instant::now() >= deadline {
            return handled;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The envelope JSON of a probe event, as any publisher writes it (for raw `XADD`s).
pub fn probe_envelope(tenant: uuid::Uuid, seq: u64) -> String {
    serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "eventType": "PROBE",
        "timestamp": "2026-11-26T18:00:00.000Z",
        "payload": { "tenantId": tenant.to_string(), "seq": seq },
    })
    .to_string()
}

/// Appends one probe entry per seq to `stream` as another publisher would
/// (`XADD stream * event <json> channel global`), pipelined; with `maxlen`, every `XADD` trims
/// like the seed's (`MAXLEN ~ n`).
pub async fn xadd_probes(
    conn: &mut MultiplexedConnection,
    stream: &str,
    seqs: std::ops::Range<u64>,
    maxlen: Option<u64>,
) {
    let tenant = uuid::Uuid::new_v4();
    let seqs: Vec<u64> = seqs.collect();
    for chunk in seqs.chunks(500) {
        let mut pipe = redis::pipe();
        for seq in chunk {
            let c = pipe.cmd("XADD").arg(stream);
            if let Some(n) = maxlen {
                c.arg("MAXLEN").arg("~").arg(n);
            }
            c.arg("*")
                .arg("event")
                .arg(probe_envelope(tenant, *seq))
                .arg("channel")
                .arg("global")
                .ignore();
        }
        let () = pipe.query_async(conn).await.expect("xadd");
    }
}

/// `XLEN stream`.
pub async fn xlen(conn: &mut MultiplexedConnection, stream: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(conn)
        .await
        .expect("xlen")
}

/// Writes a dead letter to `{stream}:dead-letter` as the seed system does: the original entry's
/// fields (`event`, `channel`), then `sourceStream`, `sourceMessageId`, `deliveries`,
/// `deadLetteredAt`, with `MAXLEN ~ 1000`; no subscriber, error or kind. Returns its id.
pub async fn xadd_seed_dead_letter(
    conn: &mut MultiplexedConnection,
    stream: &str,
    event_json: &str,
    source_message_id: &str,
    deliveries: u32,
) -> String {
    redis::cmd("XADD")
        .arg(format!("{stream}:dead-letter"))
        .arg("MAXLEN")
        .arg("~")
        .arg(1000)
        .arg("*")
        .arg("event")
        .arg(event_json)
        .arg("channel")
        .arg("global")
        .arg("sourceStream")
        .arg(stream)
        .arg("sourceMessageId")
        .arg(source_message_id)
        .arg("deliveries")
        .arg(deliveries)
        .arg("deadLetteredAt")
        .arg("2026-11-26T18:00:00.000Z")
        .query_async(conn)
        .await
        .expect("xadd dead letter")
}

/// Every entry of `stream` from `start` to `end` (`XRANGE`), as its strings: ids, field names
/// and values in order, byte for byte.
pub async fn xrange_strings(
    conn: &mut MultiplexedConnection,
    stream: &str,
    start: &str,
    end: &str,
) -> Vec<String> {
    let v: Value = redis::cmd("XRANGE")
        .arg(stream)
        .arg(start)
        .arg(end)
        .query_async(conn)
        .await
        .expect("xrange");
    strings(&v)
}

/// A number from `INFO section` (`connected_clients` of `clients`, say).
pub async fn info_number(conn: &mut MultiplexedConnection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}
