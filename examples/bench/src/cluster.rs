//! The Redis Cluster of the cluster workloads (W3c, W3c+p, W4c, W4c+p): its masters, and how
//! the benchmark event's partitions fall on them.

use redis::aio::ConnectionLike;

use crate::floor;
use crate::runner::{Settings, Workload};

/// One line describing the cluster: its Redis version, its masters with their slot ranges, and
/// the partitions each master owns (from the partition tags' slots, as the framework computes
/// them).
pub async fn describe(
    conn: &mut impl ConnectionLike,
    settings: &Settings,
) -> Result<String, String> {
    let masters = floor::masters(conn).await?;
    let mut urls: Vec<&str> = Vec::new();
    for (_, _, url) in &masters {
        if !urls.contains(&url.as_str()) {
            urls.push(url);
        }
    }
    // INFO through the cluster client asks every node; ask the first master alone.
    let version = match urls.first() {
        Some(url) => match floor::connect(url).await {
            Ok(mut node) => floor::server_version(&mut node)
                .await
                .unwrap_or_else(|e| format!("unknown ({e})")),
            Err(e) => format!("unknown ({e})"),
        },
        None => return Err("CLUSTER SLOTS names no master".into()),
    };
    let ranges: Vec<String> = masters
        .iter()
        .map(|(lo, hi, url)| format!("{lo}–{hi} {}", event_bus_redis::redact_url(url)))
        .collect();
    let mut line = format!(
        "Redis Cluster {version}: {} masters (slots {})",
        urls.len(),
        ranges.join(", ")
    );
    if settings.partitions > 1 {
        let streams = settings.streams(Workload::W3cP);
        let per_master: Vec<String> = urls
            .iter()
            .map(|url| {
                streams
                    .iter()
                    .filter(|s| floor::master_of(&masters, s) == Some(url))
                    .count()
                    .to_string()
            })
            .collect();
        line.push_str(&format!(
            "; {} partitions, per master {}",
            settings.partitions,
            per_master.join(" / ")
        ));
    }
    Ok(line)
}
