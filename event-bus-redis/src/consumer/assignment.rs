//! Partition assignment: which consumer of a subscriber's group reads each partition of a
//! partitioned event type, so that each tenant's events (all on one partition) are handled in
//! order even with competing consumers in several processes.
//!
//! Each partition is read by one consumer of the group at a time, its owner. A process running
//! the subscriber keeps a heartbeat in the group's member set (`{first partition}:members:{group}`,
//! a sorted set scored with Redis's clock, members older than the lease dropped); the live
//! members, sorted by name, split the partitions round-robin (partition `p` goes to the member
//! at `p mod live`). A consumer takes a partition assigned to it with a lease on
//! `{partition}:owner:{group}` (set only when free, renewed every round, lasting `claim_idle`),
//! first claims every entry left pending in the partition (by an owner that died), then
//! reads. A partition no longer assigned to it (a process joined) is not read any more; once
//! what it read is handled and acknowledged, the lease is released and the new owner takes
//! over. So the partitions are shared among the processes, and a dead process's partitions are
//! taken over once its lease ran out. Every command touches one key.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::connection::Conn;
use redis::{RedisResult, Script};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::reader::sleep_unless_stopped;
use super::{claims, Member};
use crate::keys::{members_key, owner_key};

/// Records the caller's heartbeat, drops members older than the lease, returns the live ones.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
redis.call('PEXPIRE', KEYS[1], lease * 2)
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// Takes the lease when it is free or already the caller's.
const ACQUIRE: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Extends the lease if it is still the caller's.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Drops the lease if it is still the caller's.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Where this process stands on one partition.
#[derive(Debug, Clone, Copy)]
enum Standing {
    /// Another consumer's (or nobody's).
    NotOwned,
    /// Owned and read here; the lease was last renewed then.
    Owned(Instant),
    /// Owned, no longer read here (assigned to another consumer): released once what was read
    /// is handled and acknowledged.
    Releasing(Instant),
}

/// The assignment of one subscriber's partitions in this process.
pub(crate) struct Assigner {
    /// The subscriber's consumer of each partition, in partition order.
    partitions: Vec<Member>,
    standing: Vec<Standing>,
    owner_keys: Vec<String>,
    members_key: String,
    consumer: String,
    conn: Conn,
    lease: Duration,
    batch: usize,
}

