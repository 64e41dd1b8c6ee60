//! Crash recovery on Redis: entries of a SIGKILLed consumer process are claimed and handled by
//! another consumer; a dead letter written before a crash (and before its acknowledgement) is
//! not written twice; deliveries before a crash count toward `max_attempts`; pending entries
//! deleted meanwhile are counted. The crashed consumers are played by a child process
//! (`probe-consumer`) or by raw `XREADGROUP`/`XCLAIM` commands. Every test asserts exact counts.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_tests::redis_helpers::{create_group, pending_count, raw, read_as, WAIT};
use event_bus_tests::{wait_dead_letters, BusKind, Probe, TestBus};
use redis::Value;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_killed_consumer_are_claimed_and_handled_by_another() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "sigkill", &["probe-concurrent"]);
    t.claim_idle = Duration::from_millis(500);
    t.claim_interval = Duration::from_millis(200);
    // A publish before any consumer starts creates the group first.
    let setup = t.redis().await;

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
    let survivor = t.redis().await;
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
    // Attempts count the handler runs that finished (and failed): the run the kill cut short
    // never finished, so the claimed entry runs as attempt 1 again. Only the delivery count,
    // the crash-loop guard, saw it.
    for seq in &in_flight {
        let attempts = t.recorder.attempt_numbers("probe-concurrent", *seq);
        assert_eq!(attempts, vec![1], "seq {seq}");
    }
    assert!(survivor.stats().claimed >= in_flight.len() as u64);
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
async fn a_dead_letter_written_before_a_crash_is_not_written_twice() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "dl-once", &["probe-a"]);
    t.claim_idle = Duration::from_millis(100);
    t.claim_interval = Duration::from_millis(100);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    create_group(&mut conn, &stream, "probe-a").await;
    let bus = t.redis().await;
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

/// Attempts count handler runs, not deliveries: an entry delivered three times to consumers
/// that died before running its handler is run as attempt 1; an entry whose handler already
/// failed `max_attempts` times (recorded in Redis by the consumers that ran it) is dead-lettered
/// without another run; an entry delivered more than `max_deliveries` times is stopped by the
/// crash-loop guard, with its own reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_entries_keep_their_recorded_runs_and_the_crash_loop_guard() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "attempts", &["probe-retry3"]);
    t.claim_idle = Duration::from_millis(100);
    t.claim_interval = Duration::from_millis(100);
    t.retry = t.retry.max_deliveries(6);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    create_group(&mut conn, &stream, "probe-retry3").await;
    let bus = t.redis().await;
    let mut ids = Vec::new();
    for seq in 1..=3 {
        let published = bus
            .publish(Probe::new(Uuid::new_v4(), seq))
            .await
            .expect("publish");
        ids.push(published.entry_id);
    }
    let (never_ran, ran_out, looping) = (&ids[0], &ids[1], &ids[2]);
    // Consumers died: every entry was read once; `never_ran` twice more, without a handler
    // run; `looping` seven times in all.
    read_as(&mut conn, &stream, "probe-retry3", "crashed").await;
    let claim = |id: &str, times: usize| {
        let (stream, id) = (stream.clone(), id.to_owned());
        let mut conn = conn.clone();
        async move {
            for _ in 0..times {
                let _: Value = redis::cmd("XCLAIM")
                    .arg(&stream)
                    .arg("probe-retry3")
                    .arg("crashed")
                    .arg(0)
                    .arg(&id)
                    .query_async(&mut conn)
                    .await
                    .expect("xclaim");
            }
        }
    };
    claim(never_ran, 2).await;
    claim(looping, 6).await;
    // The consumers that ran `ran_out` recorded three failed runs.
    let _: i64 = redis::cmd("HSET")
        .arg(format!("{stream}:runs:probe-retry3"))
        .arg(ran_out)
        .arg(3)
        .query_async(&mut conn)
        .await
        .expect("hset");

    let running = bus.start().await.expect("start");
    let letters = wait_dead_letters(&bus, 2, WAIT).await;
    assert!(t.recorder.wait_handled("probe-retry3", 1, WAIT).await);
    running.shutdown().await.expect("shutdown");

    assert_eq!(
        t.recorder.attempt_numbers("probe-retry3", 1),
        vec![1],
        "deliveries whose reply never reached a handler are not attempts"
    );
    assert!(
        t.recorder.attempts_of("probe-retry3", 2).is_empty(),
        "no 4th run"
    );
    assert!(
        t.recorder.attempts_of("probe-retry3", 3).is_empty(),
        "guarded"
    );
    assert_eq!(letters.len(), 2);
    let by_id = |id: &str| {
        letters
            .iter()
            .find(|l| l.source_message_id == id)
            .unwrap_or_else(|| panic!("no dead letter for {id}: {letters:?}"))
    };
    let out = by_id(ran_out);
    assert_eq!(out.runs, 3);
    assert_eq!(out.kind, event_bus_core::FailureKind::Handler);
    assert_eq!(
        out.reason,
        "max_attempts reached: 3 handler runs failed (max_attempts = 3)"
    );
    let guarded = by_id(looping);
    assert_eq!(guarded.kind, event_bus_core::FailureKind::Crashed);
    assert_eq!(guarded.runs, 0);
    assert_eq!(guarded.deliveries, 8);
    assert_eq!(
        guarded.reason,
        "crash-loop guard: delivered 8 times (max_deliveries = 6) with 0 handler runs failed"
    );
    let mut conn = raw(&t.url).await;
    assert_eq!(pending_count(&mut conn, &stream, "probe-retry3").await, 0);
    let runs_left: i64 = redis::cmd("HLEN")
        .arg(format!("{stream}:runs:probe-retry3"))
        .query_async(&mut conn)
        .await
        .expect("hlen");
    assert_eq!(
        runs_left, 0,
        "the run records of finished entries are cleared"
    );
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
    let bus = t.redis().await;
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
    while bus.stats().deleted_while_pending < 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown().await.expect("shutdown");
    assert_eq!(bus.stats().deleted_while_pending, 1);
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
