//! Handling one delivery, written once for every bus: decode, validate, invoke (panics caught),
//! classify the failure, and decide between retrying and dead-lettering.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use tracing::Instrument;

use crate::context::{Context, Scope, Shared};
use crate::envelope::{Envelope, EventMeta};
use crate::error::HandlerError;
use crate::event::Event;
use crate::subscriber::Subscriber;
use crate::trace::TraceContext;

/// What went wrong with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The entry is not an envelope of the expected type (malformed JSON, missing fields,
    /// another `eventType`). Never retried.
    Decode,
    /// The payload failed validation. Never retried.
    Validation,
    /// The handler returned an error.
    Handler,
    /// The handler panicked.
    Panic,
    /// The entry was delivered again and again without a handler run finishing: consumers
    /// died (or lost the entry) while holding it. Set by the crash-loop guard.
    Crashed,
}

impl FailureKind {
    /// The name written to dead letters: `decode`, `validation`, `handler`, `panic`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Decode => "decode",
            FailureKind::Validation => "validation",
            FailureKind::Handler => "handler",
            FailureKind::Panic => "panic",
            FailureKind::Crashed => "crashed",
        }
    }

    /// Parses [`FailureKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "decode" => FailureKind::Decode,
            "validation" => FailureKind::Validation,
            "handler" => FailureKind::Handler,
            "panic" => FailureKind::Panic,
            "crashed" => FailureKind::Crashed,
            _ => return None,
        })
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed delivery: its kind, the reason, and whether a retry could help.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The reason, in words.
    pub message: String,
    /// Whether retrying cannot help (decode and validation failures, permanent handler errors).
    pub permanent: bool,
}

impl Failure {
    /// A failure of `kind`; decode and validation failures are always permanent.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        let permanent = matches!(kind, FailureKind::Decode | FailureKind::Validation);
        Self {
            kind,
            message: message.into(),
            permanent,
        }
    }

    fn from_handler(error: HandlerError) -> Self {
        // Missing state is a configuration mistake: retrying cannot fix it.
        let missing_state = error
            .source()
            .downcast_ref::<crate::error::MissingState>()
            .is_some();
        Self {
            kind: FailureKind::Handler,
            message: error.to_string(),
            permanent: error.is_permanent() || missing_state,
        }
    }

    fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "handler panicked".to_owned()
        };
        Self::new(FailureKind::Panic, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failure: {}", self.kind, self.message)
    }
}

pub(crate) type Call = Box<dyn FnOnce(Context) -> HandlerFuture + Send>;

/// A handler's future, boxed, its error converted to a [`HandlerError`]: what a bound handler
/// returns. Not generic, so that each handler adds only its own future (its poll function and
/// drop glue) and one small `poll_handler`.
#[doc(hidden)]
pub struct HandlerFuture(Pin<Box<dyn PollHandler + Send>>);

impl HandlerFuture {
    /// A future that is ready with `result` (a state missing before the handler ran).
    pub fn ready(result: Result<(), HandlerError>) -> Self {
        Self(Box::pin(std::future::ready(result)))
    }
}

impl fmt::Debug for HandlerFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerFuture").finish_non_exhaustive()
    }
}

impl Future for HandlerFuture {
    type Output = Result<(), HandlerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll_handler(cx)
    }
}

