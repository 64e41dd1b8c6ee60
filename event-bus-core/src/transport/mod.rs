//! The transport interface: what a bus implementation (the in-memory bus, `event-bus-redis`)
//! builds on. The dispatcher and the worker pool make every delivery, retry and dead-letter
//! decision; a transport reads entries, hands them over as [`Message`]s, and carries out the
//! outcomes its [`Sink`] is told.
//!
//! Application code does not need this module. It is public so that transports can live in
//! their own crates, and it may change in any minor release until 1.0: pin `event-bus-core`
//! and your transport to the same version.

mod builder;
pub mod dedupe;
mod message;
mod options;
mod pool;

pub use crate::context::Shared;
pub use crate::decode::decode;
pub use crate::dispatch::{prepare, Decision, Dispatcher, GiveUp, Prepared};
pub use crate::metrics::{
    describe as describe_metrics, sample_delay, Count, PublishTarget, PublishTargets,
};
pub use crate::publish::{
    check_batch, encode, encode_envelope, BatchResults, Channels, EncodedEvent,
};
pub use crate::registry::{Resolved, Selection};
pub use crate::stats::SubscriberCounters;
pub use builder::bus_builder_options;
pub use dedupe::{Claim, Dedupe, DedupeStore};
pub use message::{Message, Release};
pub use options::BusOptions;
pub use pool::{Sink, WorkerPool};
