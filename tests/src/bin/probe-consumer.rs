//! A consumer process for crash tests: runs one probe subscriber on Redis and prints every
//! attempt (`start ...`, `done ...`) to stdout, until killed or its stdin closes.
//!
//! Usage: `probe-consumer <redis-url> <prefix> <subscriber> <consumer-name>`; the environment
//! variable `PROBE_CLAIM_IDLE_MS` sets its `claim_idle` (default: the bus's).

use std::sync::Arc;
use std::time::Duration;

use event_bus_core::{Bus, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::bus::SharedRecorder;
use event_bus_tests::Recorder;
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, prefix, subscriber, consumer] = args.as_slice() else {
        return Err(
            "usage: probe-consumer <redis-url> <prefix> <subscriber> <consumer-name>".into(),
        );
    };
    let mut builder = RedisBus::builder();
    if let Some(ms) = std::env::var("PROBE_CLAIM_IDLE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        builder = builder.claim_idle(Duration::from_millis(ms));
    }
    let bus = builder
        .url(url)
        .prefix(prefix)
        .only([subscriber.as_str()])
        .consumer_name(consumer)
        .read_batch(8)
        .block(Duration::from_millis(200))
        .state(SharedRecorder(Arc::new(Recorder::echoing())))
        .build()
        .await?;
    let running = bus.start().await?;
    println!("ready");
    // Runs until killed, or until the parent closes stdin.
    let mut sink = [0u8; 1];
    let _ = tokio::io::stdin().read(&mut sink).await;
    running.shutdown().await?;
    Ok(())
}
