//! Finding the bus's streams under a prefix: `SCAN ... MATCH {prefix}:* TYPE stream` (never
//! `KEYS`), each key classified by its name with the runtime's own rules
//! (`event_bus_redis::admin::stream_kind`).

use std::collections::{BTreeMap, BTreeSet};

use event_bus_redis::admin::{event_type_of, stream_kind, StreamKind};
use redis::aio::MultiplexedConnection;

use crate::conn::Redacted;
use crate::error::{CliError, Result};

/// The streams found under a prefix.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// Event streams.
    pub(crate) events: BTreeSet<String>,
    /// Event streams that have a dead-letter stream (the event stream itself may be gone).
    pub(crate) with_dead_letters: BTreeSet<String>,
    /// Replay-request streams: (event stream, group) → key.
    pub(crate) replays: BTreeMap<(String, String), String>,
}

impl Streams {
    /// The event streams `arg` names: itself if it is a key (it has a `:`), else every stream
    /// of that event type. Empty when none matches.
    pub(crate) fn resolve(&self, arg: &str) -> Vec<String> {
        if arg.contains(':') {
            return vec![arg.to_owned()];
        }
        self.events
            .iter()
            .chain(&self.with_dead_letters)
            .filter(|s| event_type_of(s) == arg)
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// Escapes the glob characters of `text` for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every stream under `prefix`.
pub(crate) async fn streams(
    conn: &mut MultiplexedConnection,
    url: &Redacted,
    prefix: &str,
) -> Result<Streams> {
    let pattern = format!("{}:*", glob_escape(prefix));
    let mut found = Streams::default();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .arg("TYPE")
            .arg("stream")
            .query_async(conn)
            .await
            .map_err(|e| CliError::redis(format!("listing the streams under {prefix}"), url, &e))?;
        for key in keys {
            match stream_kind(&key) {
                StreamKind::DeadLetters { stream } => {
                    found.with_dead_letters.insert(stream.to_owned());
                }
                StreamKind::ReplayRequests { stream, group } => {
                    found
                        .replays
                        .insert((stream.to_owned(), group.to_owned()), key.clone());
                }
                _ => {
                    found.events.insert(key);
                }
            }
        }
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_globs() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn resolves_types_and_keys() {
        let mut s = Streams::default();
        s.events.insert("p:global:T".to_owned());
        s.events.insert("p:internal:T".to_owned());
        s.events.insert("p:global:U".to_owned());
        s.with_dead_letters.insert("p:global:T".to_owned());
        assert_eq!(s.resolve("T"), vec!["p:global:T", "p:internal:T"]);
        assert_eq!(s.resolve("p:x:T"), vec!["p:x:T"]);
        assert!(s.resolve("V").is_empty());
    }
}
