//! Wire compatibility with the seed system, on a private Redis so the seed's own prefix
//! `alga-psa:event-stream:global` can be used as is: we read entries written in the seed's
//! exact format, and write entries the seed's reader accepts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus_core::{subscriber, Bus, Context, Envelope, Event, HandlerError, RunningBus};
use event_bus_redis::RedisBus;
use event_bus_tests::server::RedisServer;
use redis::Value;
use uuid::Uuid;

const PREFIX: &str = "alga-psa:event-stream:global";
const STREAM: &str = "alga-psa:event-stream:global:TICKET_UPDATED";

/// The seed's `TicketEventPayloadSchema`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "TICKET_UPDATED")]
struct TicketUpdated {
    tenant_id: Uuid,
    ticket_id: Uuid,
    user_id: Uuid,
    changes: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Default)]
struct Seen(Mutex<Vec<Envelope<TicketUpdated>>>);

#[subscriber("TICKET_UPDATED", name = "seed-compat-reader", start = "earliest")]
async fn read(event: Envelope<TicketUpdated>, ctx: Context) -> Result<(), HandlerError> {
    ctx.state::<Arc<Seen>>()?
        .0
        .lock()
        .map_err(|_| HandlerError::permanent("poisoned"))?
        .push(event);
    Ok(())
}

/// What the seed's reader does with an entry: take field `event`, JSON-parse it, and check it
/// against `BaseEventSchema.extend({eventType: z.literal(..), payload: ...})`.
fn seed_accepts(fields: &[(String, String)]) -> Result<(), String> {
    let event = fields
        .iter()
        .find(|(k, _)| k == "event")
        .map(|(_, v)| v)
        .ok_or("no event field")?;
    let v: serde_json::Value = serde_json::from_str(event).map_err(|e| e.to_string())?;
    let uuid = |x: &serde_json::Value| x.as_str().and_then(|s| Uuid::parse_str(s).ok()).is_some();
    if !uuid(&v["id"]) {
        return Err("id is not a uuid".into());
    }
    if v["eventType"] != "TICKET_UPDATED" {
        return Err("eventType".into());
    }
    let ts = v["timestamp"].as_str().ok_or("timestamp")?;
    // z.string().datetime(): ISO 8601 in UTC with a Z, as toISOString() writes it.
    if ts.len() != 24 || !ts.ends_with('Z') || chrono::DateTime::parse_from_rfc3339(ts).is_err() {
        return Err(format!("timestamp {ts} is not toISOString()"));
    }
    for key in ["tenantId", "ticketId", "userId"] {
        if !uuid(&v["payload"][key]) {
            return Err(format!("payload.{key}"));
        }
    }
    if !(v["payload"]["changes"].is_object() || v["payload"]["changes"].is_null()) {
        return Err("payload.changes".into());
    }
    Ok(())
}

async fn entries(conn: &mut redis::aio::MultiplexedConnection) -> Vec<Vec<(String, String)>> {
    let v: Value = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("xrange");
    let mut out = Vec::new();
    if let Value::Array(items) = v {
        for item in items {
            let Value::Array(parts) = item else { continue };
            let Some(Value::Array(fields)) = parts.get(1) else {
                continue;
            };
            let text: Vec<String> = fields
                .iter()
                .map(|f| match f {
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                })
                .collect();
            out.push(
                text.chunks(2)
                    .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
                    .collect(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_seeds_entries_and_writes_entries_the_seed_accepts() {
    let server = RedisServer::start(&[]);
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");

    // An entry exactly as the seed's publisher writes it.
    let (tenant, ticket, user, id) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let seed_json = format!(
        r#"{{"id":"{id}","eventType":"TICKET_UPDATED","timestamp":"2026-11-26T18:00:00.123Z","payload":{{"tenantId":"{tenant}","ticketId":"{ticket}","userId":"{user}","changes":{{"status":"in_progress","priority":2}}}}}}"#
    );
    let _: String = redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("event")
        .arg(&seed_json)
        .arg("channel")
        .arg(STREAM)
        .query_async(&mut conn)
        .await
        .expect("xadd");

    let seen = Arc::new(Seen::default());
    let bus = RedisBus::builder()
        .url(server.url())
        .prefix(PREFIX)
        .only(["seed-compat-reader"])
        .state(Arc::clone(&seen))
        .block(Duration::from_millis(100))
        .build()
        .await
        .expect("bus");
    let running = bus.start().await.expect("start");
    let published = bus
        .publish(TicketUpdated {
            tenant_id: tenant,
            ticket_id: ticket,
            user_id: user,
            changes: Some(serde_json::Map::from_iter([(
                "status".to_owned(),
                "closed".into(),
            )])),
        })
        .await
        .expect("publish");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.0.lock().map(|s| s.len()).unwrap_or(0) < 2 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await.expect("shutdown");

    let got = seen.0.lock().expect("lock").clone();
    assert_eq!(got.len(), 2, "both the seed's entry and ours were handled");
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].payload.ticket_id, ticket);
    assert_eq!(
        got[0]
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "2026-11-26T18:00:00.123Z"
    );
    assert_eq!(got[1].id, published.event_id);

    let written = entries(&mut conn).await;
    assert_eq!(written.len(), 2);
    for entry in &written {
        seed_accepts(entry).unwrap_or_else(|e| panic!("the seed would reject {entry:?}: {e}"));
    }
    let ours = &written[1];
    assert_eq!(
        ours[0].0, "event",
        "field `event` first, as the seed writes"
    );
    assert!(ours.iter().any(|(k, v)| k == "channel" && v == STREAM));
}
