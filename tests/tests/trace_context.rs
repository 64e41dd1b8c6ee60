//! W3C trace context across processes: a publish writes the current span's context into the
//! envelope (`traceparent`, `tracestate`), and the handler's `handle` span, in whatever process
//! runs it, is a child of the publisher's span (OpenTelemetry through `tracing-opentelemetry`,
//! each process with its own tracer provider and in-memory exporter). Without OpenTelemetry, a
//! context set on the envelope is carried and the handler span records `trace_id` and
//! `parent_id`. An invalid context never fails an event, and the seed's zod accepts envelopes
//! carrying one (and we accept the seed's, which carry none).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus_core::{
    subscriber, Bus, Context, Envelope, Event, HandlerError, MemoryBus, RunningBus, State,
    TraceContext,
};
use event_bus_redis::{RedisBus, SeedGeneration};
use event_bus_tests::otel::{SeenSpan, Tracing};
use event_bus_tests::redis_helpers::{raw, xrange_strings};
use event_bus_tests::seed::{ConsumeOpts, PublishOpts, SeedModel};
use event_bus_tests::{delete_prefix, redis_url, unique_prefix, BusKind, Probe, TestBus};
use opentelemetry::trace::TraceContextExt as _;
use serde_json::{json, Value};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The trace context each handled event carried, by event id.
#[derive(Debug, Default)]
struct Seen(Mutex<HashMap<Uuid, Option<TraceContext>>>);

impl Seen {
    fn record(&self, id: Uuid, trace: Option<TraceContext>) -> Result<(), HandlerError> {
        self.0
            .lock()
            .map_err(|_| HandlerError::permanent("poisoned"))?
            .insert(id, trace);
        Ok(())
    }

    fn get(&self, id: &Uuid) -> Option<Option<TraceContext>> {
        self.0.lock().ok().and_then(|m| m.get(id).cloned())
    }

