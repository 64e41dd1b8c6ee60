//! The record of failed handler runs: how `max_attempts` counts handler runs across crashes.
//!
//! A hash per subscriber and stream, `{stream}:runs:{group}`, maps an entry id to the number of
//! its handler runs that failed. It is written only when a run fails (a first run that succeeds
//! costs nothing), read when entries are claimed from another consumer, and cleared when the
//! entry is acknowledged or dead-lettered. The pending list's delivery count is not used for
//! attempts: it also counts reads and claims whose reply never reached a handler (a stalled
//! Redis, a timed-out client), and serves only as the crash-loop guard.
//!
//! The key expires [`RUNS_TTL`] after its last write, so records of entries deleted by others
//! do not accumulate.

use std::time::Duration;

use crate::connection::Conn;
use redis::{cmd, RedisResult, Value};

/// How long a record outlives its last write.
pub(crate) const RUNS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Records that entry `id` has had `runs` failed handler runs (an absolute count, so a write
/// lost to a stalled Redis is made good by the next one).
pub(crate) async fn record(conn: &mut Conn, key: &str, id: &str, runs: u32) -> RedisResult<()> {
    let ttl_ms = u64::try_from(RUNS_TTL.as_millis()).unwrap_or(u64::MAX);
    let mut pipe = redis::pipe();
    pipe.cmd("HSET")
        .arg(key)
        .arg(id)
        .arg(runs)
        .ignore()
        .cmd("PEXPIRE")
        .arg(key)
        .arg(ttl_ms)
        .ignore();
    pipe.query_async::<()>(conn).await
}

/// The recorded failed runs of each of `ids` (0 where none is recorded).
pub(crate) async fn read(conn: &mut Conn, key: &str, ids: &[&str]) -> RedisResult<Vec<u32>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<u32>> = cmd("HMGET").arg(key).arg(ids).query_async(conn).await?;
    Ok(values.into_iter().map(Option::unwrap_or_default).collect())
}

/// Forgets the record of `ids` (acknowledged or dead-lettered).
pub(crate) async fn clear(conn: &mut Conn, key: &str, ids: &[&str]) {
    if ids.is_empty() {
        return;
    }
    let result: RedisResult<Value> = cmd("HDEL").arg(key).arg(ids).query_async(conn).await;
    if let Err(e) = result {
        // Harmless: the record expires with its key.
        tracing::debug!(key, error = %e, "could not clear handler-run records");
    }
}
