//! The marks of idempotent subscribers (`dedupe = "24h"`) on Redis: one string key per envelope
//! id and subscriber, `{stream}:dedupe:{group}:{envelope-id}`, holding `running:<token>` (with
//! a lease) or `done` (for the window), each written with one command on that one key. The
//! protocol and what it guarantees are the core's: see `event_bus_core::transport::dedupe`.

use std::time::Duration;

use crate::connection::Conn;
use event_bus_core::transport::{Claim, Dedupe, DedupeStore};
use event_bus_core::BoxError;
use futures_util::future::BoxFuture;
use redis::{RedisResult, Script, Value};

/// The value of a `done` mark.
const DONE: &str = "done";
/// The prefix of a `running` mark's value, before its token.
const RUNNING: &str = "running:";

/// Extends the key's expiry if it still holds the token.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the key if it still holds the token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The mark of envelope `id` for `group`'s entries of `stream`.
pub(crate) fn dedupe_key(stream: &str, group: &str, id: &str) -> String {
    format!("{stream}:dedupe:{group}:{id}")
}

/// The de-duplication of `group` on `stream`, its `running` marks leased for `lease` (the
/// consumer's `claim_idle`, so a crashed run's mark lasts about as long as its entry stays
/// with the dead consumer).
pub(crate) fn dedupe(
    conn: Conn,
    stream: &str,
    group: &str,
    window: Duration,
    lease: Duration,
) -> Dedupe {
    let store = RedisDedupe {
        conn,
        prefix: dedupe_key(stream, group, ""),
        renew: Script::new(RENEW),
        release: Script::new(RELEASE),
    };
    Dedupe::new(store, window, lease)
}

struct RedisDedupe {
    conn: Conn,
    /// `{stream}:dedupe:{group}:`
    prefix: String,
    renew: Script,
    release: Script,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisDedupe {
    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// `SET key running:<token> NX GET PX <lease>`: sets the mark if there is none, and returns
    /// the one there was (Redis 7.0 and later take `NX` with `GET`).
    async fn claim_mark(&self, id: &str, token: &str, lease: Duration) -> RedisResult<Claim> {
        let mut conn = self.conn.clone();
        let found: Option<String> = redis::cmd("SET")
            .arg(self.key(id))
            .arg(format!("{RUNNING}{token}"))
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(millis(lease))
            .query_async(&mut conn)
            .await?;
        Ok(match found.as_deref() {
            None => Claim::Claimed,
            Some(DONE) => Claim::Done,
            Some(_) => Claim::Running,
        })
    }
}

impl DedupeStore for RedisDedupe {
    fn claim<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, BoxError>> {
        Box::pin(async move { Ok(self.claim_mark(id, token, lease).await?) })
    }

    fn renew<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let renewed: i64 = self
                .renew
                .key(self.key(id))
                .arg(format!("{RUNNING}{token}"))
                .arg(millis(lease))
                .invoke_async(&mut conn)
                .await?;
            Ok(renewed == 1)
        })
    }

    fn release<'a>(&'a self, id: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: Value = self
                .release
                .key(self.key(id))
                .arg(format!("{RUNNING}{token}"))
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        })
    }

    fn done<'a>(&'a self, id: &'a str, window: Duration) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: Value = redis::cmd("SET")
                .arg(self.key(id))
                .arg(DONE)
                .arg("PX")
                .arg(millis(window))
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        assert_eq!(
            dedupe_key(
                "event:TICKET_UPDATED",
                "ticket-email",
                "0b9e7c1a-4f7e-4c1e-9d8a-2f0c1e5b6a7d"
            ),
            "event:TICKET_UPDATED:dedupe:ticket-email:0b9e7c1a-4f7e-4c1e-9d8a-2f0c1e5b6a7d"
        );
    }
}
