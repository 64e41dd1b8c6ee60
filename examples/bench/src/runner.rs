//! Runs the workloads W1–W7 of WORKLOADS.md, each `runs` times on both sides (event-bus and the
//! floor), checks each run's correctness, and builds the table.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;

use crate::collector::{Collector, Summary};
use crate::drive::Pattern;
use crate::event::{dead_letter_key, stream_key};
use crate::report::{mib_cell, ms_cell, rate_cell, Percentiles, Spread, Table};
use crate::roles::{self, ChildSpec, PublisherReport, Role, Side, SubscriberReport};
use crate::{floor, workloads};

/// One workload of WORKLOADS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    W1,
    W2,
    W3,
    W4,
    W5,
    W6,
    W7,
    /// W3 on a Redis Cluster, one stream.
    W3c,
    /// W3 on a Redis Cluster, the event spread over `--partitions` streams.
    W3cP,
    /// W4 on a Redis Cluster, one stream.
    W4c,
    /// W4 on a Redis Cluster, the event spread over `--partitions` streams.
    W4cP,
}

impl Workload {
    pub const ALL: [Workload; 7] = [
        Self::W1,
        Self::W2,
        Self::W3,
        Self::W4,
        Self::W5,
        Self::W6,
        Self::W7,
    ];

    /// The cluster workloads (run only with `--cluster-nodes`).
    pub const CLUSTER: [Workload; 4] = [Self::W3c, Self::W3cP, Self::W4c, Self::W4cP];

    /// Parses `W3`, `w3` or `3`; `W3c` / `W4c` are both cluster variants (one stream, and
    /// partitioned), `W3c+p` / `W4c+p` the partitioned one only.
    pub fn parse(s: &str) -> Option<Vec<Self>> {
        let s = s.trim();
        let digit = s.strip_prefix(['W', 'w']).unwrap_or(s).to_ascii_lowercase();
        Some(match digit.as_str() {
            "1" => vec![Self::W1],
            "2" => vec![Self::W2],
            "3" => vec![Self::W3],
            "4" => vec![Self::W4],
            "5" => vec![Self::W5],
            "6" => vec![Self::W6],
            "7" => vec![Self::W7],
            "3c" => vec![Self::W3c, Self::W3cP],
            "4c" => vec![Self::W4c, Self::W4cP],
            "3c+p" => vec![Self::W3cP],
            "4c+p" => vec![Self::W4cP],
            _ => return None,
        })
    }

    /// Whether this workload runs on the cluster.
    pub fn on_cluster(self) -> bool {
        Self::CLUSTER.contains(&self)
    }

    /// Whether this workload spreads the event over partitions.
    pub fn partitioned(self) -> bool {
        matches!(self, Self::W3cP | Self::W4cP)
    }

    /// The single-node workload this one repeats on the cluster (itself when single-node).
    pub fn single_node(self) -> Self {
        match self {
            Self::W3c | Self::W3cP => Self::W3,
            Self::W4c | Self::W4cP => Self::W4,
            w => w,
        }
    }

    /// Whether this workload runs several subscribers (groups).
    fn many_subscribers(self) -> bool {
        self.single_node() == Self::W4
    }

    fn default_n(self) -> usize {
        match self {
            Self::W1 => 20_000,
            Self::W2 => 50_000,
            Self::W3 | Self::W4 | Self::W3c | Self::W3cP | Self::W4c | Self::W4cP => 20_000,
            Self::W5 | Self::W7 => 200_000,
            Self::W6 => 50_000,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::W1 => "publish, 1 in flight",
            Self::W2 => "publish, 64 in flight",
            Self::W3 => "publish + 1 subscriber",
            Self::W4 => "publish + 8 subscribers",
            Self::W5 => "drain a backlog",
            Self::W6 => "steady rate, latency",
            Self::W7 => "batch publish",
            Self::W3c => "W3 on the cluster, 1 stream",
            Self::W3cP => "W3 on the cluster, partitioned",
            Self::W4c => "W4 on the cluster, 1 stream",
            Self::W4cP => "W4 on the cluster, partitioned",
        }
    }

    /// The target ratio to the floor (for reading the table; not asserted).
    fn target(self) -> Option<f64> {
        match self {
            // WORKLOADS.md's targets; the cluster rows have none for their ratio (theirs are
            // CPU per event against the single node and the split over shards).
            Self::W1 | Self::W2 | Self::W3 | Self::W4 | Self::W5 => Some(0.95),
            Self::W7 => Some(0.90),
            Self::W3c | Self::W3cP | Self::W4c | Self::W4cP | Self::W6 => None,
        }
    }

