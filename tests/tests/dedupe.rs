//! Idempotent subscribers (`dedupe = "1h"`): the same envelope published twice (a publish
//! retried after a timeout) runs the handler once, on both buses, also when the duplicates
//! are handled at the same time; a failed run leaves no mark; the mark expires with its
//! window. On Redis, a consumer process killed at each point between its claim and its
//! acknowledgement (mid-handler, after the handler before the `done` mark, after the mark
//! before the `XACK`) gives the counts `event_bus_core::transport::dedupe` states. Every test
//! asserts exact counts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{
    Bus, Context, Envelope, HandlerError, MemoryBus, RunningBus, Subscriber, SubscriberStats,
};
use event_bus_redis::RedisBus;
use event_bus_tests::proxy::Proxy;
use event_bus_tests::redis_helpers::{pending_count, raw, wait_no_pending, xlen, WAIT};
use event_bus_tests::{BusKind, Probe, TestBus, TestTransport};
use uuid::Uuid;

event_bus_tests::on_both_buses!(
    the_same_envelope_published_twice_runs_the_handler_once,
    concurrent_duplicates_run_the_handler_once,
    a_failed_run_leaves_no_mark_and_is_retried_once,
);

fn stats_of<R: RunningBus>(running: &R, name: &str) -> SubscriberStats {
    running
        .stats()
        .subscribers
        .into_iter()
        .find(|s| s.name == name)
        .expect("the subscriber's stats")
}

async fn settle<R: RunningBus>(running: &R) {
    tokio::time::timeout(WAIT, running.idle())
        .await
        .expect("the bus settles");
}

#[test]
fn the_macro_option_sets_the_window() {
    let dedupe = |name: &str| {
        event_bus_core::registered_subscribers()
            .find(|r| r.name == name)
            .map(|r| r.options.dedupe)
    };
    assert_eq!(
        dedupe("probe-dedupe"),
        Some(Some(Duration::from_secs(3600)))
    );
    assert_eq!(dedupe("probe-a"), Some(None));
}

