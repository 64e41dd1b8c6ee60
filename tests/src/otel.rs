//! OpenTelemetry for the trace-context tests: a `tracing` subscriber whose spans go, through
//! `tracing-opentelemetry`, to a tracer provider of its own with the SDK's in-memory exporter,
//! so a test (or a helper process) reads back every finished span with its ids and parent.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;

/// A tracer provider exporting every span, as it ends, to an in-memory exporter.
#[derive(Debug, Clone)]
pub struct Tracing {
    /// The provider (independent of any other in the process).
    pub provider: SdkTracerProvider,
    /// Where finished spans go.
    pub exporter: InMemorySpanExporter,
}

impl Default for Tracing {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracing {
    /// A provider of its own, exporting synchronously to a fresh in-memory exporter.
    pub fn new() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        Self { provider, exporter }
    }

    /// A `tracing` subscriber sending every span to this provider.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let tracer = self.provider.tracer("event-bus-tests");
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    /// Every span finished so far.
    pub fn finished(&self) -> Vec<SpanData> {
        let _ = self.provider.force_flush();
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// The finished spans named `name` whose attribute `key` is `value`.
    pub fn find(&self, name: &str, key: &str, value: &str) -> Vec<SpanData> {
        self.finished()
            .into_iter()
            .filter(|s| s.name == name && attribute(s, key).as_deref() == Some(value))
            .collect()
    }

    /// Waits (up to `timeout`) for a finished span as [`Tracing::find`] describes.
    pub async fn wait_for(
        &self,
        name: &str,
        key: &str,
        value: &str,
        timeout: std::time::Duration,
    ) -> Option<SpanData> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(span) = self.find(name, key, value).into_iter().next() {
                return Some(span);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The span's attribute `key`, as text.
pub fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// What the `trace-consumer` helper process prints of the handler span it saw: ids in
/// lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeenSpan {
    /// The span's name (`handle`).
    pub name: String,
    /// Its trace.
    pub trace_id: String,
    /// Its own id.
    pub span_id: String,
    /// Its parent's id.
    pub parent_span_id: String,
    /// Whether the parent is in another process (a remote context).
    pub parent_is_remote: bool,
    /// The span's `event_id` field.
    pub event_id: Option<String>,
    /// The span's `trace_id` field (recorded without OpenTelemetry too).
    pub trace_id_field: Option<String>,
    /// The span's `parent_id` field.
    pub parent_id_field: Option<String>,
}

impl SeenSpan {
    /// The parts of `span` a test compares.
    pub fn of(span: &SpanData) -> Self {
        Self {
            name: span.name.to_string(),
            trace_id: span.span_context.trace_id().to_string(),
            span_id: span.span_context.span_id().to_string(),
            parent_span_id: span.parent_span_id.to_string(),
            parent_is_remote: span.parent_span_is_remote,
            event_id: attribute(span, "event_id"),
            trace_id_field: attribute(span, "trace_id"),
            parent_id_field: attribute(span, "parent_id"),
        }
    }
}
