//! Roles run in child processes ("another process publishes", "the subscriber process"): the
//! driver re-executes itself with a hidden `--role publisher|subscriber ...`; the child prints
//! one final `RESULT {json}` line on stdout.

use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::collector::{Collector, Summary};
use crate::drive::Pattern;
use crate::event::stream_key;
use crate::{floor, workloads};

/// Which implementation a role runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Side {
    /// event-bus (`RedisBus`).
    Ours,
    /// Bare `redis` crate calls.
    Floor,
}

/// A child's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Publisher,
    Subscriber,
}

/// What a child is asked to do.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub role: Role,
    pub side: Side,
    pub url: String,
    pub prefix: String,
    pub pattern: Pattern,
    pub count: usize,
    pub inflight: usize,
    pub rate: f64,
    pub group: String,
    pub stall: Duration,
    /// W3c/W4c: the cluster's seed URLs (empty: the Redis at `url`).
    pub cluster_nodes: Vec<String>,
    /// W3c+p/W4c+p: the benchmark event's partitions on the cluster (0: one stream).
    pub partitions: u16,
}

impl ChildSpec {
    /// Where this child's bus runs.
    pub fn target(&self) -> workloads::Target<'_> {
        if self.cluster_nodes.is_empty() {
            workloads::Target::Single(&self.url)
        } else {
            workloads::Target::Cluster {
                nodes: &self.cluster_nodes,
                partitions: self.partitions,
            }
        }
    }
}

/// A publisher child's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublisherReport {
    pub published: u64,
    pub elapsed_s: f64,
    pub error: Option<String>,
}

/// A subscriber child's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriberReport {
    pub summary: Summary,
    /// From before connecting to the last handled event.
    pub start_to_last_s: f64,
    /// Peak resident set (`VmHWM`), KiB.
    pub vm_hwm_kib: Option<u64>,
    /// CPU time (user + system) the subscriber used, seconds.
    pub cpu_s: Option<f64>,
    pub error: Option<String>,
}

const RESULT_PREFIX: &str = "RESULT ";

/// Runs a child role; returns the process exit code.
pub async fn run_child(spec: ChildSpec) -> i32 {
    let line = match spec.role {
        Role::Publisher => {
            let report = publisher(&spec).await;
            let ok = report.error.is_none();
            (serde_json::to_string(&report), ok)
        }
        Role::Subscriber => {
            let report = subscriber(&spec).await;
            let ok = report.error.is_none();
            (serde_json::to_string(&report), ok)
        }
    };
    match line {
        (Ok(json), ok) => {
            println!("{RESULT_PREFIX}{json}");
            if ok {
                0
            } else {
                1
            }
        }
        (Err(e), _) => {
            eprintln!("bench child: cannot encode report: {e}");
            2
        }
    }
}