    async fn wait(&self, ids: &[Uuid]) -> Vec<Option<TraceContext>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen: Vec<_> = ids.iter().filter_map(|id| self.get(id)).collect();
            if seen.len() == ids.len() {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "handled {} of {} events",
                seen.len(),
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[subscriber("PROBE", name = "trace-seen")]
async fn trace_seen(
    event: Envelope<Probe>,
    _ctx: Context,
    seen: State<Arc<Seen>>,
) -> Result<(), HandlerError> {
    seen.record(event.id, event.trace)
}

/// A follow-up event, published by the `trace-relay` handler for the probe `of`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TRACE_RELAYED")]
struct Relayed {
    tenant_id: Uuid,
    of: Uuid,
}

/// What the `trace-relayed` handler saw, by the probe each follow-up was published for.
#[derive(Debug, Default)]
struct Relays(Seen);

#[subscriber("PROBE", name = "trace-relay")]
async fn trace_relay(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    ctx.publish(Relayed {
        tenant_id: event.payload.tenant_id,
        of: event.id,
    })
    .await?;
    Ok(())
}

#[subscriber("TRACE_RELAYED", name = "trace-relayed")]
async fn trace_relayed(
    event: Envelope<Relayed>,
    _ctx: Context,
    relays: State<Arc<Relays>>,
) -> Result<(), HandlerError> {
    relays.0.record(event.payload.of, event.trace)
}

async fn relay_bus(relays: &Arc<Relays>) -> MemoryBus {
    MemoryBus::builder()
        .prefix(unique_prefix("trace-relay"))
        .only(["trace-relay", "trace-relayed"])
        .state(Arc::clone(relays))
        .build()
        .await
        .expect("bus")
}

/// A handler's follow-up publish continues the trace from the handler's span: the follow-up's
/// handler span is its child.
#[tokio::test(flavor = "current_thread")]
async fn a_follow_up_is_a_child_of_the_handler_that_published_it() {
    let tracing = Tracing::new();
    let _default = tracing::subscriber::set_default(tracing.subscriber());
    let relays = Arc::new(Relays::default());
    let bus = relay_bus(&relays).await;
    let running = bus.start().await.expect("start");
    let checkout = tracing::info_span!("checkout");
    let published = async { bus.publish(Probe::new(Uuid::new_v4(), 1)).await }
        .instrument(checkout.clone())
        .await
        .expect("publish");
    let (trace_id, span_id) = ids_of(&checkout);
    drop(checkout);
    let carried = relays.0.wait(&[published.event_id]).await;
    running.idle().await;
    running.shutdown().await.expect("shutdown");

    let spans = tracing.finished();
    let handle = |subscriber: &str| {
        spans
            .iter()
            .find(|s| {
                s.name == "handle"
                    && event_bus_tests::otel::attribute(s, "subscriber").as_deref()
                        == Some(subscriber)
            })
            .map(SeenSpan::of)
            .unwrap_or_else(|| panic!("no handle span of {subscriber}"))
    };
    let (relay, relayed) = (handle("trace-relay"), handle("trace-relayed"));
    assert_eq!(relay.trace_id, trace_id);
    assert_eq!(relay.parent_span_id, span_id);
    assert_eq!(relayed.trace_id, trace_id);
    assert_eq!(relayed.parent_span_id, relay.span_id);
    let carried = carried[0].clone().expect("the follow-up carries a context");
    assert_eq!(
        carried.to_string(),
        format!("00-{trace_id}-{}-01", relay.span_id)
    );
}

/// Without OpenTelemetry (a plain `fmt` subscriber), a follow-up carries the context of the
/// delivery that published it, so its logs correlate with the first publisher's.
#[tokio::test(flavor = "current_thread")]
async fn a_follow_up_carries_the_delivery_context_without_opentelemetry() {
    let captured = Captured::default();
    let _default = capture_logs(&captured);
    let relays = Arc::new(Relays::default());
    let bus = relay_bus(&relays).await;
    let running = bus.start().await.expect("start");
    let given = TraceContext::parse(GIVEN).expect("valid");
    let traced = Envelope::new(Probe::new(Uuid::new_v4(), 1)).with_trace(Some(given.clone()));
    bus.publish_envelope(&traced).await.expect("publish");
    let plain = bus
        .publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect("publish");
    let carried = relays.0.wait(&[traced.id, plain.event_id]).await;
    assert_eq!(carried, vec![Some(given), None]);
    running.idle().await;
    running.shutdown().await.expect("shutdown");
}

/// A seed ticket event, on the seed's default channel.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_UPDATED")]
struct TicketUpdated {
    tenant_id: Uuid,
    ticket_id: Uuid,
    user_id: Uuid,
    changes: Option<serde_json::Map<String, Value>>,
}

#[subscriber("TICKET_UPDATED", name = "trace-ticket", start = "earliest")]
async fn trace_ticket(
    event: Envelope<TicketUpdated>,
    _ctx: Context,
    seen: State<Arc<Seen>>,
) -> Result<(), HandlerError> {
    seen.record(event.id, event.trace)
}

/// The `event` field of every entry of `stream`, in order.
async fn events_of(url: &str, stream: &str) -> Vec<String> {
    let mut conn = raw(url).await;
    let flat = xrange_strings(&mut conn, stream, "-", "+").await;
    flat.windows(2)
        .filter(|w| w[0] == "event")
        .map(|w| w[1].clone())
        .collect()
}

/// The trace and span ids of `span` in the tracer provider it belongs to, in hex.
fn ids_of(span: &tracing::Span) -> (String, String) {
    let cx = span.context();
    let context = cx.span().span_context().clone();
    assert!(context.is_valid(), "the span has no OpenTelemetry context");
    (
        context.trace_id().to_string(),
        context.span_id().to_string(),
    )
}

/// A publisher here, a subscriber in another process on the same Redis, each with its own
/// tracer provider: the handler's span is in the publisher's trace, its parent the span that
/// published.
#[tokio::test(flavor = "current_thread")]
async fn redis_handler_in_another_process_is_a_child_of_the_publisher_span() {
    let tracing = Tracing::new();
    let _default = tracing::subscriber::set_default(tracing.subscriber());
    let t = TestBus::new(BusKind::Redis, "trace-process", &["probe-a"]);
    let publisher = t.redis().await; // never started: a publish-only process

    let mut child = Command::new(env!("CARGO_BIN_EXE_trace-consumer"))
        .args([&t.url, &t.prefix])
        .stdin(Stdio::null())
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
    let ready = tokio::time::timeout(WAIT, rx.recv()).await.expect("ready");
    assert_eq!(ready.as_deref(), Some("ready"));

    let checkout = tracing::info_span!("checkout");
    let published = async { publisher.publish(Probe::new(Uuid::new_v4(), 1)).await }
        .instrument(checkout.clone())
        .await
        .expect("publish");
    let (trace_id, span_id) = ids_of(&checkout);
    drop(checkout);

    let line = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the child's handler span")
        .expect("a line");
    let seen: SeenSpan = serde_json::from_str(&line).expect("a SeenSpan");
    assert!(child.wait().expect("the child exits").success());
    assert_eq!(seen.name, "handle");
    assert_eq!(
        seen.event_id.as_deref(),
        Some(published.event_id.to_string().as_str())
    );
    assert_eq!(
        seen.trace_id, trace_id,
        "the handler is in the publisher's trace"
    );
    assert_eq!(
        seen.parent_span_id, span_id,
        "its parent is the publisher's span"
    );
    assert!(seen.parent_is_remote);
    assert_ne!(seen.span_id, span_id);
    // The fields logs see, with or without OpenTelemetry.
    assert_eq!(seen.trace_id_field.as_deref(), Some(trace_id.as_str()));
    assert_eq!(seen.parent_id_field.as_deref(), Some(span_id.as_str()));

    // The publisher's span is the one this process exported, and the entry carries it.
    let exported = tracing.finished();
    let ours = exported
        .iter()
        .find(|s| s.name == "checkout")
        .expect("the checkout span was exported");
    assert_eq!(ours.span_context.span_id().to_string(), span_id);
    let events = events_of(&t.url, &format!("{}:PROBE", t.prefix)).await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].ends_with(&format!(r#","traceparent":"00-{trace_id}-{span_id}-01"}}"#)),
        "{}",
        events[0]
    );
    t.cleanup().await;
}

/// The same within one process, on the memory bus: the handler runs on the bus's own task,
/// outside the publisher's span, and still becomes its child.
#[tokio::test(flavor = "current_thread")]
async fn memory_handler_is_a_child_of_the_publisher_span() {
    let tracing = Tracing::new();
    let _default = tracing::subscriber::set_default(tracing.subscriber());
    let t = TestBus::new(BusKind::Memory, "trace-memory", &["probe-a"]);
    let bus = t.build::<MemoryBus>().await;
    let running = bus.start().await.expect("start");

    let checkout = tracing::info_span!("checkout");
    let published = async { bus.publish(Probe::new(Uuid::new_v4(), 1)).await }
        .instrument(checkout.clone())
        .await
        .expect("publish");
    let (trace_id, span_id) = ids_of(&checkout);
    drop(checkout);
    // A publish outside any span starts no trace: the handler span is a root.
    let untraced = bus
        .publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect("publish");

    let event_id = published.event_id.to_string();
    let handle = tracing
        .wait_for("handle", "event_id", &event_id, WAIT)
        .await
        .expect("the handler span");
    let seen = SeenSpan::of(&handle);
    assert_eq!(seen.trace_id, trace_id);
    assert_eq!(seen.parent_span_id, span_id);
    assert_eq!(seen.trace_id_field.as_deref(), Some(trace_id.as_str()));
    assert_eq!(seen.parent_id_field.as_deref(), Some(span_id.as_str()));

    let root = tracing
        .wait_for("handle", "event_id", &untraced.event_id.to_string(), WAIT)
        .await
        .expect("the other handler span");
    let root = SeenSpan::of(&root);
    assert_eq!(root.parent_span_id, "0000000000000000");
    assert_ne!(root.trace_id, trace_id);
    assert_eq!(root.trace_id_field, None);
    running.shutdown().await.expect("shutdown");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut out) = self.0.lock() {
            out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Without OpenTelemetry (a plain `fmt` subscriber): a context set on the envelope is written,
/// handed to the handler, and recorded on its span for logs; a publish without one writes no
/// trace key at all.
async fn given_context_is_carried<B: Bus>(bus: B, seen: &Seen, captured: &Captured) {
    let running = bus.start().await.expect("start");
    let given = TraceContext::parse(GIVEN)
        .expect("valid")
        .with_tracestate("congo=t61rcWkgMzE");
    let traced = Envelope::new(Probe::new(Uuid::new_v4(), 1)).with_trace(Some(given.clone()));
    bus.publish_envelope(&traced).await.expect("publish");
    let plain = bus
        .publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect("publish");
    // In a batch too: each envelope keeps its own context, or has none.
    let batch = [
        Envelope::new(Probe::new(Uuid::new_v4(), 3)).with_trace(Some(given.clone())),
        Envelope::new(Probe::new(Uuid::new_v4(), 4)),
    ];
    let results = bus.publish_envelopes(&batch).await;
    assert!(results.iter().all(Result::is_ok));
    let traces = seen
        .wait(&[traced.id, plain.event_id, batch[0].id, batch[1].id])
        .await;
    assert_eq!(traces, vec![Some(given.clone()), None, Some(given), None]);
    running.idle().await;
    running.shutdown().await.expect("shutdown");

    let text = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    let id = traced.id.to_string();
    assert!(
        text.lines().any(|l| l.contains("handle{")
            && l.contains(&id)
            && l.contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736")
            && l.contains("parent_id=00f067aa0ba902b7")),
        "no handle span with the trace fields in\n{text}"
    );
    let plain_id = plain.event_id.to_string();
    let plain_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("handle{") && l.contains(&plain_id))
        .collect();
    assert!(!plain_lines.is_empty(), "{text}");
    assert!(
        plain_lines.iter().all(|l| !l.contains("trace_id=")),
        "{text}"
    );
}

/// A plain `fmt` subscriber writing to `captured`, for this thread.
fn capture_logs(captured: &Captured) -> tracing::subscriber::DefaultGuard {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("event_bus_core=debug")
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_default(subscriber)
}

#[tokio::test(flavor = "current_thread")]
async fn given_context_is_carried_in_memory() {
    let captured = Captured::default();
    let _default = capture_logs(&captured);
    let seen = Arc::new(Seen::default());
    let bus = MemoryBus::builder()
        .prefix(unique_prefix("trace-given"))
        .only(["trace-seen"])
        .state(Arc::clone(&seen))
        .build()
        .await
        .expect("bus");
    given_context_is_carried(bus, &seen, &captured).await;
}

#[tokio::test(flavor = "current_thread")]
async fn given_context_is_carried_on_redis() {
    let captured = Captured::default();
    let _default = capture_logs(&captured);
    let seen = Arc::new(Seen::default());
    let (url, prefix) = (redis_url(), unique_prefix("trace-given"));
    let bus = RedisBus::builder()
        .url(&url)
        .prefix(&prefix)
        .only(["trace-seen"])
        .state(Arc::clone(&seen))
        .block(Duration::from_millis(200))
        .build()
        .await
        .expect("bus");
    given_context_is_carried(bus, &seen, &captured).await;

    // On the wire: the trace keys after the envelope's own, only when there is a context.
    let events = events_of(&url, &format!("{prefix}:PROBE")).await;
    assert_eq!(events.len(), 4, "two published one by one, two in a batch");
    let batched: serde_json::Map<String, Value> = serde_json::from_str(&events[2]).expect("JSON");
    assert_eq!(batched["traceparent"], json!(GIVEN));
    assert!(!events[3].contains("traceparent"), "{}", events[3]);
    let traced: serde_json::Map<String, Value> = serde_json::from_str(&events[0]).expect("JSON");
    let keys: Vec<&str> = traced.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "eventType",
            "timestamp",
            "payload",
            "traceparent",
            "tracestate"
        ]
    );
    assert_eq!(traced["traceparent"], json!(GIVEN));
    assert_eq!(traced["tracestate"], json!("congo=t61rcWkgMzE"));
    let plain: serde_json::Map<String, Value> = serde_json::from_str(&events[1]).expect("JSON");
    let keys: Vec<&str> = plain.keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "eventType", "timestamp", "payload"]);
    let _ = delete_prefix(&url, &prefix).await;
}

