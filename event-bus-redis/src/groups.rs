//! Consumer groups: creating them, reading their state (`XINFO GROUPS`, typed), finding the
//! groups on the bus's streams that no subscriber of this binary owns, and telling whether a
//! group has caught up.

use crate::connection::Conn;
use redis::streams::StreamInfoGroupsReply;
use redis::{cmd, RedisResult, Script, Value};

use crate::connection::{is_busygroup, is_no_such_key};

/// `XGROUP CREATE stream group $|0 MKSTREAM ENTRIESREAD n`, with `n` what the group is past:
/// every entry ever added for `$`, the entries no longer in the stream for `0`. Without
/// `ENTRIESREAD`, Redis 7.0 leaves a new group's read counter unknown, and its first read then
/// counts the entries trimmed before it as read: the group could not tell it missed them
/// (see `consumer::trimming`).
const CREATE: &str = r"
local n = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  local added, length = 0, 0
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1]
    elseif info[i] == 'length' then length = info[i + 1] end
  end
  if ARGV[2] == '$' then n = added else n = added - length end
end
return redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM', 'ENTRIESREAD', n)
";

/// Creates the group at `start` (`$` or `0`), with a known read counter (see [`CREATE`]); an
/// existing group is kept as it is.
pub(crate) async fn ensure_group(
    conn: &mut Conn,
    stream: &str,
    group: &str,
    start: &str,
) -> RedisResult<()> {
    let result: RedisResult<Value> = Script::new(CREATE)
        .key(stream)
        .arg(group)
        .arg(start)
        .invoke_async(conn)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_busygroup(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates many groups (`(stream, group, start)`) in one round trip: the same as
/// [`ensure_group`] for each, pipelined. Returns the first error that is not `BUSYGROUP`, naming
/// its group.
pub(crate) async fn ensure_groups(
    conn: &mut Conn,
    groups: &[(String, String, &'static str)],
) -> Result<(), (String, redis::RedisError)> {
    if groups.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (stream, group, start) in groups {
        pipe.cmd("EVAL")
            .arg(CREATE)
            .arg(1)
            .arg(stream)
            .arg(group)
            .arg(*start);
    }
    let replies: Vec<RedisResult<Value>> = pipe
        .query_async(conn)
        .await
        .map_err(|e| (String::new(), e))?;
    for ((stream, group, _), reply) in groups.iter().zip(replies) {
        match reply {
            Ok(_) => {}
            Err(e) if is_busygroup(&e) => {}
            Err(e) => return Err((format!("{group} on {stream}"), e)),
        }
    }
    Ok(())
}

/// The groups of `stream` (none when the stream does not exist).
pub(crate) async fn groups(conn: &mut Conn, stream: &str) -> RedisResult<StreamInfoGroupsReply> {
    let result: RedisResult<StreamInfoGroupsReply> = cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await;
    match result {
        Err(e) if is_no_such_key(&e) => Ok(StreamInfoGroupsReply::default()),
        other => other,
    }
}

/// A consumer group on one of the bus's streams that no subscriber of this binary owns: another
/// service's subscriber, or the old name of a subscriber that was renamed (whose lag then
/// grows, unhandled).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForeignGroup {
    /// The stream.
    pub stream: String,
    /// The group's name.
    pub group: String,
    /// Entries not yet delivered to the group (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    /// Entries delivered to the group and not acknowledged.
    pub pending: u64,
    /// Consumers in the group.
    pub consumers: u64,
}
