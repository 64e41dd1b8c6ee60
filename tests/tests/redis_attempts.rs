//! Handler attempts on Redis are runs of the handler, not Redis deliveries. A read or a claim
//! whose reply was lost (Redis frozen with SIGSTOP past the client's response timeout) leaves
//! the entry pending with a raised delivery count, but the handler did not run: it is not an
//! attempt. So, however often Redis stalls, a handler that always succeeds is never
//! dead-lettered and a handler that fails once succeeds on its second run
//! (`ctx.attempt() == 2`); and an entry whose handler runs longer than `claim_idle` stays with
//! the consumer running it instead of being claimed and run a second time.
//!
//! The two SIGSTOP tests share one run of the scenario (a private Redis with an append-only
//! file, three consumers, 3,000 events published while Redis is frozen three times for 3 s):
//! the first of them to start runs it, and each asserts its own subscriber's outcome.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use event_bus_core::{Bus, DeadLetter, RunningBus};
use event_bus_tests::probe::Attempt;
use event_bus_tests::redis_helpers::{raw, wait_no_pending, WAIT};
use event_bus_tests::server::{Paused, RedisServer};
use event_bus_tests::{BusKind, Probe, TestBus};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use uuid::Uuid;

/// The subscriber whose handler always succeeds.
const ALWAYS_OK: &str = "probe-a";
/// The subscriber whose handler fails its first run (`fail_first: 1` applied only there).
const FAILS_ONCE: &str = "probe-b";
/// Consumers of both subscribers' groups (one `RedisBus` each, named `consumer-{i}`).
const CONSUMERS: usize = 3;
/// Events published.
const EVENTS: u64 = 3_000;
/// One publish every `PACE`, so publishing spans the freezes (about 12 s).
const PACE: Duration = Duration::from_millis(4);
/// Before the first freeze.
const LEAD: Duration = Duration::from_millis(700);
/// How long Redis stays frozen each time.
const STOP_FOR: Duration = Duration::from_secs(3);
/// Running time after each freeze (one freeze per entry).
const GAPS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_millis(750),
    Duration::from_millis(1_000),
];
/// How long the scenario waits for every event to be handled by both subscribers.
const HANDLED_WITHIN: Duration = Duration::from_secs(90);

/// What the SIGSTOP scenario left behind, for its two tests to assert on.
#[derive(Debug)]
struct Outcome {
    /// Seqs whose publish returned `Ok` (failed publishes were retried until `Ok`).
    accepted: Vec<u64>,
    /// Publishes that returned an error (and were retried).
    refused: usize,
    /// Every handler run, in order.
    attempts: Vec<Attempt>,
    /// Every dead letter of the stream.
    dead_letters: Vec<DeadLetter>,
    /// Pending entries per group once the wait for them ended.
    pending: HashMap<&'static str, i64>,
    /// Errors of the consumers' graceful shutdowns.
    shutdown_errors: Vec<String>,
}

impl Outcome {
    fn dead_letters_of(&self, subscriber: &str) -> Vec<&DeadLetter> {
        self.dead_letters
            .iter()
            .filter(|l| l.subscriber == subscriber)
            .collect()
    }

    fn runs_of(&self, subscriber: &str) -> Vec<&Attempt> {
        self.attempts
            .iter()
            .filter(|a| a.subscriber == subscriber)
            .collect()
    }

    /// Accepted seqs `subscriber` never handled successfully.
    fn unhandled(&self, subscriber: &str) -> Vec<u64> {
        let handled: HashSet<u64> = self
            .runs_of(subscriber)
            .iter()
            .filter(|a| a.ok)
            .map(|a| a.seq)
            .collect();
        let mut missing: Vec<u64> = self
            .accepted
            .iter()
            .filter(|s| !handled.contains(s))
            .copied()
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }
}

/// The probe's seq in a dead letter's envelope.
fn seq_of(letter: &DeadLetter) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(&letter.payload).ok()?;
    v.get("payload")?.get("seq")?.as_u64()
}

