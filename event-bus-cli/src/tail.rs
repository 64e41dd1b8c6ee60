//! `event-bus tail`: follow one stream, or every stream of an event type, printing entries as
//! they are added. Each stream is read by a task of its own, on a connection of its own, with
//! `XREAD BLOCK` and a client-side timeout longer than the block (one key per command); the
//! printer stops at `--count` entries or Ctrl-C.

use std::io::Write;
use std::time::Duration;

use redis::Value;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::conn::{self, Redacted};
use crate::discover;
use crate::error::{CliError, Result};

/// How long one `XREAD` blocks.
const BLOCK: Duration = Duration::from_secs(1);

/// One entry read.
#[derive(Debug, Serialize)]
struct Line {
    stream: String,
    id: String,
    /// Every field but `event`, as text.
    fields: serde_json::Map<String, serde_json::Value>,
    /// The `event` field, as JSON when it parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<serde_json::Value>,
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn text(v: Value) -> Option<String> {
    bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(v) => v,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// The entries of a one-stream `XREAD` reply (none on timeout), parsed by the runtime.
fn entries(stream: &str, reply: Value) -> Vec<Line> {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    event_bus_redis::admin::read_reply_entries(reply)
        .into_iter()
        .map(|(id, fields)| {
            let mut line = Line {
                stream: stream.to_owned(),
                id,
                fields: serde_json::Map::new(),
                event: None,
            };
            for (k, v) in fields {
                if k == b"event" {
                    line.event = Some(
                        serde_json::from_slice(&v)
                            .unwrap_or_else(|_| serde_json::Value::String(text(&v))),
                    );
                } else {
                    line.fields
                        .insert(text(&k), serde_json::Value::String(text(&v)));
                }
            }
            line
        })
        .collect()
}

/// The id `$` stands for: the stream's last generated id (`0-0` when it does not exist yet),
/// so that entries added between two reads are not missed.
async fn last_id(
    conn: &mut redis::aio::MultiplexedConnection,
    url: &Redacted,
    stream: &str,
) -> Result<String> {
    let reply: redis::RedisResult<Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await;
    let reply = match reply {
        Ok(v) => v,
        Err(e) if e.to_string().contains("no such key") => return Ok("0-0".to_owned()),
        Err(e) => return Err(CliError::redis(format!("reading {stream}"), url, &e)),
    };
    let mut it = items(reply).into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if text(k).as_deref() == Some("last-generated-id") {
            return Ok(text(v).unwrap_or_else(|| "0-0".to_owned()));
        }
    }
    Ok("0-0".to_owned())
}

/// Reads `stream` from after `from`, sending what it reads, until the receiver is gone.
async fn follow(
    client: redis::Client,
    url: Redacted,
    stream: String,
    mut from: String,
    tx: mpsc::Sender<Result<Line>>,
) {
    let mut conn = match conn::open(&client, &url, BLOCK + conn::command_timeout()).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    loop {
        let reply: redis::RedisResult<Value> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(&stream)
            .arg(&from)
            .query_async(&mut conn)
            .await;
        match reply {
            Ok(reply) => {
                for line in entries(&stream, reply) {
                    from.clone_from(&line.id);
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx
                    .send(Err(CliError::redis(format!("reading {stream}"), &url, &e)))
                    .await;
                return;
            }
        }
    }
}

/// `tail`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn tail(
    client: &redis::Client,
    conn: &mut redis::aio::MultiplexedConnection,
    url: &Redacted,
    prefix: &str,
    stream: &str,
    from: &str,
    count: Option<u64>,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let mut streams = if stream.contains(':') {
        vec![stream.to_owned()]
    } else {
        discover::streams(conn, url, prefix).await?.resolve(stream)
    };
    if streams.is_empty() {
        let key = format!("{prefix}:{stream}");
        eprintln!("no stream of type {stream} under `{prefix}` yet: following {key}");
        streams.push(key);
    }
    let (tx, mut rx) = mpsc::channel(256);
    let mut tasks = Vec::new();
    for s in &streams {
        let start = if from == "$" {
            last_id(conn, url, s).await?
        } else {
            from.to_owned()
        };
        tasks.push(tokio::spawn(follow(
            client.clone(),
            url.clone(),
            s.clone(),
            start,
            tx.clone(),
        )));
    }
    drop(tx);
    // On stderr, after the start ids are fixed: from here on, nothing added is missed.
    eprintln!("following {} (Ctrl-C to stop)", streams.join(", "));
    let mut printed = 0;
    let result = loop {
        if count.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let line = tokio::select! {
            line = rx.recv() => line,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        let line = match line {
            Some(Ok(line)) => line,
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        };
        if let Err(e) = print(&line, json, out) {
            break Err(e);
        }
        printed += 1;
    };
    for task in tasks {
        task.abort();
    }
    result
}

fn print(line: &Line, json: bool, out: &mut impl Write) -> Result<()> {
    if json {
        serde_json::to_writer(&mut *out, line).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        let mut head = format!("{}  {}", line.id, line.stream);
        for (k, v) in &line.fields {
            head.push_str(&format!("  {k}={}", v.as_str().unwrap_or_default()));
        }
        writeln!(out, "{head}")?;
        if let Some(event) = &line.event {
            let pretty = serde_json::to_string_pretty(event).map_err(std::io::Error::other)?;
            for l in pretty.lines() {
                writeln!(out, "  {l}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_read_reply() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("event:T"),
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![
                    bulk("event"),
                    bulk("{\"id\":1}"),
                    bulk("channel"),
                    bulk("global"),
                ]),
            ])]),
        ])]);
        let lines = entries("event:T", reply);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].id, "1-0");
        assert_eq!(lines[0].event, Some(serde_json::json!({"id": 1})));
        assert_eq!(lines[0].fields["channel"], "global");
        assert!(entries("event:T", Value::Nil).is_empty());
    }
}
