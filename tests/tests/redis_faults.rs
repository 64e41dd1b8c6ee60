//! Redis-specific behaviour and faults, against real Redis servers: competing consumers, a
//! consumer killed mid-handler, Redis killed and restarted, a black-holed socket, poison
//! input, lost streams, crash recovery of dead letters and delivery counts, idle consumers,
//! retention. Every test asserts exact counts.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use event_bus_core::FailureKind;
use event_bus_redis::{RedisBus, Retention};
use event_bus_tests::bus::SharedRecorder;
use event_bus_tests::proxy::Proxy;
use event_bus_tests::server::RedisServer;
use event_bus_tests::{AnyBus, BusKind, Probe, Recorder, TestBus};
use redis::aio::MultiplexedConnection;
use redis::Value;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

async fn raw(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("client");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

fn redis_bus(bus: &AnyBus) -> &RedisBus {
    match bus {
        AnyBus::Redis(b) => b,
        AnyBus::Memory(_) => unreachable!("a Redis test built a memory bus"),
    }
}

async fn pending_count(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> i64 {
    event_bus_tests::pending_count(conn, stream, group)
        .await
        .expect("XPENDING")
}

/// Every string in a reply, depth first.
fn strings(v: &Value) -> Vec<String> {
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

fn envelope_json(event_type: &str, tenant: &str, seq: u64) -> String {
    format!(
        r#"{{"id":"{}","eventType":"{event_type}","timestamp":"2026-11-26T18:00:00.000Z","payload":{{"tenantId":"{tenant}","seq":{seq}}}}}"#,
        Uuid::new_v4()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_split_the_work_and_handle_each_event_once() {
    event_bus_tests::init_tracing();
    let t1 = TestBus::new(BusKind::Redis, "competing", &["probe-concurrent"]);
    let mut t2 = t1.clone();
    t2.recorder = Arc::new(Recorder::default());
    let (b1, b2) = (t1.build().await, t2.build().await);
    let (r1, r2) = (
        b1.start().await.expect("start 1"),
        b2.start().await.expect("start 2"),
    );
    let tenant = Uuid::new_v4();
    for seq in 0..200 {
        let mut p = Probe::new(tenant, seq);
        p.sleep_ms = 2;
        b1.publish(p).await.expect("publish");
    }
    let both = |t1: &TestBus, t2: &TestBus| {
        t1.recorder.handled("probe-concurrent").len()
            + t2.recorder.handled("probe-concurrent").len()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while both(&t1, &t2) < 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r1.shutdown().await.expect("shutdown 1");
    r2.shutdown().await.expect("shutdown 2");
    let (h1, h2) = (
        t1.recorder.handled("probe-concurrent"),
        t2.recorder.handled("probe-concurrent"),
    );
    assert!(
        !h1.is_empty() && !h2.is_empty(),
        "both consumers took work: {} / {}",
        h1.len(),
        h2.len()
    );
    let mut all: HashMap<u64, usize> = h1.clone();
    for (seq, n) in h2 {
        *all.entry(seq).or_insert(0) += n;
    }
    assert_eq!(all.len(), 200);
    assert!(all.values().all(|n| *n == 1), "an event was handled twice");
    t1.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_killed_consumer_are_claimed_and_handled_by_another() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "sigkill", &["probe-concurrent"]);
    t.claim_idle = Duration::from_millis(500);
    t.claim_interval = Duration::from_millis(200);
    // The group must exist before publishing: start and stop a bus once.
    let setup = t.build().await;
    setup
        .start()
        .await
        .expect("start")
        .shutdown()
        .await
        .expect("shutdown");

    let mut child = Command::new(env!("CARGO_BIN_EXE_probe-consumer"))
        .args([&t.url, &t.prefix, "probe-concurrent", "doomed-consumer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the consumer process");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(rx.recv().await.as_deref(), Some("ready"));

    let tenant = Uuid::new_v4();
    for seq in 0..40 {
        let mut p = Probe::new(tenant, seq);
        p.sleep_ms = 100;
        setup.publish(p).await.expect("publish");
    }
    // Let the child finish some, then kill it in the middle of others.
    let mut child_done: HashSet<u64> = HashSet::new();
    let mut child_started: HashSet<u64> = HashSet::new();
    while child_done.len() < 10 {
        let line = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("child output")
            .expect("line");
        let parts: Vec<&str> = line.split(' ').collect();
        let seq: u64 = parts[2].parse().expect("seq");
        match parts[0] {
            "start" => {
                child_started.insert(seq);
            }
            "done" => {
                child_done.insert(seq);
            }
            _ => {}
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    // Everything it printed before it died (the reading thread ends at the pipe's end),
    // starts included: on a loaded machine the kill can come after the handlers running at
    // the 10th `done` have finished and others have started.
    while let Some(line) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the child's output ends")
    {
        let parts: Vec<&str> = line.split(' ').collect();
        let seq: u64 = parts[2].parse().expect("seq");
        match parts[0] {
            "start" => {
                child_started.insert(seq);
            }
            "done" => {
                child_done.insert(seq);
            }
            _ => {}
        }
    }
    let in_flight: HashSet<u64> = child_started.difference(&child_done).copied().collect();
    assert!(!in_flight.is_empty(), "the child was killed mid-handler");

    // A second consumer of the same group claims what the dead one left pending.
    let survivor = t.build().await;
    let running = survivor.start().await.expect("start");
    let remaining = 40 - child_done.len();
    let ok = t
        .recorder
        .wait_until(WAIT, |r| {
            let h = r.handled("probe-concurrent");
            (0..40).all(|s| child_done.contains(&s) || h.contains_key(&s))
        })
        .await;
    running.shutdown().await.expect("shutdown");
    assert!(ok, "every event handled by one consumer or the other");
    let handled = t.recorder.handled("probe-concurrent");
    // Duplicates only for entries the child handled but had not acknowledged yet: bounded by
    // what it held (read batch 8, so at most 16 entries).
    let duplicates: Vec<u64> = handled
        .keys()
        .filter(|s| child_done.contains(s))
        .copied()
        .collect();
    assert!(duplicates.len() <= 16, "duplicates bounded: {duplicates:?}");
    assert!(handled.len() >= remaining);
    assert!(
        handled.values().all(|n| *n == 1),
        "the survivor handled nothing twice"
    );
    for seq in &in_flight {
        let attempts = t.recorder.attempts_of("probe-concurrent", *seq);
        assert!(
            attempts.iter().all(|a| a.attempt >= 2),
            "a claimed entry counts its earlier delivery: {attempts:?}"
        );
    }
    assert!(redis_bus(&survivor).stats().claimed >= in_flight.len() as u64);
    let mut conn = raw(&t.url).await;
    assert_eq!(
        pending_count(
            &mut conn,
            &format!("{}:PROBE", t.prefix),
            "probe-concurrent"
        )
        .await,
        0
    );
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_publish_is_handled_across_a_redis_restart() {
    event_bus_tests::init_tracing();
    let mut server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut t = TestBus::new(BusKind::Redis, "restart", &["probe-concurrent"]);
    t.url = server.url();
    t.claim_idle = Duration::from_secs(1);
    t.claim_interval = Duration::from_millis(300);
    let bus = t.build().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let mut accepted: Vec<u64> = Vec::new();
    let mut refused = 0;
    let started = std::time::Instant::now();
    for seq in 0..10_000u64 {
        if seq == 3_000 {
            server.kill();
        }
        // Down until a few publishes have failed, then back with its append-only file.
        if refused == 10 && !accepted.is_empty() && *accepted.last().unwrap_or(&0) < 3_000 {
            server.restart();
        }
        match bus.publish(Probe::new(tenant, seq)).await {
            Ok(_) => accepted.push(seq),
            Err(e) => {
                assert!(e.is_retryable(), "a transport error: {e}");
                refused += 1;
            }
        }
    }
    println!("published in {:?}", started.elapsed());
    assert!(refused > 0, "some publishes failed while Redis was down");
    let ok = t
        .recorder
        .wait_until(Duration::from_secs(60), |r| {
            let h = r.handled("probe-concurrent");
            accepted.iter().all(|s| h.contains_key(s))
        })
        .await;
    running.shutdown().await.expect("shutdown");
    let handled = t.recorder.handled("probe-concurrent");
    let missing: Vec<_> = accepted
        .iter()
        .filter(|s| !handled.contains_key(s))
        .take(10)
        .collect();
    assert!(
        ok,
        "publishes that returned Ok but were never handled: {missing:?}"
    );
    let unexpected: Vec<_> = handled.keys().filter(|s| !accepted.contains(s)).collect();
    // A publish can fail on the client side after Redis wrote it (the reply was lost).
    assert!(
        unexpected.len() <= refused,
        "unexpected events: {unexpected:?}"
    );
    let duplicates = handled.values().filter(|n| **n > 1).count();
    assert!(
        duplicates <= 300,
        "duplicates bounded by what was in flight: {duplicates}"
    );
    println!(
        "accepted {}, refused {refused}, duplicates {duplicates}",
        accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_read_connection_is_detected_and_rebuilt() {
    event_bus_tests::init_tracing();
    let proxy = Proxy::start("127.0.0.1:6379").await.expect("proxy");
    let direct = TestBus::new(BusKind::Redis, "blackhole", &["probe-a"]);
    let mut through = direct.clone();
    through.url = proxy.url();
    let publisher = direct.build().await;
    let bus = RedisBus::builder()
        .url(proxy.url())
        .prefix(&through.prefix)
        .only(["probe-a"])
        .state(SharedRecorder(Arc::clone(&through.recorder)))
        .block(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..10 {
        publisher
            .publish(Probe::new(tenant, seq))
            .await
            .expect("publish");
    }
    assert!(through.recorder.wait_handled("probe-a", 10, WAIT).await);
    proxy.blackhole(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for seq in 10..20 {
        publisher
            .publish(Probe::new(tenant, seq))
            .await
            .expect("publish");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        through.recorder.handled("probe-a").len(),
        10,
        "nothing gets through a black hole"
    );
    proxy.blackhole(false);
    assert!(
        through.recorder.wait_handled("probe-a", 20, WAIT).await,
        "the reader noticed the dead socket and reconnected"
    );
    assert!(bus.stats().reconnects >= 1);
    running.shutdown().await.expect("shutdown");
    let handled = through.recorder.handled("probe-a");
    assert_eq!(handled.len(), 20);
    assert!(handled.values().all(|n| *n == 1));
    direct.cleanup().await;
}

/// What the poison entry is, its fields, and the failure kind expected.
type Poison<'a> = (&'a str, Vec<(&'a str, String)>, FailureKind);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_entries_are_dead_lettered_at_once_and_do_not_block_the_stream() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "poison", &["probe-a"]);
    let bus = t.build().await;
    let running = bus.start().await.expect("start");
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    let tenant = Uuid::new_v4().to_string();
    let poison: Vec<Poison<'_>> = vec![
        (
            "malformed JSON",
            vec![("event", "{not json".to_owned())],
            FailureKind::Decode,
        ),
        (
            "no event field",
            vec![("channel", stream.clone())],
            FailureKind::Decode,
        ),
        (
            "wrong eventType",
            vec![("event", envelope_json("TICKET_UPDATED", &tenant, 1))],
            FailureKind::Decode,
        ),
        (
            "missing tenant",
            vec![(
                "event",
                envelope_json("PROBE", &tenant, 2)
                    .replace(&format!(r#""tenantId":"{tenant}","#), ""),
            )],
            FailureKind::Decode,
        ),
        (
            "invalid tenant",
            vec![("event", envelope_json("PROBE", "not-a-uuid", 3))],
            FailureKind::Decode,
        ),
        (
            "nil tenant",
            vec![(
                "event",
                envelope_json("PROBE", "00000000-0000-0000-0000-000000000000", 4),
            )],
            FailureKind::Validation,
        ),
    ];
    let mut ids = Vec::new();
    for (_, fields, _) in &poison {
        let mut c = redis::cmd("XADD");
        c.arg(&stream).arg("*");
        for (k, v) in fields {
            c.arg(*k).arg(v);
        }
        let id: String = c.query_async(&mut conn).await.expect("xadd");
        ids.push(id);
    }
    bus.publish(Probe::new(Uuid::new_v4(), 100))
        .await
        .expect("publish");
    assert!(
        t.recorder.wait_handled("probe-a", 1, WAIT).await,
        "the valid event behind the poison was handled"
    );
    let letters = bus.wait_dead_letters(poison.len(), WAIT).await;
    running.shutdown().await.expect("shutdown");
    assert_eq!(letters.len(), poison.len());
    for ((what, _, kind), id) in poison.iter().zip(&ids) {
        let letter = letters
            .iter()
            .find(|l| &l.source_message_id == id)
            .unwrap_or_else(|| panic!("no dead letter for {what}"));
        assert_eq!(letter.kind, *kind, "{what}: {}", letter.error);
        assert_eq!(letter.deliveries, 1, "{what} was not retried");
        assert!(!letter.error.is_empty());
    }
    let error_of = |id: &str| {
        letters
            .iter()
            .find(|l| l.source_message_id == id)
            .map(|l| l.error.clone())
            .unwrap_or_default()
    };
    let wrong_type = error_of(&ids[2]);
    assert!(wrong_type.contains("TICKET_UPDATED"), "{wrong_type}");
    let no_event = error_of(&ids[1]);
    assert!(no_event.contains("no `event` field"), "{no_event}");
    assert_eq!(t.recorder.attempts().len(), 1, "no handler saw the poison");
    assert_eq!(pending_count(&mut conn, &stream, "probe-a").await, 0);
    // The dead-letter entry keeps the original fields and adds the seed's and ours.
    let dl: Value = redis::cmd("XRANGE")
        .arg(format!("{stream}:dead-letter"))
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("xrange");
    let text = strings(&dl).join(" ");
    for field in [
        "event",
        "sourceStream",
        "sourceMessageId",
        "deliveries",
        "deadLetteredAt",
        "subscriber",
        "error",
        "errorKind",
    ] {
        assert!(text.contains(field), "dead letter lacks {field}: {text}");
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stream_recreates_the_group_and_continues() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "nogroup", &["probe-a"]);
    let bus = t.build().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..5 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    assert!(t.recorder.wait_handled("probe-a", 5, WAIT).await);
    let mut conn = raw(&t.url).await;
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}:PROBE", t.prefix))
        .query_async(&mut conn)
        .await
        .expect("del");
    for seq in 5..10 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    assert!(
        t.recorder.wait_handled("probe-a", 10, WAIT).await,
        "events after the loss were handled"
    );
    running.shutdown().await.expect("shutdown");
    assert!(redis_bus(&bus).stats().groups_recreated >= 1);
    let handled = t.recorder.handled("probe-a");
    assert_eq!(handled.len(), 10);
    assert!(handled.values().all(|n| *n == 1));
    t.cleanup().await;
}

/// Makes `consumer` read every new entry of the group (so they are pending with it).
async fn read_as(
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

async fn create_group(conn: &mut MultiplexedConnection, stream: &str, group: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_written_before_a_crash_is_not_written_twice() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "dl-once", &["probe-a"]);
    t.claim_idle = Duration::from_millis(100);
    t.claim_interval = Duration::from_millis(100);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    create_group(&mut conn, &stream, "probe-a").await;
    let bus = t.build().await;
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.permanent = true;
    let published = bus.publish(p).await.expect("publish");
    // A consumer read it, wrote its dead letter, and died before XACK.
    let read = read_as(&mut conn, &stream, "probe-a", "crashed").await;
    assert_eq!(read, vec![published.entry_id.clone()]);
    let _: String = redis::cmd("XADD")
        .arg(format!("{stream}:dead-letter"))
        .arg("*")
        .arg("event")
        .arg("{}")
        .arg("sourceStream")
        .arg(&stream)
        .arg("sourceMessageId")
        .arg(&published.entry_id)
        .arg("deliveries")
        .arg(1)
        .arg("deadLetteredAt")
        .arg("2026-11-26T18:00:00.000Z")
        .arg("subscriber")
        .arg("probe-a")
        .arg("error")
        .arg("fails permanently")
        .arg("errorKind")
        .arg("handler")
        .query_async(&mut conn)
        .await
        .expect("xadd");
    let running = bus.start().await.expect("start");
    let deadline = tokio::time::Instant::now() + WAIT;
    while pending_count(&mut conn, &stream, "probe-a").await != 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown().await.expect("shutdown");
    assert_eq!(
        pending_count(&mut conn, &stream, "probe-a").await,
        0,
        "the entry was acknowledged"
    );
    assert_eq!(
        bus.dead_letters().await.expect("list").len(),
        1,
        "exactly one dead letter"
    );
    assert!(
        t.recorder.attempts().is_empty(),
        "the handler did not run again"
    );
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_before_a_crash_count_toward_max_attempts() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "attempts", &["probe-retry3"]);
    t.claim_idle = Duration::from_millis(100);
    t.claim_interval = Duration::from_millis(100);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    create_group(&mut conn, &stream, "probe-retry3").await;
    let bus = t.build().await;
    let first = bus
        .publish(Probe::new(Uuid::new_v4(), 1))
        .await
        .expect("publish");
    let second = bus
        .publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect("publish");
    // Consumers died while handling them: `first` was delivered 3 times, `second` once.
    read_as(&mut conn, &stream, "probe-retry3", "crashed").await;
    for _ in 0..2 {
        let _: Value = redis::cmd("XCLAIM")
            .arg(&stream)
            .arg("probe-retry3")
            .arg("crashed")
            .arg(0)
            .arg(&first.entry_id)
            .query_async(&mut conn)
            .await
            .expect("xclaim");
    }
    let running = bus.start().await.expect("start");
    let letters = bus.wait_dead_letters(1, WAIT).await;
    assert!(t.recorder.wait_handled("probe-retry3", 1, WAIT).await);
    running.shutdown().await.expect("shutdown");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].source_message_id, first.entry_id);
    assert_eq!(letters[0].deliveries, 3);
    assert!(
        t.recorder.attempts_of("probe-retry3", 1).is_empty(),
        "no 4th attempt"
    );
    let second_attempts: Vec<u32> = t.recorder.attempt_numbers("probe-retry3", 2);
    assert_eq!(
        second_attempts,
        vec![2],
        "the claimed entry's attempt counts the lost delivery"
    );
    let _ = second;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_entries_deleted_meanwhile_are_recorded() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "deleted", &["probe-a"]);
    t.claim_idle = Duration::from_millis(100);
    t.claim_interval = Duration::from_millis(100);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    create_group(&mut conn, &stream, "probe-a").await;
    let bus = t.build().await;
    let gone = bus
        .publish(Probe::new(Uuid::new_v4(), 1))
        .await
        .expect("publish");
    bus.publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect("publish");
    read_as(&mut conn, &stream, "probe-a", "crashed").await;
    let _: i64 = redis::cmd("XDEL")
        .arg(&stream)
        .arg(&gone.entry_id)
        .query_async(&mut conn)
        .await
        .expect("xdel");
    let running = bus.start().await.expect("start");
    assert!(t.recorder.wait_handled("probe-a", 1, WAIT).await);
    let deadline = tokio::time::Instant::now() + WAIT;
    while redis_bus(&bus).stats().deleted_while_pending < 1
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown().await.expect("shutdown");
    assert_eq!(redis_bus(&bus).stats().deleted_while_pending, 1);
    assert_eq!(
        t.recorder
            .handled("probe-a")
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(pending_count(&mut conn, &stream, "probe-a").await, 0);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_consumers_without_pending_entries_are_removed_others_kept() {
    event_bus_tests::init_tracing();
    let prefix = event_bus_tests::unique_prefix("idle-consumers");
    let url = event_bus_tests::redis_url();
    let stream = format!("{prefix}:PROBE");
    let mut conn = raw(&url).await;
    create_group(&mut conn, &stream, "probe-a").await;
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&stream)
        .arg("probe-a")
        .arg("ghost")
        .query_async(&mut conn)
        .await
        .expect("create");
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("event")
        .arg("{}")
        .query_async(&mut conn)
        .await
        .expect("xadd");
    read_as(&mut conn, &stream, "probe-a", "holder").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recorder = Arc::new(Recorder::default());
    let bus = RedisBus::builder()
        .url(&url)
        .prefix(&prefix)
        .only(["probe-a"])
        .state(SharedRecorder(recorder))
        .consumer_idle_timeout(Duration::from_millis(200))
        .claim_idle(Duration::from_secs(60))
        .claim_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    tokio::time::sleep(Duration::from_millis(600)).await;
    running.shutdown().await.expect("shutdown");
    let v: Value = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&stream)
        .arg("probe-a")
        .query_async(&mut conn)
        .await
        .expect("xinfo");
    let text = strings(&v).join(" ");
    assert!(
        !text.contains("ghost"),
        "the idle consumer without pending entries was removed: {text}"
    );
    assert!(
        text.contains("holder"),
        "the consumer with a pending entry was kept: {text}"
    );
    let _ = event_bus_tests::delete_prefix(&url, &prefix).await;
}

/// Runs `probe-a` under `retention` until it handled 20 events and maintenance ran; returns the
/// stream's length and what the bus reported trimming unhandled.
async fn run_with_retention(url: &str, prefix: &str, retention: Retention) -> (u64, u64) {
    let recorder = Arc::new(Recorder::default());
    let bus = RedisBus::builder()
        .url(url)
        .prefix(prefix)
        .only(["probe-a"])
        .state(SharedRecorder(Arc::clone(&recorder)))
        .retention(retention)
        .claim_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    for seq in 0..20 {
        bus.publish(Probe::new(Uuid::new_v4(), seq))
            .await
            .expect("publish");
    }
    assert!(recorder.wait_handled("probe-a", 20, WAIT).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.shutdown().await.expect("shutdown");
    let mut conn = raw(url).await;
    let len: u64 = redis::cmd("XLEN")
        .arg(format!("{prefix}:PROBE"))
        .query_async(&mut conn)
        .await
        .expect("xlen");
    (len, bus.stats().trimmed_unhandled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_never_trims_unhandled_entries_silently() {
    event_bus_tests::init_tracing();
    let url = event_bus_tests::redis_url();
    let mut conn = raw(&url).await;
    for (retention, expect_len, expect_dropped) in [
        (Retention::TrimHandled, 20u64, 0u64),
        (Retention::MaxLen(5), 5, 15),
    ] {
        let prefix = event_bus_tests::unique_prefix("retention");
        // A second group that never reads: nothing it has not handled may go silently.
        create_group(&mut conn, &format!("{prefix}:PROBE"), "lagging").await;
        let (len, dropped) = run_with_retention(&url, &prefix, retention).await;
        assert_eq!(len, expect_len, "{retention:?}");
        assert_eq!(
            dropped, expect_dropped,
            "{retention:?} reports what it dropped"
        );
        let _ = event_bus_tests::delete_prefix(&url, &prefix).await;
    }
    // Without a lagging group, TrimHandled removes what every group handled.
    let prefix = event_bus_tests::unique_prefix("retention-handled");
    let (len, dropped) = run_with_retention(&url, &prefix, Retention::TrimHandled).await;
    assert_eq!((len, dropped), (0, 0), "handled entries were trimmed");
    let _ = event_bus_tests::delete_prefix(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_returns_the_error_when_redis_is_unreachable() {
    let mut server = RedisServer::start(&[]);
    let bus = RedisBus::builder()
        .url(server.url())
        .response_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("bus");
    bus.publish(Probe::new(Uuid::new_v4(), 1))
        .await
        .expect("publish while up");
    server.kill();
    let err = bus
        .publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect_err("down");
    assert!(err.is_retryable(), "{err}");
    let refused = RedisBus::builder().url(server.url()).build().await;
    assert!(refused.is_err(), "build reports an unreachable server");
}

#[tokio::test]
async fn a_builder_without_a_url_is_a_configuration_error() {
    let err = RedisBus::builder().build().await.expect_err("no url");
    assert!(
        matches!(err, event_bus_core::StartError::Config(_)),
        "{err}"
    );
    assert!(err.to_string().contains(".url("), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_share_one_multiplexed_connection() {
    let server = RedisServer::start(&[]);
    let mut conn = raw(&server.url()).await;
    let bus = RedisBus::builder()
        .url(server.url())
        .build()
        .await
        .expect("bus");
    let tenant = Uuid::new_v4();
    let publishes = (0..500).map(|seq| {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(Probe::new(tenant, seq)).await })
    });
    let mut ids = HashSet::new();
    for handle in publishes.collect::<Vec<_>>() {
        let published = handle.await.expect("task").expect("publish");
        ids.insert(published.entry_id);
    }
    assert_eq!(ids.len(), 500);
    let len: u64 = redis::cmd("XLEN")
        .arg("event:PROBE")
        .query_async(&mut conn)
        .await
        .expect("xlen");
    assert_eq!(len, 500);
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("client list");
    assert_eq!(
        clients.lines().count(),
        2,
        "this test's connection and the bus's one: {clients}"
    );
}

/// Waits up to `within` until `group` has no pending entries; returns the last count seen.
/// Keep `within` under the bus's `claim_idle` (30 s), or a claim could clear what the test
/// expects the acknowledgement to clear.
async fn wait_no_pending(
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
async fn wait_handled_stat(bus: &RedisBus, n: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let handled = bus.stats().handled;
        if handled >= n || tokio::time::Instant::now() >= deadline {
            return handled;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A concurrency-1 subscriber handles on its reader's task and acknowledges with its next
/// read: entries are acknowledged as soon as their batch is done, also when nothing follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_handled_in_place_are_acknowledged_without_more_traffic() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "ack-in-place", &["probe-a"]);
    let bus = t.build().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..50 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    assert!(t.recorder.wait_handled("probe-a", 50, WAIT).await);
    let mut conn = raw(&t.url).await;
    let stream = format!("{}:PROBE", t.prefix);
    let within = Duration::from_secs(5);
    assert_eq!(
        wait_no_pending(&mut conn, &stream, "probe-a", within).await,
        0
    );
    // Counted when the reply to the acknowledging round trip arrives (after its read's BLOCK).
    assert_eq!(wait_handled_stat(redis_bus(&bus), 50).await, 50);
    running.shutdown().await.expect("shutdown");
    let handled = t.recorder.handled("probe-a");
    assert_eq!(handled.len(), 50);
    assert!(handled.values().all(|n| *n == 1), "each handled once");
    t.cleanup().await;
}

/// The acknowledgement rides on the next read; when that round trip is lost with its
/// connection, it is sent again on the new one: the entry is not left pending (to be claimed
/// and handled twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_lost_with_its_connection_is_sent_again() {
    event_bus_tests::init_tracing();
    let proxy = Proxy::start("127.0.0.1:6379").await.expect("proxy");
    let direct = TestBus::new(BusKind::Redis, "ack-lost", &["probe-a"]);
    let publisher = direct.build().await;
    let bus = RedisBus::builder()
        .url(proxy.url())
        .prefix(&direct.prefix)
        .only(["probe-a"])
        .state(SharedRecorder(Arc::clone(&direct.recorder)))
        .block(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    // Quick enough for its acknowledgement to wait for the next read (under 100 ms).
    p.sleep_ms = 50;
    publisher.publish(p).await.expect("publish");
    assert!(direct.recorder.wait_until(WAIT, |r| r.starts() == 1).await);
    // The handler finishes inside the black hole: its acknowledgement goes nowhere.
    proxy.blackhole(true);
    assert!(direct.recorder.wait_handled("probe-a", 1, WAIT).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut conn = raw(&direct.url).await;
    let stream = format!("{}:PROBE", direct.prefix);
    assert_eq!(
        pending_count(&mut conn, &stream, "probe-a").await,
        1,
        "not acknowledged through the black hole"
    );
    proxy.blackhole(false);
    let within = Duration::from_secs(10);
    assert_eq!(
        wait_no_pending(&mut conn, &stream, "probe-a", within).await,
        0
    );
    assert!(bus.stats().reconnects >= 1);
    assert_eq!(wait_handled_stat(&bus, 1).await, 1);
    running.shutdown().await.expect("shutdown");
    let handled = direct.recorder.handled("probe-a");
    assert_eq!(handled.get(&1), Some(&1), "handled exactly once");
    direct.cleanup().await;
}

/// A batch handled in place acknowledges as it goes once it is slow: an entry it finished is
/// not left pending (claimable by another consumer) while a later one still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_batch_does_not_hold_back_acknowledgements() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "slow-batch", &["probe-a"]);
    let bus = t.build().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let quick = Probe::new(tenant, 1);
    let mut slow = Probe::new(tenant, 2);
    slow.sleep_ms = 3_000;
    // Both in one transaction, so the blocked reader gets them in one batch.
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    let mut tx = redis::pipe();
    tx.atomic();
    for p in [quick, slow] {
        let json = serde_json::to_string(&event_bus_core::Envelope::new(p)).expect("json");
        tx.cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("event")
            .arg(json)
            .ignore();
    }
    let _: () = tx.query_async(&mut conn).await.expect("xadd");
    assert!(t.recorder.wait_until(WAIT, |r| r.starts() == 2).await);
    assert_eq!(
        t.recorder.handled("probe-a").len(),
        1,
        "the slow one still runs"
    );
    // Well before the slow handler ends, only it is pending.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_500);
    let mut n = pending_count(&mut conn, &stream, "probe-a").await;
    while n != 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n = pending_count(&mut conn, &stream, "probe-a").await;
    }
    assert_eq!(
        n, 1,
        "the quick entry was acknowledged while the slow one ran"
    );
    assert_eq!(
        t.recorder.handled("probe-a").len(),
        1,
        "the slow one still runs"
    );
    running.shutdown().await.expect("shutdown");
    assert_eq!(pending_count(&mut conn, &stream, "probe-a").await, 0);
    t.cleanup().await;
}