    fn has_latency(self) -> bool {
        matches!(self, Self::W3 | Self::W4 | Self::W6) || self.on_cluster()
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::W3cP => f.write_str("W3c+p"),
            Self::W4cP => f.write_str("W4c+p"),
            w => write!(f, "{w:?}"),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Ours => "event-bus",
            Side::Floor => "floor",
        })
    }
}

/// W5's group on our side.
const DRAIN_GROUP: &str = "bench-drain";

/// How the workloads are sized and where they run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub prefix: String,
    pub runs: usize,
    /// Overrides every workload's N (W6: its event count, unless `w6_seconds` is given).
    pub n: Option<usize>,
    pub w6_seconds: Option<f64>,
    pub w6_rate: f64,
    pub inflight: usize,
    pub w4_subscribers: usize,
    /// W3/W4/W6: publish with the floor's publisher on both sides (isolates the subscriber)
    /// instead of each side's own.
    pub floor_publisher: bool,
    /// Run this side only (`--only`).
    pub only: Option<Side>,
    /// A subscriber that handles nothing for this long has failed.
    pub stall: Duration,
    /// W7: events per batch.
    pub batch: usize,
    /// W3c/W4c: the cluster's seed URLs.
    pub cluster_nodes: Vec<String>,
    /// W3c+p/W4c+p: partitions of the benchmark event.
    pub partitions: u16,
}

impl Settings {
    /// The number of events of `w`.
    pub fn count(&self, w: Workload) -> usize {
        match (w, self.w6_seconds, self.n) {
            (Workload::W6, Some(secs), _) => ((secs * self.w6_rate).round() as usize).max(1),
            (_, _, Some(n)) => n.max(1),
            _ => w.default_n(),
        }
    }

    /// The partitions of the benchmark event in `w` (0: one stream).
    pub fn partitions_of(&self, w: Workload) -> u16 {
        if w.partitioned() {
            self.partitions
        } else {
            0
        }
    }

    /// The streams the benchmark event goes to in `w`: its stream, or its partitions.
    pub fn streams(&self, w: Workload) -> Vec<String> {
        let base = stream_key(&self.prefix);
        match self.partitions_of(w) {
            n if n > 1 => (0..n)
                .map(|i| {
                    event_bus_redis::admin::partition_stream(
                        &base,
                        &event_bus_redis::admin::partition_tag(i, n),
                    )
                })
                .collect(),
            _ => vec![base],
        }
    }

    /// Every key a run of `w` may leave behind, deleted before and after each run: the
    /// streams, their dead letters, and per group of the bus its records of failed runs and
    /// of entries trimmed unread (`{stream}:runs:{group}`, `{stream}:trimmed:{group}`) and (on
    /// a cluster) the partition ownership leases `{stream}:owner:{group}`.
    fn keys(&self, w: Workload) -> Vec<String> {
        let groups: Vec<String> = (0..self.w4_subscribers.max(1))
            .map(|i| format!("bench-sub-{i}"))
            .chain([DRAIN_GROUP.to_owned()])
            .collect();
        let mut keys = Vec::new();
        for stream in self.streams(w) {
            keys.push(event_bus_redis::admin::dead_letter_stream(&stream));
            for group in &groups {
                keys.push(format!("{stream}:runs:{group}"));
                keys.push(format!("{stream}:trimmed:{group}"));
                if w.on_cluster() {
                    keys.push(format!("{stream}:owner:{group}"));
                }
            }
            keys.push(stream);
        }
        keys
    }

    /// Where our side's bus runs in `w`.
    fn target(&self, w: Workload) -> workloads::Target<'_> {
        if w.on_cluster() {
            workloads::Target::Cluster {
                nodes: &self.cluster_nodes,
                partitions: self.partitions_of(w),
            }
        } else {
            workloads::Target::Single(&self.url)
        }
    }
}

/// One side's result of one run.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    pub rate: f64,
    /// W3/W4/W6: the publisher's own rate (a subscriber cannot handle faster than this).
    pub publish_rate: Option<f64>,
    pub latency: Option<Percentiles>,
    pub rss_kib: Option<u64>,
    /// CPU time of the measured process (the publisher for W1/W2, the subscribers' process for
    /// W3–W6) per event it published or handled, µs.
    pub cpu_us_per_event: Option<f64>,
    /// W3c/W4c: the entries of the benchmark event per master (`redis://host:port`), summed
    /// over the streams whose slot the master owns.
    pub shards: Option<Vec<(String, u64)>>,
    pub error: Option<String>,
}

