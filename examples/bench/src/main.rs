//! The benchmark driver: runs the workloads W1–W7 of `shared/bench/WORKLOADS.md` against a Redis,
//! each on event-bus and on the floor (bare `redis` crate calls) in the same run, and prints one
//! table with our figures as ratios of the floor's.
//!
//! ```text
//! cargo run --release -p bench -- --redis-url redis://127.0.0.1:6379
//! cargo run --release -p bench -- --workload W3,W6 --runs 5
//! cargo run --release -p bench -- -n 200 --runs 1        # smoke test (CI)
//! # W3/W4 on one Redis and on a Redis Cluster (W3c, W3c+p, W4c, W4c+p):
//! nodes=$(./scripts/cluster start)
//! cargo run --release -p bench -- -w W3,W4,W3c,W4c --cluster-nodes "$nodes"
//! ./scripts/cluster stop
//! ```
//!
//! The cluster workloads run only against a cluster given with `--cluster-nodes` (the driver
//! does not start one); without it they are skipped with a message.
//!
//! Exits 1 when any run failed its correctness check (events lost, duplicated, left pending or
//! dead-lettered; a publish error), 2 when the driver cannot start.

mod cluster;
mod collector;
mod drive;
mod event;
mod floor;
mod report;
mod roles;
mod runner;
mod workloads;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::drive::Pattern;
use crate::roles::{ChildSpec, Role, Side};
use crate::runner::{Settings, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Runs the workloads W1–W7 on event-bus and on the bare-redis floor, and prints one table"
)]
struct Cli {
    /// The Redis to run against (persistence off: `--save '' --appendonly no`).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,

    /// Workloads to run: W1..W7, W3c / W4c (on the cluster, with and without partitions),
    /// W3c+p / W4c+p (partitioned only) or all; repeatable or comma-separated.
    #[arg(
        long = "workload",
        short = 'w',
        value_delimiter = ',',
        default_value = "all"
    )]
    workloads: Vec<String>,

    /// Events per workload, overriding WORKLOADS.md's N (W6: total events at --w6-rate, unless
    /// --w6-seconds is given).
    #[arg(short = 'n')]
    n: Option<usize>,

    /// Runs per workload and side (median and min–max are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,

    /// Stream prefix: the stream is `{prefix}:TICKET_UPDATED`.
    #[arg(long, default_value = "bench")]
    prefix: String,

    /// W6 duration in seconds (default 10, or N / rate when -n is given).
    #[arg(long)]
    w6_seconds: Option<f64>,

    /// W6 publish rate, events/s.
    #[arg(long, default_value_t = 5000.0)]
    w6_rate: f64,

    /// Publishes in flight for W2, W3 and W4.
    #[arg(long, default_value_t = 64)]
    inflight: usize,

    /// Events per batch in W7.
    #[arg(long, default_value_t = 1000)]
    batch: usize,

    /// Subscribers (consumer groups) in W4.
    #[arg(long, default_value_t = 8)]
    w4_subscribers: usize,

    /// Who publishes in W3, W4 and W6: `same` (each side its own publisher: ours for
    /// event-bus, bare XADD for the floor) or `floor` (bare XADD for both, which isolates the
    /// subscriber's overhead).
    #[arg(long, default_value = "same", value_parser = ["same", "floor"])]
    live_publisher: String,

    /// Run one side only (`event-bus` or `floor`), for figures of one side alone (profiles,
    /// one process per side); the table then has no ratios.
    #[arg(long, value_parser = ["event-bus", "floor"])]
    only: Option<String>,

    /// A subscriber that handles nothing for this many seconds fails the run.
    #[arg(long, default_value_t = 30)]
    stall_seconds: u64,

    /// Seed URLs of a Redis Cluster (comma-separated, as `./scripts/cluster start` prints them)
    /// for the cluster workloads W3c/W4c; without it, they are skipped.
    #[arg(long, value_delimiter = ',')]
    cluster_nodes: Vec<String>,

    /// Partitions of the benchmark event in W3c+p/W4c+p (12: 4 per master of a 3-master
    /// cluster); 0 or 1 runs only the one-stream variants.
    #[arg(long, default_value_t = 12)]
    partitions: u16,

    /// Internal: run as a child process in this role.
    #[arg(long, hide = true)]
    role: Option<Role>,
    #[arg(long, hide = true, default_value = "ours")]
    side: Side,
    #[arg(long, hide = true, default_value = "concurrent")]
    pattern: Pattern,
    #[arg(long, hide = true, default_value_t = 0)]
    count: usize,
    #[arg(long, hide = true, default_value_t = 5000.0)]
    rate: f64,
    #[arg(long, hide = true, default_value = "")]
    group: String,
}

