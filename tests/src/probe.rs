//! The probe event and its subscribers: each event says how its handlers behave (fail the first
//! n attempts, in every subscriber or one, fail permanently, panic, sleep, fail in one
//! subscriber), and every attempt is recorded so tests can assert exact counts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use event_bus_core::{subscriber, Context, Envelope, Event, HandlerError, State};
use tokio::sync::Notify;
use uuid::Uuid;

/// The probe event.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "PROBE")]
pub struct Probe {
    /// The tenant.
    pub tenant_id: Uuid,
    /// A sequence number the test chooses (unique per event in a test).
    pub seq: u64,
    /// Fail attempts 1..=fail_first (transient errors).
    #[serde(default)]
    pub fail_first: u32,
    /// Fail with a permanent error.
    #[serde(default)]
    pub permanent: bool,
    /// Panic in the handler.
    #[serde(default)]
    pub panic: bool,
    /// Sleep this long in the handler.
    #[serde(default)]
    pub sleep_ms: u64,
    /// Always fail (transient) when handled by this subscriber.
    #[serde(default)]
    pub fail_in: Option<String>,
    /// Apply `fail_first` only in this subscriber (every subscriber when `None`).
    #[serde(default)]
    pub fail_first_in: Option<String>,
}

impl Probe {
    /// A plain probe.
    pub fn new(tenant_id: Uuid, seq: u64) -> Self {
        Self {
            tenant_id,
            seq,
            ..Self::default()
        }
    }
}

/// One handler attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The subscriber.
    pub subscriber: String,
    /// The probe's seq.
    pub seq: u64,
    /// The tenant.
    pub tenant: Uuid,
    /// The attempt number the context reported.
    pub attempt: u32,
    /// Whether the handler succeeded.
    pub ok: bool,
}

/// Records every attempt of every probe subscriber; handed to the bus as state.
#[derive(Debug, Default)]
pub struct Recorder {
    attempts: Mutex<Vec<Attempt>>,
    changed: Notify,
    echo: std::sync::atomic::AtomicBool,
    starts: std::sync::atomic::AtomicUsize,
    running: std::sync::atomic::AtomicUsize,
    peak_running: std::sync::atomic::AtomicUsize,
    healed: std::sync::atomic::AtomicBool,
}

impl Recorder {
    /// From now on, probe handlers succeed whatever their event asks (the cause of a dead
    /// letter is "fixed", so its replay succeeds).
    pub fn heal(&self) {
        self.healed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_healed(&self) -> bool {
        self.healed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A recorder that also prints `start <sub> <seq> <attempt>` and
    /// `done <sub> <seq> <attempt> <ok>` lines to stdout (for child processes).
    pub fn echoing() -> Self {
        let r = Self::default();
        r.echo.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    }

    /// How many handler attempts have started (finished or not).
    pub fn starts(&self) -> usize {
        self.starts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most handler attempts that ever ran at the same time (across subscribers).
    pub fn peak_running(&self) -> usize {
        self.peak_running.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn started(&self, subscriber: &str, seq: u64, attempt: u32) {
        self.starts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let running = self
            .running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.peak_running
            .fetch_max(running, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_waiters();
        if self.echo.load(std::sync::atomic::Ordering::SeqCst) {
            println!("start {subscriber} {seq} {attempt}");
        }
    }

    /// Every attempt so far, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn record(&self, attempt: Attempt) {
        self.running
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if self.echo.load(std::sync::atomic::Ordering::SeqCst) {
            println!(
                "done {} {} {} {}",
                attempt.subscriber, attempt.seq, attempt.attempt, attempt.ok
            );
        }
        if let Ok(mut a) = self.attempts.lock() {
            a.push(attempt);
        }
        self.changed.notify_waiters();
    }

    /// Successful handlings of `subscriber`, by seq.
    pub fn handled(&self, subscriber: &str) -> HashMap<u64, usize> {
        let mut out = HashMap::new();
        for a in self
            .attempts()
            .iter()
            .filter(|a| a.ok && a.subscriber == subscriber)
        {
            *out.entry(a.seq).or_insert(0) += 1;
        }
        out
    }

    /// Attempts (successful or not) of `subscriber` for `seq`.
    pub fn attempts_of(&self, subscriber: &str, seq: u64) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.subscriber == subscriber && a.seq == seq)
            .collect()
    }

    /// The attempt numbers of `subscriber`'s attempts for `seq`, in order.
    pub fn attempt_numbers(&self, subscriber: &str, seq: u64) -> Vec<u32> {
        self.attempts_of(subscriber, seq)
            .iter()
            .map(|a| a.attempt)
            .collect()
    }

    /// The seqs `subscriber` handled successfully, in the order it did.
    pub fn order(&self, subscriber: &str) -> Vec<u64> {
        self.attempts()
            .into_iter()
            .filter(|a| a.ok && a.subscriber == subscriber)
            .map(|a| a.seq)
            .collect()
    }

    /// Waits until `done` holds for the recorder, or `timeout` passes; returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&Recorder) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(self);
            }
        }
    }

    /// Waits until `subscriber` handled `n` distinct seqs.
    pub async fn wait_handled(&self, subscriber: &str, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |r| r.handled(subscriber).len() >= n)
            .await
    }
}

