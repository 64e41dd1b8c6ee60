//! Publish patterns shared by our side and the floor, so the two differ only in what one
//! publish does: one at a time, `inflight` at once, or at a steady rate.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::stream::{self, FuturesUnordered, StreamExt, TryStreamExt};
use tokio::time::MissedTickBehavior;

/// How a publisher sends its events.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Pattern {
    /// Each publish awaited before the next (W1).
    Sequential,
    /// Up to `inflight` publishes at once (W2, W3, W4).
    Concurrent,
    /// A steady rate, small bursts every millisecond (W6).
    Paced,
}

/// Runs `n` publishes in `pattern`; returns the time they took.
pub async fn run<F, Fut, E>(
    pattern: Pattern,
    n: usize,
    inflight: usize,
    rate: f64,
    one: F,
) -> Result<Duration, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    match pattern {
        Pattern::Sequential => sequential(n, one).await,
        Pattern::Concurrent => concurrent(n, inflight, one).await,
        Pattern::Paced => paced(n, rate, one).await,
    }
}

/// `n` publishes, each awaited before the next.
pub async fn sequential<F, Fut, E>(n: usize, mut one: F) -> Result<Duration, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let start = Instant::now();
    for _ in 0..n {
        one().await?;
    }
    Ok(start.elapsed())
}

/// `n` publishes with up to `inflight` in flight.
pub async fn concurrent<F, Fut, E>(n: usize, inflight: usize, mut one: F) -> Result<Duration, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let start = Instant::now();
    stream::iter(0..n)
        .map(|_| one())
        .buffer_unordered(inflight.max(1))
        .try_for_each(|()| async { Ok(()) })
        .await?;
    Ok(start.elapsed())
}

/// `n` publishes at `rate` per second: every millisecond, whatever is due is started (a burst of
/// `rate / 1000`), without waiting for earlier ones to finish.
pub async fn paced<F, Fut, E>(n: usize, rate: f64, mut one: F) -> Result<Duration, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    while sent < n || !in_flight.is_empty() {
        tokio::select! {
            _ = ticker.tick(), if sent < n => {
                let due = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(n);
                while sent < due {
                    in_flight.push(one());
                    sent += 1;
                }
            }
            Some(result) = in_flight.next(), if !in_flight.is_empty() => result?,
        }
    }
    Ok(start.elapsed())
}