/// The 1-minute load average (other work on the machine skews every figure).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    if let Some(role) = cli.role {
        let code = roles::run_child(ChildSpec {
            role,
            side: cli.side,
            url: cli.redis_url,
            prefix: cli.prefix,
            pattern: cli.pattern,
            count: cli.count,
            inflight: cli.inflight,
            rate: cli.rate,
            group: cli.group,
            stall: Duration::from_secs(cli.stall_seconds),
            cluster_nodes: cli.cluster_nodes,
            partitions: cli.partitions,
        })
        .await;
        return ExitCode::from(code as u8);
    }

    let mut selected = Vec::new();
    for w in &cli.workloads {
        if w.eq_ignore_ascii_case("all") {
            selected.extend(Workload::ALL);
            if !cli.cluster_nodes.is_empty() {
                selected.extend(Workload::CLUSTER);
            }
        } else if let Some(ws) = Workload::parse(w) {
            selected.extend(ws);
        } else {
            eprintln!(
                "bench: unknown workload {w:?} (expected W1..W7, W3c, W4c, W3c+p, W4c+p or all)"
            );
            return ExitCode::from(2);
        }
    }
    selected.sort();
    selected.dedup();
    if cli.partitions <= 1 {
        selected.retain(|w| !w.partitioned());
    }
    if cli.cluster_nodes.is_empty() && selected.iter().any(|w| w.on_cluster()) {
        eprintln!(
            "bench: skipping the cluster workloads (W3c, W4c): no --cluster-nodes given \
             (start a cluster with ./scripts/cluster start)"
        );
        selected.retain(|w| !w.on_cluster());
    }
    let (on_cluster, selected): (Vec<Workload>, Vec<Workload>) =
        selected.into_iter().partition(|w| w.on_cluster());
    if cli.runs == 0 {
        eprintln!("bench: --runs must be at least 1");
        return ExitCode::from(2);
    }

    let settings = Settings {
        url: cli.redis_url.clone(),
        prefix: cli.prefix.clone(),
        runs: cli.runs,
        n: cli.n,
        w6_seconds: cli.w6_seconds,
        w6_rate: cli.w6_rate,
        inflight: cli.inflight,
        w4_subscribers: cli.w4_subscribers,
        floor_publisher: cli.live_publisher == "floor",
        only: match cli.only.as_deref() {
            Some("event-bus") => Some(Side::Ours),
            Some("floor") => Some(Side::Floor),
            _ => None,
        },
        stall: Duration::from_secs(cli.stall_seconds),
        batch: cli.batch,
        cluster_nodes: cli.cluster_nodes.clone(),
        partitions: cli.partitions,
    };

    let mut admin = match floor::connect(&settings.url).await {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!(
                "bench: cannot connect to {}: {e}",
                event_bus_redis::redact_url(&settings.url)
            );
            return ExitCode::from(2);
        }
    };
    let version = floor::server_version(&mut admin)
        .await
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let event_bytes = event::envelope_json().len();
    let load_before = load_average();
    eprintln!(
        "bench: Redis {version} at {}, stream {}, envelope {event_bytes} bytes, {cores} cores, {} run(s) each, load average {load_before}",
        event_bus_redis::redact_url(&settings.url),
        event::stream_key(&settings.prefix),
        settings.runs
    );

    let started = Instant::now();
    let mut rows = Vec::new();
    for w in selected {
        rows.push(runner::run_workload(w, &settings, &mut admin).await);
    }
    let mut cluster_rows = Vec::new();
    let mut cluster_line = String::new();
    if !on_cluster.is_empty() {
        let mut cluster = match floor::cluster_connect(&settings.cluster_nodes).await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("bench: cannot connect to the cluster: {e}");
                return ExitCode::from(2);
            }
        };
        cluster_line = match cluster::describe(&mut cluster, &settings).await {
            Ok(line) => line,
            Err(e) => {
                eprintln!("bench: cannot read the cluster's slot map: {e}");
                return ExitCode::from(2);
            }
        };
        eprintln!("bench: {cluster_line}");
        for w in on_cluster {
            cluster_rows.push(runner::run_workload(w, &settings, &mut cluster).await);
        }
    }

    println!();
    println!(
        "event-bus benchmark: Redis {version}, {cores} cores, envelope {event_bytes} bytes, \
         stream {}, {} run(s) per figure{}, W3/W4/W6 publisher: {}, {:.0} s, \
         load average {load_before} before / {} after",
        event::stream_key(&settings.prefix),
        settings.runs,
        match settings.only {
            Some(side) => format!(", {side} only"),
            None => String::new(),
        },
        if settings.floor_publisher {
            "floor for both sides"
        } else {
            "each side its own"
        },
        started.elapsed().as_secs_f64(),
        load_average()
    );
    println!();
    print!("{}", runner::table(&rows));
    println!();
    for line in runner::latency_details(&rows) {
        println!("{line}");
    }
    if !cluster_rows.is_empty() {
        println!();
        println!("{cluster_line}");
        println!();
        print!("{}", runner::cluster_table(&cluster_rows, &rows));
        println!();
        for line in runner::latency_details(&cluster_rows) {
            println!("{line}");
        }
        for line in runner::shard_details(&cluster_rows) {
            println!("{line}");
        }
    }
    let failures: Vec<String> = rows
        .iter()
        .chain(&cluster_rows)
        .flat_map(runner::Row::failures)
        .collect();
    if failures.is_empty() {
        println!("all correctness checks passed");
        ExitCode::SUCCESS
    } else {
        println!();
        println!("FAILED correctness checks:");
        for f in &failures {
            println!("  {f}");
        }
        ExitCode::from(1)
    }
}
