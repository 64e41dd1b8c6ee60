//! The command line: what `event-bus --help` says.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

const ROOT_AFTER_HELP: &str = "\
Examples:
  event-bus status                                  streams, groups, lag, pending, consumers
  event-bus --url redis://redis.internal:6379 --prefix alga-psa:event-stream status --json
  event-bus dead-letters list --subscriber ticket-email
  event-bus dead-letters show 1732665600123-0
  event-bus dead-letters replay --id 1732665600123-0 --wait
  event-bus dead-letters purge --subscriber ticket-email --yes
  event-bus tail TICKET_UPDATED

It reads and writes Redis only: no events crate is linked, and nothing else needs to run.
A replay is carried out by the running consumers of the failing subscriber's group (and by no
other subscriber); the command only writes a durable request to Redis and may exit at once.";

/// Operate an event-bus deployment from its Redis: status, dead letters, tail.
#[derive(Debug, Parser)]
#[command(name = "event-bus", version, after_help = ROOT_AFTER_HELP)]
pub(crate) struct Cli {
    /// The Redis to operate on [default: redis://127.0.0.1:6379].
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub(crate) url: Option<String>,

    /// The key prefix the bus uses (`RedisBus::builder().prefix(...)`); the seed's is
    /// `alga-psa:event-stream`.
    #[arg(long, global = true, default_value = event_bus_redis::admin::DEFAULT_PREFIX)]
    pub(crate) prefix: String,

    /// Print JSON instead of tables (one document; `tail` prints one JSON object per line).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Streams, consumer groups (lag, pending, consumers and their idle time), dead letters,
    /// queued replays, and orphaned groups.
    #[command(after_help = "\
A group is orphaned when none of its consumers has been seen for --orphan-after (or it has no
consumer at all): no running process serves it, and its lag grows unhandled. A running bus
touches its consumer at least every claim_interval (5 s by default), so a live group is never
orphaned. Either start the service that runs it or, if it is the old name of a renamed
subscriber, delete it once drained: XGROUP DESTROY <stream> <group>.

Examples:
  event-bus status
  event-bus status --json | jq '.groups[] | select(.orphaned)'")]
    Status(StatusArgs),

    /// Dead letters: list, show, replay, purge.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),

    /// Follow a stream: print its entries as they are added (Ctrl-C to stop).
    #[command(after_help = "\
STREAM is a stream key (event:TICKET_UPDATED) or an event type (TICKET_UPDATED): an event
type follows every stream of that type under the prefix (one per channel with the per-channel
layout).

Examples:
  event-bus tail TICKET_UPDATED
  event-bus tail event:TICKET_UPDATED --from 0 --count 10
  event-bus --json tail TICKET_UPDATED | jq .event.payload")]
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// A group none of whose consumers was seen for this long is reported orphaned
    /// (e.g. `90s`, `5m`, `1h`).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub(crate) orphan_after: Duration,
}

/// Which dead letters: every condition given must hold.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct Filter {
    /// Only letters of this stream: a stream key (`event:TICKET_UPDATED`) or an event type
    /// (`TICKET_UPDATED`). Repeat for several.
    #[arg(long = "stream", value_name = "STREAM|TYPE")]
    pub(crate) streams: Vec<String>,
    /// Only letters of this subscriber (its consumer group). Repeat for several.
    #[arg(long = "subscriber", value_name = "NAME")]
    pub(crate) subscribers: Vec<String>,
    /// Only the letter with this id. Repeat for several.
    #[arg(long = "id", value_name = "ID")]
    pub(crate) ids: Vec<String>,
    /// Only foreign letters (written by the seed system, without subscriber or error).
    #[arg(long, conflicts_with_all = ["ours", "any_origin"])]
    pub(crate) foreign: bool,
    /// Only our letters (written by this runtime; they name their subscriber).
    #[arg(long, conflicts_with = "any_origin")]
    pub(crate) ours: bool,
    /// Ours and foreign alike.
    #[arg(long = "any-origin")]
    pub(crate) any_origin: bool,
}

impl Filter {
    /// Whether a condition narrows the selection (not counting the origin).
    pub(crate) fn narrows(&self) -> bool {
        !(self.streams.is_empty() && self.subscribers.is_empty() && self.ids.is_empty())
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLetterCommand {
    /// List dead letters, ours and foreign (the seed's), oldest first.
    #[command(after_help = "\
Examples:
  event-bus dead-letters list
  event-bus dead-letters list --stream TICKET_UPDATED --subscriber ticket-email
  event-bus dead-letters list --foreign")]
    List {
        #[command(flatten)]
        filter: Filter,
    },

    /// Show one dead letter in full, its event pretty-printed.
    #[command(after_help = "\
Example:
  event-bus dead-letters show 1732665600123-0")]
    Show {
        /// The dead letter's id (from `dead-letters list`).
        id: String,
        /// Look in this stream only (a stream key or an event type).
        #[arg(long, value_name = "STREAM|TYPE")]
        stream: Option<String>,
    },

    /// Ask the failing subscriber's running consumers to replay dead letters.
    #[command(after_help = "\
The command writes one request per letter to {stream}:replay:{subscriber} and exits. The
subscriber's running consumers (wherever they run, and no other subscriber) pick it up within
about 1.5 maintenance rounds (claim_interval, 5 s by default), run the handler through the usual
decoding, validation and retries, and delete the dead letter once the handler succeeded; if it
fails again, a new dead letter replaces it. A request written while no consumer runs is carried
out when one starts. Foreign letters (the seed's) are never replayed here.

Examples:
  event-bus dead-letters replay --id 1732665600123-0
  event-bus dead-letters replay --subscriber ticket-email --wait --timeout 2m
  event-bus dead-letters replay --all --yes")]
    Replay {
        #[command(flatten)]
        filter: Filter,
        /// Every letter the other options select (required when none narrows the selection).
        #[arg(long)]
        all: bool,
        /// Confirm a replay of every dead letter (with --all and no other filter).
        #[arg(long)]
        yes: bool,
        /// Wait until each letter is gone (replayed) or replaced (failed again).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits (e.g. `30s`, `2m`).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },

    /// Delete dead letters (ours only, unless --foreign or --any-origin says otherwise).
    #[command(after_help = "\
Examples:
  event-bus dead-letters purge --id 1732665600123-0
  event-bus dead-letters purge --subscriber ticket-email
  event-bus dead-letters purge --foreign --stream TICKET_UPDATED
  event-bus dead-letters purge --all --yes")]
    Purge {
        #[command(flatten)]
        filter: Filter,
        /// Every letter the other options select (required when none narrows the selection).
        #[arg(long)]
        all: bool,
        /// Confirm a purge with --all and no other filter.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// A stream key (`event:TICKET_UPDATED`) or an event type (`TICKET_UPDATED`).
    #[arg(value_name = "STREAM|TYPE")]
    pub(crate) stream: String,
    /// Start after this entry id (`0` for the whole stream), or `$` for new entries only.
    #[arg(long, default_value = "$")]
    pub(crate) from: String,
    /// Exit after printing this many entries.
    #[arg(long)]
    pub(crate) count: Option<u64>,
}

/// `500ms`, `30s`, `5m`, `2h`, or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write e.g. 500ms, 30s, 5m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
