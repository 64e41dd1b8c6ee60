//! Connections: the shared multiplexed [`ConnectionManager`] for ordinary commands (publishes
//! pipeline over it), and a dedicated connection per blocking reader whose client-side timeout
//! exceeds its `BLOCK`, rebuilt with capped exponential backoff after any error.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, RedisResult, Value};

/// The manager for ordinary commands: reconnects by itself after Redis restarts.
pub(crate) async fn manager(
    client: &Client,
    response_timeout: Duration,
) -> RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(response_timeout))
        // Few, short reconnection attempts per request: while Redis is down, a publish fails
        // fast and says so, instead of hanging for seconds; the next request tries again.
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client.clone(), config).await
}

/// Capped exponential backoff for reconnecting.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max,
        }
    }

    /// The next delay (jittered down to half at most), doubling up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d / 2 + d.mul_f64(fastrand::f64()) / 2
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// A connection of its own for one blocking reader.
pub(crate) struct BlockingConnection {
    client: Client,
    config: AsyncConnectionConfig,
    conn: Option<MultiplexedConnection>,
}

impl std::fmt::Debug for BlockingConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingConnection")
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl BlockingConnection {
    /// `block` is the longest `BLOCK` sent on it; its response timeout is `block + margin`.
    pub(crate) fn new(client: Client, block: Duration, margin: Duration) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(block + margin))
            .set_connection_timeout(Some(margin));
        Self {
            client,
            config,
            conn: None,
        }
    }

    /// Sends `cmd`, connecting first if needed. After an error the connection is dropped, so
    /// the next call builds a fresh one.
    pub(crate) async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let fresh = self.conn.is_none();
        let result = match self.connection().await {
            Ok(conn) => {
                let result = cmd.query_async::<Value>(conn).await;
                self.check(result)
            }
            Err(e) => Err(e),
        };
        match result {
            // A fresh connection that breaks at once may have been refused: say so.
            Err(e) if fresh && !is_server_reply(&e) => {
                Err(refusal(&self.client).await.unwrap_or(e))
            }
            other => other,
        }
    }

    /// Sends a pipeline (built with `ignore_errors`), connecting first if needed; each
    /// command's reply is its own result. An error of the round trip itself is the error.
    pub(crate) async fn query_pipeline(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let conn = self.connection().await?;
        let result = pipe.query_async::<Vec<RedisResult<Value>>>(conn).await;
        self.check(result)
    }

    /// Sends `first` and `then` together (`then` may block: `first` is queued before it) and
    /// hands `first`'s reply to `on_first` as soon as it arrives, while `then` may still be
    /// blocking; returns `then`'s reply.
    pub(crate) async fn query_after(
        &mut self,
        first: Cmd,
        then: Cmd,
        on_first: impl FnOnce(RedisResult<Value>),
    ) -> RedisResult<Value> {
        let conn = match self.connection().await {
            Ok(conn) => conn,
            Err(e) => {
                on_first(Err(e.clone()));
                return Err(e);
            }
        };
        let mut first_conn = conn.clone();
        let first = async move {
            let reply = first.query_async::<Value>(&mut first_conn).await;
            on_first(reply);
        };
        let (_, result) = tokio::join!(first, then.query_async::<Value>(conn));
        self.check(result)
    }

    /// Connects now (if not connected) and checks that Redis serves the connection with a
    /// `PING`: a server at its `maxclients` accepts the socket, then refuses it.
    pub(crate) async fn connect(&mut self) -> RedisResult<()> {
        self.query(&redis::cmd("PING")).await.map(|_| ())
    }

    async fn connection(&mut self) -> RedisResult<&mut MultiplexedConnection> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                self.client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?
            }
        };
        Ok(self.conn.insert(conn))
    }

    /// Drops the connection after an error that was not the server's reply.
    fn check<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            if !is_server_reply(e) {
                self.conn = None;
            }
        }
        result
    }
}

/// Whether the error is a reply from the server (the connection itself is fine).
pub(crate) fn is_server_reply(e: &redis::RedisError) -> bool {
    !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal())
        && e.code().is_some()
}

/// Whether the error is `NOGROUP` (the stream or the group is gone).
pub(crate) fn is_nogroup(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

/// Whether the error is `BUSYGROUP` (the group exists already).
pub(crate) fn is_busygroup(e: &redis::RedisError) -> bool {
    e.code() == Some("BUSYGROUP")
}

/// Whether the error says the key does not exist (`XINFO` on a missing stream).
pub(crate) fn is_no_such_key(e: &redis::RedisError) -> bool {
    e.to_string().contains("no such key")
}

/// Why a fresh connection broke, when Redis said why: a server at its `maxclients` writes
/// `-ERR max number of clients reached` and closes the socket, which the client then sees as a
/// broken pipe. A raw connection reads that line.
async fn refusal(client: &Client) -> Option<redis::RedisError> {
    use tokio::io::AsyncReadExt;

    let redis::ConnectionAddr::Tcp(host, port) = client.get_connection_info().addr() else {
        return None;
    };
    let read = async {
        let mut socket = tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .ok()?;
        let mut buf = [0u8; 128];
        let n = socket.read(&mut buf).await.ok()?;
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        line.contains("max number of clients reached").then(|| {
            redis::RedisError::from((
                redis::ErrorKind::Io,
                "max number of clients reached",
                line.trim().to_owned(),
            ))
        })
    };
    tokio::time::timeout(Duration::from_millis(500), read)
        .await
        .ok()
        .flatten()
}

/// Whether Redis refused a connection because it serves `maxclients` already.
pub(crate) fn is_max_clients(e: &redis::RedisError) -> bool {
    e.to_string().contains("max number of clients reached")
}

/// An error as a log line, a health report or a start error names it: a refused connection is
/// said to be one, and errors of access (authentication, ACL permissions, TLS trust) say what
/// to check.
pub(crate) fn describe(e: &redis::RedisError) -> String {
    if is_max_clients(e) {
        return format!(
            "Redis refused the connection: max number of clients reached (its `maxclients`): \
             raise `maxclients`, or run fewer connections per process ({e})"
        );
    }
    match access_hint(e) {
        Some(hint) => format!("{e} ({hint})"),
        None => e.to_string(),
    }
}

/// What to check after an error of access.
fn access_hint(e: &redis::RedisError) -> Option<&'static str> {
    let text = e.to_string();
    if e.code() == Some("NOPERM") || text.contains("NOPERM") {
        Some(
            "NOPERM: the Redis ACL user lacks a permission the bus needs: \
             see the ACL rules in the README's \"TLS, credentials and ACLs\"",
        )
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
    {
        Some(
            "Redis refused the credentials: check the user name and password \
             (the URL's `user:password@`, or the builder's `credentials`/`password`)",
        )
    } else if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") {
        Some(
            "the server's TLS certificate is not trusted: give its CA with the builder's \
             `tls_root_certificates`, and check that it names the host of the URL",
        )
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        Some(
            "the server requires a client certificate (`tls-auth-clients`): give one with \
             the builder's `tls_client_certificate`",
        )
    } else {
        None
    }
}
