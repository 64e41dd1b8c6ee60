//! Batch publishing ([`Bus::publish_all`](event_bus_core::Bus::publish_all) on Redis): the
//! whole batch is checked before any I/O, then its `XADD`s are planned (one per stream an event
//! goes to, plus the workflow stream's), grouped into pipelines by [`pipelines`], sent
//! concurrently over the multiplexed connection, and folded back into one result per event.
//!
//! Every write goes in one pipeline in batch order (cut at [`MAX_PIPELINE`] commands). On a
//! Redis Cluster the connection splits each pipeline into one part per slot, keeping the order
//! within each, and sends every part to the master owning its slot at once (`crate::cluster`):
//! the parts for one master share its multiplexed connection, and the batch waits about one
//! round trip.

use std::sync::Arc;

use event_bus_core::transport::{check_batch, BatchResults, EncodedEvent};
use event_bus_core::{BoxError, PublishError, Published, DEFAULT_CHANNEL};
use redis::{RedisError, Value};
use tracing::Instrument;

use super::{workflow_command, xadd_command, BusInner, BUILDING, CLOSED};
use crate::durability::Durability;
use crate::reply;

/// The most commands sent in one pipeline; a larger batch is cut into several, sent
/// concurrently. Large enough that a batch of 1,000 events is one round trip, small enough
/// that one reply stays well within the response timeout.
pub(crate) const MAX_PIPELINE: usize = 1024;

/// One `XADD` of a batch.
struct Write {
    /// The event (its index in the batch).
    event: usize,
    /// The entry's channel; `None` for the workflow stream's entry.
    channel: Option<String>,
    /// The key written (shared by the writes to one stream).
    stream: Arc<str>,
    /// The `XADD` (taken when its pipeline is built).
    command: Option<redis::Cmd>,
}

/// The writes grouped into pipelines, as indexes into `writes`, in order within each. On one
/// node: one pipeline (cut at [`MAX_PIPELINE`]) in batch order, so that the entries of one
/// stream are appended in the order of the batch.
fn pipelines(writes: &[Write]) -> Vec<Vec<usize>> {
    let all: Vec<usize> = (0..writes.len()).collect();
    all.chunks(MAX_PIPELINE).map(<[usize]>::to_vec).collect()
}

