//! [`asyncapi`]: an AsyncAPI 3.0 document of the application, from the registry.
//!
//! - channels are the streams (`address`: the stream key), in the application's layout: one
//!   per event type (`{prefix}:{EVENT_TYPE}`), or one per channel and event type
//!   (`{prefix}:{channel}:{EVENT_TYPE}`), for the channels each type declares and those its
//!   subscribers read;
//! - messages are the event types (`components/messages`), their payload the envelope schema;
//! - operations are the subscribers (`receive`, named after the subscriber, i.e. its consumer
//!   group) and the publishes (`send`, one per stream an event type is written to).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::event::{StreamLayout, DEFAULT_CHANNEL};
use crate::registry::{registered_events, registered_subscribers, EventRegistration};
use crate::subscriber::{Ordering, StartFrom};

use super::json;

/// What the AsyncAPI document says about the application itself, and the stream layout its
/// bus uses (give it the bus's own prefix and layout).
///
/// ```
/// use event_bus_core::schema::{asyncapi, AppInfo};
///
/// let doc = asyncapi(&AppInfo::new("ticketing", "1.0.0").prefix("psa"));
/// assert_eq!(doc["asyncapi"], "3.0.0");
/// assert_eq!(doc["info"]["title"], "ticketing");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AppInfo {
    title: String,
    version: String,
    description: Option<String>,
    prefix: String,
    layout: StreamLayout,
    servers: Vec<(String, String)>,
}

impl AppInfo {
    /// An application called `title` at `version`, with the default prefix (`event`) and
    /// layout (one stream per event type).
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            version: version.into(),
            description: None,
            prefix: "event".to_owned(),
            layout: StreamLayout::default(),
            servers: Vec::new(),
        }
    }

    /// A description of the application.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The stream prefix of the bus.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The stream layout of the bus.
    pub fn layout(mut self, layout: StreamLayout) -> Self {
        self.layout = layout;
        self
    }

    /// A Redis server, by name and `host:port`.
    pub fn server(mut self, name: impl Into<String>, host: impl Into<String>) -> Self {
        self.servers.push((name.into(), host.into()));
        self
    }
}

