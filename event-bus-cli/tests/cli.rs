//! The `event-bus` binary against the real Redis, each test under its own prefix: status
//! (table and JSON) with exact lag and pending counts; dead letters listed, shown and purged
//! with exact counts, the seed's listed as foreign and kept; a replay requested by the CLI and
//! carried out by the running consumer of the failing subscriber's group only, exactly once;
//! a request written while no consumer runs, carried out when the bus starts (per-channel
//! layout); tail; errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Output, Stdio};
use std::time::Duration;

use event_bus_core::{Bus, RunningBus, StreamLayout};
use event_bus_tests::redis_helpers::{
    create_group, probe_envelope, raw, read_as, xadd_probes, xadd_seed_dead_letter, xlen, WAIT,
};
use event_bus_tests::{wait_dead_letters, BusKind, Probe, TestBus};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_event-bus");

/// Runs `event-bus --url .. --prefix .. args`.
async fn cli(t: &TestBus, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("--url")
        .arg(&t.url)
        .arg("--prefix")
        .arg(&t.prefix)
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .await
        .expect("run event-bus")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the command, expects success, parses its JSON output.
async fn cli_json(t: &TestBus, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = cli(t, &all).await;
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

fn group<'a>(status: &'a Value, stream: &str, name: &str) -> &'a Value {
    status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["stream"] == stream && g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name} on {stream} in {status:#}"))
}