/// [`Future::poll`] with the error converted: one function per handler future, no wrapper.
trait PollHandler {
    fn poll_handler(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<(), HandlerError>>;
}

impl<Fut, Err> PollHandler for Fut
where
    Fut: Future<Output = Result<(), Err>>,
    Err: Into<HandlerError>,
{
    fn poll_handler(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<(), HandlerError>> {
        match self.poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Boxes a handler's future: what `#[subscriber]`'s generated code calls with the handler's
/// call, so that a return type that is not `Result<(), impl Into<HandlerError>>` or a future
/// that is not `Send` is reported at the handler.
#[doc(hidden)]
pub fn handler_future<Fut, Err>(future: Fut) -> HandlerFuture
where
    Fut: Future<Output = Result<(), Err>> + Send + 'static,
    Err: Into<HandlerError>,
{
    HandlerFuture(Box::pin(future))
}

/// A decoded, validated delivery bound to its handler, ready to run.
pub struct Prepared {
    meta: EventMeta,
    trace: Option<TraceContext>,
    call: Call,
}

impl Prepared {
    /// A delivery with its meta data and trace, and the call that runs its handler.
    pub(crate) fn new(meta: EventMeta, trace: Option<TraceContext>, call: Call) -> Self {
        Self { meta, trace, call }
    }

    /// The envelope's id, tenant and timestamp.
    pub fn meta(&self) -> &EventMeta {
        &self.meta
    }

    /// The envelope's trace context, if it carries a valid one.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

pub(crate) fn decode_meta<E: Event>(bytes: &[u8]) -> Result<EventMeta, Failure> {
    match E::__decode_envelope(bytes) {
        Ok(envelope) => Ok(meta_of(&envelope)),
        Err(failure) => Err(failure),
    }
}

pub(crate) fn meta_of<E: Event>(envelope: &Envelope<E>) -> EventMeta {
    EventMeta {
        id: envelope.id,
        tenant_id: envelope.payload.tenant_id(),
        timestamp: envelope.timestamp,
    }
}

/// Decodes `bytes` as an envelope of `E` and binds `handler` to it. What `#[subscriber]`'s
/// generated thunk calls.
pub fn prepare<E, F, Fut, Err>(bytes: &[u8], handler: F) -> Result<Prepared, Failure>
where
    E: Event,
    F: FnOnce(Envelope<E>, Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Err>> + Send + 'static,
    Err: Into<HandlerError>,
{
    // The type's own decoder (compiled in its crate), not a copy of `decode::<E>` in the
    // crate of the handler.
    let envelope = E::__decode_envelope(bytes)?;
    let meta = meta_of(&envelope);
    Ok(Prepared {
        meta,
        trace: envelope.trace.clone(),
        call: Box::new(move |ctx| handler_future(handler(envelope, ctx))),
    })
}

/// How failed deliveries are retried: exponential backoff with jitter, up to a number of
/// attempts.
///
/// ```
/// use std::time::Duration;
/// use event_bus_core::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(3)
///     .backoff(Duration::from_millis(10), Duration::from_secs(1));
/// let d = policy.delay(2); // before the 3rd attempt: 20 ms, jittered down to no less than half
/// assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
    max: Duration,
    jitter: bool,
    max_deliveries: u32,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms doubling up to 30 s, jittered.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            jitter: true,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
        }
    }
}

impl RetryPolicy {
    /// Failed handler runs before dead-lettering, for subscribers that set none (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The first delay and the cap.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial = initial;
        self.max = max.max(initial);
        self
    }

    /// Whether delays are jittered (on by default: retries of many consumers spread out).
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The crash-loop guard (default 25): an entry delivered more than this many times is
    /// dead-lettered with [`FailureKind::Crashed`], however few handler runs failed. Deliveries
    /// also count reads and claims whose reply never reached a handler (a consumer killed, a
    /// stalled Redis), so keep it well above `max_attempts`; it is never below
    /// `max_attempts + 1`.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// The crash-loop guard's cap.
    pub fn crash_loop_limit(&self) -> u32 {
        self.max_deliveries
    }

    /// The first delay.
    pub fn initial_backoff(&self) -> Duration {
        self.initial
    }

    /// The longest delay.
    pub fn max_backoff(&self) -> Duration {
        self.max
    }

    /// The default attempts.
    pub fn default_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay after failed attempt number `attempt` (1-based): `initial * 2^(attempt-1)`,
    /// capped, and with jitter a random value between half of that and all of it.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let full = self
            .initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max);
        if self.jitter {
            let half = full / 2;
            half + full.mul_f64(fastrand::f64()) / 2
        } else {
            full
        }
    }
}

