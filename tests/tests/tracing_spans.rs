//! `publish` and `handle` spans carry the event id, type, tenant, subscriber and attempt, on both
//! buses.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus_core::{MemoryBus, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::{Probe, TestBus, TestTransport};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut out) = self.0.lock() {
            out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_handle_spans_carry_the_delivery() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("event_bus_core=debug,event_bus_redis=debug")
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_global_default(subscriber);
    spans_of::<MemoryBus>(&captured).await;
    spans_of::<RedisBus>(&captured).await;
}

async fn spans_of<B: TestTransport>(captured: &Captured) {
    let kind = B::KIND;
    {
        let t = TestBus::new(kind, "spans", &["probe-a"]);
        let bus = t.build::<B>().await;
        let running = bus.start().await.expect("start");
        let tenant = uuid::Uuid::new_v4();
        let mut probe = Probe::new(tenant, 1);
        probe.fail_first = 1;
        let published = bus.publish(probe).await.expect("publish");
        assert!(
            t.recorder
                .wait_handled("probe-a", 1, Duration::from_secs(10))
                .await
        );
        running.shutdown().await.expect("shutdown");
        let text = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
        let event_id = published.event_id.to_string();
        let publish_line = text
            .lines()
            .find(|l| l.contains("publish{") && l.contains(&event_id))
            .unwrap_or_else(|| panic!("{kind:?}: no publish span in\n{text}"));
        assert!(
            publish_line.contains("event_type=\"PROBE\"")
                || publish_line.contains("event_type=PROBE"),
            "{publish_line}"
        );
        assert!(publish_line.contains(&tenant.to_string()), "{publish_line}");
        let handle_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("handle{") && l.contains(&event_id))
            .collect();
        assert!(
            handle_lines
                .iter()
                .any(|l| l.contains("subscriber=probe-a") && l.contains("attempt=1")),
            "{kind:?}: no handle span for attempt 1 in\n{text}"
        );
        assert!(handle_lines
            .iter()
            .any(|l| l.contains("attempt=2") && l.contains(&tenant.to_string())));
        t.cleanup().await;
    }
}