impl Measure {
    fn failed(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

/// All runs of one workload.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: Workload,
    pub n: usize,
    pub ours: Vec<Measure>,
    pub floor: Vec<Measure>,
}

impl Row {
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (side, runs) in [(Side::Ours, &self.ours), (Side::Floor, &self.floor)] {
            for (i, m) in runs.iter().enumerate() {
                if let Some(e) = &m.error {
                    out.push(format!("{} {side} run {}: {e}", self.workload, i + 1));
                }
            }
        }
        out
    }
}

/// One side's figures of a run, for the progress line of a run of one side alone.
fn one_side(side: Side, m: &Measure) -> String {
    let mut line = format!("{side} {}/s", crate::report::thousands(m.rate));
    if let Some(cpu) = m.cpu_us_per_event {
        line.push_str(&format!("; CPU/event {cpu:.2} µs"));
    }
    if let Some(publish) = m.publish_rate {
        line.push_str(&format!(
            " (publisher {}/s)",
            crate::report::thousands(publish)
        ));
    }
    if let Some(l) = m.latency {
        line.push_str(&format!(
            "; latency p50/p99/max ms {:.2}/{:.2}/{:.2}",
            l.p50, l.p99, l.max
        ));
    }
    if let Some(rss) = m.rss_kib {
        line.push_str(&format!("; peak RSS {:.1} MiB", rss as f64 / 1024.0));
    }
    line
}

/// Runs `w` `settings.runs` times on both sides (or the one `settings.only` names), printing
/// progress to stderr.
pub async fn run_workload(
    w: Workload,
    settings: &Settings,
    admin: &mut impl ConnectionLike,
) -> Row {
    let n = settings.count(w);
    let mut row = Row {
        workload: w,
        n,
        ours: Vec::new(),
        floor: Vec::new(),
    };
    for run in 1..=settings.runs {
        // Alternate which side goes first, so neither always runs on a "warm" or "cold" Redis.
        let order = if run % 2 == 1 {
            [Side::Floor, Side::Ours]
        } else {
            [Side::Ours, Side::Floor]
        };
        for side in order {
            if settings.only.is_some_and(|only| only != side) {
                continue;
            }
            eprintln!(
                "running {w} run {run}/{} ({side}, N = {n})...",
                settings.runs
            );
            let m = run_once(w, side, n, settings, admin).await;
            if let Some(e) = &m.error {
                eprintln!("  {w} {side} run {run} FAILED: {e}");
            }
            match side {
                Side::Ours => row.ours.push(m),
                Side::Floor => row.floor.push(m),
            }
        }
        let (Some(o), Some(f)) = (row.ours.get(run - 1), row.floor.get(run - 1)) else {
            let (side, m) = match (row.ours.get(run - 1), row.floor.get(run - 1)) {
                (Some(m), _) => (Side::Ours, m),
                (_, Some(m)) => (Side::Floor, m),
                (None, None) => continue,
            };
            eprintln!("{w} run {run}/{}: {}", settings.runs, one_side(side, m));
            continue;
        };
        let mut line = format!(
            "{w} run {run}/{}: event-bus {}/s, floor {}/s",
            settings.runs,
            crate::report::thousands(o.rate),
            crate::report::thousands(f.rate),
        );
        if f.rate > 0.0 {
            line.push_str(&format!(", ratio {:.2}", o.rate / f.rate));
        }
        if let (Some(oc), Some(fc)) = (o.cpu_us_per_event, f.cpu_us_per_event) {
            line.push_str(&format!(
                "; CPU/event event-bus {oc:.1} µs, floor {fc:.1} µs"
            ));
        }
        if let (Some(op), Some(fp)) = (o.publish_rate, f.publish_rate) {
            line.push_str(&format!(
                " (publishers: event-bus {}/s, floor {}/s)",
                crate::report::thousands(op),
                crate::report::thousands(fp)
            ));
        }
        if let (Some(ol), Some(fl)) = (o.latency, f.latency) {
            line.push_str(&format!(
                "; latency p50/p99/max ms: event-bus {:.2}/{:.2}/{:.2}, floor {:.2}/{:.2}/{:.2}",
                ol.p50, ol.p99, ol.max, fl.p50, fl.p99, fl.max
            ));
        }
        if let (Some(orss), Some(frss)) = (o.rss_kib, f.rss_kib) {
            line.push_str(&format!(
                "; peak RSS event-bus {:.1} MiB, floor {:.1} MiB",
                orss as f64 / 1024.0,
                frss as f64 / 1024.0
            ));
        }
        eprintln!("{line}");
    }
    let _ = floor::reset(admin, &settings.keys(w)).await;
    row
}