/// Why a delivery was given up on: which limit was hit. Written to the dead letter, with the
/// number of handler runs, as its `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// The entry cannot be handled at all (decode or validation failure): no handler ran.
    Rejected,
    /// The handler failed with a permanent error.
    Permanent,
    /// The handler ran `max_attempts` times and failed each time.
    MaxAttempts {
        /// The subscriber's `max_attempts`.
        max: u32,
    },
    /// The crash-loop guard: the transport delivered the entry more than `max` times (consumers
    /// died or lost it while holding it) with fewer than `max_attempts` handler runs failed.
    CrashLoop {
        /// How many times it was delivered.
        deliveries: u32,
        /// The bus's `max_deliveries`.
        max: u32,
    },
}

impl GiveUp {
    /// The reason in words, given the handler runs there were:
    /// `max_attempts reached: 5 handler runs failed (max_attempts = 5)`.
    pub fn describe(&self, runs: u32) -> String {
        let runs_text = match runs {
            1 => "1 handler run".to_owned(),
            n => format!("{n} handler runs"),
        };
        match self {
            GiveUp::Rejected => "rejected: not a valid event for this subscriber; no handler run".to_owned(),
            GiveUp::Permanent => format!("permanent failure after {runs_text}"),
            GiveUp::MaxAttempts { max } => {
                format!("max_attempts reached: {runs_text} failed (max_attempts = {max})")
            }
            GiveUp::CrashLoop { deliveries, max } => format!(
                "crash-loop guard: delivered {deliveries} times (max_deliveries = {max}) with {runs_text} failed"
            ),
        }
    }
}

/// What to do after a failed handler run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Try again after this delay.
    Retry(Duration),
    /// Give up: write a dead letter and acknowledge.
    DeadLetter(GiveUp),
}

/// The crash-loop guard's default cap on deliveries of one entry (see
/// [`Dispatcher::max_deliveries`]).
pub const DEFAULT_MAX_DELIVERIES: u32 = 25;

/// Runs deliveries for one subscriber: the one place where decode, validate, invoke, classify
/// and every retry and dead-letter decision happen, for every bus.
///
/// Attempts count handler runs: `max_attempts` failed runs dead-letter an entry. The
/// transport's delivery count (which also counts reads whose reply never reached a handler) only
/// feeds the crash-loop guard, with its own, larger cap.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    subscriber: Subscriber,
    scope: Arc<Scope>,
    policy: RetryPolicy,
    max_attempts: u32,
    max_deliveries: u32,
    dedupe: Option<crate::transport::Dedupe>,
}

impl Dispatcher {
    /// A dispatcher for `subscriber`.
    pub fn new(subscriber: Subscriber, shared: Shared, policy: RetryPolicy) -> Self {
        let max_attempts = subscriber
            .options()
            .max_attempts
            .unwrap_or(policy.default_max_attempts())
            .max(1);
        let max_deliveries = policy
            .crash_loop_limit()
            .max(max_attempts.saturating_add(1));
        Self {
            scope: Arc::new(Scope {
                subscriber: subscriber.name().into(),
                shared,
            }),
            subscriber,
            policy,
            max_attempts,
            max_deliveries,
            dedupe: None,
        }
    }

    /// Makes deliveries idempotent with `dedupe` (see
    /// [`transport::dedupe`](crate::transport::dedupe)): what a bus does for a subscriber with
    /// [`SubscriberOptions::dedupe`](crate::SubscriberOptions::dedupe) set.
    pub fn with_dedupe(mut self, dedupe: crate::transport::Dedupe) -> Self {
        self.dedupe = Some(dedupe);
        self
    }

    /// The subscriber's de-duplication, if it has one.
    pub fn dedupe(&self) -> Option<&crate::transport::Dedupe> {
        self.dedupe.as_ref()
    }