/// A few dead letters, in words, for assertion messages.
fn describe(letters: &[&DeadLetter]) -> String {
    letters
        .iter()
        .take(5)
        .map(|l| {
            format!(
                "[seq {:?}, entry {}, deliveries {}, {:?}: {}]",
                seq_of(l),
                l.source_message_id,
                l.deliveries,
                l.kind,
                l.error
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Freezes a `redis-server` (SIGSTOP) for `STOP_FOR` after `LEAD`, then after each of `GAPS`,
/// on its own thread. Dropping it stops further freezes and waits for the thread, which
/// always resumes the server (the `Paused` guard), so a failing test never leaves Redis
/// stopped, nor signals a pid after the server was killed.
struct Freezer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Freezer {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let stopped = || flag.load(std::sync::atomic::Ordering::SeqCst);
            let mut freezes = 0;
            std::thread::sleep(LEAD);
            for gap in GAPS {
                if stopped() {
                    break;
                }
                let frozen = Paused::stop(pid);
                std::thread::sleep(STOP_FOR);
                frozen.resume();
                freezes += 1;
                std::thread::sleep(gap);
            }
            freezes
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Waits (without blocking the runtime) until every freeze is over; returns how many ran.
    async fn finish(mut self) -> usize {
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(n)) => n,
            _ => panic!("the freezer thread panicked"),
        }
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The scenario both SIGSTOP tests assert on: three consumers of `probe-a` and `probe-b`
/// (`claim_idle` 2 s, `claim_interval` 0.5 s, `BLOCK` 200 ms, the default response timeout,
/// `max_attempts` 2) on a private Redis (`appendfsync always`); 3,000 probes published by a
/// separate bus, failed publishes retried until `Ok`, while Redis is frozen three times for
/// 3 s; then a bounded wait until both subscribers handled every accepted event and nothing is
/// pending.
async fn sigstop_scenario() -> Outcome {
    event_bus_tests::init_tracing();
    let server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut t = TestBus::new(BusKind::Redis, "sigstop", &[ALWAYS_OK, FAILS_ONCE]);
    t.url = server.url();
    t.claim_idle = Duration::from_secs(2);
    t.claim_interval = Duration::from_millis(500);
    t.block = Duration::from_millis(200);
    // Two runs are all a handler that fails once needs. Deliveries whose reply was lost do not
    // count, so however many there were, neither subscriber may be dead-lettered.
    t.retry = t.retry.max_attempts(2);
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        let mut c = t.clone();
        c.consumer_name = Some(format!("consumer-{i}"));
        let bus = c.redis().await;
        let running = bus.start().await.expect("start a consumer");
        consumers.push((bus, running));
    }
    // Never started: it only publishes.
    let publisher = t.redis().await;

    let freezer = Freezer::start(server.pid().expect("redis-server runs"));
    let tenant = Uuid::new_v4();
    let mut accepted = Vec::new();
    let mut refused = 0;
    let started = Instant::now();
    for seq in 0..EVENTS {
        tokio::time::sleep_until(started + PACE * u32::try_from(seq).unwrap_or(u32::MAX)).await;
        let mut p = Probe::new(tenant, seq);
        p.fail_first = 1;
        p.fail_first_in = Some(FAILS_ONCE.to_owned());
        let give_up = Instant::now() + WAIT;
        loop {
            match publisher.publish(p.clone()).await {
                Ok(_) => {
                    accepted.push(seq);
                    break;
                }
                Err(e) => {
                    assert!(e.is_retryable(), "a transport error: {e}");
                    assert!(
                        Instant::now() < give_up,
                        "publish {seq} still fails after {WAIT:?}: {e}"
                    );
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    let freezes = freezer.finish().await;
    assert_eq!(freezes, GAPS.len(), "Redis was frozen each time");
    println!(
        "published {} in {:?} ({refused} publishes refused and retried)",
        accepted.len(),
        started.elapsed()
    );

    // Until both subscribers handled every accepted event; early when all that is missing
    // was dead-lettered (it never will be handled; the tests report it).
    let expected: HashSet<u64> = accepted.iter().copied().collect();
    let recorder = &t.recorder;
    let deadline = Instant::now() + HANDLED_WITHIN;
    loop {
        let (a, b) = (recorder.handled(ALWAYS_OK), recorder.handled(FAILS_ONCE));
        if expected
            .iter()
            .all(|s| a.contains_key(s) && b.contains_key(s))
            || Instant::now() >= deadline
        {
            break;
        }
        let given_up: HashSet<(String, u64)> = consumers[0]
            .0
            .dead_letters()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|l| Some((l.subscriber.clone(), seq_of(l)?)))
            .collect();
        let settled = |sub: &str, handled: &HashMap<u64, usize>| {
            expected
                .iter()
                .all(|s| handled.contains_key(s) || given_up.contains(&(sub.to_owned(), *s)))
        };
        if settled(ALWAYS_OK, &a) && settled(FAILS_ONCE, &b) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("handled (or given up) after {:?}", started.elapsed());

    // Entries whose read reply was lost (duplicates of retried publishes among them) are
    // claimed after claim_idle and handled: give that time.
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    let mut pending = HashMap::new();
    for group in [ALWAYS_OK, FAILS_ONCE] {
        let within = Duration::from_secs(20);
        pending.insert(
            group,
            wait_no_pending(&mut conn, &stream, group, within).await,
        );
    }
    let dead_letters = consumers[0]
        .0
        .dead_letters()
        .await
        .expect("list dead letters");
    let mut shutdown_errors = Vec::new();
    for (_, running) in consumers {
        if let Err(e) = running.shutdown().await {
            shutdown_errors.push(e.to_string());
        }
    }
    Outcome {
        accepted,
        refused,
        attempts: recorder.attempts(),
        dead_letters,
        pending,
        shutdown_errors,
    }
}

static SIGSTOP: OnceCell<Outcome> = OnceCell::const_new();

/// A handler that always succeeds is never dead-lettered, however many reads and claims of
/// its entries lost their replies while Redis was frozen: those are deliveries, not runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstopped_redis_never_dead_letters_a_succeeding_handler() {
    let o = SIGSTOP.get_or_init(sigstop_scenario).await;
    let mut by_number: HashMap<(u32, bool), usize> = HashMap::new();
    for a in o.runs_of(ALWAYS_OK) {
        *by_number.entry((a.attempt, a.ok)).or_insert(0) += 1;
    }
    println!(
        "{} accepted, {} refused, {ALWAYS_OK} runs by (attempt, ok): {by_number:?}",
        o.accepted.len(),
        o.refused
    );
    let letters = o.dead_letters_of(ALWAYS_OK);
    assert_eq!(
        letters.len(),
        0,
        "a handler that always succeeds was dead-lettered: {}",
        describe(&letters)
    );
    let unhandled = o.unhandled(ALWAYS_OK);
    assert_eq!(
        unhandled.len(),
        0,
        "accepted events that {ALWAYS_OK} never handled (first 10): {:?}",
        &unhandled[..unhandled.len().min(10)]
    );
    let failed = o.runs_of(ALWAYS_OK).iter().filter(|a| !a.ok).count();
    assert_eq!(failed, 0, "{ALWAYS_OK} never fails");
    assert_eq!(o.pending.get(ALWAYS_OK), Some(&0), "{ALWAYS_OK} pending");
    assert_eq!(o.shutdown_errors, Vec::<String>::new());
}

/// A handler that fails its first run succeeds on its second, as attempt 2: a lost read or
/// claim is not a run, so no run is numbered above 2 and none is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_fails_once_is_handled_on_its_second_run() {
    let o = SIGSTOP.get_or_init(sigstop_scenario).await;
    let runs = o.runs_of(FAILS_ONCE);
    let mut by_number: HashMap<(u32, bool), usize> = HashMap::new();
    for a in &runs {
        *by_number.entry((a.attempt, a.ok)).or_insert(0) += 1;
    }
    println!(
        "{} accepted, {} refused, {FAILS_ONCE} runs by (attempt, ok): {by_number:?}",
        o.accepted.len(),
        o.refused
    );
    let letters = o.dead_letters_of(FAILS_ONCE);
    assert_eq!(
        letters.len(),
        0,
        "a handler that fails once was dead-lettered: {}",
        describe(&letters)
    );
    let unhandled = o.unhandled(FAILS_ONCE);
    assert_eq!(
        unhandled.len(),
        0,
        "accepted events that {FAILS_ONCE} never handled (first 10): {:?}",
        &unhandled[..unhandled.len().min(10)]
    );
    let above_two: Vec<&&Attempt> = runs.iter().filter(|a| a.attempt > 2).collect();
    // For the message: a run above 2 after a successful run of the same event is a duplicate
    // (acknowledgement lost); one without is a run numbered by deliveries.
    let after_success = runs
        .iter()
        .enumerate()
        .filter(|(i, late)| {
            late.attempt > 2 && runs[..*i].iter().any(|a| a.seq == late.seq && a.ok)
        })
        .count();
    assert_eq!(
        above_two.len(),
        0,
        "runs numbered above 2, {after_success} of them after a successful run of the same \
         event (first 5): {:?}",
        &above_two[..above_two.len().min(5)]
    );
    let ok_not_second: Vec<&&Attempt> = runs.iter().filter(|a| a.ok && a.attempt != 2).collect();
    assert_eq!(
        ok_not_second.len(),
        0,
        "successful runs not numbered 2 (first 5): {:?}",
        &ok_not_second[..ok_not_second.len().min(5)]
    );
    // No event skipped its first run: the first run of each is attempt 1 (and failed).
    let mut first_runs: HashMap<u64, &Attempt> = HashMap::new();
    for a in &runs {
        first_runs.entry(a.seq).or_insert(a);
    }
    let mut skipped: Vec<&Attempt> = first_runs
        .into_values()
        .filter(|a| a.attempt != 1)
        .collect();
    skipped.sort_unstable_by_key(|a| a.seq);
    assert_eq!(
        skipped.len(),
        0,
        "events whose first run was not attempt 1 (first 5): {:?}",
        &skipped[..skipped.len().min(5)]
    );
    assert_eq!(o.pending.get(FAILS_ONCE), Some(&0), "{FAILS_ONCE} pending");
    assert_eq!(o.shutdown_errors, Vec::<String>::new());
}

/// A handler running longer than `claim_idle` keeps its entry: the other consumer of the group
/// does not claim it and run it a second time meanwhile, and it is acknowledged when done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_longer_than_claim_idle_keeps_its_entry() {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "long-handler", &[ALWAYS_OK]);
    t.claim_idle = Duration::from_secs(1);
    t.claim_interval = Duration::from_millis(200);
    let mut consumers = Vec::new();
    for name in ["first", "second"] {
        let mut c = t.clone();
        c.consumer_name = Some(name.to_owned());
        let bus = c.redis().await;
        let running = bus.start().await.expect("start");
        consumers.push((bus, running));
    }
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.sleep_ms = 3_000;
    consumers[0].0.publish(p).await.expect("publish");
    assert!(
        t.recorder.wait_handled(ALWAYS_OK, 1, WAIT).await,
        "the slow handler finished"
    );
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    let pending = wait_no_pending(&mut conn, &stream, ALWAYS_OK, Duration::from_secs(5)).await;
    // Time for a claim after the run ended (claim_idle + claim_interval) to show as a run.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let letters = consumers[0]
        .0
        .dead_letters()
        .await
        .expect("list dead letters");
    for (_, running) in consumers {
        running.shutdown().await.expect("shutdown");
    }
    let attempts = t.recorder.attempts();
    assert_eq!(
        t.recorder.starts(),
        1,
        "the handler ran once in total: {attempts:?}"
    );
    assert_eq!(
        t.recorder.attempt_numbers(ALWAYS_OK, 1),
        vec![1],
        "{attempts:?}"
    );
    assert_eq!(pending, 0, "the entry was acknowledged");
    assert_eq!(letters.len(), 0, "no dead letter: {letters:?}");
    t.cleanup().await;
}