async fn run_once(
    w: Workload,
    side: Side,
    n: usize,
    settings: &Settings,
    admin: &mut impl ConnectionLike,
) -> Measure {
    if let Err(e) = floor::reset(admin, &settings.keys(w)).await {
        return Measure::failed(format!("reset streams: {e}"));
    }
    let cpu_start = roles::cpu_time_s();
    let result = match w {
        Workload::W1 => publish_only(side, Pattern::Sequential, n, settings, admin).await,
        Workload::W2 => publish_only(side, Pattern::Concurrent, n, settings, admin).await,
        Workload::W3 | Workload::W3c | Workload::W3cP => {
            live(w, side, 1, Pattern::Concurrent, n, settings, admin).await
        }
        Workload::W4 | Workload::W4c | Workload::W4cP => {
            let k = settings.w4_subscribers;
            live(w, side, k, Pattern::Concurrent, n, settings, admin).await
        }
        Workload::W5 => backlog(side, n, settings, admin).await,
        Workload::W6 => live(w, side, 1, Pattern::Paced, n, settings, admin).await,
        Workload::W7 => batches(side, n, settings, admin).await,
    };
    let cpu_end = roles::cpu_time_s();
    let mut m = result.unwrap_or_else(Measure::failed);
    if m.cpu_us_per_event.is_none() && w != Workload::W5 {
        let events = if w.many_subscribers() {
            n * settings.w4_subscribers
        } else {
            n
        };
        m.cpu_us_per_event = cpu_end
            .zip(cpu_start)
            .map(|(end, start)| (end - start) * 1e6 / events as f64);
    }
    m
}

/// W1 / W2: publish `n` events in `pattern`; the figure is events/s.
async fn publish_only(
    side: Side,
    pattern: Pattern,
    n: usize,
    settings: &Settings,
    admin: &mut impl ConnectionLike,
) -> Result<Measure, String> {
    let key = stream_key(&settings.prefix);
    let elapsed = match side {
        Side::Floor => {
            let conn = floor::connect(&settings.url)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            floor::publish(&conn, &key, pattern, n, settings.inflight, 0.0)
                .await
                .map_err(|e| format!("floor publish: {e}"))?
        }
        Side::Ours => {
            let bus =
                workloads::publishing_bus(settings.target(Workload::W1), &settings.prefix).await?;
            workloads::publish(&bus, pattern, n, settings.inflight, 0.0).await?
        }
    };
    published(n, elapsed, admin, &key).await
}

/// W7: publish `n` events in batches of `settings.batch`, one batch at a time (ours:
/// `Bus::publish_all`; the floor: the same number of bare `XADD`s in one pipeline); the figure
/// is events/s.
async fn batches(
    side: Side,
    n: usize,
    settings: &Settings,
    admin: &mut impl ConnectionLike,
) -> Result<Measure, String> {
    let key = stream_key(&settings.prefix);
    let batch = settings.batch.max(1);
    let elapsed = match side {
        Side::Floor => {
            let mut conn = floor::connect(&settings.url)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            floor::publish_batches(&mut conn, &key, n, batch)
                .await
                .map_err(|e| format!("floor batch publish: {e}"))?
        }
        Side::Ours => {
            let bus =
                workloads::publishing_bus(settings.target(Workload::W1), &settings.prefix).await?;
            workloads::publish_batches(&bus, n, batch).await?
        }
    };
    published(n, elapsed, admin, &key).await
}

