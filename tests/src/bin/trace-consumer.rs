//! A consumer process for the trace-context tests: runs the `probe-a` subscriber on Redis with
//! an OpenTelemetry tracer provider of its own (in-memory exporter), prints `ready` once
//! started, then, for the first handler span that ends, one JSON line of its ids and parent
//! (`event_bus_tests::otel::SeenSpan`), and exits. Gives up after 60 s.
//!
//! Usage: `trace-consumer <redis-url> <prefix>`

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::bus::SharedRecorder;
use event_bus_tests::otel::{SeenSpan, Tracing};
use event_bus_tests::Recorder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, prefix] = args.as_slice() else {
        return Err("usage: trace-consumer <redis-url> <prefix>".into());
    };
    let tracing = Tracing::new();
    tracing::subscriber::set_global_default(tracing.subscriber())?;
    let bus = RedisBus::builder()
        .url(url)
        .prefix(prefix)
        .only(["probe-a"])
        .block(Duration::from_millis(200))
        .state(SharedRecorder(Arc::new(Recorder::default())))
        .build()
        .await?;
    let running = bus.start().await?;
    println!("ready");
    std::io::stdout().flush()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let span = loop {
        if let Some(span) = tracing.finished().into_iter().find(|s| s.name == "handle") {
            break span;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("no handler span within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("{}", serde_json::to_string(&SeenSpan::of(&span))?);
    std::io::stdout().flush()?;
    running.shutdown().await?;
    Ok(())
}
