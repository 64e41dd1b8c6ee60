//! Smoke test of the seed model harness (`event_bus_tests::seed`) against the shared Redis:
//! publish through the model on both layouts, read the raw entries, consume them through the
//! model, validate good and bad envelopes, and write a dead letter. Everything lives under a
//! unique prefix (the workflow stream included) and is deleted afterwards.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use event_bus_tests::seed::{ConsumeOpts, Layout, PublishOpts, SeedModel};
use event_bus_tests::{delete_prefix, redis_url, unique_prefix};
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use uuid::Uuid;

/// `XRANGE key - +` as `(id, [(field, value)…])`, fields in stream order.
async fn xrange(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Vec<(String, Vec<(String, String)>)> {
    let reply: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    reply
        .into_iter()
        .map(|(id, flat)| {
            let fields = flat
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
                .collect();
            (id, fields)
        })
        .collect()
}

fn names(fields: &[(String, String)]) -> Vec<&str> {
    fields.iter().map(|(k, _)| k.as_str()).collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

/// The keys of a JSON object, in the order they were written.
fn keys_in_order(json: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(json).expect("JSON");
    value.as_object().expect("object").keys().cloned().collect()
}

struct Ctx {
    url: String,
    prefix: String,
    tenant: Uuid,
}

async fn scenario(seed: &SeedModel, ctx: &Ctx) {
    let Ctx {
        url,
        prefix,
        tenant,
    } = ctx;
    let mut conn = event_bus_tests::connect(url.as_str())
        .await
        .expect("connect");
    let workflow_stream = format!("{prefix}:workflow:events:global");
    let global = format!("{prefix}:global:TICKET_UPDATED");
    let notifications = format!("{prefix}:internal-notifications:TICKET_UPDATED");
    let flat = format!("{prefix}:TICKET_UPDATED");
    let ticket = Uuid::new_v4();
    let user = Uuid::new_v4();
    let payload = json!({"tenantId": tenant, "ticketId": ticket, "userId": user, "changes": {"status": "open"}});

    // Today's layout, on two channels: one seed publish per channel, `global` first and also
    // on the workflow stream.
    let published = seed.publish(
        url,
        &PublishOpts {
            prefix: prefix.clone(),
            channels: vec!["global".into(), "internal-notifications".into()],
            workflow_stream: workflow_stream.clone(),
            ..PublishOpts::new("TICKET_UPDATED")
        },
        &payload,
    );
    assert_eq!(published["refused"], json!([]), "{published}");
    let entries = published["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{published}");
    assert_eq!(entries[0]["stream"], json!(global));
    assert_eq!(entries[1]["stream"], json!(notifications));
    assert_ne!(
        entries[0]["envelope"]["id"], entries[1]["envelope"]["id"],
        "each channel's publish builds its own envelope"
    );
    let envelope = &published["envelope"];
    assert_eq!(envelope, &entries[0]["envelope"]);

    let raw = xrange(&mut conn, &global).await;
    assert_eq!(raw.len(), 1);
    assert_eq!(names(&raw[0].1), ["event", "channel"]);
    assert_eq!(field(&raw[0].1, "channel"), "global");
    let event_json = field(&raw[0].1, "event");
    assert_eq!(
        keys_in_order(event_json),
        ["eventType", "payload", "id", "timestamp"]
    );
    assert_eq!(
        &serde_json::from_str::<Value>(event_json).expect("JSON"),
        envelope
    );
    let raw_notifications = xrange(&mut conn, &notifications).await;
    assert_eq!(
        field(&raw_notifications[0].1, "channel"),
        "internal-notifications"
    );

    let workflow = xrange(&mut conn, &workflow_stream).await;
    assert_eq!(
        workflow.len(),
        1,
        "only the global publish reaches the workflow stream"
    );
    assert_eq!(
        names(&workflow[0].1),
        [
            "event_id",
            "execution_id",
            "event_name",
            "event_type",
            "tenant",
            "timestamp",
            "user_id",
            "from_state",
            "to_state",
            "payload_json"
        ]
    );
    let wf = &workflow[0].1;
    assert_eq!(field(wf, "event_id"), envelope["id"].as_str().expect("id"));
    assert_eq!(field(wf, "execution_id"), "");
    assert_eq!(field(wf, "event_name"), "TICKET_UPDATED");
    assert_eq!(field(wf, "tenant"), tenant.to_string());
    assert_eq!(field(wf, "user_id"), user.to_string());
    assert_eq!(field(wf, "payload_json"), payload.to_string());
    assert_eq!(
        published["workflow"]["id"].as_str(),
        Some(workflow[0].0.as_str())
    );

    // The first generation: flat key, field `event` only, no workflow entry; id and timestamp
    // pinned by the caller.
    let pinned_id = Uuid::new_v4().to_string();
    let published_flat = seed.publish(
        url,
        &PublishOpts {
            prefix: prefix.clone(),
            layout: Layout::Flat,
            id: Some(pinned_id.clone()),
            timestamp: Some("2026-11-26T18:00:00.000Z".into()),
            workflow_stream: workflow_stream.clone(),
            ..PublishOpts::new("TICKET_UPDATED")
        },
        &payload,
    );
    assert_eq!(published_flat["workflow"], Value::Null);
    assert_eq!(published_flat["entries"][0]["stream"], json!(flat));
    let raw_flat = xrange(&mut conn, &flat).await;
    assert_eq!(names(&raw_flat[0].1), ["event"]);
    assert_eq!(xrange(&mut conn, &workflow_stream).await.len(), 1);

    // A publish the seed refuses writes nothing.
    let refused = seed.publish(
        url,
        &PublishOpts {
            prefix: prefix.clone(),
            workflow_stream: workflow_stream.clone(),
            ..PublishOpts::new("TICKET_UPDATED")
        },
        &json!({"tenantId": tenant, "ticketId": ticket, "userId": user, "changes": null}),
    );
    assert_eq!(refused["entries"], json!([]), "{refused}");
    assert_eq!(refused["refused"][0]["stage"], "event", "{refused}");
    assert_eq!(xrange(&mut conn, &global).await.len(), 1);

    // An entry another writer put there with a null optional: the seed acks and drops it.
    let mut bad = envelope.clone();
    bad["id"] = json!(Uuid::new_v4());
    bad["payload"]["changes"] = Value::Null;
    let bad_id: String = redis::cmd("XADD")
        .arg(&global)
        .arg("*")
        .arg("event")
        .arg(bad.to_string())
        .arg("channel")
        .arg("global")
        .query_async(&mut conn)
        .await
        .expect("XADD");

    let consumed = seed.consume(
        url,
        &ConsumeOpts {
            prefix: prefix.clone(),
            count: 2,
            timeout: Duration::from_secs(10),
            ..ConsumeOpts::new("TICKET_UPDATED")
        },
    );
    let handled = consumed["handled"].as_array().expect("handled");
    assert_eq!(handled.len(), 1, "{consumed}");
    assert_eq!(handled[0]["id"], envelope["id"]);
    assert_eq!(
        handled[0]["payload"]["suppressContactNotifications"],
        json!(false)
    );
    assert_eq!(consumed["dropped"][0]["id"], json!(bad_id), "{consumed}");
    assert_eq!(consumed["dropped"][0]["issues"][0]["code"], "invalid_union");
    let pending: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(&global)
        .arg("event-processors")
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    assert_eq!(pending.0, 0, "handled and dropped entries are both acked");

    let consumed_flat = seed.consume(
        url,
        &ConsumeOpts {
            prefix: prefix.clone(),
            layout: Layout::Flat,
            count: 1,
            ..ConsumeOpts::new("TICKET_UPDATED")
        },
    );
    assert_eq!(
        consumed_flat["handled"][0]["id"],
        json!(pinned_id),
        "{consumed_flat}"
    );
    assert_eq!(
        consumed_flat["handled"][0]["timestamp"],
        "2026-11-26T18:00:00.000Z"
    );

    // validate: unknown keys are stripped, null optionals and offset timestamps refused.
    let mut good = envelope.clone();
    good["extra"] = json!(1);
    good["payload"]["extra"] = json!(2);
    let valid = seed.validate("TICKET_UPDATED", &good.to_string());
    assert_eq!(valid["ok"], true, "{valid}");
    assert!(valid["parsed"].get("extra").is_none());
    assert!(valid["parsed"]["payload"].get("extra").is_none());
    let domain = json!({
        "id": Uuid::new_v4(), "eventType": "TICKET_UPDATED", "timestamp": "2026-11-26T18:00:00.000Z",
        "payload": {"tenantId": "acme", "occurredAt": "2026-11-26T18:00:00Z", "ticketId": ticket,
                    "changes": {"status": {"previous": "open", "new": "closed"}}}
    });
    assert_eq!(
        seed.validate("TICKET_UPDATED", &domain.to_string())["ok"],
        true
    );
    let invalid = seed.validate("TICKET_UPDATED", &bad.to_string());
    assert_eq!(invalid["ok"], false, "{invalid}");
    assert_eq!(invalid["stage"], "payload");
    assert_eq!(invalid["consumer"], "dropped");
    assert!(
        invalid["issues"].to_string().contains("\"changes\""),
        "{invalid}"
    );
    let mut offset = envelope.clone();
    offset["timestamp"] = json!("2026-11-26T18:00:00.000+00:00");
    let invalid = seed.validate("TICKET_UPDATED", &offset.to_string());
    assert_eq!(invalid["stage"], "envelope", "{invalid}");
    assert_eq!(
        seed.validate("TICKET_UPDATED", "{not json")["consumer"],
        "pending"
    );

    // A dead letter, exactly once: the original fields, then the seed's four.
    let entry_id = raw[0].0.as_str();
    let first = seed.dead_letter(url, &global, entry_id, 11);
    let dead_id = first["id"].as_str().expect("dead letter id").to_owned();
    assert_eq!(
        seed.dead_letter(url, &global, entry_id, 11)["id"],
        Value::Null
    );
    let dead = xrange(&mut conn, &format!("{global}:dead-letter")).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, dead_id);
    assert_eq!(
        names(&dead[0].1),
        [
            "event",
            "channel",
            "sourceStream",
            "sourceMessageId",
            "deliveries",
            "deadLetteredAt"
        ]
    );
    assert_eq!(field(&dead[0].1, "event"), event_json);
    assert_eq!(field(&dead[0].1, "sourceStream"), global);
    assert_eq!(field(&dead[0].1, "sourceMessageId"), entry_id);
    assert_eq!(field(&dead[0].1, "deliveries"), "11");
}

async fn cleanup(ctx: &Ctx) {
    delete_prefix(&ctx.url, &ctx.prefix)
        .await
        .expect("delete prefix");
    let mut conn = event_bus_tests::connect(ctx.url.as_str())
        .await
        .expect("connect");
    for key in [
        format!(
            "dead_lettered_messages:{}:global:TICKET_UPDATED",
            ctx.prefix
        ),
        format!("processed_events:{}", ctx.tenant),
        format!("processed_event_handlers:{}", ctx.tenant),
    ] {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

#[test]
fn seed_model_publishes_consumes_validates_and_dead_letters() {
    let seed = SeedModel::new();
    let ctx = Ctx {
        url: redis_url(),
        prefix: unique_prefix("seedmodel"),
        tenant: Uuid::new_v4(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(scenario(&seed, &ctx))));
    rt.block_on(cleanup(&ctx));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
