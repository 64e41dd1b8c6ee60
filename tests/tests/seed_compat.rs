//! Joining a live seed deployment, proved both ways against the model of the seed's publish
//! and consume paths (`tests/seed-model`, the real `zod` and `redis` packages; see
//! `event_bus_tests::seed`): a Rust bus built with `.seed_compatible(...)` writes entries and
//! workflow entries field for field as the seed does, reaches the seed's channel readers and
//! its consumer group, reads what the seed publishes, on both seed generations, and shares
//! dead-letter streams with the seed's consumer without touching its letters. Every test
//! runs under a unique prefix and workflow stream on the shared Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus_core::{subscriber, Bus, Context, Envelope, Event, HandlerError, RunningBus, State};
use event_bus_redis::{RedisBus, SeedGeneration};
use event_bus_tests::seed::{ConsumeOpts, Layout, PublishOpts, SeedModel};
use event_bus_tests::{delete_prefix, redis_url, unique_prefix};
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use uuid::Uuid;

const CHANNELS: [&str; 3] = ["global", "internal-notifications", "emailservice::v7"];

/// The seed's first-generation ticket payload, published on the seed's three ticket channels.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(
    name = "TICKET_UPDATED",
    channels("global", "internal-notifications", "emailservice::v7")
)]
struct TicketUpdated {
    tenant_id: Uuid,
    ticket_id: Uuid,
    user_id: Uuid,
    changes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What each subscriber saw, by subscriber.
#[derive(Debug, Default)]
struct Seen(Mutex<HashMap<String, Vec<Envelope<TicketUpdated>>>>);

impl Seen {
    fn record(&self, ctx: &Context, event: Envelope<TicketUpdated>) -> Result<(), HandlerError> {
        self.0
            .lock()
            .map_err(|_| HandlerError::permanent("poisoned"))?
            .entry(ctx.subscriber().to_owned())
            .or_default()
            .push(event);
        Ok(())
    }

    fn of(&self, subscriber: &str) -> Vec<Envelope<TicketUpdated>> {
        self.0
            .lock()
            .map(|m| m.get(subscriber).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    async fn wait(&self, subscriber: &str, n: usize) -> Vec<Envelope<TicketUpdated>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.of(subscriber).len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.of(subscriber)
    }
}

#[subscriber("TICKET_UPDATED", name = "seed-compat-global", start = "earliest")]
async fn on_global(
    event: Envelope<TicketUpdated>,
    ctx: Context,
    seen: State<Arc<Seen>>,
) -> Result<(), HandlerError> {
    seen.record(&ctx, event)
}

#[subscriber(
    "TICKET_UPDATED",
    name = "seed-compat-notifications",
    channel = "internal-notifications",
    start = "earliest"
)]
async fn on_notifications(
    event: Envelope<TicketUpdated>,
    ctx: Context,
    seen: State<Arc<Seen>>,
) -> Result<(), HandlerError> {
    seen.record(&ctx, event)
}

#[subscriber(
    "TICKET_UPDATED",
    name = "seed-compat-email",
    channel = "emailservice::v7",
    start = "earliest"
)]
async fn on_email(
    event: Envelope<TicketUpdated>,
    ctx: Context,
    seen: State<Arc<Seen>>,
) -> Result<(), HandlerError> {
    seen.record(&ctx, event)
}

const ALL: [&str; 3] = [
    "seed-compat-global",
    "seed-compat-notifications",
    "seed-compat-email",
];

/// One test's keys: a prefix and a workflow stream of its own.
struct Deployment {
    url: String,
    prefix: String,
    workflow: String,
    model: SeedModel,
    seen: Arc<Seen>,
}

impl Deployment {
    fn new(test: &str) -> Self {
        let prefix = unique_prefix(test);
        Self {
            url: redis_url(),
            workflow: format!("{prefix}:workflow:events:global"),
            prefix,
            model: SeedModel::new(),
            seen: Arc::new(Seen::default()),
        }
    }

    /// A bus joined to the seed deployment, with this test's prefix and workflow stream.
    async fn bus(&self, generation: SeedGeneration, only: &[&str]) -> RedisBus {
        let mut builder = RedisBus::builder()
            .url(&self.url)
            .seed_compatible(generation)
            .prefix(&self.prefix);
        if generation == SeedGeneration::Current {
            builder = builder.workflow_stream(&self.workflow);
        }
        builder
            .only(only.iter().copied())
            .allow_no_subscribers(only.is_empty())
            .state(Arc::clone(&self.seen))
            .block(Duration::from_millis(100))
            .build()
            .await
            .expect("bus")
    }

