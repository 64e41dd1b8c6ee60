//! Key names: `{prefix}:{EVENT_TYPE}` for an event type's stream, `{stream}:dead-letter` for its
//! dead letters, `{stream}:runs:{group}` for a subscriber's record of failed handler runs.
//! `{stream}:replay:{group}` holds the replay requests for `group`'s dead letters, and the
//! counter `{prefix}:replay-requests` goes up with each request, so that idle consumers look at
//! their request streams only when it moved (see `consumer::replays`). A partition stream has
//! `{stream}:owner:{group}`, the consumer of `group` that reads it, and the first partition of
//! a type `{stream}:members:{group}`, the group's live consumers (see `consumer::assignment`).
//! Every command the runtime sends touches exactly one of these keys.

/// The dead-letter stream of `stream`.
pub fn dead_letter_stream(stream: &str) -> String {
    format!("{stream}:dead-letter")
}

/// Which consumer of `group` owns the partition stream `stream` (a string with a lease: see
/// `consumer::assignment`).
pub(crate) fn owner_key(stream: &str, group: &str) -> String {
    format!("{stream}:owner:{group}")
}

/// The live consumers of `group` on a partitioned type (a sorted set scored by heartbeat),
/// kept beside its first partition stream `first_partition`.
pub(crate) fn members_key(first_partition: &str, group: &str) -> String {
    format!("{first_partition}:members:{group}")
}

/// The record of failed handler runs of `group`'s entries of `stream`.
pub(crate) fn runs_key(stream: &str, group: &str) -> String {
    format!("{stream}:runs:{group}")
}

/// The replay requests for `group`'s dead letters of `stream`, read by that group's consumers
/// only.
pub fn replay_stream(stream: &str, group: &str) -> String {
    format!("{stream}:replay:{group}")
}

/// The counter of replay requests written under `prefix`: one key that every process of a
/// deployment polls, instead of every subscriber polling its request stream.
pub fn replay_signal(prefix: &str) -> String {
    format!("{prefix}:replay-requests")
}

/// The event type a stream carries (the part after the last `:`).
pub fn event_type_of(stream: &str) -> &str {
    stream.rsplit(':').next().unwrap_or(stream)
}

/// The millisecond part of a stream entry id (`1700000000000-3` → `1700000000000`).
pub(crate) fn id_millis(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            dead_letter_stream("alga-psa:event-stream:global:TICKET_UPDATED"),
            "alga-psa:event-stream:global:TICKET_UPDATED:dead-letter"
        );
        assert_eq!(event_type_of("event:TICKET_UPDATED"), "TICKET_UPDATED");
        assert_eq!(
            runs_key("event:TICKET_UPDATED", "ticket-email"),
            "event:TICKET_UPDATED:runs:ticket-email"
        );
        assert_eq!(
            replay_stream("event:TICKET_UPDATED", "ticket-email"),
            "event:TICKET_UPDATED:replay:ticket-email"
        );
        assert_eq!(replay_signal("event"), "event:replay-requests");
        assert_eq!(id_millis("1700000000000-3"), 1_700_000_000_000);
        assert_eq!(id_millis("garbage"), 0);
    }
}
