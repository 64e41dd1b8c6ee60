//! [`Durability`]: what an acknowledged publish promises, and [`NotReplicated`], the error of
//! a publish whose entry the replicas did not confirm in time.
//!
//! Redis replicates asynchronously: a master acknowledges an `XADD` before any replica has it,
//! so a master that fails right after acknowledging can take the entry with it when a replica
//! replaces it. With [`Durability::Replicas`], each publish sends `WAIT numreplicas timeout`
//! after its `XADD`, on the same connection to the same master (one pipelined round trip), and
//! returns `Ok` only once that many replicas have the entry.

use std::time::Duration;

/// What an acknowledged publish (`publish` returned `Ok`) promises; see the README's "Redis
/// Cluster" section.
///
/// ```no_run
/// use std::time::Duration;
/// use event_bus_redis::{Durability, RedisBus};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = RedisBus::builder()
///     .cluster_nodes(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
///     .durability(Durability::replicas(1, Duration::from_millis(500)))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// The default: `Ok` once the master has the entry. An acknowledged publish survives a
    /// restart of that master only as its persistence allows, and can be lost when the master
    /// fails and a replica that had not received it yet takes over (a window of about the
    /// replication lag, usually well under a millisecond, but unbounded under load).
    #[default]
    Master,
    /// `Ok` once the master has the entry and at least `replicas` of its replicas
    /// acknowledged it (`WAIT replicas timeout`, waiting at most `timeout`); otherwise the
    /// publish fails with [`NotReplicated`] (as the source of
    /// `event_bus_core::PublishError::Transport`), although the master has the entry. An
    /// acknowledged publish survives the failure of the master, or of any `replicas` nodes
    /// holding it, as long as one replica that has it is promoted (Redis Cluster promotes the
    /// most up-to-date replica). It does not survive every node that had it failing, nor an
    /// operator forcing a failover to a replica that lacks it (`CLUSTER FAILOVER TAKEOVER`).
    Replicas {
        /// How many replicas must acknowledge the entry (at least 1).
        replicas: u32,
        /// How long to wait for them (`WAIT`'s timeout; at least 1 ms).
        timeout: Duration,
    },
}

impl Durability {
    /// [`Durability::Replicas`]: wait for `replicas` replicas (at least 1), up to `timeout`
    /// (at least 1 ms).
    pub fn replicas(replicas: u32, timeout: Duration) -> Self {
        Self::Replicas {
            replicas: replicas.max(1),
            timeout: timeout.max(Duration::from_millis(1)),
        }
    }
}

/// A publish with [`Durability::Replicas`] whose entry fewer replicas acknowledged than asked
/// within the timeout. The entry *was* written on the master: it is delivered unless the master
/// fails before a replica has it, so publishing it again may deliver it twice.
///
/// Reaches the caller as the source of `event_bus_core::PublishError::Transport`:
///
/// ```
/// use event_bus_core::PublishError;
/// use event_bus_redis::NotReplicated;
///
/// fn short_of_replicas(e: &PublishError) -> Option<&NotReplicated> {
///     match e {
///         PublishError::Transport { source, .. } => source.downcast_ref::<NotReplicated>(),
///         _ => None,
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "entry {entry_id} of {stream} is on its master, but {acknowledged} of the {wanted} replicas \
     asked for acknowledged it within {timeout:?}: it is lost if the master fails before a replica has it"
)]
#[non_exhaustive]
pub struct NotReplicated {
    /// The stream written.
    pub stream: String,
    /// The entry's id.
    pub entry_id: String,
    /// How many replicas acknowledged it (`WAIT`'s reply).
    pub acknowledged: u32,
    /// How many were asked for.
    pub wanted: u32,
    /// How long the publish waited.
    pub timeout: Duration,
}