async fn publisher(spec: &ChildSpec) -> PublisherReport {
    let key = stream_key(&spec.prefix);
    let result = match spec.side {
        Side::Floor if !spec.cluster_nodes.is_empty() => {
            match floor::cluster_connect(&spec.cluster_nodes).await {
                Ok(conn) => floor::cluster_publish(
                    &conn,
                    &key,
                    spec.partitions,
                    spec.pattern,
                    spec.count,
                    spec.inflight,
                    spec.rate,
                )
                .await
                .map_err(|e| format!("floor cluster publish: {e}")),
                Err(e) => Err(format!("floor cluster connect: {e}")),
            }
        }
        Side::Floor => match floor::connect(&spec.url).await {
            Ok(conn) => floor::publish(
                &conn,
                &key,
                spec.pattern,
                spec.count,
                spec.inflight,
                spec.rate,
            )
            .await
            .map_err(|e| format!("floor publish: {e}")),
            Err(e) => Err(format!("floor connect: {e}")),
        },
        Side::Ours => match workloads::publishing_bus(spec.target(), &spec.prefix).await {
            Ok(bus) => {
                workloads::publish(&bus, spec.pattern, spec.count, spec.inflight, spec.rate).await
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(elapsed) => PublisherReport {
            published: spec.count as u64,
            elapsed_s: elapsed.as_secs_f64(),
            error: None,
        },
        Err(e) => PublisherReport {
            published: 0,
            elapsed_s: 0.0,
            error: Some(e),
        },
    }
}

/// Drains `count` events already in the stream with a new group starting at the earliest entry.
async fn subscriber(spec: &ChildSpec) -> SubscriberReport {
    let collector = Arc::new(Collector::new(spec.count, false));
    let target = spec.count as u64;
    let cpu_start = cpu_time_s();
    let start = Instant::now();
    let error = match spec.side {
        Side::Floor => floor_subscriber(spec, &collector, target).await.err(),
        Side::Ours => {
            let groups = [(spec.group.clone(), Arc::clone(&collector))];
            match workloads::start_subscribers(spec.target(), &spec.prefix, &groups).await {
                Ok((_bus, running)) => {
                    let done = collector.wait_for(target, spec.stall).await;
                    let stopped = workloads::stop(running).await;
                    if !done {
                        Some(format!(
                            "event-bus subscriber stalled at {} of {target} events",
                            collector.handled()
                        ))
                    } else {
                        stopped.err()
                    }
                }
                Err(e) => Some(e),
            }
        }
    };
    let start_to_last_s = collector
        .last()
        .map_or(0.0, |last| (last - start).as_secs_f64());
    SubscriberReport {
        summary: collector.summary(),
        start_to_last_s,
        vm_hwm_kib: peak_rss_kib(),
        cpu_s: cpu_time_s().zip(cpu_start).map(|(end, start)| end - start),
        error,
    }
}

async fn floor_subscriber(
    spec: &ChildSpec,
    collector: &Collector,
    target: u64,
) -> Result<(), String> {
    let key = stream_key(&spec.prefix);
    let mut admin = floor::connect(&spec.url)
        .await
        .map_err(|e| format!("floor connect: {e}"))?;
    floor::create_group(&mut admin, &key, &spec.group)
        .await
        .map_err(|e| format!("floor XGROUP CREATE: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let consume = floor::consume(
        &spec.url,
        &key,
        &spec.group,
        "c1",
        collector,
        target,
        stop.clone(),
    );
    match tokio::time::timeout(spec.stall * 10, consume).await {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(bad)) => Err(format!("floor: {bad} entries failed to decode")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "floor subscriber timed out at {} of {target} events",
            collector.handled()
        )),
    }
}

/// `VmHWM` of this process, KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system, all threads, those that ended included) of this process so far, in
/// seconds, from `CLOCK_PROCESS_CPUTIME_ID`: nanoseconds, where `/proc/self/stat` counts 10 ms
/// ticks, which at a few µs per event is too coarse for a run of 20,000 events. Never inlined:
/// profiles split runs at its calls (`valgrind --tool=callgrind --dump-before='*cpu_time_s*'`).
#[inline(never)]
pub fn cpu_time_s() -> Option<f64> {
    cpu_time::ProcessTime::try_now()
        .ok()
        .map(|t| t.as_duration().as_secs_f64())
}

/// Starts a child running `spec`.
pub fn spawn(spec: &ChildSpec) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let role = match spec.role {
        Role::Publisher => "publisher",
        Role::Subscriber => "subscriber",
    };
    let side = match spec.side {
        Side::Ours => "ours",
        Side::Floor => "floor",
    };
    let pattern = match spec.pattern {
        Pattern::Sequential => "sequential",
        Pattern::Concurrent => "concurrent",
        Pattern::Paced => "paced",
    };
    Command::new(exe)
        .args(["--role", role, "--side", side, "--pattern", pattern])
        .args(["--redis-url", &spec.url, "--prefix", &spec.prefix])
        .args(["--count", &spec.count.to_string()])
        .args(["--inflight", &spec.inflight.to_string()])
        .args(["--rate", &spec.rate.to_string()])
        .args(["--group", &spec.group])
        .args(["--stall-seconds", &spec.stall.as_secs().to_string()])
        .args(if spec.cluster_nodes.is_empty() {
            Vec::new()
        } else {
            vec![
                "--cluster-nodes".to_owned(),
                spec.cluster_nodes.join(","),
                "--partitions".to_owned(),
                spec.partitions.to_string(),
            ]
        })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn child {role}: {e}"))
}

/// Waits for a child and parses its `RESULT` line.
pub async fn wait<T: DeserializeOwned + Send + 'static>(
    child: std::process::Child,
) -> Result<T, String> {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .map_err(|e| format!("waiting for child: {e}"))?
        .map_err(|e| format!("waiting for child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .ok_or_else(|| format!("child exited with {} and no result", output.status))?;
    serde_json::from_str(line).map_err(|e| format!("child result: {e}: {line}"))
}