/// An id usable as a key of `channels`, `operations` or `components` (`[A-Za-z0-9._-]`).
fn id(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `id`, or `id-2`, `id-3`, ... when taken.
fn unique(taken: &Map<String, Value>, id: String) -> String {
    if !taken.contains_key(&id) {
        return id;
    }
    (2..)
        .map(|n| format!("{id}-{n}"))
        .find(|candidate| !taken.contains_key(candidate))
        .unwrap_or(id)
}

/// The first paragraph of a doc comment, on one line.
fn summary(doc: &str) -> String {
    doc.split("\n\n")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The AsyncAPI 3.0 document of every event type and subscriber registered in this binary
/// (see the module docs), as JSON.
pub fn asyncapi(app: &AppInfo) -> Value {
    let mut events: BTreeMap<&'static str, &'static EventRegistration> = BTreeMap::new();
    for event in registered_events() {
        events.entry(event.event_type).or_insert(event);
    }
    let mut subscribers: Vec<_> = registered_subscribers().collect();
    subscribers.sort_by_key(|s| s.name);

    let mut messages = Map::new();
    let mut channels = Map::new();
    let mut operations = Map::new();
    // The channel id of each (event type, channel name) stream.
    let mut streams: BTreeMap<(&str, &str), String> = BTreeMap::new();

    for (event_type, event) in &events {
        let schema = event.schema.decode();
        let doc = schema.doc;
        let mut message = Map::new();
        message.insert("name".into(), (*event_type).into());
        message.insert("title".into(), (*event_type).into());
        if !doc.is_empty() {
            message.insert("summary".into(), summary(doc).into());
            message.insert("description".into(), doc.into());
        }
        message.insert("contentType".into(), "application/json".into());
        message.insert("payload".into(), json::envelope(event_type, &schema, false));
        message.insert("x-rust-type".into(), event.rust_type.into());
        messages.insert(id(event_type), Value::Object(message));

        // The channels written to (declared) and read (by subscribers), in that order.
        let mut names: Vec<&str> = event.channels.to_vec();
        for sub in subscribers.iter().filter(|s| s.event_type == *event_type) {
            let channel = sub.options.channel.unwrap_or(DEFAULT_CHANNEL);
            if !names.contains(&channel) {
                names.push(channel);
            }
        }
        for channel in names {
            let address = app.layout.stream(&app.prefix, channel, event_type);
            if let Some(existing) = channels
                .iter()
                .find(|(_, c)| c["address"] == address.as_str())
                .map(|(k, _)| k.clone())
            {
                streams.insert((event_type, channel), existing);
                continue;
            }
            let key = match app.layout {
                StreamLayout::PerChannel => id(&format!("{channel}.{event_type}")),
                _ => id(event_type),
            };
            let key = unique(&channels, key);
            let description = match app.layout {
                StreamLayout::PerChannel => {
                    format!("The stream of {event_type} events on channel `{channel}`.")
                }
                _ => format!(
                    "The stream of {event_type} events; each entry names its channel \
                     (declared: {}).",
                    event.channels.join(", ")
                ),
            };
            let message_id = id(event_type);
            channels.insert(
                key.clone(),
                json!({
                    "address": address,
                    "title": event_type,
                    "description": description,
                    "messages": {
                        message_id.clone(): { "$ref": format!("#/components/messages/{message_id}") }
                    },
                }),
            );
            streams.insert((event_type, channel), key);
        }

        // Publishes: one `send` per stream a publish writes.
        for channel in app.layout.distinct_streams(event.channels) {
            let Some(key) = streams.get(&(*event_type, *channel)) else {
                continue;
            };
            let op = unique(&operations, id(&format!("send.{key}")));
            operations.insert(
                op,
                json!({
                    "action": "send",
                    "title": format!("Publish {event_type}"),
                    "summary": format!("Publishes {event_type} (validated before it is written)."),
                    "channel": { "$ref": format!("#/channels/{key}") },
                    "messages": [ { "$ref": format!("#/channels/{key}/messages/{}", id(event_type)) } ],
                }),
            );
        }
    }

    // Subscribers: one `receive` each, named after it.
    for sub in &subscribers {
        let channel = sub.options.channel.unwrap_or(DEFAULT_CHANNEL);
        let Some(key) = streams.get(&(sub.event_type, channel)) else {
            continue;
        };
        let op = unique(&operations, id(sub.name));
        let options = &sub.options;
        let mut details = Map::new();
        details.insert("group".into(), sub.name.into());
        details.insert("handler".into(), sub.handler.into());
        details.insert("channel".into(), channel.into());
        details.insert("concurrency".into(), options.concurrency.into());
        if let Some(max) = options.max_attempts {
            details.insert("maxAttempts".into(), max.into());
        }
        details.insert(
            "start".into(),
            match options.start {
                StartFrom::Earliest => "earliest",
                _ => "latest",
            }
            .into(),
        );
        details.insert(
            "ordering".into(),
            match options.ordering {
                Ordering::PerTenant => "tenant",
                _ => "none",
            }
            .into(),
        );
        operations.insert(
            op,
            json!({
                "action": "receive",
                "title": sub.name,
                "summary": format!(
                    "Subscriber {} (consumer group {}) handles {}.",
                    sub.name, sub.name, sub.event_type
                ),
                "description": format!("Handler `{}` at {}:{}.", sub.handler, sub.file, sub.line),
                "channel": { "$ref": format!("#/channels/{key}") },
                "messages": [ { "$ref": format!("#/channels/{key}/messages/{}", id(sub.event_type)) } ],
                "x-event-bus-subscriber": Value::Object(details),
            }),
        );
    }

    let mut info = Map::new();
    info.insert("title".into(), app.title.clone().into());
    info.insert("version".into(), app.version.clone().into());
    if let Some(description) = &app.description {
        info.insert("description".into(), description.clone().into());
    }
    let mut doc = Map::new();
    doc.insert("asyncapi".into(), "3.0.0".into());
    doc.insert("info".into(), Value::Object(info));
    doc.insert("defaultContentType".into(), "application/json".into());
    if !app.servers.is_empty() {
        let servers: Map<String, Value> = app
            .servers
            .iter()
            .map(|(name, host)| {
                (
                    id(name),
                    json!({ "host": host, "protocol": "redis", "description": "Redis Streams" }),
                )
            })
            .collect();
        doc.insert("servers".into(), Value::Object(servers));
    }
    doc.insert("channels".into(), Value::Object(channels));
    doc.insert("operations".into(), Value::Object(operations));
    doc.insert(
        "components".into(),
        json!({ "messages": Value::Object(messages) }),
    );
    Value::Object(doc)
}
