//! Building blocks for bus implementations (the in-memory bus and `event-bus-redis`): the
//! dispatcher, the worker pool, the subscriber selection and the options every bus shares.
//!
//! Application code does not need this module.

mod options;
mod pool;

pub use crate::context::Shared;
pub use crate::dispatch::{decode, prepare, Decision, Dispatcher, Prepared};
pub use crate::registry::{Resolved, Selection};
pub use options::BusOptions;
pub use pool::{Message, Sink, WorkerPool};
