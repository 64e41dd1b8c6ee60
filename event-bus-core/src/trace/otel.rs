//! The OpenTelemetry side of [`TraceContext`] (feature `opentelemetry`): reading the current
//! span's context on publish, and making a handler's span a child of the publisher's.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TraceContext;

impl TraceContext {
    /// The context of the current `tracing` span, as the `tracing-opentelemetry` layer sees
    /// it, else the current OpenTelemetry context (code that uses the OpenTelemetry API
    /// directly); `None` outside any sampled-or-not valid span, or without the layer.
    ///
    /// A publish calls this when its envelope carries no context of its own.
    ///
    /// ```
    /// use event_bus_core::TraceContext;
    /// use opentelemetry::trace::TracerProvider as _;
    /// use tracing_subscriber::layer::SubscriberExt as _;
    ///
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("doc"));
    /// let subscriber = tracing_subscriber::registry().with(layer);
    /// tracing::subscriber::with_default(subscriber, || {
    ///     assert!(TraceContext::current().is_none());
    ///     let _span = tracing::info_span!("request").entered();
    ///     let trace = TraceContext::current().expect("inside a span");
    ///     assert!(trace.is_sampled());
    /// });
    /// ```
    pub fn current() -> Option<Self> {
        let cx = tracing::Span::current().context();
        Self::from_span_context(cx.span().span_context()).or_else(|| {
            Self::from_span_context(opentelemetry::Context::current().span().span_context())
        })
    }

    /// The context of an OpenTelemetry span; `None` if it is not valid.
    pub fn from_span_context(span: &SpanContext) -> Option<Self> {
        if !span.is_valid() {
            return None;
        }
        let trace = Self::new(
            span.trace_id().to_bytes(),
            span.span_id().to_bytes(),
            span.trace_flags().to_u8(),
        )?;
        let state = span.trace_state().header();
        Some(if state.is_empty() {
            trace
        } else {
            trace.with_tracestate(state)
        })
    }

    /// The remote span this context names, as OpenTelemetry's parent context: what a span
    /// of your own passes to `set_parent` to continue the publisher's trace.
    pub fn otel_context(&self) -> opentelemetry::Context {
        let state = self
            .tracestate()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let span = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.parent_id),
            TraceFlags::new(self.flags),
            true,
            state,
        );
        opentelemetry::Context::new().with_remote_span_context(span)
    }
}

/// Makes `span` (not entered yet) a child of the remote span `trace` names. Without the
/// OpenTelemetry layer, or with the span filtered out, there is nothing to do.
pub(crate) fn set_parent(span: &tracing::Span, trace: &TraceContext) {
    if let Err(error) = span.set_parent(trace.otel_context()) {
        tracing::trace!(%error, "the handler span keeps its own parent");
    }
}