/// W3 / W4 / W6 (and W3c / W4c on the cluster): `k` subscribers (groups) running here while a
/// child process publishes. On the cluster, the floor runs one reader per group and stream
/// (each partition), on a dedicated connection to the master owning the stream's slot.
async fn live(
    w: Workload,
    side: Side,
    k: usize,
    pattern: Pattern,
    n: usize,
    settings: &Settings,
    admin: &mut impl ConnectionLike,
) -> Result<Measure, String> {
    let streams = settings.streams(w);
    let masters = if w.on_cluster() {
        floor::masters(admin).await?
    } else {
        Vec::new()
    };
    let reader_url = |stream: &str| -> Result<String, String> {
        if w.on_cluster() {
            floor::master_of(&masters, stream)
                .map(str::to_owned)
                .ok_or_else(|| format!("no master owns the slot of {stream}"))
        } else {
            Ok(settings.url.clone())
        }
    };
    let groups: Vec<(String, Arc<Collector>)> = (0..k)
        .map(|i| {
            let name = match side {
                Side::Ours => format!("bench-sub-{i}"),
                Side::Floor => format!("floor-sub-{i}"),
            };
            (name, Arc::new(Collector::new(n, true)))
        })
        .collect();
    let target = n as u64;

    // Start the subscribers.
    let stop = Arc::new(AtomicBool::new(false));
    let mut floor_tasks = Vec::new();
    let mut running = None;
    match side {
        Side::Floor => {
            for (group, collector) in &groups {
                for key in &streams {
                    floor::create_group(admin, key, group)
                        .await
                        .map_err(|e| format!("XGROUP CREATE: {e}"))?;
                    let (url, key, group) = (reader_url(key)?, key.clone(), group.clone());
                    let (collector, stop) = (Arc::clone(collector), Arc::clone(&stop));
                    floor_tasks.push(tokio::spawn(async move {
                        floor::consume(&url, &key, &group, "c1", &collector, target, stop).await
                    }));
                }
            }
        }
        Side::Ours => {
            running = Some(
                workloads::start_subscribers(settings.target(w), &settings.prefix, &groups).await?,
            );
        }
    }

    // Another process publishes.
    let spec = ChildSpec {
        role: Role::Publisher,
        side: if settings.floor_publisher {
            Side::Floor
        } else {
            side
        },
        url: settings.url.clone(),
        prefix: settings.prefix.clone(),
        pattern,
        count: n,
        inflight: settings.inflight,
        rate: settings.w6_rate,
        group: String::new(),
        stall: settings.stall,
        cluster_nodes: if w.on_cluster() {
            settings.cluster_nodes.clone()
        } else {
            Vec::new()
        },
        partitions: settings.partitions_of(w),
    };
    let mut errors = Vec::new();
    let mut publish_rate = None;
    match roles::spawn(&spec) {
        Ok(child) => match roles::wait::<PublisherReport>(child).await {
            Ok(report) => {
                if let Some(e) = report.error {
                    errors.push(format!("publisher: {e}"));
                } else if report.elapsed_s > 0.0 {
                    publish_rate = Some(report.published as f64 / report.elapsed_s);
                }
            }
            Err(e) => errors.push(format!("publisher: {e}")),
        },
        Err(e) => errors.push(e),
    }

    // Wait until every subscriber handled everything (or stalls), then stop them.
    if errors.is_empty() {
        for (group, collector) in &groups {
            if !collector.wait_for(target, settings.stall).await {
                errors.push(format!(
                    "{group} stalled at {} of {target} events",
                    collector.handled()
                ));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in floor_tasks {
        match task.await {
            Ok(Ok(0)) => {}
            Ok(Ok(bad)) => errors.push(format!("floor: {bad} entries failed to decode")),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("floor reader task: {e}")),
        }
    }
    if let Some((bus, run)) = running {
        if let Err(e) = workloads::stop(run).await {
            errors.push(e);
        }
        drop(bus);
    }

    // Check: every event handled exactly once by every subscriber, nothing left pending,
    // nothing dead-lettered.
    let summaries: Vec<Summary> = groups.iter().map(|(_, c)| c.summary()).collect();
    for ((group, _), s) in groups.iter().zip(&summaries) {
        if let Err(e) = s.check(target, group) {
            errors.push(e);
        }
        for key in &streams {
            match floor::pending(admin, key, group).await {
                Ok(0) => {}
                Ok(p) if streams.len() == 1 => {
                    errors.push(format!("{group}: {p} entries still pending after shutdown"))
                }
                Ok(p) => errors.push(format!(
                    "{group}: {p} entries of {key} still pending after shutdown"
                )),
                Err(e) => errors.push(format!("{group}: XPENDING: {e}")),
            }
        }
    }
    if w.on_cluster() {
        for key in &streams {
            match floor::xlen(admin, &event_bus_redis::admin::dead_letter_stream(key)).await {
                Ok(0) => {}
                Ok(d) => errors.push(format!("{d} entries of {key} dead-lettered")),
                Err(e) => errors.push(format!("XLEN dead-letter of {key}: {e}")),
            }
        }
    } else {
        check_dead_letters(admin, settings, &mut errors).await;
    }

    // The split over the shards: the entries of each stream, summed per master.
    let shards = if w.on_cluster() {
        let mut per_master: Vec<(String, u64)> = Vec::new();
        for (_, _, url) in &masters {
            if !per_master.iter().any(|(u, _)| u == url) {
                per_master.push((url.clone(), 0));
            }
        }
        let mut total = 0;
        for key in &streams {
            let len = floor::xlen(admin, key)
                .await
                .map_err(|e| format!("XLEN {key}: {e}"))?;
            total += len;
            let url = reader_url(key)?;
            if let Some((_, count)) = per_master.iter_mut().find(|(u, _)| *u == url) {
                *count += len;
            }
        }
        if total != target {
            errors.push(format!(
                "the streams hold {total} entries after publishing {target}"
            ));
        }
        Some(per_master)
    } else {
        None
    };

    let mut samples: Vec<f64> = groups.iter().flat_map(|(_, c)| c.latencies()).collect();
    Ok(Measure {
        rate: summaries.iter().map(Summary::rate).sum(),
        publish_rate,
        latency: Percentiles::of(&mut samples),
        rss_kib: None,
        cpu_us_per_event: None,
        shards,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    })
}

/// W5: `n` events already in the stream, then one subscriber process starts and drains them.
async fn backlog(
    side: Side,
    n: usize,
    settings: &Settings,
    admin: &mut impl ConnectionLike,
) -> Result<Measure, String> {
    let key = stream_key(&settings.prefix);
    let conn = floor::connect(&settings.url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    floor::publish(&conn, &key, Pattern::Concurrent, n, 256, 0.0)
        .await
        .map_err(|e| format!("filling the stream: {e}"))?;
    let len = floor::xlen(admin, &key)
        .await
        .map_err(|e| format!("XLEN: {e}"))?;
    if len != n as u64 {
        return Err(format!("stream holds {len} entries after filling {n}"));
    }
    let group = match side {
        Side::Ours => DRAIN_GROUP,
        Side::Floor => "floor-drain",
    };
    let spec = ChildSpec {
        role: Role::Subscriber,
        side,
        url: settings.url.clone(),
        prefix: settings.prefix.clone(),
        pattern: Pattern::Concurrent,
        count: n,
        inflight: settings.inflight,
        rate: 0.0,
        group: group.to_owned(),
        stall: settings.stall,
        cluster_nodes: Vec::new(),
        partitions: 0,
    };
    let report: SubscriberReport = roles::wait(roles::spawn(&spec)?).await?;
    let mut errors = Vec::new();
    if let Some(e) = report.error {
        errors.push(e);
    }
    if let Err(e) = report.summary.check(n as u64, group) {
        errors.push(e);
    }
    match floor::pending(admin, &key, group).await {
        Ok(0) => {}
        Ok(p) => errors.push(format!("{group}: {p} entries still pending after shutdown")),
        Err(e) => errors.push(format!("{group}: XPENDING: {e}")),
    }
    check_dead_letters(admin, settings, &mut errors).await;
    Ok(Measure {
        rate: if report.start_to_last_s > 0.0 {
            n as f64 / report.start_to_last_s
        } else {
            0.0
        },
        latency: None,
        publish_rate: None,
        rss_kib: report.vm_hwm_kib,
        cpu_us_per_event: report.cpu_s.map(|s| s * 1e6 / n as f64),
        shards: None,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    })
}

async fn check_dead_letters(
    admin: &mut impl ConnectionLike,
    settings: &Settings,
    errors: &mut Vec<String>,
) {
    match floor::xlen(admin, &dead_letter_key(&settings.prefix)).await {
        Ok(0) => {}
        Ok(d) => errors.push(format!("{d} entries dead-lettered")),
        Err(e) => errors.push(format!("XLEN dead-letter: {e}")),
    }
}

/// Median and min–max of a figure over the runs that produced one (a run that failed its check
/// after measuring still counts; the check column says it failed).
fn spread(runs: &[Measure], f: impl Fn(&Measure) -> Option<f64>) -> Option<Spread> {
    let values: Vec<f64> = runs.iter().filter_map(f).filter(|v| *v > 0.0).collect();
    Spread::of(&values)
}

fn latency_cell(runs: &[Measure]) -> String {
    let p =
        |f: fn(&Percentiles) -> f64| spread(runs, |m| m.latency.as_ref().map(f)).map(|s| s.median);
    match (p(|l| l.p50), p(|l| l.p99), p(|l| l.max)) {
        (Some(a), Some(b), Some(c)) => format!("{a:.2} / {b:.2} / {c:.2}"),
        _ => "-".into(),
    }
}

/// The table: one row per workload.
pub fn table(rows: &[Row]) -> String {
    let mut t = Table::new([
        "workload",
        "N",
        "event-bus, median (min–max)",
        "floor, median (min–max)",
        "ratio (target)",
        "event-bus latency p50 / p99 / max ms",
        "floor latency p50 / p99 / max ms",
        "peak RSS event-bus / floor",
        "CPU µs/event event-bus / floor",
        "check",
    ]);
    for row in rows {
        let w = row.workload;
        let ours = spread(&row.ours, |m| Some(m.rate));
        let floor = spread(&row.floor, |m| Some(m.rate));
        let ratio = match (ours, floor) {
            (Some(o), Some(f)) if f.median > 0.0 => {
                let r = o.median / f.median;
                match w.target() {
                    Some(t) => format!("{r:.2} (≥ {t:.2})"),
                    None => format!("{r:.2}"),
                }
            }
            _ => "-".into(),
        };
        let (lat_ours, lat_floor) = if w.has_latency() {
            (latency_cell(&row.ours), latency_cell(&row.floor))
        } else {
            ("".into(), "".into())
        };
        let rss = if w == Workload::W5 {
            let o = spread(&row.ours, |m| m.rss_kib.map(|k| k as f64));
            let f = spread(&row.floor, |m| m.rss_kib.map(|k| k as f64));
            format!("{} / {}", mib_cell(o), mib_cell(f))
        } else {
            String::new()
        };
        let cpu = {
            let o = spread(&row.ours, |m| m.cpu_us_per_event).map(|s| s.median);
            let f = spread(&row.floor, |m| m.cpu_us_per_event).map(|s| s.median);
            let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            match (o, f) {
                (None, None) => "-".into(),
                (o, f) => format!("{} / {}", cell(o), cell(f)),
            }
        };
        let check = check_cell(row);
        t.row(vec![
            format!("{w} {}", w.what()),
            crate::report::thousands(row.n as f64),
            rate_cell(ours),
            rate_cell(floor),
            ratio,
            lat_ours,
            lat_floor,
            rss,
            cpu,
            check,
        ]);
    }
    t.render()
}

/// Per-run latency spreads (median and min–max over runs), for the lines under the table.
pub fn latency_details(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows.iter().filter(|r| r.workload.has_latency()) {
        for (side, runs) in [(Side::Ours, &row.ours), (Side::Floor, &row.floor)] {
            if runs.is_empty() {
                continue;
            }
            let s = |f: fn(&Percentiles) -> f64| spread(runs, |m| m.latency.as_ref().map(f));
            out.push(format!(
                "{} {side} latency ms: p50 {}, p99 {}, max {}",
                row.workload,
                ms_cell(s(|l| l.p50)),
                ms_cell(s(|l| l.p99)),
                ms_cell(s(|l| l.max)),
            ));
        }
    }
    out
}

/// The largest deviation from an even split of `shards` (as a fraction: 0.05 is ±5 %).
fn shard_deviation(shards: &[(String, u64)]) -> Option<f64> {
    let total: u64 = shards.iter().map(|(_, c)| c).sum();
    if shards.is_empty() || total == 0 {
        return None;
    }
    let even = total as f64 / shards.len() as f64;
    shards
        .iter()
        .map(|(_, c)| (*c as f64 - even).abs() / even)
        .max_by(f64::total_cmp)
}

/// The shares of the masters in a run (`34.1 / 32.9 / 33.0 %`), ordered by slot range.
fn shares(shards: &[(String, u64)]) -> String {
    let total: u64 = shards.iter().map(|(_, c)| c).sum::<u64>().max(1);
    let cells: Vec<String> = shards
        .iter()
        .map(|(_, c)| format!("{:.1}", *c as f64 * 100.0 / total as f64))
        .collect();
    format!("{} %", cells.join(" / "))
}

/// The cluster table: one row per cluster workload, our figures as ratios of the cluster floor
/// and of the same workload on the single node (`single`, when it ran), CPU per event against
/// the single node's, and the split of events over the masters.
pub fn cluster_table(rows: &[Row], single: &[Row]) -> String {
    let mut t = Table::new([
        "workload",
        "N",
        "event-bus, median (min–max)",
        "cluster floor, median (min–max)",
        "ratio to floor",
        "ratio to single node",
        "event-bus latency p50 / p99 / max ms",
        "floor latency p50 / p99 / max ms",
        "CPU µs/event event-bus / floor",
        "CPU vs single node (≤ 1.10)",
        "events per master (worst deviation from even)",
        "check",
    ]);
    for row in rows {
        let w = row.workload;
        let ours = spread(&row.ours, |m| Some(m.rate));
        let floor = spread(&row.floor, |m| Some(m.rate));
        let ratio = |a: Option<Spread>, b: Option<Spread>| match (a, b) {
            (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
            _ => "-".into(),
        };
        let same = single.iter().find(|r| r.workload == w.single_node());
        let single_rate = same.and_then(|r| spread(&r.ours, |m| Some(m.rate)));
        let cpu = |runs: &[Measure]| spread(runs, |m| m.cpu_us_per_event).map(|s| s.median);
        let (cpu_ours, cpu_floor) = (cpu(&row.ours), cpu(&row.floor));
        let cpu_cell = match (cpu_ours, cpu_floor) {
            (Some(o), Some(f)) => format!("{o:.1} / {f:.1}"),
            _ => "-".into(),
        };
        let cpu_single = match (cpu_ours, same.and_then(|r| cpu(&r.ours))) {
            (Some(c), Some(s)) if s > 0.0 => format!("{:.2} ({c:.1} vs {s:.1})", c / s),
            _ => "-".into(),
        };
        let split = {
            let runs: Vec<&Vec<(String, u64)>> =
                row.ours.iter().filter_map(|m| m.shards.as_ref()).collect();
            let worst = runs
                .iter()
                .filter_map(|s| shard_deviation(s))
                .max_by(f64::total_cmp);
            match (runs.first(), worst) {
                (Some(first), Some(dev)) if w.partitioned() => {
                    format!("{} (±{:.1} %)", shares(first), dev * 100.0)
                }
                (Some(first), Some(_)) => format!("{} (one stream)", shares(first)),
                _ => "-".into(),
            }
        };
        let check = check_cell(row);
        t.row(vec![
            format!("{w} {}", w.what()),
            crate::report::thousands(row.n as f64),
            rate_cell(ours),
            rate_cell(floor),
            ratio(ours, floor),
            ratio(ours, single_rate),
            latency_cell(&row.ours),
            latency_cell(&row.floor),
            cpu_cell,
            cpu_single,
            split,
            check,
        ]);
    }
    t.render()
}

/// The masters of the cluster and each one's entries per run (ours, then the floor), for the
/// lines under the cluster table.
pub fn shard_details(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows {
        for (side, runs) in [(Side::Ours, &row.ours), (Side::Floor, &row.floor)] {
            for (i, m) in runs.iter().enumerate() {
                if let Some(shards) = &m.shards {
                    let cells: Vec<String> = shards
                        .iter()
                        .map(|(url, c)| format!("{} {c}", event_bus_redis::redact_url(url)))
                        .collect();
                    out.push(format!(
                        "{} {side} run {}: entries per master: {}",
                        row.workload,
                        i + 1,
                        cells.join(", ")
                    ));
                }
            }
        }
    }
    out
}

/// The table's check cell of `row`: `ok`, or how many of its runs failed their checks.
fn check_cell(row: &Row) -> String {
    match row.failures().len() {
        0 => "ok".to_owned(),
        failures => format!("FAILED ({failures})"),
    }
}

/// W1 / W2 / W7's figure: `n` events published in `elapsed`, checked against what the stream
/// `key` holds.
async fn published(
    n: usize,
    elapsed: Duration,
    admin: &mut impl ConnectionLike,
    key: &str,
) -> Result<Measure, String> {
    let mut m = Measure {
        rate: n as f64 / elapsed.as_secs_f64(),
        ..Measure::default()
    };
    let len = floor::xlen(admin, key)
        .await
        .map_err(|e| format!("XLEN: {e}"))?;
    if len != n as u64 {
        m.error = Some(format!("stream holds {len} entries after publishing {n}"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "bench".into(),
            runs: 1,
            n: None,
            w6_seconds: None,
            w6_rate: 5000.0,
            inflight: 64,
            w4_subscribers: 8,
            floor_publisher: false,
            only: None,
            stall: Duration::from_secs(30),
            batch: 1000,
            cluster_nodes: Vec::new(),
            partitions: 12,
        }
    }

    #[test]
    fn a_run_deletes_the_records_the_bus_keeps_per_group() {
        let keys = settings().keys(Workload::W4);
        for key in [
            "bench:TICKET_UPDATED",
            "bench:TICKET_UPDATED:dead-letter",
            "bench:TICKET_UPDATED:trimmed:bench-sub-0",
            "bench:TICKET_UPDATED:trimmed:bench-sub-7",
            "bench:TICKET_UPDATED:runs:bench-sub-7",
            "bench:TICKET_UPDATED:trimmed:bench-drain",
            "bench:TICKET_UPDATED:runs:bench-drain",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        assert!(
            !keys.iter().any(|k| k.contains(":owner:")),
            "partition leases exist only on a cluster: {keys:?}"
        );
        let cluster = settings().keys(Workload::W4c);
        assert!(cluster
            .iter()
            .any(|k| k == "bench:TICKET_UPDATED:owner:bench-sub-7"));
    }
}
