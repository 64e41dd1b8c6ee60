//! What can go wrong, each error saying what to do about it.

use crate::conn::Redacted;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Redis could not be reached.
    #[error("cannot connect to {url}: {cause} — is Redis running there? set --url or REDIS_URL")]
    Connect { url: Redacted, cause: String },
    /// The URL is not a Redis URL.
    #[error("{url} is not a Redis URL ({cause}): write it as redis://[user:password@]host[:port][/db] or rediss://... for TLS")]
    BadUrl { url: Redacted, cause: String },
    /// A command failed.
    #[error("Redis failed while {what}: {cause}")]
    Redis { what: String, cause: String },
    /// The user asked for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),
    /// Some of the work was not done (replays not carried out in time, for instance).
    #[error("{0}")]
    Incomplete(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// A Redis failure while doing `what`, with the password scrubbed from its text.
    pub(crate) fn redis(what: impl Into<String>, url: &Redacted, e: &redis::RedisError) -> Self {
        Self::Redis {
            what: what.into(),
            cause: url.scrub(&e.to_string()),
        }
    }

    /// The process's exit code: 2 for usage mistakes, 1 otherwise.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::BadUrl { .. } => 2,
            _ => 1,
        }
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;
