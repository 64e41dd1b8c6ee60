//! The bus's metrics, checked against what a run did: exact counters per subscriber and event
//! type (and equal to `stats()`), histogram counts, and the lag and pending gauges while a
//! handler is held and after it is released, on both buses; entries trimmed before the group
//! read them (Redis); and a real scrape of the Prometheus exporter's HTTP listener.
//!
//! A global recorder can be installed once per process, so each test but the Prometheus one
//! records into its own [`TestRecorder`], set as the thread's local recorder
//! (`metrics::set_default_local_recorder`) for the test's current-thread runtime: every handle
//! the bus builds on that thread is bound to it. (`metrics-util`'s `DebuggingRecorder` resets
//! counters and gauges on each snapshot, which a test that polls until a condition holds
//! cannot use.) The Prometheus test installs the global recorder; its bus runs on its own
//! thread without a local one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use event_bus_core::prelude::*;
use event_bus_core::transport::BusOptions;
use event_bus_core::{BusStats, MemoryBus, RetryPolicy, Subscriber};
use event_bus_redis::RedisBus;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const EVENT_TYPE: &str = "METRICS_ORDER";

// ---------------------------------------------------------------------------------------------
// A recorder that keeps every value, for exact checks.

#[derive(Debug, Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

#[derive(Debug, Default)]
struct TestRecorder {
    counters: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<Key, Arc<Samples>>>,
    described: Mutex<HashMap<String, Option<Unit>>>,
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.counters.lock().unwrap();
        Counter::from_arc(Arc::clone(map.entry(key.clone()).or_default()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut map = self.gauges.lock().unwrap();
        Gauge::from_arc(Arc::clone(map.entry(key.clone()).or_default()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut map = self.histograms.lock().unwrap();
        Histogram::from_arc(Arc::clone(map.entry(key.clone()).or_default()))
    }
}

/// Whether `key` is `name` with exactly `labels`.
fn matches(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == name
        && key.labels().count() == labels.len()
        && labels
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

impl TestRecorder {
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let map = self.counters.lock().unwrap();
        let found = map.iter().find(|(k, _)| matches(k, name, labels));
        found.map(|(_, v)| v.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let map = self.gauges.lock().unwrap();
        let found = map.iter().find(|(k, _)| matches(k, name, labels));
        found.map(|(_, v)| f64::from_bits(v.load(Ordering::Relaxed)))
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let map = self.histograms.lock().unwrap();
        let found = map.iter().find(|(k, _)| matches(k, name, labels));
        found.map_or_else(Vec::new, |(_, v)| v.0.lock().unwrap().clone())
    }
}

// ---------------------------------------------------------------------------------------------
// The event and its subscribers.

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "METRICS_ORDER")]
struct MetricsOrder {
    tenant_id: Uuid,
    seq: u64,
    /// `m-flaky` fails attempts 1..=fail_first.
    #[serde(default)]
    fail_first: u32,
    /// `m-flaky` fails permanently.
    #[serde(default)]
    permanent: bool,
}

/// Holds `m-gated`'s handler: each run takes one permit.
#[derive(Debug, Clone)]
struct Gate(Arc<Semaphore>);

async fn ok(_: Envelope<MetricsOrder>, _: Context) -> Result<(), HandlerError> {
    Ok(())
}

async fn flaky(e: Envelope<MetricsOrder>, ctx: Context) -> Result<(), HandlerError> {
    if e.payload.permanent {
        return Err(HandlerError::permanent("refused for good"));
    }
    if ctx.attempt() <= e.payload.fail_first {
        return Err(HandlerError::transient("not yet"));
    }
    Ok(())
}

async fn gated(_: Envelope<MetricsOrder>, ctx: Context) -> Result<(), HandlerError> {
    let gate = ctx.state::<Gate>()?.0.clone();
    gate.acquire()
        .await
        .map_err(HandlerError::transient)?
        .forget();
    Ok(())
}

/// The options both buses get: the three subscribers (or those named), the gate, 3 attempts
/// with quick retries, gauges sampled every 50 ms.
fn configure(options: &mut BusOptions, prefix: &str, gate: &Gate, names: &[&str]) {
    options.prefix = prefix.to_owned();
    options.selection.discover(false);
    options.selection.register_event::<MetricsOrder>();
    let all = [
        Subscriber::new("m-ok", ok),
        Subscriber::new("m-flaky", flaky),
        Subscriber::new("m-gated", gated).requires_state::<Gate>(),
    ];
    for s in all {
        if names.contains(&s.name()) {
            options.selection.subscribe(s);
        }
    }
    options.state.insert(gate.clone());
    options.retry = RetryPolicy::default()
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(40));
    options.metrics_interval = Duration::from_millis(50);
}

const ALL: &[&str] = &["m-ok", "m-flaky", "m-gated"];

async fn memory_bus(prefix: &str, gate: &Gate, names: &[&str]) -> MemoryBus {
    MemoryBus::builder()
        .with_options(|o| configure(o, prefix, gate, names))
        .build()
        .await
        .unwrap()
}

async fn redis_bus(prefix: &str, gate: &Gate, names: &[&str]) -> RedisBus {
    RedisBus::builder()
        .url(event_bus_tests::redis_url())
        .with_options(|o| configure(o, prefix, gate, names))
        // One entry per read: while `m-gated`'s handler is held, the rest stay in the stream.
        .read_batch(1)
        .block(Duration::from_millis(200))
        .build()
        .await
        .unwrap()
}

/// The ten events of the scenario and what `m-flaky` does with them: seqs 1 and 2 fail once,
/// 3 twice (all then handled), 4 fails permanently, 5 fails its 3 attempts: 8 handled, 8 runs
/// failed, 6 retried, 2 dead-lettered.
fn scenario_events(tenant: Uuid) -> Vec<MetricsOrder> {
    (0..10)
        .map(|seq| MetricsOrder {
            tenant_id: tenant,
            seq,
            fail_first: match seq {
                1 | 2 => 1,
                3 => 2,
                5 => 5,
                _ => 0,
            },
            permanent: seq == 4,
        })
        .collect()
}

/// A subscriber's labels.
fn labels<'a>(subscriber: &'a str, stream: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("subscriber", subscriber),
        ("event_type", EVENT_TYPE),
        ("stream", stream),
    ]
}

