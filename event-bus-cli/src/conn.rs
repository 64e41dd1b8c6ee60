//! Connecting to Redis, and the URL as messages show it: never with its password.

use std::fmt;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use crate::error::{CliError, Result};

/// The URL used when neither `--url` nor `REDIS_URL` gives one.
pub(crate) const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// How long connecting may take, and a plain command's reply.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis URL that displays without its password (`redis://user:***@host:6379`), and scrubs
/// the password from other text.
#[derive(Clone)]
pub(crate) struct Redacted {
    shown: String,
    secret: Option<String>,
}

impl Redacted {
    pub(crate) fn new(url: &str) -> Self {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Self {
                shown: url.to_owned(),
                secret: None,
            };
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let Some((userinfo, host)) = authority.rsplit_once('@') else {
            return Self {
                shown: url.to_owned(),
                secret: None,
            };
        };
        let (shown_user, secret) = match userinfo.split_once(':') {
            Some((user, password)) => (format!("{user}:***"), password),
            // `redis://secret@host`: the one part may be a password.
            None => ("***".to_owned(), userinfo),
        };
        Self {
            shown: format!("{scheme}://{shown_user}@{host}{tail}"),
            secret: (!secret.is_empty()).then(|| secret.to_owned()),
        }
    }

    /// `text` with every occurrence of the password replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(secret) => text.replace(secret.as_str(), "***"),
            None => text.to_owned(),
        }
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown)
    }
}

/// A connection to the Redis at `url`, checked with a `PING`. `response_timeout` bounds each
/// reply (a blocking read needs more than its `BLOCK`).
pub(crate) async fn connect(
    url: &str,
    response_timeout: Duration,
) -> Result<(Client, MultiplexedConnection)> {
    let redacted = Redacted::new(url);
    let client = Client::open(url).map_err(|e| CliError::BadUrl {
        url: redacted.clone(),
        cause: redacted.scrub(&e.to_string()),
    })?;
    let conn = open(&client, &redacted, response_timeout).await?;
    Ok((client, conn))
}

/// Another connection of `client` (for a blocking read).
pub(crate) async fn open(
    client: &Client,
    url: &Redacted,
    response_timeout: Duration,
) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(response_timeout));
    let connect_error = |e: redis::RedisError| CliError::Connect {
        url: url.clone(),
        cause: url.scrub(&describe(&e)),
    };
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(connect_error)?;
    redis::cmd("PING")
        .query_async::<()>(&mut conn)
        .await
        .map_err(connect_error)?;
    Ok(conn)
}

/// A connection error in the words an operator looks for.
fn describe(e: &redis::RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_timeout() {
        format!("no answer within {} s ({e})", TIMEOUT.as_secs())
    } else if e.code() == Some("NOAUTH") || e.code() == Some("WRONGPASS") {
        format!("{e}: give the user and password in the URL, redis://user:password@host:port")
    } else {
        e.to_string()
    }
}

/// The default timeout of a plain command's reply.
pub(crate) fn command_timeout() -> Duration {
    TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        let r = Redacted::new("redis://ops:s3cret@redis.internal:6380/2");
        assert_eq!(r.to_string(), "redis://ops:***@redis.internal:6380/2");
        assert_eq!(r.scrub("auth s3cret failed"), "auth *** failed");
        let r = Redacted::new("rediss://:s3cret@h");
        assert_eq!(r.to_string(), "rediss://:***@h");
        let r = Redacted::new("redis://s3cret@h:1");
        assert_eq!(r.to_string(), "redis://***@h:1");
        let r = Redacted::new("redis://127.0.0.1:6379");
        assert_eq!(r.to_string(), "redis://127.0.0.1:6379");
        assert_eq!(r.scrub("x"), "x");
    }
}