    fn stream(&self, channel: &str) -> String {
        format!("{}:{channel}:TICKET_UPDATED", self.prefix)
    }

    fn publish_opts(&self, layout: Layout) -> PublishOpts {
        PublishOpts {
            prefix: self.prefix.clone(),
            layout,
            workflow_stream: self.workflow.clone(),
            ..PublishOpts::new("TICKET_UPDATED")
        }
    }

    fn consume_opts(&self, layout: Layout, channel: &str, count: usize) -> ConsumeOpts {
        ConsumeOpts {
            prefix: self.prefix.clone(),
            layout,
            channel: channel.to_owned(),
            count,
            timeout: Duration::from_secs(10),
            dedup: false,
            ..ConsumeOpts::new("TICKET_UPDATED")
        }
    }

    async fn cleanup(&self) {
        let _ = delete_prefix(&self.url, &self.prefix).await;
    }
}

async fn conn(url: &str) -> MultiplexedConnection {
    event_bus_tests::connect(url).await.expect("conn")
}

/// `XRANGE key - +`: each entry's fields, in stream order.
async fn entries(conn: &mut MultiplexedConnection, key: &str) -> Vec<Vec<(String, String)>> {
    let reply: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    reply
        .into_iter()
        .map(|(_, flat)| {
            flat.chunks(2)
                .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
                .collect()
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

fn names(fields: &[(String, String)]) -> Vec<&str> {
    fields.iter().map(|(k, _)| k.as_str()).collect()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

/// The README's example event with `changes: None`: ours and the seed's entries for the same
/// envelope have the same fields in the same order with the same values (the envelope compared
/// as JSON: the seed writes its keys in another order), on each of the three channels, and the
/// same workflow entry; the seed's zod accepts ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_entries_and_workflow_entries_are_the_seeds() {
    let d = Deployment::new("seed-entries");
    let bus = d.bus(SeedGeneration::Current, &[]).await;
    let (tenant, ticket, user) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let envelope = Envelope::new(TicketUpdated {
        tenant_id: tenant,
        ticket_id: ticket,
        user_id: user,
        changes: None,
    });
    let published = bus.publish_envelope(&envelope).await.expect("publish");
    assert_eq!(
        published
            .entries
            .iter()
            .map(|e| e.channel.as_str())
            .collect::<Vec<_>>(),
        CHANNELS,
        "one entry per channel, in the event type's order"
    );
    let mut conn = conn(&d.url).await;
    let mut ours = Vec::new();
    for channel in CHANNELS {
        let mut written = entries(&mut conn, &d.stream(channel)).await;
        assert_eq!(written.len(), 1, "{channel}");
        ours.push(written.remove(0));
    }
    let our_workflow = entries(&mut conn, &d.workflow).await;
    assert_eq!(
        our_workflow.len(),
        1,
        "one workflow entry, for the global channel"
    );

    // The seed publishes the same payload with the same envelope id and timestamp, under a
    // prefix of its own.
    let seed = Deployment::new("seed-entries-seed");
    let payload = json!({"tenantId": tenant, "ticketId": ticket, "userId": user});
    let report = d.model.publish(
        &seed.url,
        &PublishOpts {
            channels: CHANNELS.iter().map(|c| (*c).to_owned()).collect(),
            id: Some(envelope.id.to_string()),
            timestamp: Some(event_bus_core::format_timestamp(&envelope.timestamp)),
            ..seed.publish_opts(Layout::Channels)
        },
        &payload,
    );
    assert_eq!(report["refused"], json!([]), "{report}");
    for (i, channel) in CHANNELS.iter().enumerate() {
        let theirs = entries(&mut conn, &seed.stream(channel)).await;
        assert_eq!(theirs.len(), 1, "{channel}");
        let theirs = &theirs[0];
        assert_eq!(
            names(&ours[i]),
            names(theirs),
            "field names and order on {channel}"
        );
        assert_eq!(names(&ours[i]), ["event", "channel"]);
        assert_eq!(field(&ours[i], "channel"), *channel, "the channel's name");
        assert_eq!(field(&ours[i], "channel"), field(theirs, "channel"));
        assert_eq!(
            json_of(field(&ours[i], "event")),
            json_of(field(theirs, "event")),
            "the same envelope on {channel}"
        );
        assert!(
            !field(&ours[i], "event").contains("null"),
            "None is absent, not null: {}",
            field(&ours[i], "event")
        );
        let verdict = d.model.validate("TICKET_UPDATED", field(&ours[i], "event"));
        assert_eq!(verdict["ok"], json!(true), "the seed's zod: {verdict}");
    }
    let their_workflow = entries(&mut conn, &seed.workflow).await;
    assert_eq!(their_workflow.len(), 1);
    assert_eq!(
        our_workflow[0], their_workflow[0],
        "the workflow entry, byte for byte"
    );
    d.cleanup().await;
    seed.cleanup().await;
    let _: i64 = redis::cmd("DEL")
        .arg(&d.workflow)
        .arg(&seed.workflow)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

/// Channels both ways: what the seed publishes on one channel reaches only the Rust subscriber
/// of that channel; what Rust publishes on the type's three channels reaches the seed's reader
/// of each; a publish that leaves out `global` writes no workflow entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_reach_their_readers_both_ways() {
    let d = Deployment::new("seed-channels");
    let bus = d.bus(SeedGeneration::Current, &ALL).await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let payload = |n: u64| json!({"tenantId": tenant, "ticketId": Uuid::new_v4(), "userId": Uuid::new_v4(), "changes": {"n": n}});

    let report = d.model.publish(
        &d.url,
        &PublishOpts {
            channels: vec!["internal-notifications".to_owned()],
            ..d.publish_opts(Layout::Channels)
        },
        &payload(1),
    );
    assert_eq!(report["entries"].as_array().map(Vec::len), Some(1));
    let got = d.seen.wait("seed-compat-notifications", 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].id.to_string(),
        report["envelope"]["id"].as_str().unwrap_or_default()
    );

    bus.publish(TicketUpdated {
        tenant_id: tenant,
        ticket_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        changes: None,
    })
    .await
    .expect("publish");
    bus.publish_on(
        &["emailservice::v7"],
        TicketUpdated {
            tenant_id: tenant,
            ticket_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            changes: None,
        },
    )
    .await
    .expect("publish on one channel");
    running.idle().await;
    assert_eq!(d.seen.of("seed-compat-global").len(), 1);
    assert_eq!(d.seen.of("seed-compat-notifications").len(), 2);
    assert_eq!(d.seen.of("seed-compat-email").len(), 2);
    running.shutdown().await.expect("shutdown");

    for (channel, n) in [
        ("global", 1),
        ("internal-notifications", 2),
        ("emailservice::v7", 2),
    ] {
        let consumed = d
            .model
            .consume(&d.url, &d.consume_opts(Layout::Channels, channel, n));
        assert_eq!(
            consumed["handled"].as_array().map(Vec::len),
            Some(n),
            "the seed's reader of {channel}: {consumed}"
        );
        assert_eq!(consumed["dropped"], json!([]), "{consumed}");
    }
    let mut conn = conn(&d.url).await;
    assert_eq!(
        entries(&mut conn, &d.workflow).await.len(),
        1,
        "a workflow entry only for the publish that included `global`"
    );
    d.cleanup().await;
    let _: i64 = redis::cmd("DEL")
        .arg(&d.workflow)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

/// Fan-out across implementations: the seed's group and a Rust subscriber's group on one
/// stream each get every event, whoever published it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_group_and_ours_both_get_everything() {
    let d = Deployment::new("seed-fanout");
    let bus = d
        .bus(SeedGeneration::Current, &["seed-compat-global"])
        .await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for _ in 0..3 {
        bus.publish(TicketUpdated {
            tenant_id: tenant,
            ticket_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            changes: None,
        })
        .await
        .expect("publish");
    }
    for _ in 0..2 {
        d.model.publish(
            &d.url,
            &d.publish_opts(Layout::Channels),
            &json!({"tenantId": tenant, "ticketId": Uuid::new_v4(), "userId": Uuid::new_v4()}),
        );
    }
    running.idle().await;
    assert_eq!(d.seen.of("seed-compat-global").len(), 5);
    running.shutdown().await.expect("shutdown");
    let consumed = d
        .model
        .consume(&d.url, &d.consume_opts(Layout::Channels, "global", 5));
    assert_eq!(
        consumed["handled"].as_array().map(Vec::len),
        Some(5),
        "{consumed}"
    );
    d.cleanup().await;
    let mut conn = conn(&d.url).await;
    let _: i64 = redis::cmd("DEL")
        .arg(&d.workflow)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

/// The seed document's first generation: one stream per event type, no channel segment, no
/// workflow stream; both sides read what the other wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_generation_interoperates_too() {
    let d = Deployment::new("seed-first");
    let bus = d.bus(SeedGeneration::First, &["seed-compat-global"]).await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    d.model.publish(
        &d.url,
        &d.publish_opts(Layout::Flat),
        &json!({"tenantId": tenant, "ticketId": Uuid::new_v4(), "userId": Uuid::new_v4()}),
    );
    assert_eq!(d.seen.wait("seed-compat-global", 1).await.len(), 1);
    bus.publish(TicketUpdated {
        tenant_id: tenant,
        ticket_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        changes: None,
    })
    .await
    .expect("publish");
    running.idle().await;
    running.shutdown().await.expect("shutdown");
    let mut conn = conn(&d.url).await;
    let stream = format!("{}:TICKET_UPDATED", d.prefix);
    assert_eq!(
        entries(&mut conn, &stream).await.len(),
        2,
        "one stream for every channel"
    );
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&d.workflow)
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert_eq!(exists, 0, "no workflow stream in the first generation");
    let consumed = d
        .model
        .consume(&d.url, &d.consume_opts(Layout::Flat, "global", 2));
    assert_eq!(
        consumed["handled"].as_array().map(Vec::len),
        Some(2),
        "{consumed}"
    );
    d.cleanup().await;
}

/// Dead letters shared with the seed: the seed's consumer dead-letters an entry into the same
/// `{stream}:dead-letter` stream as ours, in its own format; we list it as foreign, skip it
/// (counted) when replaying ours, and purge only what we select.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_shared_with_the_seed() {
    use event_bus_core::DeadLetterFilter;

    let d = Deployment::new("seed-dead-letters");
    let bus = d
        .bus(SeedGeneration::Current, &["seed-compat-global"])
        .await;
    let running = bus.start().await.expect("start");
    let stream = d.stream("global");
    let mut conn = conn(&d.url).await;
    // Ours: an entry our subscriber cannot decode.
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("event")
        .arg("{not json")
        .arg("channel")
        .arg("global")
        .query_async(&mut conn)
        .await
        .expect("XADD");
    // The seed's: an entry its consumer gave up on, dead-lettered by the seed's own code.
    let published = d.model.publish(
        &d.url,
        &d.publish_opts(Layout::Channels),
        &json!({"tenantId": Uuid::new_v4(), "ticketId": Uuid::new_v4(), "userId": Uuid::new_v4()}),
    );
    let entry_id = published["entries"][0]["id"]
        .as_str()
        .expect("entry id")
        .to_owned();
    let written = d.model.dead_letter(&d.url, &stream, &entry_id, 11);
    assert!(written["id"].is_string(), "{written}");
    running.idle().await;

    let letters = bus.dead_letters().await.expect("list");
    assert_eq!(letters.len(), 2, "{letters:?}");
    let foreign: Vec<_> = letters.iter().filter(|l| l.is_foreign()).collect();
    assert_eq!(foreign.len(), 1);
    assert_eq!(foreign[0].source_message_id, entry_id);
    let seed_letter = foreign[0].clone();

    let summary = bus.replay_all_dead_letters().await.expect("replay");
    assert_eq!((summary.replayed, summary.skipped_foreign), (1, 1));
    running.idle().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bus.dead_letters().await.expect("list").len() != 2
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        bus.purge_dead_letters(DeadLetterFilter::ours())
            .await
            .expect("purge ours"),
        1
    );
    let left = bus.dead_letters().await.expect("list");
    assert_eq!(left, vec![seed_letter], "the seed's letter is untouched");
    assert_eq!(
        bus.purge_dead_letters(DeadLetterFilter::foreign())
            .await
            .expect("purge foreign"),
        1
    );
    assert!(bus.dead_letters().await.expect("list").is_empty());
    running.shutdown().await.expect("shutdown");
    d.cleanup().await;
    let _: i64 = redis::cmd("DEL")
        .arg(format!("dead_lettered_messages:{stream}"))
        .arg(&d.workflow)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}