async fn the_same_envelope_published_twice_runs_the_handler_once<B: TestTransport>() {
    let t = TestBus::of::<B>("dedupe-twice", &["probe-dedupe", "probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let envelope = Envelope::new(Probe::new(tenant, 1));
    // The publish, then its retry after a timeout: the same envelope, so the same id.
    let first = bus.publish_envelope(&envelope).await.expect("publish");
    let retried = bus
        .publish_envelope(&envelope)
        .await
        .expect("publish again");
    assert_eq!(first.event_id, envelope.id);
    assert_eq!(retried.event_id, envelope.id);
    assert_ne!(first.entry_id, retried.entry_id, "two entries were written");
    bus.publish(Probe::new(tenant, 2)).await.expect("publish");
    assert!(
        t.recorder
            .wait_until(WAIT, |r| r.handled("probe-a").values().sum::<usize>() == 3)
            .await
    );
    settle(&running).await;

    // The plain subscriber ran twice for the duplicate; the idempotent one once.
    assert_eq!(t.recorder.attempts_of("probe-a", 1).len(), 2);
    assert_eq!(t.recorder.attempts_of("probe-dedupe", 1).len(), 1);
    assert_eq!(t.recorder.attempts_of("probe-dedupe", 2).len(), 1);
    // The skipped duplicate is acknowledged and counted as handled.
    let stats = stats_of(&running, "probe-dedupe");
    assert_eq!((stats.handled, stats.failed), (3, 0));

    // A third copy, long after: still skipped.
    bus.publish_envelope(&envelope).await.expect("publish");
    assert!(
        t.recorder
            .wait_until(WAIT, |r| r.attempts_of("probe-a", 1).len() == 3)
            .await
    );
    settle(&running).await;
    assert_eq!(t.recorder.attempts_of("probe-dedupe", 1).len(), 1);
    assert_eq!(stats_of(&running, "probe-dedupe").handled, 4);
    if B::KIND == BusKind::Redis {
        let mut conn = raw(&t.url).await;
        let stream = format!("{}:PROBE", t.prefix);
        assert_eq!(xlen(&mut conn, &stream).await, 4);
        assert_eq!(pending_count(&mut conn, &stream, "probe-dedupe").await, 0);
        let key = format!("{stream}:dedupe:probe-dedupe:{}", envelope.id);
        let (mark, ttl): (Option<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        assert_eq!(mark.as_deref(), Some("done"));
        assert!(ttl > 3_500_000 && ttl <= 3_600_000, "the window: {ttl} ms");
    }
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

async fn concurrent_duplicates_run_the_handler_once<B: TestTransport>() {
    let t = TestBus::of::<B>("dedupe-concurrent", &["probe-dedupe-concurrent"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let mut slow = Probe::new(tenant, 7);
    slow.sleep_ms = 800;
    let envelope = Envelope::new(slow);
    for _ in 0..3 {
        bus.publish_envelope(&envelope).await.expect("publish");
    }
    // Another event meanwhile runs beside them.
    bus.publish(Probe::new(tenant, 8)).await.expect("publish");
    assert!(
        t.recorder
            .wait_handled("probe-dedupe-concurrent", 2, WAIT)
            .await
    );
    settle(&running).await;
    let attempts = t.recorder.attempts_of("probe-dedupe-concurrent", 7);
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0].ok);
    assert_eq!(t.recorder.starts(), 2, "one run for each envelope id");
    let stats = stats_of(&running, "probe-dedupe-concurrent");
    assert_eq!((stats.handled, stats.failed), (4, 0));
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

async fn a_failed_run_leaves_no_mark_and_is_retried_once<B: TestTransport>() {
    let t = TestBus::of::<B>("dedupe-failed", &["probe-dedupe"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut probe = Probe::new(Uuid::new_v4(), 3);
    probe.fail_first = 1;
    let envelope = Envelope::new(probe);
    bus.publish_envelope(&envelope).await.expect("publish");
    bus.publish_envelope(&envelope)
        .await
        .expect("publish again");
    assert!(t.recorder.wait_handled("probe-dedupe", 1, WAIT).await);
    settle(&running).await;
    // Run 1 failed and released its claim; run 2 (the retry of the first entry) succeeded;
    // the second entry found the mark `done`.
    let runs: Vec<(u32, bool)> = t
        .recorder
        .attempts_of("probe-dedupe", 3)
        .iter()
        .map(|a| (a.attempt, a.ok))
        .collect();
    assert_eq!(runs, [(1, false), (2, true)]);
    let stats = stats_of(&running, "probe-dedupe");
    assert_eq!(
        (stats.handled, stats.failed, stats.dead_lettered),
        (2, 1, 0)
    );
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

/// A subscriber built with `Subscriber::new(..).dedupe(..)`, counting its runs.
fn counted(window: Duration) -> (Subscriber, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let sub = Subscriber::new("dedupe-window", move |_: Envelope<Probe>, _: Context| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    })
    .dedupe(window);
    (sub, runs)
}

async fn wait_runs(runs: &AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while runs.load(Ordering::SeqCst) < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), n);
}

/// Publishes one envelope, again within the window, and again after it: runs 1, 1, 2.
async fn the_window<B: Bus>(bus: B, runs: Arc<AtomicUsize>, window: Duration) {
    let running = bus.start().await.expect("start");
    let envelope = Envelope::new(Probe::new(Uuid::new_v4(), 1));
    bus.publish_envelope(&envelope).await.expect("publish");
    wait_runs(&runs, 1).await;
    bus.publish_envelope(&envelope).await.expect("publish");
    settle(&running).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "within the window: skipped");
    tokio::time::sleep(window + Duration::from_millis(300)).await;
    bus.publish_envelope(&envelope).await.expect("publish");
    wait_runs(&runs, 2).await;
    settle(&running).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "after the window: runs again"
    );
    assert_eq!(stats_of(&running, "dedupe-window").handled, 3);
    running.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mark_expires_with_its_window_in_memory() {
    let window = Duration::from_secs(1);
    let (sub, runs) = counted(window);
    let bus = MemoryBus::builder()
        .only(["dedupe-window"])
        .subscribe(sub)
        .build()
        .await
        .expect("build");
    the_window(bus, runs, window).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mark_expires_with_its_window_on_redis() {
    let window = Duration::from_secs(1);
    let (sub, runs) = counted(window);
    let t = TestBus::new(BusKind::Redis, "dedupe-window", &[]);
    let bus = RedisBus::builder()
        .url(&t.url)
        .prefix(&t.prefix)
        .only(["dedupe-window"])
        .subscribe(sub)
        .block(t.block)
        .build()
        .await
        .expect("build");
    the_window(bus, runs, window).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_on_two_consumers_run_the_handler_once() {
    event_bus_tests::init_tracing();
    let t = TestBus::new(BusKind::Redis, "dedupe-two", &["probe-dedupe-concurrent"]);
    let (one, two) = (t.redis().await, t.redis().await);
    let (running_one, running_two) = (
        one.start().await.expect("start"),
        two.start().await.expect("start"),
    );
    let tenant = Uuid::new_v4();
    let mut envelopes = Vec::new();
    for seq in 0..4 {
        let mut p = Probe::new(tenant, seq);
        p.sleep_ms = 300;
        envelopes.push(Envelope::new(p));
    }
    // Every envelope three times, from both buses, interleaved.
    for round in 0..3 {
        for envelope in &envelopes {
            let bus = if round % 2 == 0 { &one } else { &two };
            bus.publish_envelope(envelope).await.expect("publish");
        }
    }
    assert!(
        t.recorder
            .wait_handled("probe-dedupe-concurrent", 4, WAIT)
            .await
    );
    settle(&running_one).await;
    settle(&running_two).await;
    for seq in 0..4 {
        assert_eq!(
            t.recorder.attempts_of("probe-dedupe-concurrent", seq).len(),
            1,
            "seq {seq}"
        );
    }
    assert_eq!(t.recorder.starts(), 4);
    let handled = stats_of(&running_one, "probe-dedupe-concurrent").handled
        + stats_of(&running_two, "probe-dedupe-concurrent").handled;
    assert_eq!(handled, 12);
    running_one.shutdown().await.expect("shutdown");
    running_two.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

/// A `probe-consumer` process running `probe-dedupe`, and its output lines.
struct Consumer {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Consumer {
    async fn spawn(url: &str, prefix: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_probe-consumer"))
            .args([url, prefix, "probe-dedupe", "doomed-consumer"])
            .env("PROBE_CLAIM_IDLE_MS", "500")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the consumer process");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut consumer = Self {
            child,
            lines,
            seen: Vec::new(),
        };
        consumer.wait_line("ready").await;
        consumer
    }

    async fn wait_line(&mut self, line: &str) {
        while !self.seen.iter().any(|l| l == line) {
            let next = tokio::time::timeout(WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no line {line:?} from the consumer: {:?}", self.seen))
                .expect("the consumer's output");
            self.seen.push(next);
        }
    }

    /// SIGKILL; then every line it printed.
    async fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        self.seen
    }
}

/// Where the consumer process is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// While its handler runs.
    MidHandler,
    /// After its handler succeeded, before the `done` mark reached Redis.
    BeforeMark,
    /// After the `done` mark, before the `XACK` reached Redis.
    BeforeAck,
}

/// The consumer process handles one probe until `point`, where it is killed; then an
/// in-process consumer of the same group claims the entry. Returns the attempts (started,
/// finished ok) of the killed process and of the second consumer.
async fn killed_at(point: KillPoint) -> ((usize, usize), (usize, usize)) {
    event_bus_tests::init_tracing();
    let mut t = TestBus::new(BusKind::Redis, "dedupe-kill", &["probe-dedupe"]);
    t.claim_idle = Duration::from_millis(500);
    t.claim_interval = Duration::from_millis(200);
    let stream = format!("{}:PROBE", t.prefix);
    let proxy = Proxy::to_shared_redis().await.expect("proxy");
    match point {
        KillPoint::MidHandler => {}
        // The `done` mark: `SET <key> done PX <window>`.
        KillPoint::BeforeMark => proxy.blackhole_from(b"\r\n$4\r\ndone\r\n"),
        KillPoint::BeforeAck => proxy.blackhole_from(b"XACK"),
    }
    let mut doomed = Consumer::spawn(&proxy.url(), &t.prefix).await;
    let publisher = t.redis().await;
    let mut probe = Probe::new(Uuid::new_v4(), 1);
    if point == KillPoint::MidHandler {
        probe.sleep_ms = 10_000;
    }
    let envelope = Envelope::new(probe);
    publisher
        .publish_envelope(&envelope)
        .await
        .expect("publish");
    let key = format!("{stream}:dedupe:probe-dedupe:{}", envelope.id);
    let mut conn = raw(&t.url).await;
    let mark = |mut conn: redis::aio::MultiplexedConnection| {
        let key = key.clone();
        async move {
            redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<String>>(&mut conn)
                .await
                .expect("GET")
        }
    };
    match point {
        KillPoint::MidHandler => doomed.wait_line("start probe-dedupe 1 1").await,
        KillPoint::BeforeMark | KillPoint::BeforeAck => {
            doomed.wait_line("done probe-dedupe 1 1 true").await;
            let deadline = tokio::time::Instant::now() + WAIT;
            while !proxy.is_blackholed() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(proxy.is_blackholed(), "the consumer sent the command");
        }
    }
    let found = mark(conn.clone()).await;
    match point {
        KillPoint::MidHandler | KillPoint::BeforeMark => assert!(
            found.as_deref().is_some_and(|m| m.starts_with("running:")),
            "{found:?}"
        ),
        KillPoint::BeforeAck => assert_eq!(found.as_deref(), Some("done")),
    }
    assert_eq!(pending_count(&mut conn, &stream, "probe-dedupe").await, 1);
    let lines = doomed.kill().await;
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    let killed = (
        count("start probe-dedupe 1 "),
        count("done probe-dedupe 1 1 true"),
    );

    // Another consumer of the group claims the entry once it is idle for `claim_idle`.
    let survivor = publisher;
    let running = survivor.start().await.expect("start");
    assert_eq!(
        wait_no_pending(&mut conn, &stream, "probe-dedupe", WAIT).await,
        0
    );
    settle(&running).await;
    assert_eq!(mark(conn.clone()).await.as_deref(), Some("done"));
    let attempts = t.recorder.attempts_of("probe-dedupe", 1);
    let second = (attempts.len(), attempts.iter().filter(|a| a.ok).count());
    assert_eq!(stats_of(&running, "probe-dedupe").handled, 1);
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
    (killed, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_handler_the_claimant_runs_it_after_the_lease() {
    // Started twice, succeeded once: the killed run never finished.
    let (killed, second) = killed_at(KillPoint::MidHandler).await;
    assert_eq!(killed, (1, 0));
    assert_eq!(second, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_handler_before_the_mark_the_handler_runs_again() {
    // The documented window: the success was never recorded, so it is at-least-once.
    let (killed, second) = killed_at(KillPoint::BeforeMark).await;
    assert_eq!(killed, (1, 1));
    assert_eq!(second, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_mark_before_the_ack_the_handler_ran_once() {
    // The claimant finds `done` and acknowledges without running the handler.
    let (killed, second) = killed_at(KillPoint::BeforeAck).await;
    assert_eq!(killed, (1, 1));
    assert_eq!(second, (0, 0));
}
