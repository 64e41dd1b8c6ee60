//! The Redis Streams runtime of event-bus.
//!
//! [`RedisBus`] implements `event_bus_core::Bus`, like `event_bus_core::MemoryBus`, and
//! delivers every event at least once to every subscriber linked into the binary:
//!
//! - each event type is a stream `{prefix}:{EVENT_TYPE}`; each entry holds the envelope JSON in
//!   its `event` field (and a `channel` field), as the seed system writes it;
//! - each subscriber is a consumer group; processes running the same subscriber share it
//!   (competing consumers), each under a unique consumer name;
//! - entries are acknowledged (in batches) only after their handler succeeded; failed handler
//!   runs are retried with backoff and recorded in Redis (`{stream}:runs:{group}`), so that
//!   `max_attempts` counts handler runs across crashes; then the entry is written to
//!   `{stream}:dead-letter` and acknowledged. The pending list's delivery count is only a
//!   crash-loop guard;
//! - a consumer keeps a lease on the entries it holds, however long their handlers run; entries
//!   left pending by a dead consumer are claimed with `XAUTOCLAIM`;
//! - blocking reads run on their own connections with a client-side timeout, and survive
//!   Redis restarts and lost streams (`NOGROUP`);
//! - every command touches a single key, so streams can live on different Redis Cluster
//!   shards: [`RedisBusBuilder::cluster_nodes`] runs the bus on a cluster, following failovers
//!   and resharding; [`Durability`] says what an acknowledged publish promises;
//! - every connection (publishes, readers, reconnects) is opened from one client: the same ACL
//!   credentials (in the URL or [`RedisBusBuilder::credentials`]) and, with the `tls` feature,
//!   the same TLS settings (`rediss://`, a private CA, a client certificate). Passwords and
//!   keys never appear in `Debug` output, errors or logs.
//!
//! - a dead letter can be replayed from another process (the `event-bus` ops CLI): a request
//!   in `{stream}:replay:{group}` that the group's running consumers carry out (see [`admin`],
//!   the wire as operations tools see it).
//!
//! See [`RedisBus`] for an example.
#![warn(missing_docs)]

pub mod admin;
mod bus;
mod cluster;
mod config;
mod connection;
mod consumer;
mod dead_letter;
mod dedupe;
mod durability;
mod groups;
mod keys;
mod partition;
mod reply;
mod retention;
mod runs;
mod sampling;
mod security;
mod workflow;

#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;

pub use bus::{RedisBus, RunningRedisBus};
pub use config::{RedisBusBuilder, Retention, SeedGeneration, SEED_PREFIX};
pub use durability::{Durability, NotReplicated};
pub use groups::ForeignGroup;
pub use security::redact_url;
pub use workflow::WORKFLOW_STREAM;
