//! Test support for the workspace-level tests: test buses of either kind ([`TestBus`],
//! [`TestTransport`], for scenarios written once against the `Bus` trait), a probe
//! event with subscribers whose behaviour each event controls, a recorder of every delivery,
//! a private `redis-server` for tests that kill, restart or freeze Redis or run it with TLS
//! and ACLs (certificates from [`tls`]), a TCP proxy that can black-hole a connection, the
//! helpers the Redis fault tests share ([`redis_helpers`]), and OpenTelemetry tracing into an
//! in-memory exporter ([`otel`]).

pub mod bus;
pub mod cluster;
pub mod otel;
pub mod probe;
pub mod proxy;
pub mod redis_helpers;
pub mod seed;
pub mod server;
pub mod tls;

pub use bus::{wait_dead_letters, BusKind, SharedRecorder, TestBus, TestTransport};
pub use probe::{Probe, Recorder};

/// The shared Redis of the machine (`EVENT_BUS_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
pub fn redis_url() -> String {
    std::env::var("EVENT_BUS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses: `test:{name}:{random}`.
pub fn unique_prefix(name: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("test:{name}:{}", &random[..12])
}

/// A test's own multiplexed connection to the Redis at `url`, with a generous response timeout
/// (10 s, not redis-rs's 500 ms): a test's checks must not fail because a loaded machine (ten
/// suites at once in `scripts/stress`) answered slowly.
pub async fn connect(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(10)))
        .set_response_timeout(Some(std::time::Duration::from_secs(10)));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Deletes every key under `prefix` on the Redis at `url`.
pub async fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = connect(url).await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        for key in keys {
            let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// How many entries of `stream` the consumer group `group` has delivered and not acknowledged
/// (the `XPENDING` summary's count).
pub async fn pending_count(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
    stream: &str,
    group: &str,
) -> redis::RedisResult<i64> {
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(conn)
        .await?;
    match reply {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => Ok(*n),
            _ => Err(unexpected_pending(&items)),
        },
        other => Err(unexpected_pending(&other)),
    }
}

fn unexpected_pending(reply: &dyn std::fmt::Debug) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "XPENDING summary without a count",
        format!("{reply:?}"),
    ))
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
