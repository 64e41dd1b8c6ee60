//! The shape of the system we replace: 330 event types, two subscribers on each, every one a
//! real `#[derive(Event)]` type and a real `#[subscriber]` discovered at start (the generated
//! `many-types` fixture), on a private Redis so its connections can be counted exactly: the
//! process holds a bounded number of connections, every subscriber receives its event exactly
//! once, and a connection limit below what the process needs fails the start, naming the limit.

use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::redis_helpers::info_number;
use event_bus_tests::server::RedisServer;
use event_bus_tests::unique_prefix;
use many_types::{Seen, EVENT_TYPES};
use uuid::Uuid;

const READERS: usize = 8;

async fn many_type_bus(url: &str, prefix: &str, seen: &Seen) -> RedisBus {
    RedisBus::builder()
        .url(url)
        .prefix(prefix)
        .only(many_types::subscriber_names())
        .expect_subscribers(many_types::subscriber_names())
        .state(seen.clone())
        .block(Duration::from_millis(200))
        .max_reader_connections(READERS)
        .build()
        .await
        .expect("bus")
}

async fn connected_clients(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    info_number(conn, "clients", "connected_clients").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_sixty_subscribers_share_a_bounded_number_of_connections() {
    event_bus_tests::init_tracing();
    let server = RedisServer::start(&[]);
    let url = server.url();
    let mut conn = event_bus_tests::connect(&url).await.expect("conn");
    let seen = Seen::default();
    let bus = many_type_bus(&url, &unique_prefix("many"), &seen).await;
    let starting = std::time::Instant::now();
    let running = bus.start().await.expect("start");
    let start_took = starting.elapsed();
    assert_eq!(running.subscribers().len(), 2 * EVENT_TYPES);
    assert!(running.health().ready);
    // This test's connection, the bus's connection for commands, and its readers.
    let clients = connected_clients(&mut conn).await;
    assert!(
        clients <= 2 + READERS as u64,
        "{clients} connections for {} subscribers",
        2 * EVENT_TYPES
    );

    many_types::publish_each(&bus, Uuid::new_v4(), 7)
        .await
        .expect("publish");
    tokio::time::timeout(Duration::from_secs(60), running.idle())
        .await
        .expect("every subscriber caught up");
    let seen = seen.snapshot();
    assert_eq!(
        seen.len(),
        2 * EVENT_TYPES,
        "every subscriber received something"
    );
    for name in many_types::subscriber_names() {
        assert_eq!(seen.get(name.as_str()), Some(&vec![7]), "{name}");
    }
    // With MEASURE_IDLE set (and `--nocapture`), report what the idle process costs, over 30 s:
    // the figures the README gives. Not asserted (timing varies).
    if std::env::var("MEASURE_IDLE").is_ok() {
        let cpu_ticks = || -> u64 {
            // utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
            std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1.to_owned();
                    let fields: Vec<&str> = after.split_whitespace().collect();
                    Some(
                        fields.get(11)?.parse::<u64>().ok()?
                            + fields.get(12)?.parse::<u64>().ok()?,
                    )
                })
                .unwrap_or(0)
        };
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        eprintln!("START took {start_took:?}; {rss}");
        let cpu_before = cpu_ticks();
        let total = |info: String| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix("total_commands_processed:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        };
        let a: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await
            .expect("INFO");
        tokio::time::sleep(Duration::from_secs(30)).await;
        let b: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await
            .expect("INFO");
        eprintln!(
            "IDLE commands/s: {:.1}",
            (total(b) - total(a)) as f64 / 30.0
        );
        // Clock ticks are 1/100 s on Linux: ticks over 30 s, divided by 30, is the percentage
        // of one core.
        eprintln!(
            "IDLE CPU: {:.1} % of one core",
            (cpu_ticks() - cpu_before) as f64 / 30.0
        );
    }
    let stats = running.stats();
    assert_eq!(stats.handled, 2 * EVENT_TYPES as u64);
    assert_eq!(
        connected_clients(&mut conn).await,
        clients,
        "no connection added"
    );
    running.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_limit_below_the_need_fails_the_start_and_names_it() {
    event_bus_tests::init_tracing();
    // The bus needs one connection for commands and eight for its readers.
    let server = RedisServer::start(&["--maxclients", "6"]);
    let bus = many_type_bus(
        &server.url(),
        &unique_prefix("many-limit"),
        &Seen::default(),
    )
    .await;
    let err = bus
        .start()
        .await
        .expect_err("more connections than maxclients");
    let text = err.to_string();
    assert!(
        text.contains("max number of clients reached") && text.contains("shared reader connection"),
        "{text}"
    );
}
