//! The floor: the same work done with bare `redis` crate calls.
//!
//! - publish: `XADD {stream} * event <envelope json>` on one multiplexed connection (awaited one at
//!   a time, or with N in flight, or pipelined a batch at a time);
//! - consume: `XREADGROUP GROUP g c COUNT 100 BLOCK 1000 STREAMS {stream} >` on a dedicated
//!   connection, a serde decode of each entry's `event` field into the typed envelope, the
//!   "handler" (recording id and latency), then one multi-id `XACK` per batch.
//!
//! On a Redis Cluster (W3c/W4c), the publisher sends the same `XADD`s through redis-rs's async
//! cluster client (to the partition of each event's tenant, with partitions), and each reader
//! runs [`consume`] on a dedicated connection to the master that owns its stream's slot
//! ([`masters`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{cmd, AsyncConnectionConfig, Client, RedisResult, Value};

use crate::collector::Collector;
use crate::drive::{self, Pattern};
use crate::event::{envelope_json, envelope_json_and_tenant, WireIn};

/// `XREADGROUP ... BLOCK` of the floor's readers.
pub const BLOCK: Duration = Duration::from_millis(1000);
/// `XREADGROUP ... COUNT` of the floor's readers.
pub const COUNT: usize = 100;

/// A multiplexed connection for commands (publishing, admin). Its response timeout is raised from
/// redis-rs's 500 ms default so a loaded 2-core machine does not turn slowness into errors.
pub async fn connect(url: &str) -> RedisResult<MultiplexedConnection> {
    let client = Client::open(url)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// A dedicated connection for one blocking reader: response timeout = BLOCK + 2 s.
pub async fn reader_connection(url: &str) -> RedisResult<MultiplexedConnection> {
    let client = Client::open(url)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Publishes `n` fresh events to `key` in `pattern`; returns the time it took.
pub async fn publish(
    conn: &MultiplexedConnection,
    key: &str,
    pattern: Pattern,
    n: usize,
    inflight: usize,
    rate: f64,
) -> RedisResult<Duration> {
    drive::run(pattern, n, inflight, rate, || {
        let mut conn = conn.clone();
        let json = envelope_json();
        async move {
            cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("event")
                .arg(json)
                .query_async::<Value>(&mut conn)
                .await
                .map(drop)
        }
    })
    .await
}

/// Publishes `n` fresh events to `key` as bare `XADD {key} * event <json>`s, `batch` per
/// pipeline, one pipeline at a time over one connection; returns the time it took.
pub async fn publish_batches(
    conn: &mut MultiplexedConnection,
    key: &str,
    n: usize,
    batch: usize,
) -> RedisResult<Duration> {
    let started = std::time::Instant::now();
    let mut left = n;
    while left > 0 {
        let size = left.min(batch);
        let mut pipe = redis::pipe();
        for _ in 0..size {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("event")
                .arg(envelope_json());
        }
        let _: Vec<Value> = pipe.query_async(conn).await?;
        left -= size;
    }
    Ok(started.elapsed())
}

/// `XGROUP CREATE {key} {group} 0 MKSTREAM` (an existing group is fine).
pub async fn create_group(
    conn: &mut impl ConnectionLike,
    key: &str,
    group: &str,
) -> RedisResult<()> {
    let created: RedisResult<Value> = cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// One floor consumer: reads, decodes, "handles" into `collector` and acks in batches until
/// `target` events were handled or `stop` is set. Returns the number of entries that failed to
/// decode (always acked, never handled).
pub async fn consume(
    url: &str,
    key: &str,
    group: &str,
    consumer: &str,
    collector: &Collector,
    target: u64,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    let mut conn = reader_connection(url)
        .await
        .map_err(|e| format!("floor reader connect: {e}"))?;
    let mut undecodable = 0u64;
    let mut ids: Vec<Vec<u8>> = Vec::with_capacity(COUNT);
    while collector.handled() < target && !stop.load(Ordering::Relaxed) {
        let reply: Value = cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("floor XREADGROUP: {e}"))?;
        ids.clear();
        for_each_entry(reply, |id, event| {
            match event.as_deref().map(serde_json::from_slice::<WireIn>) {
                Some(Ok(envelope)) => collector.record(envelope.id, envelope.timestamp),
                _ => undecodable += 1,
            }
            ids.push(id);
        })?;
        if !ids.is_empty() {
            cmd("XACK")
                .arg(key)
                .arg(group)
                .arg(&ids)
                .query_async::<Value>(&mut conn)
                .await
                .map_err(|e| format!("floor XACK: {e}"))?;
        }
    }
    Ok(undecodable)
}

/// Walks an `XREADGROUP` / `XREAD` reply (RESP2 arrays or RESP3 maps), calling `f(entry id, event
/// field)` for each entry, moving the bytes out of the reply.
pub fn for_each_entry(
    reply: Value,
    mut f: impl FnMut(Vec<u8>, Option<Vec<u8>>),
) -> Result<(), String> {
    let streams: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(()),
        Value::Map(pairs) => pairs,
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(kv) if kv.len() == 2 => {
                    let mut kv = kv.into_iter();
                    match (kv.next(), kv.next()) {
                        (Some(k), Some(v)) => Ok((k, v)),
                        _ => Err("stream reply: bad pair".to_owned()),
                    }
                }
                other => Err(format!("stream reply: unexpected {other:?}")),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("stream reply: unexpected {other:?}")),
    };
    for (_key, entries) in streams {
        let Value::Array(entries) = entries else {
            return Err("stream reply: entries are not an array".into());
        };
        for entry in entries {
            let Value::Array(parts) = entry else {
                return Err("stream reply: entry is not an array".into());
            };
            let mut parts = parts.into_iter();
            let id = match parts.next() {
                Some(Value::BulkString(id)) => id,
                Some(Value::SimpleString(id)) => id.into_bytes(),
                other => return Err(format!("stream reply: bad entry id {other:?}")),
            };
            let fields: Vec<Value> = match parts.next() {
                Some(Value::Array(fields)) => fields,
                Some(Value::Map(pairs)) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                // An entry deleted while pending comes back with nil fields.
                _ => Vec::new(),
            };
            let mut event = None;
            let mut fields = fields.into_iter();
            while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
                if matches!(&name, Value::BulkString(n) if n == b"event") {
                    if let Value::BulkString(bytes) = value {
                        event = Some(bytes);
                    }
                    break;
                }
            }
            f(id, event);
        }
    }
    Ok(())
}

