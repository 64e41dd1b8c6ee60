//! What a subscriber (ours or the floor's) records for each handled event: its id (to check that
//! every event is handled exactly once), its latency (handler time minus envelope timestamp) and
//! when it was handled.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::report::Percentiles;

/// Records handled events of one subscriber (one consumer group).
#[derive(Debug)]
pub struct Collector {
    handled: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    ids: HashSet<Uuid>,
    duplicates: u64,
    latencies_ms: Vec<f64>,
    keep_latency: bool,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// What a collector saw, in a form a child process can print as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Handler calls.
    pub handled: u64,
    /// Distinct event ids among them.
    pub distinct: u64,
    /// Handler calls for an id already seen.
    pub duplicates: u64,
    /// Seconds from the first handled event to the last.
    pub first_to_last_s: f64,
    /// Latency percentiles, when kept.
    pub latency: Option<Percentiles>,
}

impl Summary {
    /// `handled / (last - first)`.
    pub fn rate(&self) -> f64 {
        if self.first_to_last_s > 0.0 {
            self.handled as f64 / self.first_to_last_s
        } else {
            0.0
        }
    }

    /// Checks that exactly `expected` distinct events were handled, each once.
    pub fn check(&self, expected: u64, who: &str) -> Result<(), String> {
        if self.handled == expected && self.distinct == expected && self.duplicates == 0 {
            Ok(())
        } else {
            Err(format!(
                "{who}: expected {expected} events handled once each, got {} handler calls, {} distinct, {} duplicates",
                self.handled, self.distinct, self.duplicates
            ))
        }
    }
}

impl Collector {
    /// A collector expecting about `capacity` events; `keep_latency` keeps every latency sample.
    pub fn new(capacity: usize, keep_latency: bool) -> Self {
        Self {
            handled: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                ids: HashSet::with_capacity(capacity),
                duplicates: 0,
                latencies_ms: if keep_latency {
                    Vec::with_capacity(capacity)
                } else {
                    Vec::new()
                },
                keep_latency,
                first: None,
                last: None,
            }),
        }
    }

    /// Records one handled event.
    pub fn record(&self, id: Uuid, timestamp: DateTime<Utc>) {
        let now = Utc::now();
        let at = Instant::now();
        let latency_ms = (now - timestamp)
            .num_microseconds()
            .map_or(f64::MAX, |us| us as f64 / 1000.0);
        {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if !inner.ids.insert(id) {
                inner.duplicates += 1;
            }
            if inner.keep_latency {
                inner.latencies_ms.push(latency_ms);
            }
            if inner.first.is_none() {
                inner.first = Some(at);
            }
            inner.last = Some(at);
        }
        self.handled.fetch_add(1, Ordering::Release);
    }

    /// Handler calls so far.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }

    /// When the last event was handled.
    pub fn last(&self) -> Option<Instant> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).last
    }

    /// Waits until `target` events were handled. Gives up (returns `false`) when nothing was
    /// handled for `stall`.
    pub async fn wait_for(&self, target: u64, stall: Duration) -> bool {
        let mut seen = self.handled();
        let mut progress_at = Instant::now();
        loop {
            let now = self.handled();
            if now >= target {
                return true;
            }
            if now != seen {
                seen = now;
                progress_at = Instant::now();
            } else if progress_at.elapsed() > stall {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every latency sample (ms), when kept.
    pub fn latencies(&self) -> Vec<f64> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latencies_ms
            .clone()
    }

    /// What was recorded.
    pub fn summary(&self) -> Summary {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let first_to_last_s = match (inner.first, inner.last) {
            (Some(first), Some(last)) => (last - first).as_secs_f64(),
            _ => 0.0,
        };
        let latency = if inner.keep_latency {
            Percentiles::of(&mut inner.latencies_ms)
        } else {
            None
        };
        Summary {
            handled: self.handled(),
            distinct: inner.ids.len() as u64,
            duplicates: inner.duplicates,
            first_to_last_s,
            latency,
        }
    }
}
