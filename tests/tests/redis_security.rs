//! Security against real private `redis-server`s: TLS (`rediss://`, a private CA made by the
//! test, mutual TLS) carries publish, subscribe and dead letters, and an untrusted server or a
//! missing client certificate is refused with a clear error; ACL users with the least
//! privileges the README documents run a full round trip (credentials in the URL or on the
//! builder, through reconnects of every connection), and a user lacking a permission gets a
//! start error naming NOPERM; no password or private key ever appears in an error's `Display`
//! or `Debug`, the builder's or the bus's `Debug`, a health report, or any log line or span
//! field at TRACE level.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::{RedisBus, RedisBusBuilder, Retention};
use event_bus_tests::bus::SharedRecorder;
use event_bus_tests::redis_helpers::WAIT;
use event_bus_tests::server::{RedisServer, ServerOptions};
use event_bus_tests::tls::Pki;
use event_bus_tests::{wait_dead_letters, Probe, Recorder};
use tracing_subscriber::fmt::format::FmtSpan;
use uuid::Uuid;

/// Every line the runtime logs (events and span opens/closes with their fields), at TRACE.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Captures what this thread logs (the tests run on a current-thread runtime, so every
    /// task of the bus runs here) until the guard drops.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

/// Panics if `secret` appears in `text`, naming where.
fn assert_hidden(secret: &str, text: &str, what: &str) {
    assert!(
        !text.contains(secret),
        "the secret appears in {what}: {text}"
    );
}

fn builder(url: &str, prefix: &str, only: &[&str], recorder: &Arc<Recorder>) -> RedisBusBuilder {
    RedisBus::builder()
        .url(url)
        .prefix(prefix)
        .only(only.iter().map(|s| (*s).to_owned()))
        .state(SharedRecorder(Arc::clone(recorder)))
        .retry_policy(
            event_bus_core::RetryPolicy::default()
                .max_attempts(2)
                .backoff(Duration::from_millis(10), Duration::from_millis(20)),
        )
        .block(Duration::from_millis(200))
        .response_timeout(Duration::from_secs(5))
}

/// Whether `probe-a` handled every probe of `seqs`, within [`WAIT`].
async fn wait_seqs(recorder: &Recorder, seqs: std::ops::Range<u64>) -> bool {
    recorder
        .wait_until(WAIT, |r| {
            let handled = r.handled("probe-a");
            seqs.clone().all(|s| handled.contains_key(&s))
        })
        .await
}

