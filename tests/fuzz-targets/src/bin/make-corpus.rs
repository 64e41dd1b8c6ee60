//! Builds the seed corpus of the fuzz targets (`fuzz/corpus/<target>/seed-*`) from real entries
//! on a real Redis: events in our format and in the seed's (written by the seed model,
//! `tests/seed-model`, with the seed's own code paths), the poison entries of the fault tests
//! (`tests/tests/redis_poison.rs`), dead letters in our format and the seed's, and the raw
//! replies (RESP2 and RESP3) of every command whose reply the runtime parses.
//!
//! ```text
//! cargo run -p fuzz-targets --bin make-corpus -- [redis://127.0.0.1:6379]
//! ```
//!
//! Needs Node.js and `npm ci` in `tests/seed-model`. Uses the keys `fuzz-corpus:*` (deleted
//! before and after). Replaces the `seed-*` files; inputs a fuzz run added are left alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_bus_core::transport::encode_envelope;
use event_bus_core::{format_timestamp, registered_events, Envelope};
use fuzz_targets::events::{AnyTenant, Probe, Rules, TicketUpdated};
use redis::Value;
use uuid::Uuid;

const PREFIX: &str = "fuzz-corpus";

/// A connection that keeps each reply's bytes as Redis sent them.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(addr: &str, protocol: u8) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to Redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut raw = Self { stream };
        raw.call(&["HELLO", &protocol.to_string()]);
        raw
    }

    /// Sends one command; its reply's bytes.
    fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).expect("write");
        let mut reply = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = self.stream.read(&mut buf).expect("read");
            assert!(n > 0, "Redis closed the connection");
            reply.extend_from_slice(&buf[..n]);
            if complete(&reply) {
                return reply;
            }
        }
    }

    fn value<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        redis::parse_redis_value(&self.call(args)).expect("a reply")
    }
}

/// Whether `bytes` hold one whole reply (the parser accepts it, or reports a server error).
fn complete(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\r\n")
        && match redis::parse_redis_value(bytes) {
            Ok(_) => true,
            Err(e) => e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
        }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => panic!("not text: {other:?}"),
    }
}

/// The entries of an `XRANGE` reply, as `(id, fields)`.
fn entries(v: Value) -> Vec<event_bus_redis::__fuzz::Entry> {
    event_bus_redis::__fuzz::entries(v)
}

struct Corpus {
    dir: PathBuf,
}

impl Corpus {
    fn clear(&self) {
        for target in fuzz_targets::TARGETS {
            let dir = self.dir.join(target);
            fs::create_dir_all(&dir).expect("corpus dir");
            for entry in fs::read_dir(&dir).expect("read corpus dir").flatten() {
                if entry.file_name().to_string_lossy().starts_with("seed-") {
                    fs::remove_file(entry.path()).expect("remove old seed");
                }
            }
        }
    }