impl BusInner {
    /// Checks `events` ([`check_batch`]), writes them, and reports one result per event.
    pub(super) async fn write_all(&self, events: Vec<EncodedEvent>) -> BatchResults {
        let events = match check_batch(events.into_iter().map(Ok).collect()) {
            Ok(events) => events,
            Err(results) => return results,
        };
        if events.is_empty() {
            return Vec::new();
        }
        // With replica waits, each event is published on its own (its `XADD` and `WAIT` in one
        // round trip, all concurrently, queued in batch order): a batch's `Ok` promises what a
        // publish's does.
        if matches!(self.config.durability, Durability::Replicas { .. }) {
            return futures_util::future::join_all(events.into_iter().map(|e| self.write(e))).await;
        }
        let mut failed: Vec<Option<PublishError>> = events.iter().map(|_| None).collect();
        match self.phase.load(std::sync::atomic::Ordering::Acquire) {
            CLOSED => return events.iter().map(|_| Err(PublishError::Closed)).collect(),
            BUILDING => {
                let mut types: Vec<&'static str> = events.iter().map(|e| e.event_type).collect();
                types.sort_unstable();
                types.dedup();
                for event_type in types {
                    if let Err(e) = self.ensure_groups_before_start(event_type).await {
                        let message = e.to_string();
                        for (i, event) in events.iter().enumerate() {
                            if event.event_type == event_type {
                                failed[i] = Some(PublishError::Transport {
                                    event_type,
                                    source: message.clone().into(),
                                });
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        let span = tracing::info_span!("publish_all", bus = "redis", events = events.len());
        async {
            let mut writes = self.plan(&events, &mut failed);
            let replies = self.send(&mut writes).await;
            let mut entries: Vec<Vec<(String, String)>> =
                events.iter().map(|_| Vec::new()).collect();
            // Entries written per stream, counted once per stream (not per entry).
            let mut per_stream: Vec<(&'static str, Arc<str>, u64)> = Vec::new();
            for (write, reply) in writes.into_iter().zip(replies) {
                let event = &events[write.event];
                match reply {
                    Ok(id) => match write.channel {
                        Some(channel) => {
                            match per_stream.iter_mut().find(|(_, s, _)| {
                                Arc::ptr_eq(s, &write.stream) || *s == write.stream
                            }) {
                                Some((_, _, n)) => *n += 1,
                                None => per_stream.push((event.event_type, write.stream, 1)),
                            }
                            entries[write.event].push((channel, id));
                        }
                        None => tracing::debug!(workflow_entry = %id, event_id = %event.event_id,
                            "written to the workflow stream"),
                    },
                    Err(source) => {
                        if failed[write.event].is_none() {
                            failed[write.event] = Some(PublishError::Transport {
                                event_type: event.event_type,
                                source,
                            });
                        }
                    }
                }
            }
            for (event_type, stream, n) in per_stream {
                self.publishes
                    .get(event_type, &stream, || stream.to_string())
                    .record_n(n);
            }
            let mut written = 0;
            let results: BatchResults = events
                .iter()
                .zip(failed)
                .zip(entries)
                .map(|((event, failed), entries)| match failed {
                    Some(e) => Err(e),
                    None => {
                        written += 1;
                        Ok(Published::of(event.event_id, entries))
                    }
                })
                .collect();
            self.published
                .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(
                written,
                failed = results.len() as u64 - written,
                "published a batch"
            );
            results
        }
        .instrument(span)
        .await
    }

    /// The `XADD`s of the events not failed already, in batch order: each event's streams (one
    /// per distinct stream of its channels), then its workflow entry. An event whose workflow
    /// entry cannot be built is failed (its stream entries are still written, as a single
    /// publish does).
    fn plan(&self, events: &[EncodedEvent], failed: &mut [Option<PublishError>]) -> Vec<Write> {
        let options = &self.config.common;
        let mut writes = Vec::with_capacity(events.len());
        // The last key built, reused while the events go to the same stream (one type on one
        // channel, unpartitioned: the common batch).
        let mut last: Option<(&'static str, String, Arc<str>)> = None;
        for (i, event) in events.iter().enumerate() {
            if failed[i].is_some() {
                continue;
            }
            let channels = event.channels.names();
            for channel in options.layout.distinct_streams(&channels) {
                let reusable = last.as_ref().filter(|(event_type, last_channel, _)| {
                    *event_type == event.event_type
                        && last_channel == channel
                        && !self.config.partitions.is_partitioned(event.event_type)
                });
                let stream: Arc<str> = match reusable {
                    Some((_, _, stream)) => Arc::clone(stream),
                    None => {
                        let stream: Arc<str> = Arc::from(self.entry_stream(channel, event));
                        last = Some((event.event_type, (*channel).to_owned(), Arc::clone(&stream)));
                        stream
                    }
                };
                writes.push(Write {
                    event: i,
                    channel: Some((*channel).to_owned()),
                    command: Some(xadd_command(&stream, channel, &event.json)),
                    stream,
                });
            }
            let workflow = self
                .config
                .workflow_stream
                .as_deref()
                .filter(|_| channels.contains(&DEFAULT_CHANNEL));
            if let Some(stream) = workflow {
                match workflow_command(stream, &event.json) {
                    Ok(command) => writes.push(Write {
                        event: i,
                        channel: None,
                        stream: Arc::from(stream),
                        command: Some(command),
                    }),
                    Err(source) => {
                        failed[i] = Some(PublishError::Transport {
                            event_type: event.event_type,
                            source,
                        });
                    }
                }
            }
        }
        writes
    }

    /// Sends the writes, a pipeline per group of [`pipelines`], all concurrently; the entry id
    /// or the error of each write, in the order of `writes`. A pipeline that fails as a whole
    /// (a dropped connection, a timeout) fails each of its writes with that error.
    async fn send(&self, writes: &mut [Write]) -> Vec<Result<String, BoxError>> {
        let groups = pipelines(writes);
        let pipes: Vec<redis::Pipeline> = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::Pipeline::with_capacity(group.len());
                pipe.ignore_errors();
                for &i in group {
                    if let Some(command) = writes[i].command.take() {
                        pipe.add_command(command);
                    }
                }
                pipe
            })
            .collect();
        let sent = pipes.into_iter().map(|pipe| {
            let mut conn = self.conn.clone();
            async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
        });
        let replies = futures_util::future::join_all(sent).await;
        let mut out: Vec<Option<Result<String, BoxError>>> = writes.iter().map(|_| None).collect();
        for (group, reply) in groups.iter().zip(replies) {
            match reply {
                Ok(values) if values.len() == group.len() => {
                    for (&i, value) in group.iter().zip(values) {
                        out[i] = Some(entry_id(value));
                    }
                }
                Ok(values) => {
                    let e = format!(
                        "the pipeline of {} XADDs got {} replies",
                        group.len(),
                        values.len()
                    );
                    for &i in group {
                        out[i] = Some(Err(e.clone().into()));
                    }
                }
                Err(e) => {
                    for &i in group {
                        out[i] = Some(Err(Box::new(e.clone())));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not sent".into())))
            .collect()
    }
}

/// The entry id an `XADD` replied, or its error.
fn entry_id(value: Value) -> Result<String, BoxError> {
    match value {
        Value::ServerError(e) => Err(Box::new(RedisError::from(e))),
        other => reply::string(other).ok_or_else(|| "XADD returned no entry id".into()),
    }
}