/// Publishes probes `from..from + n` plus one that fails for good, and checks that `probe-a`
/// handled each once and that the failing one is a dead letter, then replays it once healed:
/// publish, subscribe and dead letters over whatever the bus connects with.
async fn round_trip(bus: &RedisBus, recorder: &Arc<Recorder>, from: u64, n: u64) {
    let tenant = Uuid::new_v4();
    for seq in from..from + n {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    let poison = Probe {
        permanent: true,
        ..Probe::new(tenant, from + n)
    };
    bus.publish(poison)
        .await
        .expect("publish the failing probe");
    assert!(
        wait_seqs(recorder, from..from + n).await,
        "probe-a handled {:?}",
        recorder.handled("probe-a")
    );
    let letters = wait_dead_letters(bus, 1, WAIT).await;
    assert_eq!(letters.len(), 1, "one dead letter: {letters:?}");
    assert_eq!(letters[0].subscriber, "probe-a");
    recorder.heal();
    bus.replay_dead_letter(&letters[0]).await.expect("replay");
    assert!(
        wait_seqs(recorder, from + n..from + n + 1).await,
        "the replay was handled"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !bus.dead_letters().await.expect("dead letters").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replayed dead letter was deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each probe of this round trip handled once.
    let handled = recorder.handled("probe-a");
    let counts: Vec<usize> = (from..=from + n)
        .map(|s| handled.get(&s).copied().unwrap_or(0))
        .collect();
    assert!(counts.iter().all(|c| *c == 1), "each once: {counts:?}");
}

/// Publishes `seqs` just after the bus's connections were killed: a publish may meet the
/// dropped connection (and say so); the next one reconnects.
async fn publish_through_reconnect(bus: &RedisBus, seqs: std::ops::Range<u64>) {
    let tenant = Uuid::new_v4();
    for seq in seqs {
        let mut tries = 0;
        while let Err(e) = bus.publish(Probe::new(tenant, seq)).await {
            tries += 1;
            assert!(tries < 20, "the publisher reconnects: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn tls_server(pki: &Pki, auth_clients: bool) -> RedisServer {
    let dir = std::env::temp_dir().join(format!("event-bus-tls-{}", Uuid::new_v4().simple()));
    let tls = pki.server_tls(&dir, auth_clients);
    RedisServer::start_with(ServerOptions {
        tls: Some(tls),
        ..ServerOptions::default()
    })
}

#[tokio::test]
async fn publish_subscribe_and_dead_letters_over_tls_with_a_private_ca() {
    let pki = Pki::new("event-bus test CA");
    let server = tls_server(&pki, false);
    assert!(server.url().starts_with("rediss://"));
    let recorder = Arc::new(Recorder::default());
    let prefix = event_bus_tests::unique_prefix("tls");
    let bus = builder(&server.url(), &prefix, &["probe-a"], &recorder)
        .tls_root_certificates(pki.ca_pem.clone())
        // Past this many subscribers readers are shared: one subscriber, one reader of its own.
        .max_reader_connections(1)
        .build()
        .await
        .expect("a bus over TLS");
    let running = bus.start().await.expect("start over TLS");
    round_trip(&bus, &recorder, 0, 20).await;
    // Every connection dropped: each reconnects over TLS with the same settings.
    let mut admin = admin(&server).await;
    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    publish_through_reconnect(&bus, 100..110).await;
    assert!(
        wait_seqs(&recorder, 100..110).await,
        "handled after reconnecting"
    );
    assert!(running.health().ready, "{:?}", running.health());
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate_and_works_with_it() {
    let pki = Pki::new("event-bus test CA");
    let server = tls_server(&pki, true);
    let (cert, key) = pki.leaf(&["orders-service"], true);
    let recorder = Arc::new(Recorder::default());
    let prefix = event_bus_tests::unique_prefix("mtls");

    let refused = builder(&server.url(), &prefix, &["probe-a"], &recorder)
        .tls_root_certificates(pki.ca_pem.clone())
        .build()
        .await
        .expect_err("no client certificate: refused");
    let text = refused.to_string();
    assert!(
        text.contains("could not set up a connection to rediss://127.0.0.1")
            && text.contains("tls_client_certificate"),
        "the error says a client certificate is needed: {text}"
    );

    // Two subscribers with their own readers, and shared readers: every connection presents
    // the certificate.
    for max_readers in [8, 1] {
        let recorder = Arc::new(Recorder::default());
        let prefix = event_bus_tests::unique_prefix("mtls");
        let bus = builder(&server.url(), &prefix, &["probe-a", "probe-b"], &recorder)
            .tls_root_certificates(pki.ca_pem.clone())
            .tls_client_certificate(cert.clone(), key.clone())
            .max_reader_connections(max_readers)
            .build()
            .await
            .expect("a bus with a client certificate");
        let debug = format!("{bus:?}");
        assert_hidden(&key, &debug, "the bus's Debug");
        let running = bus.start().await.expect("start with mutual TLS");
        let tenant = Uuid::new_v4();
        for seq in 0..10 {
            bus.publish(Probe::new(tenant, seq)).await.expect("publish");
        }
        assert!(recorder.wait_handled("probe-a", 10, WAIT).await);
        assert!(recorder.wait_handled("probe-b", 10, WAIT).await);
        running.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn a_server_the_bus_does_not_trust_is_refused_with_a_clear_error() {
    let pki = Pki::new("event-bus test CA");
    let server = tls_server(&pki, false);
    let other = Pki::new("some other CA");
    let recorder = Arc::new(Recorder::default());
    let prefix = event_bus_tests::unique_prefix("tls-wrong-ca");
    // Another CA, and the system's roots (no CA given): both refuse the test CA's server.
    for b in [
        builder(&server.url(), &prefix, &["probe-a"], &recorder)
            .tls_root_certificates(other.ca_pem.clone()),
        builder(&server.url(), &prefix, &["probe-a"], &recorder),
    ] {
        let e = b.build().await.expect_err("an untrusted server is refused");
        let text = e.to_string();
        assert!(
            text.contains("not trusted") && text.contains("tls_root_certificates"),
            "the error says the certificate is not trusted and what to do: {text}"
        );
    }

    // Certificates with a `redis://` URL, and PEM without a certificate, are configuration
    // errors.
    let plain = builder("redis://127.0.0.1:6379", &prefix, &["probe-a"], &recorder)
        .tls_root_certificates(pki.ca_pem.clone())
        .build()
        .await
        .expect_err("certificates need rediss://");
    assert!(plain.to_string().contains("use `rediss://`"), "{plain}");
    let garbage = builder(&server.url(), &prefix, &["probe-a"], &recorder)
        .tls_root_certificates("not a certificate")
        .build()
        .await
        .expect_err("no certificate in the PEM");
    assert!(
        garbage.to_string().contains("no PEM certificate"),
        "{garbage}"
    );
}

/// The least-privilege ACL of a subscriber (and of a process that both publishes and
/// subscribes) on `prefix`, as the README documents it.
fn subscriber_acl(user: &str, password: &str, prefix: &str) -> Vec<String> {
    let rules = format!(
        "on >{password} resetkeys ~{prefix}:* resetchannels -@all \
         +ping +multi +exec +eval +evalsha +script|load \
         +xadd +xreadgroup +xread +xack +xautoclaim +xclaim +xpending \
         +xinfo|stream +xinfo|groups +xinfo|consumers +xgroup|create +xgroup|delconsumer \
         +xrange +xrevrange +xlen +xdel +xtrim \
         +hset +hmget +hdel +pexpire +exists +get"
    );
    std::iter::once(user.to_owned())
        .chain(rules.split_whitespace().map(str::to_owned))
        .collect()
}

/// The least-privilege ACL of a process that only publishes.
fn publisher_acl(user: &str, password: &str, prefix: &str) -> Vec<String> {
    let rules = format!("on >{password} resetkeys ~{prefix}:* resetchannels -@all +xadd");
    std::iter::once(user.to_owned())
        .chain(rules.split_whitespace().map(str::to_owned))
        .collect()
}

async fn admin(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    server
        .admin_client()
        .expect("admin client")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

async fn acl_setuser(conn: &mut redis::aio::MultiplexedConnection, args: &[String]) {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(args)
        .query_async(conn)
        .await
        .expect("ACL SETUSER");
}

fn acl_server(admin_password: &str) -> RedisServer {
    RedisServer::start_with(ServerOptions {
        password: Some(admin_password.to_owned()),
        ..ServerOptions::default()
    })
}

#[tokio::test]
async fn least_privilege_acl_users_run_a_full_round_trip_through_reconnects() {
    let capture = Capture::default();
    let _guard = capture.install();
    let server = acl_server("admin-S3CRET-pw");
    let mut admin = admin(&server).await;
    let prefix = event_bus_tests::unique_prefix("acl");
    let sub_password = "sub-S3CRET-pw";
    let pub_password = "pub-S3CRET-pw";
    acl_setuser(
        &mut admin,
        &subscriber_acl("orders-sub", sub_password, &prefix),
    )
    .await;
    acl_setuser(
        &mut admin,
        &publisher_acl("orders-pub", pub_password, &prefix),
    )
    .await;
    let port = server.port();

    // The subscriber: credentials in the URL; a publisher-only process: on the builder.
    let recorder = Arc::new(Recorder::default());
    let url = format!("redis://orders-sub:{sub_password}@127.0.0.1:{port}");
    let bus = builder(&url, &prefix, &["probe-a"], &recorder)
        // Maintenance often, leases renewed, retention trimming: every command it sends.
        .claim_idle(Duration::from_millis(600))
        .claim_interval(Duration::from_millis(100))
        .consumer_idle_timeout(Duration::from_millis(200))
        .retention(Retention::TrimHandled)
        .build()
        .await
        .expect("subscriber bus");
    let publisher = RedisBus::builder()
        .url(format!("redis://127.0.0.1:{port}"))
        .credentials("orders-pub", pub_password)
        .prefix(&prefix)
        .only(Vec::<String>::new())
        .allow_no_subscribers(true)
        .build()
        .await
        .expect("publisher bus");
    // A consumer left behind by a dead process: the bus removes it (XGROUP DELCONSUMER).
    let stream = format!("{prefix}:PROBE");
    let _: redis::Value = redis::cmd("XGROUP")
        .arg(&["CREATE", &stream, "probe-a", "$", "MKSTREAM"])
        .query_async(&mut admin)
        .await
        .expect("XGROUP CREATE");
    let _: i64 = redis::cmd("XGROUP")
        .arg(&["CREATECONSUMER", &stream, "probe-a", "ghost"])
        .query_async(&mut admin)
        .await
        .expect("XGROUP CREATECONSUMER");
    let running = bus
        .start()
        .await
        .expect("start with the least-privilege ACL");
    // Shared readers (XREAD) too: two subscribers on one reader connection, under the prefix.
    let shared_recorder = Arc::new(Recorder::default());
    let shared_bus = builder(
        &url,
        &format!("{prefix}:shared"),
        &["probe-a", "probe-b"],
        &shared_recorder,
    )
    .max_reader_connections(1)
    .build()
    .await
    .expect("shared-reader bus");
    let shared_running = shared_bus.start().await.expect("start shared readers");
    let tenant = Uuid::new_v4();
    for seq in 0..5 {
        shared_bus
            .publish(Probe::new(tenant, seq))
            .await
            .expect("publish");
    }
    assert!(shared_recorder.wait_handled("probe-a", 5, WAIT).await);
    assert!(shared_recorder.wait_handled("probe-b", 5, WAIT).await);
    shared_running.shutdown().await.expect("shutdown");
    for seq in 0..10 {
        publisher
            .publish(Probe::new(tenant, seq))
            .await
            .expect("the publisher user publishes");
    }
    // A handler run that fails once (recorded run, retried) and one that outlives a lease.
    let retried = Probe {
        fail_first: 1,
        ..Probe::new(tenant, 10)
    };
    publisher.publish(retried).await.expect("publish");
    let slow = Probe {
        sleep_ms: 900,
        ..Probe::new(tenant, 11)
    };
    publisher.publish(slow).await.expect("publish");
    assert!(
        wait_seqs(&recorder, 0..12).await,
        "{:?}",
        recorder.handled("probe-a")
    );
    round_trip(&bus, &recorder, 20, 5).await;

    // Every connection of both users dropped: they reconnect and authenticate again.
    for user in ["orders-sub", "orders-pub"] {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(user)
            .query_async(&mut admin)
            .await
            .expect("CLIENT KILL USER");
    }
    publish_through_reconnect(&publisher, 100..110).await;
    assert!(
        wait_seqs(&recorder, 100..110).await,
        "handled after the reconnects"
    );
    // Maintenance (claims, idle consumers, retention) ran: the ghost consumer is gone.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let consumers: redis::Value = redis::cmd("XINFO")
            .arg(&["CONSUMERS", &stream, "probe-a"])
            .query_async(&mut admin)
            .await
            .expect("XINFO CONSUMERS");
        if !format!("{consumers:?}").contains("ghost") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle consumer was removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = running.health();
    running.shutdown().await.expect("shutdown");
    assert!(health.ready, "{health:?}");
    let logs = capture.text();
    if std::env::var_os("SHOW_CAPTURE").is_some() {
        println!("{logs}");
    }
    assert!(
        !logs.to_lowercase().contains("noperm"),
        "a permission is missing: {logs}"
    );
    for secret in [sub_password, pub_password, "admin-S3CRET-pw"] {
        assert_hidden(secret, &logs, "the logs");
    }
    // Redis logs every command and key an ACL refused: none was.
    let refused: redis::Value = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .expect("ACL LOG");
    assert_eq!(refused, redis::Value::Array(vec![]), "refused by the ACL");
}

#[tokio::test]
async fn a_user_lacking_a_permission_gets_a_start_error_naming_noperm() {
    let server = acl_server("admin-S3CRET-pw");
    let mut admin = admin(&server).await;
    let prefix = event_bus_tests::unique_prefix("acl-noperm");
    let recorder = Arc::new(Recorder::default());
    let url = |user: &str| format!("redis://{user}:pw-S3CRET@127.0.0.1:{}", server.port());

    // The publisher's ACL cannot create consumer groups.
    acl_setuser(
        &mut admin,
        &publisher_acl("only-xadd", "pw-S3CRET", &prefix),
    )
    .await;
    // The subscriber's ACL, but on another prefix.
    acl_setuser(
        &mut admin,
        &subscriber_acl("other-prefix", "pw-S3CRET", "elsewhere"),
    )
    .await;
    for user in ["only-xadd", "other-prefix"] {
        let bus = builder(&url(user), &prefix, &["probe-a"], &recorder)
            .build()
            .await
            .expect("connecting needs no permission");
        let e = bus.start().await.expect_err("start lacks a permission");
        let text = e.to_string();
        assert!(text.contains("NOPERM"), "{user}: {text}");
        assert!(text.contains("ACL"), "{user}: says what to check: {text}");
        assert_hidden("pw-S3CRET", &text, "the start error");
        assert_hidden("pw-S3CRET", &format!("{e:?}"), "the start error's Debug");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_errors_debug_health_or_logs() {
    let capture = Capture::default();
    let _guard = capture.install();
    let admin_password = "admin-S3CRET-pw";
    let server = acl_server(admin_password);
    let mut admin = admin(&server).await;
    let prefix = event_bus_tests::unique_prefix("secrets");
    let password = "user-S3CRET-pw";
    acl_setuser(&mut admin, &subscriber_acl("svc", password, &prefix)).await;
    let port = server.port();
    let recorder = Arc::new(Recorder::default());
    let mut seen = String::new();
    let mut record = |what: &str, text: String| {
        seen.push_str(&format!("\n--- {what}\n{text}"));
    };

    // A wrong password, in the URL and on the builder.
    let wrong_url = format!("redis://svc:wrong-S3CRET@127.0.0.1:{port}");
    let b = builder(&wrong_url, &prefix, &["probe-a"], &recorder);
    record("builder Debug (URL)", format!("{b:?}"));
    let e = b.build().await.expect_err("wrong password");
    assert!(
        e.to_string().contains("check the user name and password"),
        "{e}"
    );
    record("wrong password (URL)", format!("{e}\n{e:?}"));
    let b = builder(
        &format!("redis://127.0.0.1:{port}"),
        &prefix,
        &["probe-a"],
        &recorder,
    )
    .credentials("svc", "wrong-S3CRET");
    record("builder Debug (credentials)", format!("{b:?}"));
    let e = b.build().await.expect_err("wrong password");
    record("wrong password (builder)", format!("{e}\n{e:?}"));
    // An unreachable host (a port nothing listens on) with credentials in the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let e = builder(
        &format!("redis://svc:{password}@127.0.0.1:{closed}"),
        &prefix,
        &["probe-a"],
        &recorder,
    )
    .build()
    .await
    .expect_err("nothing listens");
    assert!(e.to_string().contains("redis://svc:***@127.0.0.1"), "{e}");
    record("unreachable", format!("{e}\n{e:?}"));
    // A refused TLS handshake, with credentials and a client key.
    let pki = Pki::new("event-bus test CA");
    let tls = tls_server(&pki, true);
    let (cert, key) = pki.leaf(&["svc"], true);
    let tls_url = tls
        .url()
        .replace("rediss://", &format!("rediss://svc:{password}@"));
    let b = builder(&tls_url, &prefix, &["probe-a"], &recorder)
        .tls_root_certificates(Pki::new("other").ca_pem)
        .tls_client_certificate(cert, key.clone());
    record("builder Debug (TLS)", format!("{b:?}"));
    let e = b.build().await.expect_err("untrusted");
    record("refused TLS", format!("{e}\n{e:?}"));
    // Malformed URLs with a password.
    for bad in [
        format!("redis://svc:{password}@127.0.0.1:{port}/not-a-db"),
        format!("redis://svc:{password}@/"),
    ] {
        let e = builder(&bad, &prefix, &["probe-a"], &recorder)
            .build()
            .await
            .expect_err("malformed URL");
        record("malformed URL", format!("{e}\n{e:?}"));
    }

    // A running bus whose password is changed under it: every reconnect is refused, and the
    // readers report it in the health report and the logs.
    let url = format!("redis://svc:{password}@127.0.0.1:{port}");
    let bus = builder(&url, &prefix, &["probe-a"], &recorder)
        .claim_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("bus");
    record("bus Debug", format!("{bus:?}"));
    let running = bus.start().await.expect("start");
    record("running Debug", format!("{running:?}"));
    acl_setuser(
        &mut admin,
        &[
            "svc".to_owned(),
            "resetpass".to_owned(),
            ">new-S3CRET-pw".to_owned(),
        ],
    )
    .await;
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("svc")
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    let publish = bus.publish(Probe::new(Uuid::new_v4(), 1)).await;
    record("publish", format!("{publish:?}"));
    let deadline = tokio::time::Instant::now() + WAIT;
    // The readers' reconnects are refused, and the health report says why.
    let refused = |h: &event_bus_core::Health| {
        !h.ready
            && h.subscribers.iter().any(|s| {
                s.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("check the user name and password"))
            })
    };
    let health = loop {
        let health = running.health();
        if refused(&health) || tokio::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refused(&health), "the refused reconnects show: {health:?}");
    record("health", format!("{health:?}"));
    let dead = bus.dead_letters().await;
    record("dead letters", format!("{dead:?}"));
    let stopped = running.shutdown().await;
    record("shutdown", format!("{stopped:?}"));
    let logs = capture.text();
    // The capture works: it holds the publish span's fields and the refused reconnects.
    assert!(logs.contains("publish{bus=\"redis\""), "{logs}");
    assert!(logs.contains("check the user name and password"), "{logs}");
    record("logs", logs);
    if std::env::var_os("SHOW_CAPTURE").is_some() {
        println!("{seen}");
    }

    assert!(
        seen.contains("WRONGPASS") || seen.contains("authentication failed"),
        "{seen}"
    );
    for secret in [password, "wrong-S3CRET", admin_password, key.as_str()] {
        assert_hidden(secret, &seen, "errors, Debug, health or logs");
    }
    // The key's body, not just the whole PEM.
    let key_body = key.lines().nth(1).unwrap_or("-");
    assert_hidden(key_body, &seen, "errors, Debug, health or logs");
}
