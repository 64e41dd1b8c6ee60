//! The `event_bus_group_lag` and `event_bus_group_pending` gauges of the running subscribers:
//! one task per bus samples every stream they read with one `XINFO GROUPS` per stream per
//! `metrics_interval` (default 15 s), whatever the number of subscribers on it, the streams of
//! a round pipelined in round trips of up to [`PIPELINE`] commands. Rounds are jittered like
//! the consumers' maintenance (the first at a random point of the interval, later ones ±10 %),
//! so processes started together do not sample together. Idle, it costs Redis one command per
//! stream per interval.

use std::sync::Arc;
use std::time::Duration;

use crate::connection::Conn;
use event_bus_core::transport::{sample_delay, SubscriberCounters};
use redis::streams::StreamInfoGroupsReply;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use crate::connection::is_no_such_key;

/// Streams sampled per round trip.
const PIPELINE: usize = 64;

/// One stream and the groups of this process's subscribers on it.
#[derive(Debug)]
pub(crate) struct SampledStream {
    pub(crate) stream: String,
    pub(crate) groups: Vec<(String, Arc<SubscriberCounters>)>,
}

/// Groups `(stream, group, counters)` by stream, in their order.
pub(crate) fn by_stream<'a>(
    groups: impl IntoIterator<Item = (&'a str, &'a str, &'a Arc<SubscriberCounters>)>,
) -> Vec<SampledStream> {
    let mut out: Vec<SampledStream> = Vec::new();
    for (stream, group, counters) in groups {
        let entry = (group.to_owned(), Arc::clone(counters));
        match out.iter_mut().find(|s| s.stream == stream) {
            Some(s) => s.groups.push(entry),
            None => out.push(SampledStream {
                stream: stream.to_owned(),
                groups: vec![entry],
            }),
        }
    }
    out
}

/// Samples `streams` every `interval` until `stop`.
pub(crate) async fn sample_loop(
    mut conn: Conn,
    streams: Vec<SampledStream>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut first = true;
    loop {
        tokio::select! {
            () = tokio::time::sleep(sample_delay(interval, first)) => {}
            () = stop.cancelled() => return,
        }
        first = false;
        let mut sums = Sums::default();
        for chunk in streams.chunks(PIPELINE) {
            if let Err(e) = sample(&mut conn, chunk, &mut sums).await {
                tracing::warn!(error = %e, streams = chunk.len(),
                    "could not sample the consumer groups' lag and pending counts; trying again next round");
            }
        }
        sums.apply();
    }
}

/// One round trip: `XINFO GROUPS` of each stream, pipelined; sets the gauges of each group
/// found (a stream that does not exist has no groups to report).
/// The lag and pending counts of one round, summed per subscriber's counters: a subscriber of
/// a partitioned type has a group on each partition stream, and its gauges show the sum.
#[derive(Default)]
struct Sums {
    groups: Vec<(Arc<SubscriberCounters>, Option<u64>, u64)>,
}

impl Sums {
    fn add(&mut self, counters: &Arc<SubscriberCounters>, lag: Option<u64>, pending: u64) {
        match self
            .groups
            .iter_mut()
            .find(|(c, ..)| Arc::ptr_eq(c, counters))
        {
            Some((_, l, p)) => {
                *l = l.zip(lag).map(|(a, b)| a + b);
                *p += pending;
            }
            None => self.groups.push((Arc::clone(counters), lag, pending)),
        }
    }

    fn apply(self) {
        for (counters, lag, pending) in self.groups {
            counters.sample_group(lag, pending);
        }
    }
}

async fn sample(conn: &mut Conn, streams: &[SampledStream], sums: &mut Sums) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for s in streams {
        pipe.cmd("XINFO").arg("GROUPS").arg(&s.stream);
    }
    let replies: Vec<RedisResult<StreamInfoGroupsReply>> = pipe.query_async(conn).await?;
    for (s, reply) in streams.iter().zip(replies) {
        let info = match reply {
            Ok(info) => info,
            Err(e) if is_no_such_key(&e) => continue,
            Err(e) => {
                tracing::warn!(stream = %s.stream, error = %e,
                    "could not sample the stream's consumer groups");
                continue;
            }
        };
        for (group, counters) in &s.groups {
            if let Some(g) = info.groups.iter().find(|g| g.name == *group) {
                sums.add(counters, g.lag.map(|l| l as u64), g.pending as u64);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_sampled_once_per_stream() {
        let c = Arc::new(SubscriberCounters::default());
        let streams = by_stream([
            ("event:A", "a1", &c),
            ("event:B", "b1", &c),
            ("event:A", "a2", &c),
        ]);
        let names: Vec<(&str, Vec<&str>)> = streams
            .iter()
            .map(|s| {
                (
                    s.stream.as_str(),
                    s.groups.iter().map(|(g, _)| g.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![("event:A", vec!["a1", "a2"]), ("event:B", vec!["b1"])]
        );
    }
}