    fn add(&self, target: &str, name: &str, data: &[u8]) {
        let path = self.dir.join(target).join(format!("seed-{name}"));
        fs::write(&path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// The seed model, `node tests/seed-model/seed.mjs <args>` with `stdin`.
fn seed_model(dir: &Path, args: &[&str], stdin: &str) -> serde_json::Value {
    let mut child = Command::new("node")
        .arg(dir.join("seed.mjs"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (the seed model needs Node.js)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("seed model");
    assert!(out.status.success(), "seed model {args:?} failed");
    serde_json::from_slice(&out.stdout).expect("seed model output")
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("a time")
}

fn main() {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let addr = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let seed_dir = root.join("tests/seed-model");
    let corpus = Corpus {
        dir: fuzz_targets::fuzz_dir().join("corpus"),
    };
    corpus.clear();
    let mut r2 = Raw::connect(&addr, 2);
    let mut r3 = Raw::connect(&addr, 3);
    let wipe = |raw: &mut Raw| {
        let keys = raw.value(&["KEYS", &format!("{PREFIX}:*")]);
        if let Value::Array(keys) = keys {
            for k in keys {
                raw.call(&["DEL", &text(&k)]);
            }
        }
    };
    wipe(&mut r2);

    // Our events: what a publish writes (`event`, `channel`).
    let ours = format!("{PREFIX}:ours:global:TICKET_UPDATED");
    let probe = format!("{PREFIX}:ours:global:PROBE");
    let tenant = Uuid::new_v4();
    let mut envelopes: Vec<(String, String)> = Vec::new();
    let ticket = TicketUpdated {
        tenant_id: tenant,
        ticket_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        changes: Some(
            serde_json::from_str(r#"{"status":"open","title":"Printer \"jam\" ✓"}"#).unwrap(),
        ),
    };
    let encoded = |e: event_bus_core::transport::EncodedEvent| e.json;
    envelopes.push((
        "ours-ticket-updated".into(),
        encoded(
            encode_envelope(&Envelope::new(ticket.clone()).with_timestamp(at(1_764_612_000_123)))
                .unwrap(),
        ),
    ));
    envelopes.push((
        "ours-ticket-updated-no-changes".into(),
        encoded(
            encode_envelope(&Envelope::new(TicketUpdated {
                changes: None,
                ..ticket
            }))
            .unwrap(),
        ),
    ));
    envelopes.push((
        "ours-probe".into(),
        encoded(
            encode_envelope(&Envelope::new(Probe {
                tenant_id: tenant,
                seq: 7,
                fail_first: 2,
                fail_in: Some("probe-b".into()),
            }))
            .unwrap(),
        ),
    ));
    envelopes.push((
        "ours-rules".into(),
        encoded(
            encode_envelope(&Envelope::new(Rules {
                tenant_id: tenant,
                name: "Ünïcode".into(),
                code: "ab".into(),
                tags: vec![1, 2, 3],
                labels: Some(serde_json::from_str(r#"{"a":1}"#).unwrap()),
                level: -5,
                ratio: 0.25,
                prio: Some(1),
                reference: Uuid::new_v4().to_string(),
                parent: None,
                slug: "slug".into(),
            }))
            .unwrap(),
        ),
    ));
    envelopes.push((
        "ours-any-tenant".into(),
        encoded(
            encode_envelope(&Envelope::new(AnyTenant {
                tenant_id: "acme-corp".into(),
                note: None,
            }))
            .unwrap(),
        ),
    ));
    envelopes.push((
        "ours-cross-crate".into(),
        encoded(
            encode_envelope(&Envelope::new(ticket_events::CrossTicketUpdated {
                tenant_id: tenant,
                ticket_id: Uuid::new_v4(),
                changes: None,
            }))
            .unwrap(),
        ),
    ));
    // The poison entries of the fault tests, as they write them.
    let poison_envelope = |event_type: &str, tenant: &str, seq: u64| {
        format!(
            r#"{{"id":"{}","eventType":"{event_type}","timestamp":"2026-11-26T18:00:00.000Z","payload":{{"tenantId":"{tenant}","seq":{seq}}}}}"#,
            Uuid::new_v4()
        )
    };
    let t = tenant.to_string();
    let poison: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("malformed-json", vec![("event", "{not json".to_owned())]),
        ("no-event-field", vec![("channel", probe.clone())]),
        (
            "wrong-event-type",
            vec![("event", poison_envelope("TICKET_UPDATED", &t, 1))],
        ),
        (
            "missing-tenant",
            vec![(
                "event",
                poison_envelope("PROBE", &t, 2).replace(&format!(r#""tenantId":"{t}","#), ""),
            )],
        ),
        (
            "invalid-tenant",
            vec![("event", poison_envelope("PROBE", "not-a-uuid", 3))],
        ),
        (
            "nil-tenant",
            vec![(
                "event",
                poison_envelope("PROBE", "00000000-0000-0000-0000-000000000000", 4),
            )],
        ),
    ];
    for (name, json) in &envelopes {
        let stream = if name.contains("probe") {
            &probe
        } else {
            &ours
        };
        r2.call(&["XADD", stream, "*", "event", json, "channel", "global"]);
    }
    let mut poison_ids = Vec::new();
    for (name, fields) in &poison {
        let mut args = vec!["XADD".to_owned(), probe.clone(), "*".to_owned()];
        for (k, v) in fields {
            args.push((*k).to_owned());
            args.push(v.clone());
        }
        poison_ids.push(text(&r2.value(&args)));
        if let Some((_, json)) = fields.iter().find(|(k, _)| *k == "event") {
            envelopes.push((format!("poison-{name}"), json.clone()));
        }
    }

    // Seed events, written by the seed model: both generations, three channels, the workflow
    // stream; then its dead letters.
    let seed_prefix = format!("{PREFIX}:seed");
    let workflow = format!("{PREFIX}:workflow");
    let v1 = format!(
        r#"{{"tenantId":"{tenant}","ticketId":"{}","userId":"{}","changes":{{"status":"closed"}}}}"#,
        Uuid::new_v4(),
        Uuid::new_v4()
    );
    let domain = format!(
        r#"{{"tenantId":"acme","ticketId":"{}","actorUserId":"{}","occurredAt":"2026-11-26T18:00:00.000Z","changes":{{"status":{{"previous":"open","new":"closed"}}}}}}"#,
        Uuid::new_v4(),
        Uuid::new_v4()
    );
    let url_arg = format!("redis://{addr}");
    let mut seed_entries = Vec::new();
    for (payload, layout, channels) in [
        (v1.as_str(), "channels", vec!["global", "emailservice::v7"]),
        (domain.as_str(), "channels", vec!["global"]),
        (v1.as_str(), "flat", vec!["global"]),
    ] {
        let mut args = vec![
            "publish",
            "--url",
            &url_arg,
            "--event-type",
            "TICKET_UPDATED",
            "--prefix",
            &seed_prefix,
            "--layout",
            layout,
            "--workflow-stream",
            &workflow,
        ];
        for c in &channels {
            args.push("--channel");
            args.push(c);
        }
        let out = seed_model(&seed_dir, &args, payload);
        for e in out["entries"].as_array().expect("entries") {
            seed_entries.push((
                e["stream"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let seed_streams: Vec<String> = {
        let mut s: Vec<String> = seed_entries.iter().map(|(s, _)| s.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    let seed_dead_letters = format!("{}:dead-letter", seed_entries[0].0);
    for (stream, id) in seed_entries.iter().take(2) {
        seed_model(
            &seed_dir,
            &[
                "dead-letter",
                "--url",
                &url_arg,
                "--stream",
                stream,
                "--entry-id",
                id,
                "--deliveries",
                "11",
            ],
            "",
        );
    }
    for stream in &seed_streams {
        for (id, fields) in entries(r2.value(&["XRANGE", stream, "-", "+"])) {
            if let Some((_, v)) = fields.iter().find(|(k, _)| k == b"event") {
                let n = envelopes
                    .iter()
                    .filter(|(n, _)| n.starts_with("seed-"))
                    .count();
                envelopes.push((
                    format!("seed-{n}-{}", id.replace('-', "_")),
                    String::from_utf8_lossy(v).into_owned(),
                ));
            }
        }
    }

    // Our dead letters of the poison entries, with the failure each gets, as the runtime
    // writes them (`dead_letter::write`).
    let dl = format!("{probe}:dead-letter");
    for ((name, fields), id) in poison.iter().zip(&poison_ids) {
        let event = fields
            .iter()
            .find(|(k, _)| *k == "event")
            .map(|(_, v)| v.as_bytes());
        let failure = match event {
            None => (
                "decode".to_owned(),
                "stream entry has no `event` field".to_owned(),
            ),
            Some(bytes) => {
                let probe_decode = registered_events()
                    .find(|r| r.event_type == "PROBE")
                    .expect("PROBE");
                match (probe_decode.decode)(bytes) {
                    Err(f) => (f.kind.as_str().to_owned(), f.message.clone()),
                    Ok(_) => panic!("{name} decodes"),
                }
            }
        };
        let mut args: Vec<String> = vec!["XADD".into(), dl.clone(), "*".into()];
        for (k, v) in fields {
            args.push((*k).into());
            args.push(v.clone());
        }
        for (k, v) in [
            ("sourceStream", probe.clone()),
            ("sourceMessageId", id.clone()),
            ("deliveries", "1".into()),
            ("deadLetteredAt", format_timestamp(&Utc::now())),
            ("subscriber", "probe-a".into()),
            ("error", failure.1),
            ("errorKind", failure.0),
            ("runs", "0".into()),
            (
                "reason",
                "rejected: the entry cannot be decoded or is invalid (not retried)".into(),
            ),
        ] {
            args.push(k.into());
            args.push(v);
        }
        r2.call(&args);
    }

    for (name, json) in &envelopes {
        corpus.add("envelope", &format!("{name}.json"), json.as_bytes());
    }

    // Dead letters, ours and the seed's, as the dead-letter target reads them.
    let mut ids: Vec<String> = Vec::new();
    let mut dl_streams = vec![dl.clone()];
    dl_streams.extend(seed_streams.iter().map(|s| format!("{s}:dead-letter")));
    for stream in &dl_streams {
        let origin = if stream.starts_with(&seed_prefix) {
            "seed"
        } else {
            "ours"
        };
        for (id, fields) in entries(r2.value(&["XRANGE", stream, "-", "+"])) {
            let i = ids.len();
            let mut data = id.clone().into_bytes();
            for (k, v) in fields {
                data.push(0);
                data.extend_from_slice(&k);
                data.push(0);
                data.extend_from_slice(&v);
            }
            corpus.add("dead_letter", &format!("{origin}-{i:02}"), &data);
            ids.push(id);
        }
    }

    // Raw replies of every command whose reply the runtime parses, in RESP2 and RESP3.
    r2.call(&[
        "XADD",
        &format!("{PREFIX}:max"),
        "18446744073709551615-18446744073709551615",
        "event",
        "{}",
    ]);
    let max_info = r2.call(&["XINFO", "STREAM", &format!("{PREFIX}:max")]);
    corpus.add("resp", "resp2-xinfo-stream-max-id", &max_info);
    ids.extend([
        "18446744073709551615-18446744073709551615".into(),
        "0-0".into(),
        "0-1".into(),
        "1764612000123-0".into(),
    ]);
    let group = "probe-a";
    for (proto, raw) in [("resp2", &mut r2), ("resp3", &mut r3)] {
        let capture = |name: &str, bytes: Vec<u8>| {
            corpus.add("resp", &format!("{proto}-{name}"), &bytes);
            if let Ok(v) = redis::parse_redis_value(&bytes) {
                corpus.add(
                    "reply",
                    &format!("{proto}-{name}"),
                    &fuzz_targets::value::encode(&v),
                );
            }
        };
        let g = format!("{group}-{proto}");
        raw.call(&["XGROUP", "CREATE", &probe, &g, "0"]);
        raw.call(&["XGROUP", "CREATE", &ours, &g, "0"]);
        capture(
            "xadd",
            raw.call(&[
                "XADD",
                &probe,
                "*",
                "event",
                &envelopes[2].1,
                "channel",
                "global",
            ]),
        );
        capture(
            "xreadgroup",
            raw.call(&[
                "XREADGROUP",
                "GROUP",
                &g,
                "c1",
                "COUNT",
                "4",
                "STREAMS",
                &probe,
                ">",
            ]),
        );
        capture(
            "xreadgroup-two-streams",
            raw.call(&[
                "XREADGROUP",
                "GROUP",
                &g,
                "c1",
                "COUNT",
                "2",
                "STREAMS",
                &probe,
                &ours,
                ">",
                ">",
            ]),
        );
        capture(
            "xreadgroup-timeout",
            raw.call(&[
                "XREADGROUP",
                "GROUP",
                &g,
                "c1",
                "COUNT",
                "2",
                "BLOCK",
                "1",
                "STREAMS",
                &ours,
                ">",
            ]),
        );
        capture(
            "xread-two-streams",
            raw.call(&["XREAD", "COUNT", "1", "STREAMS", &probe, &ours, "0", "0"]),
        );
        // One pending entry deleted: XAUTOCLAIM reports it.
        raw.call(&["XDEL", &probe, &poison_ids[0]]);
        capture(
            "xautoclaim",
            raw.call(&["XAUTOCLAIM", &probe, &g, "c2", "0", "0-0", "COUNT", "3"]),
        );
        capture(
            "xautoclaim-rest",
            raw.call(&["XAUTOCLAIM", &probe, &g, "c2", "0", "0-0", "COUNT", "100"]),
        );
        capture(
            "xclaim",
            raw.call(&[
                "XCLAIM",
                &probe,
                &g,
                "c3",
                "0",
                &poison_ids[1],
                &poison_ids[2],
            ]),
        );
        capture("xrange-probe", raw.call(&["XRANGE", &probe, "-", "+"]));
        capture(
            "xrange-ours",
            raw.call(&["XRANGE", &ours, "-", "+", "COUNT", "2"]),
        );
        capture(
            "xrange-dead-letters",
            raw.call(&["XRANGE", &dl, "-", "+", "COUNT", "3"]),
        );
        capture(
            "xrevrange-seed-dead-letters",
            raw.call(&["XREVRANGE", &seed_dead_letters, "+", "-"]),
        );
        capture(
            "xrange-seed",
            raw.call(&["XRANGE", &seed_streams[0], "-", "+"]),
        );
        capture(
            "xrange-workflow",
            raw.call(&["XRANGE", &workflow, "-", "+", "COUNT", "2"]),
        );
        capture(
            "xrange-empty",
            raw.call(&["XRANGE", &format!("{PREFIX}:none"), "-", "+"]),
        );
        capture("xinfo-stream", raw.call(&["XINFO", "STREAM", &probe]));
        capture("xinfo-stream-empty", {
            let empty = format!("{PREFIX}:empty-{proto}");
            raw.call(&["XADD", &empty, "*", "event", "{}"]);
            raw.call(&["XTRIM", &empty, "MAXLEN", "0"]);
            raw.call(&["XINFO", "STREAM", &empty])
        });
        capture("xinfo-groups", raw.call(&["XINFO", "GROUPS", &probe]));
        capture(
            "xinfo-groups-seed",
            raw.call(&["XINFO", "GROUPS", &seed_streams[0]]),
        );
        capture(
            "xinfo-consumers",
            raw.call(&["XINFO", "CONSUMERS", &probe, &g]),
        );
        capture(
            "xinfo-no-such-key",
            raw.call(&["XINFO", "GROUPS", &format!("{PREFIX}:none")]),
        );
        capture("xpending", raw.call(&["XPENDING", &probe, &g]));
        capture("xpending-none", raw.call(&["XPENDING", &ours, "nobody"]));
        capture(
            "xpending-extended",
            raw.call(&["XPENDING", &probe, &g, "-", "+", "10"]),
        );
        let runs = format!("{probe}:runs:{g}");
        raw.call(&["HSET", &runs, &poison_ids[3], "2"]);
        capture(
            "hmget-runs",
            raw.call(&["HMGET", &runs, &poison_ids[3], &poison_ids[4]]),
        );
        capture("xlen", raw.call(&["XLEN", &probe]));
        capture("xdel", raw.call(&["XDEL", &probe, "0-1"]));
        capture(
            "busygroup",
            raw.call(&["XGROUP", "CREATE", &probe, &g, "0"]),
        );
    }
    // Every id seen, for the stream-id target.
    for v in [
        r2.value(&["XRANGE", &probe, "-", "+"]),
        r2.value(&["XRANGE", &ours, "-", "+"]),
    ] {
        ids.extend(entries(v).into_iter().map(|(id, _)| id));
    }
    ids.sort();
    ids.dedup();
    for (i, id) in ids.iter().enumerate() {
        corpus.add("stream_id", &format!("{i:02}"), id.as_bytes());
    }
    wipe(&mut r2);
    for target in fuzz_targets::TARGETS {
        let n = fs::read_dir(corpus.dir.join(target))
            .map(|d| d.count())
            .unwrap_or(0);
        println!("{target}: {n} files");
    }
}