/// Waits until `check` holds; panics with `what` after [`WAIT`].
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The scenario on any bus: publish ten (six of them in a batch), hold `m-gated`, check its gauges, release, check
/// every number.
async fn scenario<B: Bus>(bus: B, recorder: &TestRecorder, gate: &Gate, prefix: &str) {
    let running = bus.start().await.unwrap();
    // Four one by one, six in one batch: the counters are the same either way.
    let mut events = scenario_events(Uuid::new_v4()).into_iter();
    for event in events.by_ref().take(4) {
        bus.publish(event).await.unwrap();
    }
    let results = bus.publish_all(events).await;
    assert_eq!(results.len(), 6);
    assert!(results.iter().all(Result::is_ok));
    let stream = format!("{prefix}:{EVENT_TYPE}");
    let gated = labels("m-gated", &stream);
    // `m-gated` holds its first event: 1 pending, 9 not yet delivered.
    wait_until("m-gated's lag 9 and pending 1", || {
        recorder.gauge("event_bus_group_lag", &gated) == Some(9.0)
            && recorder.gauge("event_bus_group_pending", &gated) == Some(1.0)
    })
    .await;

    gate.0.add_permits(10);
    tokio::time::timeout(WAIT, running.idle())
        .await
        .expect("the bus settles");
    wait_until("m-gated's lag and pending back to 0", || {
        recorder.gauge("event_bus_group_lag", &gated) == Some(0.0)
            && recorder.gauge("event_bus_group_pending", &gated) == Some(0.0)
    })
    .await;

    let stats: BusStats = bus.stats();
    // Published: one entry per event on the type's one stream.
    let published = recorder.counter(
        "event_bus_published_total",
        &[("event_type", EVENT_TYPE), ("stream", &stream)],
    );
    assert_eq!(published, Some(10));
    assert_eq!(stats.published, 10);

    // (handled, failed, retried, dead-lettered, handler runs) per subscriber.
    let expected = [
        ("m-ok", (10, 0, 0, 0, 10)),
        ("m-flaky", (8, 8, 6, 2, 16)),
        ("m-gated", (10, 0, 0, 0, 10)),
    ];
    for (sub, (handled, failed, retried, dead, runs)) in expected {
        let l = labels(sub, &stream);
        let c = |name: &str| recorder.counter(name, &l);
        let s = stats.subscriber(sub).unwrap();
        assert_eq!(c("event_bus_handled_total"), Some(handled), "{sub}");
        assert_eq!(c("event_bus_failed_total"), Some(failed), "{sub}");
        assert_eq!(c("event_bus_retried_total"), Some(retried), "{sub}");
        assert_eq!(c("event_bus_dead_lettered_total"), Some(dead), "{sub}");
        assert_eq!(c("event_bus_trimmed_unhandled_total"), Some(0), "{sub}");
        assert_eq!(
            (s.handled, s.failed, s.retried, s.dead_lettered),
            (handled, failed, retried, dead),
            "stats() of {sub} say the same"
        );
        let durations = recorder.histogram("event_bus_handler_duration_seconds", &l);
        assert_eq!(
            durations.len() as u64,
            runs,
            "one duration per run of {sub}"
        );
        assert!(durations.iter().all(|d| *d >= 0.0 && *d < 60.0));
        let latencies = recorder.histogram("event_bus_end_to_end_latency_seconds", &l);
        assert_eq!(
            latencies.len() as u64,
            handled,
            "one latency per successful run of {sub}"
        );
        assert!(latencies.iter().all(|d| *d >= 0.0 && *d < 60.0));
    }
    // `m-gated`'s first event waited for the gate: its run was the longest.
    let gated_runs = recorder.histogram("event_bus_handler_duration_seconds", &gated);
    assert!(gated_runs.iter().any(|d| *d > 0.0));

    // Every metric was described, with its unit.
    let described = recorder.described.lock().unwrap().clone();
    assert_eq!(described.len(), 14, "{described:?}");
    assert_eq!(
        described.get("event_bus_handler_duration_seconds"),
        Some(&Some(Unit::Seconds))
    );
    assert_eq!(
        described.get("event_bus_handled_total"),
        Some(&Some(Unit::Count))
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn memory_bus_metrics_match_the_run() {
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let prefix = event_bus_tests::unique_prefix("metrics-memory");
    let gate = Gate(Arc::new(Semaphore::new(0)));
    let bus = memory_bus(&prefix, &gate, ALL).await;
    scenario(bus, &recorder, &gate, &prefix).await;
}

#[tokio::test]
async fn redis_bus_metrics_match_the_run() {
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let prefix = event_bus_tests::unique_prefix("metrics-redis");
    let gate = Gate(Arc::new(Semaphore::new(0)));
    let bus = redis_bus(&prefix, &gate, ALL).await;
    scenario(bus, &recorder, &gate, &prefix).await;
    let _ = event_bus_tests::delete_prefix(&event_bus_tests::redis_url(), &prefix).await;
}

/// Entries removed from the stream before the group read them are counted in
/// `event_bus_trimmed_unhandled_total`, as in `stats()`.
#[tokio::test]
async fn redis_entries_trimmed_before_the_group_read_them_are_counted() {
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let prefix = event_bus_tests::unique_prefix("metrics-trimmed");
    let url = event_bus_tests::redis_url();
    let stream = format!("{prefix}:{EVENT_TYPE}");
    let gate = Gate(Arc::new(Semaphore::new(0)));

    // The group exists; then, while its subscriber is down, 20 are published and 15 trimmed.
    let bus = redis_bus(&prefix, &gate, &["m-ok"]).await;
    bus.start().await.unwrap().shutdown().await.unwrap();
    let bus = redis_bus(&prefix, &gate, &["m-ok"]).await;
    let tenant = Uuid::new_v4();
    for seq in 0..20 {
        bus.publish(MetricsOrder {
            tenant_id: tenant,
            seq,
            ..MetricsOrder::default()
        })
        .await
        .unwrap();
    }
    let mut conn = event_bus_tests::redis_helpers::raw(&url).await;
    let trimmed: u64 = redis::cmd("XTRIM")
        .arg(&stream)
        .arg("MAXLEN")
        .arg(5)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(trimmed, 15);

    let running = bus.start().await.unwrap();
    tokio::time::timeout(WAIT, running.idle())
        .await
        .expect("the bus settles");
    let l = labels("m-ok", &stream);
    wait_until("15 trimmed counted", || {
        recorder.counter("event_bus_trimmed_unhandled_total", &l) == Some(15)
    })
    .await;
    assert_eq!(recorder.counter("event_bus_handled_total", &l), Some(5));
    let s = bus.stats();
    let s = s.subscriber("m-ok").unwrap();
    assert_eq!((s.handled, s.trimmed_unhandled), (5, 15));
    running.shutdown().await.unwrap();
    let _ = event_bus_tests::delete_prefix(&url, &prefix).await;
}

// ---------------------------------------------------------------------------------------------
// A real scrape.

/// Installs the Prometheus exporter as the global recorder, with its HTTP listener on a free
/// port of 127.0.0.1, once; returns the port.
fn prometheus_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Outside any runtime, `install` runs the listener on a thread of its own.
        std::thread::spawn(move || {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .with_http_listener(([127, 0, 0, 1], port))
                .set_buckets(&[0.001, 0.01, 0.1, 1.0, 10.0])
                .unwrap()
                .install()
                .unwrap();
        })
        .join()
        .unwrap();
        port
    })
}