/// Entries of `group` on `key` delivered but not acked (`XPENDING key group` → count).
pub async fn pending(conn: &mut impl ConnectionLike, key: &str, group: &str) -> RedisResult<u64> {
    let reply: Value = cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await?;
    Ok(match reply {
        Value::Array(items) => match items.first() {
            Some(Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    })
}

/// `XLEN key`.
pub async fn xlen(conn: &mut impl ConnectionLike, key: &str) -> RedisResult<u64> {
    cmd("XLEN").arg(key).query_async(conn).await
}

/// Deletes the streams (their groups go with them), one key per command.
pub async fn reset(conn: &mut impl ConnectionLike, keys: &[String]) -> RedisResult<()> {
    for key in keys {
        cmd("DEL").arg(key).query_async::<Value>(conn).await?;
    }
    Ok(())
}

/// The Redis server version from `INFO server`.
pub async fn server_version(conn: &mut impl ConnectionLike) -> RedisResult<String> {
    let info: String = cmd("INFO").arg("server").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_owned())
}

/// An async connection to a Redis Cluster through redis-rs's cluster client (routes each command
/// by its key's slot), with the same timeouts as [`connect`].
pub async fn cluster_connect(nodes: &[String]) -> RedisResult<ClusterConnection> {
    redis::cluster::ClusterClient::builder(nodes.to_vec())
        .connection_timeout(Duration::from_secs(5))
        .response_timeout(Duration::from_secs(10))
        .build()?
        .get_async_connection()
        .await
}

/// Publishes `n` fresh events through the cluster client in `pattern`, each to `base` or, with
/// `partitions` > 1, to its tenant's partition; returns the time it took.
pub async fn cluster_publish(
    conn: &ClusterConnection,
    base: &str,
    partitions: u16,
    pattern: Pattern,
    n: usize,
    inflight: usize,
    rate: f64,
) -> RedisResult<Duration> {
    // The partition keys, computed once (the tag search is not part of a publish).
    let keys: Vec<String> = if partitions <= 1 {
        vec![base.to_owned()]
    } else {
        (0..partitions)
            .map(|i| {
                event_bus_redis::admin::partition_stream(
                    base,
                    &event_bus_redis::admin::partition_tag(i, partitions),
                )
            })
            .collect()
    };
    let keys = &keys;
    drive::run(pattern, n, inflight, rate, || {
        let mut conn = conn.clone();
        let (json, tenant) = envelope_json_and_tenant();
        let key = &keys[usize::from(event_bus_redis::admin::partition_of(
            tenant,
            partitions.max(1),
        ))];
        async move {
            cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("event")
                .arg(json)
                .query_async::<Value>(&mut conn)
                .await
                .map(drop)
        }
    })
    .await
}

/// The masters of a cluster: `(first slot, last slot, redis://host:port)` per slot range, from
/// `CLUSTER SLOTS` (asked of any node).
pub async fn masters(conn: &mut impl ConnectionLike) -> Result<Vec<(u16, u16, String)>, String> {
    let reply: Value = cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
    let Value::Array(ranges) = reply else {
        return Err(format!("CLUSTER SLOTS: unexpected {reply:?}"));
    };
    let mut out = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err("CLUSTER SLOTS: a range is not an array".into());
        };
        let (Some(Value::Int(lo)), Some(Value::Int(hi)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            return Err(format!("CLUSTER SLOTS: unexpected range {parts:?}"));
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            other => return Err(format!("CLUSTER SLOTS: unexpected host {other:?}")),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return Err(format!("CLUSTER SLOTS: unexpected node {master:?}"));
        };
        out.push((*lo as u16, *hi as u16, format!("redis://{host}:{port}")));
    }
    out.sort();
    Ok(out)
}

/// The URL of the master owning `key`'s slot in `masters` (see [`masters`]).
pub fn master_of<'a>(masters: &'a [(u16, u16, String)], key: &str) -> Option<&'a str> {
    let slot = event_bus_redis::admin::slot(key);
    masters
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
        .map(|(_, _, url)| url.as_str())
}
