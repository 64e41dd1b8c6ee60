//! Leases: a consumer keeps the entries it holds (read, queued, running, or waiting for a
//! retry) from being claimed by others, however long their handlers take.
//!
//! Every entry taken from Redis is registered here until its delivery ends (the registration
//! rides on the delivery and is dropped with it). A renewal task resets the idle time of the
//! entries held longer than a third of `claim_idle` (`XCLAIM ... JUSTID`, which does not raise
//! the delivery count), in one script call per round, and only for entries this consumer
//! still owns: an entry claimed by someone else meanwhile is never taken back.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::connection::Conn;
use event_bus_core::transport::Release;
use redis::{RedisResult, Script};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Resets the idle time of each id still pending with this consumer; returns the ids that are
/// not (acknowledged meanwhile, claimed by another consumer, or deleted).
const RENEW: &str = r"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
";

/// The entries one consumer holds, with when their lease was last taken or renewed: slots
/// reused through a free list, so that taking and ending a lease (once per entry, on the hot
/// path) costs no hashing and, once warm, no allocation.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Option<(Arc<str>, Instant)>>,
    free: Vec<usize>,
}

/// A delivery's end ends the lease on its entry: the token is the entry's slot.
impl Release for Leases {
    fn release(&self, slot: usize) {
        let mut held = self.held();
        if let Some(entry) = held.slots.get_mut(slot) {
            if entry.take().is_some() {
                held.free.push(slot);
            }
        }
    }
}

impl Leases {
    fn held(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `id`, read or claimed at `read_at` (its idle time was zero then); returns
    /// its slot, the token that [`Release::release`] takes to end the lease.
    pub(crate) fn hold(&self, id: &Arc<str>, read_at: Instant) -> usize {
        let entry = Some((Arc::clone(id), read_at));
        let mut held = self.held();
        match held.free.pop() {
            Some(slot) => {
                held.slots[slot] = entry;
                slot
            }
            None => {
                held.slots.push(entry);
                held.slots.len() - 1
            }
        }
    }

    /// The ids held since before `before`, marked renewed at `now`.
    fn due(&self, before: Instant, now: Instant) -> Vec<Arc<str>> {
        let mut held = self.held();
        let mut due = Vec::new();
        for (id, since) in held.slots.iter_mut().flatten() {
            if *since <= before {
                *since = now;
                due.push(Arc::clone(id));
            }
        }
        due
    }

    fn still_held(&self, id: &str) -> bool {
        self.held()
            .slots
            .iter()
            .flatten()
            .any(|(held, _)| &**held == id)
    }

    /// Marks `ids` as due for renewal at the next round.
    fn retry_soon(&self, ids: &[Arc<str>], stale: Instant) {
        let mut held = self.held();
        for (id, since) in held.slots.iter_mut().flatten() {
            if ids.iter().any(|d| Arc::ptr_eq(d, id)) {
                *since = stale;
            }
        }
    }
}

/// Where the renewals go.
pub(crate) struct Renewal {
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) conn: Conn,
    /// Renew entries held longer than this (a third of `claim_idle`), checking this often.
    pub(crate) every: Duration,
}

/// Renews the leases on `ids` if they are still `consumer`'s; returns those that are not.
pub(crate) async fn renew(
    conn: &mut Conn,
    stream: &str,
    group: &str,
    consumer: &str,
    ids: &[&str],
) -> RedisResult<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let script = Script::new(RENEW);
    let mut invocation = script.key(stream);
    invocation.arg(group).arg(consumer);
    for id in ids {
        invocation.arg(*id);
    }
    invocation.invoke_async(conn).await
}

/// Renews the leases of held entries until cancelled.
pub(crate) async fn renew_loop(
    leases: Arc<Leases>,
    mut renewal: Renewal,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(renewal.every) => {}
            () = cancel.cancelled() => return,
        }
        let now = Instant::now();
        let Some(before) = now.checked_sub(renewal.every) else {
            continue;
        };
        let due = leases.due(before, now);
        if due.is_empty() {
            continue;
        }
        let ids: Vec<&str> = due.iter().map(|id| &**id).collect();
        let Renewal {
            stream,
            group,
            consumer,
            conn,
            ..
        } = &mut renewal;
        match renew(conn, stream, group, consumer, &ids).await {
            Ok(lost) => {
                for id in lost.iter().filter(|id| leases.still_held(id)) {
                    tracing::warn!(stream = %renewal.stream, group = %renewal.group, id = %id,
                        "lost the lease on an entry still being handled: another consumer claimed it (or it was deleted); it may be handled twice");
                }
            }
            Err(e) => {
                tracing::warn!(stream = %renewal.stream, group = %renewal.group, error = %e,
                    entries = ids.len(), "could not renew leases; retrying next round");
                // Try again next round rather than after another full period.
                let stale = now.checked_sub(renewal.every * 2).unwrap_or(now);
                leases.retry_soon(&due, stale);
            }
        }
    }
}