/// `GET /metrics` over HTTP/1.0; the body.
async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut socket) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            socket
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .unwrap();
            let mut response = String::new();
            socket.read_to_string(&mut response).await.unwrap();
            let (head, body) = response.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with("HTTP/1.") && head.contains(" 200 "),
                "{head}"
            );
            return body.to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "no listener");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the sample `name` with exactly `labels` in a Prometheus text exposition.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
            if series_name != name {
                return None;
            }
            let inner = rest.strip_suffix('}')?;
            let mut found: Vec<(&str, &str)> = inner
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            let mut wanted = labels.to_vec();
            found.sort_unstable();
            wanted.sort_unstable();
            (found == wanted).then(|| value.parse().ok()).flatten()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrape_shows_the_run() {
    let port = prometheus_port();
    let prefix = event_bus_tests::unique_prefix("metrics-prometheus");
    let gate = Gate(Arc::new(Semaphore::new(0)));
    let bus = redis_bus(&prefix, &gate, &["m-ok", "m-flaky"]).await;
    let running = bus.start().await.unwrap();
    let tenant = Uuid::new_v4();
    // m-flaky: seq 1 fails once, seq 2 permanently.
    for seq in 0..4 {
        bus.publish(MetricsOrder {
            tenant_id: tenant,
            seq,
            fail_first: u32::from(seq == 1),
            permanent: seq == 2,
        })
        .await
        .unwrap();
    }
    tokio::time::timeout(WAIT, running.idle())
        .await
        .expect("the bus settles");
    let stream = format!("{prefix}:{EVENT_TYPE}");
    let l = |sub: &'static str| labels(sub, &stream);
    // The gauges come with the next sample.
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while sample(&text, "event_bus_group_pending", &l("m-flaky")) != Some(0.0)
        || sample(&text, "event_bus_group_lag", &l("m-flaky")) != Some(0.0)
    {
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape(port).await;
    }

    assert!(
        text.contains("# TYPE event_bus_handled_total counter"),
        "{text}"
    );
    assert!(text.contains("# HELP event_bus_handled_total "), "{text}");
    assert!(text.contains("# TYPE event_bus_handler_duration_seconds histogram"));
    assert_eq!(
        sample(
            &text,
            "event_bus_published_total",
            &[("event_type", EVENT_TYPE), ("stream", &stream)]
        ),
        Some(4.0)
    );
    let got = |name: &str, sub: &'static str| sample(&text, name, &l(sub));
    assert_eq!(got("event_bus_handled_total", "m-ok"), Some(4.0));
    assert_eq!(got("event_bus_failed_total", "m-ok"), Some(0.0));
    assert_eq!(got("event_bus_handled_total", "m-flaky"), Some(3.0));
    assert_eq!(got("event_bus_failed_total", "m-flaky"), Some(2.0));
    assert_eq!(got("event_bus_retried_total", "m-flaky"), Some(1.0));
    assert_eq!(got("event_bus_dead_lettered_total", "m-flaky"), Some(1.0));
    assert_eq!(
        got("event_bus_handler_duration_seconds_count", "m-flaky"),
        Some(5.0)
    );
    assert_eq!(
        got("event_bus_end_to_end_latency_seconds_count", "m-flaky"),
        Some(3.0)
    );
    assert_eq!(
        got("event_bus_end_to_end_latency_seconds_count", "m-ok"),
        Some(4.0)
    );
    let stats = bus.stats();
    let flaky = stats.subscriber("m-flaky").unwrap();
    assert_eq!(
        (
            flaky.handled,
            flaky.failed,
            flaky.retried,
            flaky.dead_lettered
        ),
        (3, 2, 1, 1)
    );
    running.shutdown().await.unwrap();
    let _ = event_bus_tests::delete_prefix(&event_bus_tests::redis_url(), &prefix).await;
}