    /// The subscriber.
    pub fn subscriber(&self) -> &Subscriber {
        &self.subscriber
    }

    /// Failed handler runs before dead-lettering.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The crash-loop guard: deliveries of one entry before it is dead-lettered whatever its
    /// handler runs (at least `max_attempts + 1`).
    pub fn max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// Whether a delivery may run: `None` if so, or why it is given up on before any run
    /// (`runs` failed handler runs recorded already, `deliveries` by the transport's count).
    pub fn admit(&self, runs: u32, deliveries: u32) -> Option<(Failure, GiveUp)> {
        if runs >= self.max_attempts {
            let give_up = GiveUp::MaxAttempts {
                max: self.max_attempts,
            };
            return Some((
                Failure::new(FailureKind::Handler, give_up.describe(runs)),
                give_up,
            ));
        }
        if deliveries > self.max_deliveries {
            let give_up = GiveUp::CrashLoop {
                deliveries,
                max: self.max_deliveries,
            };
            let mut failure = Failure::new(FailureKind::Crashed, give_up.describe(runs));
            failure.permanent = true;
            return Some((failure, give_up));
        }
        None
    }

    /// Decodes and validates a payload, binding the handler.
    pub fn prepare(&self, payload: &[u8]) -> Result<Prepared, Failure> {
        self.subscriber.prepare(payload)
    }

    /// Runs a prepared delivery; a panic is caught and reported as [`FailureKind::Panic`].
    pub async fn run(
        &self,
        prepared: Prepared,
        message_id: &Arc<str>,
        attempt: u32,
    ) -> Result<(), Failure> {
        let Prepared { meta, trace, call } = prepared;
        let span = tracing::info_span!(
            "handle",
            subscriber = %self.scope.subscriber,
            event_type = self.subscriber.event_type(),
            event_id = %meta.id,
            tenant_id = %meta.tenant_id,
            message_id = %message_id,
            attempt,
            trace_id = tracing::field::Empty,
            parent_id = tracing::field::Empty,
        );
        if let Some(trace) = &trace {
            // The publisher's trace: recorded for logs, and the span's parent with OpenTelemetry.
            span.record("trace_id", tracing::field::display(trace.trace_id_hex()));
            span.record("parent_id", tracing::field::display(trace.parent_id_hex()));
            #[cfg(feature = "opentelemetry")]
            crate::trace::set_parent(&span, trace);
        }
        let ctx = Context::new(
            meta.tenant_id,
            meta.id,
            attempt,
            Arc::clone(message_id),
            Arc::clone(&self.scope),
        )
        .traced(trace);
        let outcome = AssertUnwindSafe(async move { call(ctx).await })
            .catch_unwind()
            .instrument(span.clone())
            .await;
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::from_handler(e)),
            Err(panic) => Err(Failure::from_panic(panic)),
        };
        span.in_scope(|| match &result {
            Ok(()) => tracing::debug!("handled"),
            Err(failure) => tracing::debug!(%failure, "attempt failed"),
        });
        result
    }

    /// Decodes and runs in one step.
    pub async fn attempt(
        &self,
        payload: &[u8],
        message_id: &Arc<str>,
        attempt: u32,
    ) -> Result<(), Failure> {
        let prepared = self.prepare(payload)?;
        self.run(prepared, message_id, attempt).await
    }

    /// Retry or dead-letter after `failure`, the outcome of handler run number `runs`.
    pub fn decide(&self, failure: &Failure, runs: u32) -> Decision {
        if matches!(failure.kind, FailureKind::Decode | FailureKind::Validation) {
            Decision::DeadLetter(GiveUp::Rejected)
        } else if failure.permanent {
            Decision::DeadLetter(GiveUp::Permanent)
        } else if runs >= self.max_attempts {
            Decision::DeadLetter(GiveUp::MaxAttempts {
                max: self.max_attempts,
            })
        } else {
            Decision::Retry(self.policy.delay(runs))
        }
    }
}