impl Assigner {
    /// The assignment of the partitions read by `partitions` (one consumer each, in partition
    /// order, of one group); leases last `lease`.
    pub(crate) fn new(partitions: Vec<Member>, lease: Duration, batch: usize) -> Option<Self> {
        let first = partitions.first()?;
        let (group, consumer, conn) = (
            first.shared.group.clone(),
            first.shared.consumer.clone(),
            first.shared.conn.clone(),
        );
        Some(Self {
            members_key: members_key(&first.shared.stream, &group),
            owner_keys: partitions
                .iter()
                .map(|m| owner_key(&m.shared.stream, &group))
                .collect(),
            standing: vec![Standing::NotOwned; partitions.len()],
            partitions,
            consumer,
            conn,
            lease: lease.max(Duration::from_millis(100)),
            batch,
        })
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// One round: heartbeat, then take, keep or hand over each partition.
    pub(crate) async fn round(&mut self, stop: &CancellationToken) -> RedisResult<()> {
        let lease_ms = self.lease_ms();
        let mut live: Vec<String> = Script::new(HEARTBEAT)
            .key(&self.members_key)
            .arg(&self.consumer)
            .arg(lease_ms)
            .invoke_async(&mut self.conn)
            .await?;
        live.sort();
        let me = live.iter().position(|c| *c == self.consumer).unwrap_or(0);
        let count = live.len().max(1);
        for p in 0..self.partitions.len() {
            let assigned = p % count == me;
            if let Err(e) = self.settle(p, assigned, stop).await {
                tracing::warn!(stream = %self.partitions[p].shared.stream,
                    group = %self.partitions[p].shared.group, error = %e,
                    "partition assignment failed; trying again next round");
                self.expire_if_stale(p);
            }
        }
        Ok(())
    }

    /// Takes, keeps or hands over partition `p`.
    async fn settle(
        &mut self,
        p: usize,
        assigned: bool,
        stop: &CancellationToken,
    ) -> RedisResult<()> {
        let now = Instant::now();
        match (self.standing[p], assigned) {
            (Standing::NotOwned, false) => {}
            (Standing::NotOwned, true) => {
                // Taken only once what this consumer read of it before (a lease lost while it
                // was being handled) is done: the claim below takes every pending entry.
                let shared = &self.partitions[p].shared;
                let drained = !shared.reading.load(Ordering::SeqCst)
                    && self.partitions[p].pool.held() == 0
                    && shared.acks.settled();
                if drained && self.lease_script(ACQUIRE, p).await? {
                    let member = &self.partitions[p];
                    // What an owner that died left pending is handled first, in order.
                    claims::claim_stale(
                        &member.shared,
                        &member.pool,
                        Duration::ZERO,
                        self.batch,
                        stop,
                    )
                    .await?;
                    member.shared.owned.store(true, Ordering::Release);
                    self.standing[p] = Standing::Owned(now);
                    tracing::info!(stream = %member.shared.stream, group = %member.shared.group,
                        consumer = %self.consumer, "took over the partition");
                }
            }
            (Standing::Owned(_) | Standing::Releasing(_), _) => {
                let shared = std::sync::Arc::clone(&self.partitions[p].shared);
                if !assigned {
                    shared.owned.store(false, Ordering::SeqCst);
                    // Acknowledgements waiting for the next read go out now: there is none.
                    shared.acks.flush_soon();
                }
                // `owned` is cleared before `reading` is looked at (see `begin_read`).
                let drained = !shared.reading.load(Ordering::SeqCst)
                    && self.partitions[p].pool.held() == 0
                    && shared.acks.settled();
                if !assigned && drained {
                    self.lease_script(RELEASE, p).await?;
                    self.standing[p] = Standing::NotOwned;
                    tracing::info!(stream = %shared.stream, group = %shared.group,
                        consumer = %self.consumer, "handed the partition over");
                } else if self.lease_script(RENEW, p).await? {
                    shared.owned.store(assigned, Ordering::SeqCst);
                    self.standing[p] = if assigned {
                        Standing::Owned(now)
                    } else {
                        Standing::Releasing(now)
                    };
                } else {
                    shared.owned.store(false, Ordering::SeqCst);
                    self.standing[p] = Standing::NotOwned;
                    tracing::warn!(stream = %shared.stream, group = %shared.group,
                        consumer = %self.consumer,
                        "lost the partition's lease (it ran out); another consumer may own it now");
                }
            }
        }
        Ok(())
    }

    /// After a failed round: a lease not renewed for its whole length may be another
    /// consumer's now, so the partition is not read here any more.
    fn expire_if_stale(&mut self, p: usize) {
        if let Standing::Owned(renewed) | Standing::Releasing(renewed) = self.standing[p] {
            if renewed.elapsed() >= self.lease {
                self.partitions[p]
                    .shared
                    .owned
                    .store(false, Ordering::Release);
                self.standing[p] = Standing::NotOwned;
            }
        }
    }

    async fn lease_script(&mut self, script: &str, p: usize) -> RedisResult<bool> {
        let lease_ms = self.lease_ms();
        let done: i64 = Script::new(script)
            .key(&self.owner_keys[p])
            .arg(&self.consumer)
            .arg(lease_ms)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(done == 1)
    }

    /// Runs a round every `every` until `stop`; then leaves the member set, and returns
    /// itself for [`Assigner::release_all`] once the consumers are drained.
    pub(crate) async fn run(mut self, every: Duration, stop: CancellationToken) -> Self {
        loop {
            sleep_unless_stopped(every, &stop).await;
            if stop.is_cancelled() {
                break;
            }
            if let Err(e) = self.round(&stop).await {
                tracing::warn!(key = %self.members_key, error = %e,
                    "partition assignment heartbeat failed; trying again next round");
                for p in 0..self.partitions.len() {
                    self.expire_if_stale(p);
                }
            }
        }
        let removed: RedisResult<i64> = redis::cmd("ZREM")
            .arg(&self.members_key)
            .arg(&self.consumer)
            .query_async(&mut self.conn)
            .await;
        if let Err(e) = removed {
            tracing::debug!(key = %self.members_key, error = %e, "could not leave the member set");
        }
        self
    }

    /// Releases every partition this process still owns (at shutdown, after its consumers
    /// handled and acknowledged what they read), so another consumer takes them at once.
    pub(crate) async fn release_all(&mut self) {
        for p in 0..self.partitions.len() {
            self.partitions[p]
                .shared
                .owned
                .store(false, Ordering::Release);
            if matches!(self.standing[p], Standing::NotOwned) {
                continue;
            }
            if let Err(e) = self.lease_script(RELEASE, p).await {
                tracing::debug!(key = %self.owner_keys[p], error = %e,
                    "could not release the partition; it is free once its lease runs out");
            }
            self.standing[p] = Standing::NotOwned;
        }
    }
}

impl std::fmt::Debug for Assigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assigner")
            .field("members_key", &self.members_key)
            .field("consumer", &self.consumer)
            .field("standing", &self.standing)
            .finish_non_exhaustive()
    }
}