/// Envelopes whose trace keys are not a valid W3C context (written by another publisher) are
/// handled as if they had none: never dead-lettered, never retried. A valid `traceparent`
/// beside an invalid `tracestate` keeps the `traceparent`.
#[tokio::test(flavor = "current_thread")]
async fn an_invalid_trace_context_never_fails_the_event() {
    let seen = Arc::new(Seen::default());
    let (url, prefix) = (redis_url(), unique_prefix("trace-invalid"));
    let bus = RedisBus::builder()
        .url(&url)
        .prefix(&prefix)
        .only(["trace-seen"])
        .state(Arc::clone(&seen))
        .block(Duration::from_millis(200))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4().to_string();
    let bad: [(Value, Value); 9] = [
        (json!("garbage"), Value::Null),
        (json!(42), json!("a=1")),
        (
            json!({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736"}),
            json!([1, 2]),
        ),
        (json!(GIVEN.to_uppercase()), Value::Null),
        (
            json!("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Value::Null,
        ),
        (json!(format!("{GIVEN}-x")), Value::Null),
        (
            json!("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Value::Null,
        ),
        (Value::Null, Value::Null),
        (json!(GIVEN), json!({"congo": "t61rcWkgMzE"})),
    ];
    let mut conn = raw(&url).await;
    let mut ids = Vec::new();
    for (traceparent, tracestate) in bad {
        let id = Uuid::new_v4();
        let mut envelope = json!({
            "id": id.to_string(),
            "eventType": "PROBE",
            "timestamp": "2026-11-26T18:00:00.000Z",
            "payload": { "tenantId": tenant, "seq": ids.len() },
            "traceparent": traceparent,
        });
        if !tracestate.is_null() {
            envelope["tracestate"] = tracestate;
        }
        let _: String = redis::cmd("XADD")
            .arg(format!("{prefix}:PROBE"))
            .arg("*")
            .arg("event")
            .arg(envelope.to_string())
            .arg("channel")
            .arg("global")
            .query_async(&mut conn)
            .await
            .expect("XADD");
        ids.push(id);
    }
    let traces = seen.wait(&ids).await;
    let expected = TraceContext::parse(GIVEN).ok();
    assert_eq!(traces[..8], vec![None; 8][..]);
    assert_eq!(traces[8], expected);
    running.idle().await;
    let stats = running.stats();
    let sub = stats.subscriber("trace-seen").expect("stats");
    assert_eq!((sub.handled, sub.failed, sub.dead_lettered), (9, 0, 0));
    running.shutdown().await.expect("shutdown");
    let _ = delete_prefix(&url, &prefix).await;
}

/// The seed (its model, with the real `zod`): an envelope carrying a trace context passes its
/// validation and reaches its subscriber (zod strips the unknown keys); the seed's envelopes,
/// which carry none, reach ours.
#[tokio::test(flavor = "current_thread")]
async fn the_seed_accepts_trace_keys_and_we_accept_the_seeds_envelopes() {
    let model = SeedModel::new();
    let seen = Arc::new(Seen::default());
    let url = redis_url();
    let prefix = unique_prefix("trace-seed");
    let workflow = format!("{prefix}:workflow:events:global");
    let bus = RedisBus::builder()
        .url(&url)
        .seed_compatible(SeedGeneration::Current)
        .prefix(&prefix)
        .workflow_stream(&workflow)
        .only(["trace-ticket"])
        .state(Arc::clone(&seen))
        .block(Duration::from_millis(100))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let ticket = TicketUpdated {
        tenant_id: tenant,
        ticket_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        changes: None,
    };
    let given = TraceContext::parse(GIVEN)
        .expect("valid")
        .with_tracestate("congo=t61rcWkgMzE");
    let ours = Envelope::new(ticket).with_trace(Some(given.clone()));
    bus.publish_envelope(&ours).await.expect("publish");

    let stream = format!("{prefix}:global:TICKET_UPDATED");
    let events = events_of(&url, &stream).await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].contains(&format!(r#""traceparent":"{GIVEN}""#)),
        "{}",
        events[0]
    );
    let verdict = model.validate("TICKET_UPDATED", &events[0]);
    assert_eq!(verdict["ok"], json!(true), "the seed's zod: {verdict}");
    let consumed = model.consume(
        &url,
        &ConsumeOpts {
            prefix: prefix.clone(),
            count: 1,
            dedup: false,
            ..ConsumeOpts::new("TICKET_UPDATED")
        },
    );
    assert_eq!(
        consumed["handled"].as_array().map(Vec::len),
        Some(1),
        "{consumed}"
    );
    assert_eq!(consumed["handled"][0]["id"], json!(ours.id.to_string()));
    assert_eq!(consumed["dropped"], json!([]), "{consumed}");

    let published = model.publish(
        &url,
        &PublishOpts {
            prefix: prefix.clone(),
            workflow_stream: workflow.clone(),
            ..PublishOpts::new("TICKET_UPDATED")
        },
        &json!({
            "tenantId": tenant.to_string(),
            "ticketId": Uuid::new_v4().to_string(),
            "userId": Uuid::new_v4().to_string(),
        }),
    );
    let theirs: Uuid = published["envelope"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the seed's envelope id in {published}"));
    let traces = seen.wait(&[ours.id, theirs]).await;
    assert_eq!(traces, vec![Some(given), None]);
    running.idle().await;
    let stats = running.stats();
    let sub = stats.subscriber("trace-ticket").expect("stats");
    assert_eq!((sub.handled, sub.dead_lettered), (2, 0));
    running.shutdown().await.expect("shutdown");
    let _ = delete_prefix(&url, &prefix).await;
}