/// Whether `$cond` (which may `.await`) holds within `WAIT`, checked every 50 ms.
macro_rules! eventually {
    ($cond:expr) => {{
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if $cond {
                break true;
            }
            if tokio::time::Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_lag_pending_consumers_and_orphans_exactly() {
    let t = TestBus::new(BusKind::Redis, "cli-status", &[]);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    xadd_probes(&mut conn, &stream, 0..5, None).await;
    create_group(&mut conn, &stream, "reader").await;
    create_group(&mut conn, &stream, "nobody").await;
    assert_eq!(read_as(&mut conn, &stream, "reader", "c1").await.len(), 5);
    let ids = read_as(&mut conn, &stream, "reader", "c1").await;
    assert!(ids.is_empty());
    // Acknowledge 3 of the 5: 2 pending, lag 0. Then 2 more entries: lag 2.
    let all: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let all_ids: Vec<String> = all.ids.into_iter().map(|e| e.id).collect();
    assert_eq!(all_ids.len(), 5, "{all_ids:?}");
    let acked: i64 = redis::cmd("XACK")
        .arg(&stream)
        .arg("reader")
        .arg(&all_ids[..3])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(acked, 3);
    xadd_probes(&mut conn, &stream, 5..7, None).await;

    let status = cli_json(&t, &["status"]).await;
    assert_eq!(status["streams"].as_array().unwrap().len(), 1, "{status:#}");
    assert_eq!(status["streams"][0]["stream"], stream);
    assert_eq!(status["streams"][0]["length"], 7);
    assert_eq!(status["streams"][0]["groups"], 2);
    let reader = group(&status, &stream, "reader");
    assert_eq!(reader["lag"], 2);
    assert_eq!(reader["pending"], 2);
    assert_eq!(reader["consumers"].as_array().unwrap().len(), 1);
    assert_eq!(reader["consumers"][0]["name"], "c1");
    assert_eq!(reader["consumers"][0]["pending"], 2);
    assert_eq!(reader["orphaned"], false);
    let nobody = group(&status, &stream, "nobody");
    assert_eq!(nobody["lag"], 7);
    assert_eq!(nobody["pending"], 0);
    assert_eq!(nobody["orphaned"], true, "a group without consumers");

    // With a threshold of zero, every group is orphaned.
    let status = cli_json(&t, &["status", "--orphan-after", "0s"]).await;
    assert_eq!(group(&status, &stream, "reader")["orphaned"], true);

    // The table says the same.
    let o = cli(&t, &["status"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let row = text
        .lines()
        .find(|l| l.contains(" reader ") && l.contains("ok"))
        .unwrap_or_else(|| panic!("no row for reader:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // STREAM GROUP LAG PENDING CONSUMERS IDLE DEAD-LETTERS REPLAYS STATE
    assert_eq!(
        cells[..5],
        [stream.as_str(), "reader", "2", "2", "1"],
        "{row}"
    );
    assert!(text.contains("1 orphaned group(s)"), "{text}");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_and_purged_with_exact_counts() {
    let t = TestBus::new(BusKind::Redis, "cli-dl", &["probe-a"]);
    let stream = format!("{}:PROBE", t.prefix);
    let dl = format!("{stream}:dead-letter");
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 1..=2 {
        let mut p = Probe::new(tenant, seq);
        p.permanent = true;
        bus.publish(p).await.expect("publish");
    }
    let ours = wait_dead_letters(&bus, 2, WAIT).await;
    assert_eq!(ours.len(), 2);
    running.shutdown().await.expect("shutdown");
    let mut conn = raw(&t.url).await;
    let seed_id = xadd_seed_dead_letter(
        &mut conn,
        &stream,
        &probe_envelope(tenant, 101),
        "1732665600000-0",
        10,
    )
    .await;

    let all = cli_json(&t, &["dead-letters", "list"]).await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().filter(|l| l["foreign"] == true).count(), 1);
    let foreign = all.iter().find(|l| l["foreign"] == true).unwrap();
    assert_eq!(foreign["id"], seed_id);
    assert_eq!(foreign["subscriber"], "");
    assert_eq!(
        cli_json(&t, &["dead-letters", "list", "--ours"])
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        cli_json(
            &t,
            &[
                "dead-letters",
                "list",
                "--subscriber",
                "probe-a",
                "--stream",
                "PROBE"
            ]
        )
        .await
        .as_array()
        .unwrap()
        .len(),
        2
    );
    let by_id = cli_json(&t, &["dead-letters", "list", "--id", &ours[0].id]).await;
    assert_eq!(by_id.as_array().unwrap().len(), 1);
    assert_eq!(by_id[0]["subscriber"], "probe-a");
    assert_eq!(by_id[0]["event"]["payload"]["seq"], 1);

    let o = cli(&t, &["dead-letters", "list"]).await;
    let text = stdout(&o);
    assert!(text.contains("(foreign)"), "{text}");
    assert!(
        text.contains("3 dead letter(s): 2 ours, 1 foreign"),
        "{text}"
    );

    // show: the full letter, its event pretty-printed.
    let o = cli(&t, &["dead-letters", "show", &ours[1].id]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("probe-a") && text.contains("\"seq\": 2"),
        "{text}"
    );
    let o = cli(&t, &["dead-letters", "show", "1-1"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("dead-letters list"), "{}", stderr(&o));

    // purge: --all needs --yes; ours only unless asked; the seed's letter stays.
    let o = cli(&t, &["dead-letters", "purge", "--all"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    let purged = cli_json(&t, &["dead-letters", "purge", "--id", &ours[0].id]).await;
    assert_eq!(purged["purged"], 1);
    assert_eq!(xlen(&mut conn, &dl).await, 2);
    let purged = cli_json(&t, &["dead-letters", "purge", "--all", "--yes"]).await;
    assert_eq!(
        (purged["purged"].as_u64(), purged["foreign_kept"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(xlen(&mut conn, &dl).await, 1, "the seed's letter is kept");
    let purged = cli_json(
        &t,
        &["dead-letters", "purge", "--all", "--yes", "--foreign"],
    )
    .await;
    assert_eq!(purged["purged"], 1);
    assert_eq!(xlen(&mut conn, &dl).await, 0);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_carried_out_by_the_failing_subscribers_running_consumer_only() {
    let mut t = TestBus::new(BusKind::Redis, "cli-replay", &["probe-a", "probe-b"]);
    t.claim_interval = Duration::from_millis(200);
    let stream = format!("{}:PROBE", t.prefix);
    let dl = format!("{stream}:dead-letter");
    let requests = format!("{stream}:replay:probe-a");
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let mut p = Probe::new(tenant, 1);
    p.fail_in = Some("probe-a".to_owned());
    bus.publish(p).await.expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].subscriber, "probe-a");
    assert!(t.recorder.wait_handled("probe-b", 1, WAIT).await);
    let failed_runs = t.recorder.attempts_of("probe-a", 1).len();
    assert_eq!(failed_runs, 5, "max_attempts handler runs");

    // The operator fixes nothing in the code: the cause goes away, and they ask for a replay,
    // which returns at once.
    t.recorder.heal();
    let o = cli(&t, &["dead-letters", "replay", "--id", &letters[0].id]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 replay(s) requested"),
        "{}",
        stdout(&o)
    );

    // The running consumer of probe-a runs it, once; the letter and the request are gone.
    let mut conn = raw(&t.url).await;
    assert!(eventually!(
        t.recorder.handled("probe-a").get(&1) == Some(&1)
    ));
    assert!(eventually!(
        xlen(&mut conn, &dl).await == 0 && xlen(&mut conn, &requests).await == 0
    ));
    // Several more maintenance rounds: nothing runs again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a = t.recorder.attempts_of("probe-a", 1);
    assert_eq!(a.len(), failed_runs + 1, "{a:?}");
    assert_eq!(a.iter().filter(|x| x.ok).count(), 1);
    assert_eq!(
        t.recorder.attempts_of("probe-b", 1).len(),
        1,
        "no other subscriber runs the replay"
    );
    assert_eq!(xlen(&mut conn, &requests).await, 0);
    assert!(bus.dead_letters().await.expect("list").is_empty());

    // A replay that fails again (a panic fails even once healed, in both subscribers):
    // --wait says so, with the new letter, and exits non-zero; probe-b's letter stays.
    let mut p = Probe::new(tenant, 2);
    p.panic = true;
    bus.publish(p).await.expect("publish");
    let letters = wait_dead_letters(&bus, 2, WAIT).await;
    assert_eq!(letters.len(), 2);
    let (a_letters, b_letters): (Vec<_>, Vec<_>) =
        letters.into_iter().partition(|l| l.subscriber == "probe-a");
    let (a_letters, b_letters) = (a_letters, b_letters);
    let b_runs = t.recorder.attempts_of("probe-b", 2).len();
    let letters = a_letters;
    let o = cli(
        &t,
        &[
            "--json",
            "dead-letters",
            "replay",
            "--id",
            &letters[0].id,
            "--wait",
            "--timeout",
            "30s",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["requested"][0]["outcome"], "failed-again",
        "{report:#}"
    );
    let new_id = report["requested"][0]["new_dead_letter"].as_str().unwrap();
    let now = bus.dead_letters().await.expect("list");
    let ids: Vec<&str> = now.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, [b_letters[0].id.as_str(), new_id]);
    assert_eq!(t.recorder.attempts_of("probe-b", 2).len(), b_runs);
    assert!(eventually!(xlen(&mut conn, &requests).await == 0));
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_written_while_no_consumer_runs_is_carried_out_when_the_bus_starts() {
    // With the seed's per-channel layout: `{prefix}:{channel}:{TYPE}`.
    let mut t = TestBus::new(BusKind::Redis, "cli-replay-later", &["probe-a"]);
    t.claim_interval = Duration::from_millis(200);
    t.layout = StreamLayout::PerChannel;
    let stream = format!("{}:global:PROBE", t.prefix);
    let dl = format!("{stream}:dead-letter");
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 7);
    p.permanent = true;
    bus.publish(p).await.expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    running.shutdown().await.expect("shutdown");

    let listed = cli_json(&t, &["dead-letters", "list", "--stream", "PROBE"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["stream"], stream);
    let o = cli(&t, &["dead-letters", "replay", "--subscriber", "probe-a"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 replay(s) requested"),
        "{}",
        stdout(&o)
    );
    let status = cli_json(&t, &["status"]).await;
    assert_eq!(group(&status, &stream, "probe-a")["replays_queued"], 1);
    assert_eq!(group(&status, &stream, "probe-a")["dead_letters"], 1);

    t.recorder.heal();
    let bus = t.redis().await;
    let running = bus.start().await.expect("start again");
    assert!(eventually!(
        t.recorder.handled("probe-a").get(&7) == Some(&1)
    ));
    let mut conn = raw(&t.url).await;
    assert!(eventually!(xlen(&mut conn, &dl).await == 0));
    assert!(eventually!(
        group(&cli_json(&t, &["status"]).await, &stream, "probe-a")["replays_queued"] == 0
    ));
    assert_eq!(xlen(&mut conn, &dl).await, 0);
    assert!(letters[0].id.contains('-'));
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_cut_short_by_a_crash_is_claimed_and_carried_out_by_another_consumer() {
    let mut t = TestBus::new(BusKind::Redis, "cli-replay-crash", &["probe-a"]);
    t.claim_interval = Duration::from_millis(200);
    t.claim_idle = Duration::from_secs(1);
    t.shutdown_timeout = Duration::from_millis(100);
    let stream = format!("{}:PROBE", t.prefix);
    let dl = format!("{stream}:dead-letter");
    let requests = format!("{stream}:replay:probe-a");
    let bus = t.redis().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 9);
    p.permanent = true;
    p.sleep_ms = 1500;
    bus.publish(p).await.expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    assert_eq!(letters.len(), 1);
    t.recorder.heal();
    let o = cli(&t, &["dead-letters", "replay", "--id", &letters[0].id]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    // The replay starts (the handler sleeps 1.5 s), and the process goes away meanwhile.
    assert!(eventually!(t.recorder.starts() == 2));
    let _ = running.shutdown().await; // cut short: the deadline is 100 ms
    assert_eq!(
        t.recorder.attempts_of("probe-a", 9).len(),
        1,
        "the replay did not finish"
    );
    let mut conn = raw(&t.url).await;
    assert_eq!(xlen(&mut conn, &dl).await, 1);
    assert_eq!(
        xlen(&mut conn, &requests).await,
        1,
        "the request stays, pending"
    );

    // Another process of the subscriber claims the request once it is idle, and replays.
    let bus = t.redis().await;
    let running = bus.start().await.expect("start again");
    assert!(eventually!(
        xlen(&mut conn, &dl).await == 0 && xlen(&mut conn, &requests).await == 0
    ));
    let a = t.recorder.attempts_of("probe-a", 9);
    assert_eq!(a.iter().filter(|x| x.ok).count(), 1, "{a:?}");
    assert_eq!(a.len(), 2, "{a:?}");
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_the_entries_published_after_it_started() {
    let t = TestBus::new(BusKind::Redis, "cli-tail", &[]);
    let stream = format!("{}:PROBE", t.prefix);
    let mut conn = raw(&t.url).await;
    xadd_probes(&mut conn, &stream, 0..1, None).await;
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "--url", &t.url, "--prefix", &t.prefix, "--json", "tail", "PROBE", "--count", "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = err.next_line().await {
            if line.starts_with("following") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(started.ok(), Some(true), "tail did not start");
    xadd_probes(&mut conn, &stream, 1..3, None).await;
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("tail exits after --count entries")
        .expect("tail");
    assert!(out.status.success());
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["event"]["payload"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert!(lines
        .iter()
        .all(|l| l["stream"] == stream && l["fields"]["channel"] == "global"));
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_to_do_and_hide_the_password() {
    let t = TestBus::new(BusKind::Redis, "cli-errors", &[]);
    let o = tokio::process::Command::new(BIN)
        .args(["--url", "redis://ops:hunter2@127.0.0.1:1", "status"])
        .output()
        .await
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("cannot connect to redis://ops:***@127.0.0.1:1"),
        "{err}"
    );
    assert!(
        err.contains("REDIS_URL") && !err.contains("hunter2"),
        "{err}"
    );
    let o = cli(
        &t,
        &["dead-letters", "replay", "--foreign", "--all", "--yes"],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("seed's own tooling"), "{}", stderr(&o));
    let o = cli(&t, &["dead-letters", "list", "--stream", "NOPE"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("event-bus status"), "{}", stderr(&o));
}

/// A partitioned event type: `status` lists each partition stream as a stream of its event
/// type, with its length, its group and its dead letters, and `dead-letters list --stream
/// PROBE` finds the letters of every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_every_partition_of_a_partitioned_type() {
    use event_bus_redis::admin::{partition_of, partition_stream, partition_tag};
    let mut t = TestBus::new(BusKind::Redis, "cli-partitions", &["probe-a"]);
    t.partitions = vec![("PROBE".to_owned(), 4)];
    let bus = t.redis().await;
    let running = bus.start().await.unwrap();
    // Two tenants on each of the four partitions, five events each; one fails for good.
    let mut per_partition = [0; 4];
    let mut tenants = Vec::new();
    while tenants.len() < 8 {
        let tenant = Uuid::new_v4();
        let p = usize::from(partition_of(tenant, 4));
        if per_partition[p] < 2 {
            per_partition[p] += 1;
            tenants.push(tenant);
        }
    }
    let mut probes: Vec<Probe> = (0..40)
        .map(|seq| Probe::new(tenants[seq % 8], seq as u64))
        .collect();
    probes[0].permanent = true;
    assert!(bus.publish_all(probes).await.iter().all(Result::is_ok));
    assert_eq!(wait_dead_letters(&bus, 1, WAIT).await.len(), 1);
    running.idle().await;
    running.shutdown().await.unwrap();

    let streams: Vec<String> = (0..4)
        .map(|i| partition_stream(&format!("{}:PROBE", t.prefix), &partition_tag(i, 4)))
        .collect();
    let failing = &streams[usize::from(partition_of(tenants[0], 4))];
    let status = cli_json(&t, &["status"]).await;
    let rows = status["streams"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{status:#}");
    for stream in &streams {
        let row = rows
            .iter()
            .find(|r| r["stream"] == stream.as_str())
            .unwrap_or_else(|| panic!("no row for {stream}: {status:#}"));
        assert_eq!(row["event_type"], "PROBE");
        assert_eq!(row["length"], 10);
        assert_eq!(row["groups"], 1);
        assert_eq!(row["dead_letters"], u64::from(stream == failing));
        let g = group(&status, stream, "probe-a");
        assert_eq!(g["lag"], 0);
        assert_eq!(g["pending"], 0);
    }
    let listed = cli_json(&t, &["dead-letters", "list", "--stream", "PROBE"]).await;
    let letters = listed.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{listed:#}");
    assert_eq!(letters[0]["stream"], failing.as_str());
    t.cleanup().await;
}