async fn run(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    let recorder = ctx.state::<crate::bus::SharedRecorder>()?;
    let p = &event.payload;
    let mut attempt = Attempt {
        subscriber: ctx.subscriber().to_owned(),
        seq: p.seq,
        tenant: p.tenant_id,
        attempt: ctx.attempt(),
        ok: false,
    };
    recorder.started(ctx.subscriber(), p.seq, ctx.attempt());
    if p.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(p.sleep_ms)).await;
    }
    if p.panic {
        recorder.record(attempt);
        panic!("probe {} panicked on purpose", p.seq);
    }
    if recorder.is_healed() {
        attempt.ok = true;
        recorder.record(attempt);
        return Ok(());
    }
    if p.permanent {
        recorder.record(attempt);
        return Err(HandlerError::permanent(format!(
            "probe {} fails permanently",
            p.seq
        )));
    }
    let fails_first = p
        .fail_first_in
        .as_deref()
        .is_none_or(|only| only == ctx.subscriber());
    if (fails_first && ctx.attempt() <= p.fail_first)
        || p.fail_in.as_deref() == Some(ctx.subscriber())
    {
        recorder.record(attempt);
        return Err(HandlerError::transient(format!(
            "probe {} fails attempt {}",
            p.seq,
            ctx.attempt()
        )));
    }
    attempt.ok = true;
    recorder.record(attempt);
    Ok(())
}

#[subscriber("PROBE", name = "probe-a")]
async fn probe_a(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    run(event, ctx).await
}

#[subscriber("PROBE", name = "probe-b")]
async fn probe_b(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    run(event, ctx).await
}

#[subscriber("PROBE", name = "probe-concurrent", concurrency = 8)]
async fn probe_concurrent(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    run(event, ctx).await
}

#[subscriber(
    "PROBE",
    name = "probe-tenant-ordered",
    concurrency = 4,
    ordering = "tenant"
)]
async fn probe_tenant_ordered(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    run(event, ctx).await
}

#[subscriber("PROBE", name = "probe-retry3", max_attempts = 3, concurrency = 4)]
async fn probe_retry3(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    run(event, ctx).await
}

/// Idempotent: each envelope id handled at most once an hour.
#[subscriber("PROBE", name = "probe-dedupe", dedupe = "1h")]
async fn probe_dedupe(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    run(event, ctx).await
}

/// Idempotent, running up to 4 deliveries at once.
#[subscriber(
    "PROBE",
    name = "probe-dedupe-concurrent",
    concurrency = 4,
    dedupe = "1h"
)]
async fn probe_dedupe_concurrent(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    run(event, ctx).await
}

/// Shared state no test bus is given.
#[derive(Debug)]
pub struct NeverGiven;

/// Needs [`NeverGiven`]: a bus running it must refuse to start.
#[subscriber("PROBE", name = "probe-needs-state")]
async fn probe_needs_state(
    _event: Envelope<Probe>,
    _ctx: Context,
    _never: State<NeverGiven>,
) -> Result<(), HandlerError> {
    Ok(())
}

/// Takes the seed's one consumer-group name: a bus must refuse it unless allowed.
#[subscriber("PROBE", name = "event-processors")]
async fn probe_seed_group(event: Envelope<Probe>, ctx: Context) -> Result<(), HandlerError> {
    run(event, ctx).await
}
