//! Parsing the stream replies of the hot and order-keeping paths (`XREADGROUP`, `XAUTOCLAIM`,
//! `XRANGE`, `XINFO`) by hand; cold paths use redis-rs's typed replies. From
//! `redis::Value`, for RESP2 and RESP3 alike, without intermediate maps.

use std::fmt;

use redis::Value;

/// A stream entry id, `<ms>-<seq>`, as a plain value that orders as Redis orders ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StreamId {
    ms: u64,
    seq: u64,
}

impl StreamId {
    /// Parses `<ms>-<seq>`, two decimal numbers of digits only (as Redis writes ids: no sign,
    /// no spaces); `None` for anything else. Run once per acknowledged entry, so it is a plain
    /// loop over the bytes.
    pub(crate) fn parse(id: &str) -> Option<Self> {
        let bytes = id.as_bytes();
        let dash = bytes.iter().position(|&b| b == b'-')?;
        Some(Self {
            ms: decimal(&bytes[..dash])?,
            seq: decimal(&bytes[dash + 1..])?,
        })
    }

    /// The id `<ms>-<seq>`.
    pub(crate) fn from_parts(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Its millisecond and sequence parts.
    pub(crate) fn parts(self) -> (u64, u64) {
        (self.ms, self.seq)
    }
}

/// Whether `id` is one [`StreamId::parse`] accepts (what `XACK` takes).
pub(crate) fn is_stream_id(id: &str) -> bool {
    StreamId::parse(id).is_some()
}

/// A `u64` written in decimal digits only; `None` if empty, not digits, or too large.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One stream entry: its id and its fields in order, as the values Redis sent (no copies, no
/// UTF-8 checks, and no allocation of its own on the hot path).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    /// Name, value, name, value, ... (a field taken out is left as two `Nil`s).
    fields: Vec<Value>,
}

/// A stream entry's fields as name and value pairs, in order.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Name and value pairs from `[name, value, ...]` (taken fields, left as `Nil`s, skipped).
fn pairs(fields: Vec<Value>) -> Pairs {
    let mut pairs = Vec::with_capacity(fields.len() / 2);
    let mut kv = fields.into_iter();
    while let (Some(k), Some(v)) = (kv.next(), kv.next()) {
        if let (Some(k), Some(v)) = (bytes(k), bytes(v)) {
            pairs.push((k, v));
        }
    }
    pairs
}

/// The bytes of a string reply, borrowed.
fn as_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        Value::Okay => Some(b"OK"),
        _ => None,
    }
}

impl Entry {
    /// An entry of these fields (name and value pairs, in order).
    pub(crate) fn from_pairs(id: String, pairs: Pairs) -> Self {
        let fields = pairs
            .into_iter()
            .flat_map(|(k, v)| [Value::BulkString(k), Value::BulkString(v)])
            .collect();
        Self { id, fields }
    }

    /// Its id, and its fields as name and value pairs, in order.
    pub(crate) fn into_parts(self) -> (String, Pairs) {
        (self.id, pairs(self.fields))
    }

    /// The fields with their names as text (for dead letters).
    pub(crate) fn into_text_fields(self) -> Vec<(String, Vec<u8>)> {
        pairs(self.fields)
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect()
    }

    /// Where the value of field `name` is in `fields`.
    fn position(&self, name: &str) -> Option<usize> {
        self.fields
            .chunks_exact(2)
            .position(|kv| as_bytes(&kv[0]) == Some(name.as_bytes()))
            .map(|pair| 2 * pair + 1)
    }

    /// The value of field `name`.
    pub(crate) fn field(&self, name: &str) -> Option<&[u8]> {
        self.position(name)
            .and_then(|i| self.fields.get(i))
            .and_then(as_bytes)
    }

    /// Removes and returns field `name`.
    pub(crate) fn take_field(&mut self, name: &str) -> Option<Vec<u8>> {
        let i = self.position(name)?;
        self.fields[i - 1] = Value::Nil;
        bytes(std::mem::replace(&mut self.fields[i], Value::Nil))
    }

    pub(crate) fn field_str(&self, name: &str) -> Option<String> {
        self.field(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

pub(crate) fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

pub(crate) fn string(value: Value) -> Option<String> {
    bytes(value).map(|b| {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    })
}

pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(v) | Value::Set(v) => v,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        Value::Attribute { data, .. } => items(*data),
        _ => Vec::new(),
    }
}

/// One entry `[id, [field, value, ...]]`; `None` for a deleted entry (`[id, nil]`).
fn entry(value: Value) -> Option<Entry> {
    let mut parts = items(value).into_iter();
    let id = string(parts.next()?)?;
    let fields_value = parts.next()?;
    if matches!(fields_value, Value::Nil) {
        return None;
    }
    let fields = items(fields_value);
    Some(Entry { id, fields })
}

/// A list of entries (`XRANGE`, `XCLAIM`, one stream of `XREADGROUP`).
pub(crate) fn entries(value: Value) -> Vec<Entry> {
    let values = items(value);
    let mut out = Vec::with_capacity(values.len());
    out.extend(values.into_iter().filter_map(entry));
    out
}

/// The entries of a single-stream `XREADGROUP` reply (nil on timeout).
pub(crate) fn read_reply(value: Value) -> Vec<Entry> {
    let stream = match value {
        Value::Nil => return Vec::new(),
        Value::Map(pairs) => pairs.into_iter().next().map(|(_, entries)| entries),
        other => items(other).into_iter().next().and_then(|stream| {
            let mut parts = items(stream).into_iter();
            let _key = parts.next();
            parts.next()
        }),
    };
    stream.map(entries).unwrap_or_default()
}

/// The keys of the streams a multi-stream `XREAD` reply holds entries for (none on timeout).
pub(crate) fn read_reply_streams(value: Value) -> Vec<String> {
    match value {
        Value::Nil => Vec::new(),
        Value::Map(pairs) => pairs.into_iter().filter_map(|(k, _)| string(k)).collect(),
        other => items(other)
            .into_iter()
            .filter_map(|stream| items(stream).into_iter().next().and_then(string))
            .collect(),
    }
}

/// `XAUTOCLAIM` reply: next cursor, claimed entries, ids deleted while pending.
pub(crate) fn autoclaim_reply(value: Value) -> (String, Vec<Entry>, Vec<String>) {
    let mut parts = items(value).into_iter();
    let cursor = parts
        .next()
        .and_then(string)
        .unwrap_or_else(|| "0-0".to_owned());
    let claimed = parts.next().map(entries).unwrap_or_default();
    let deleted = parts
        .next()
        .map(|v| items(v).into_iter().filter_map(string).collect())
        .unwrap_or_default();
    (cursor, claimed, deleted)
}

/// A flat `[k, v, k, v]` or map reply (`XINFO`) as pairs.
pub(crate) fn info_pairs(value: Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut it = items(value).into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let Some(k) = string(k) {
            out.push((k, v));
        }
    }
    out
}

/// An `XINFO GROUPS` / `XINFO CONSUMERS` reply: one pair list per row.
pub(crate) fn info_rows(value: Value) -> Vec<Vec<(String, Value)>> {
    items(value).into_iter().map(info_pairs).collect()
}

/// The elements of an array reply.
pub(crate) fn info_pairs_list(value: Value) -> Vec<Value> {
    items(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_ids_round_trip() {
        let id = StreamId::parse("1732665600123-42").expect("an id");
        assert_eq!(id.to_string(), "1732665600123-42");
        assert_eq!(id.parts(), (1_732_665_600_123, 42));
        assert_eq!(
            StreamId::parse("18446744073709551615-0").map(|i| i.to_string()),
            Some("18446744073709551615-0".to_owned())
        );
        assert!(StreamId::parse("0-0") < StreamId::parse("0-1"));
        for good in [
            "0-0",
            "1732665600123-42",
            "18446744073709551615-18446744073709551615",
            "000000000000000000000001-0",
        ] {
            assert!(is_stream_id(good), "{good:?}");
        }
        assert!(StreamId::parse("9-9") < StreamId::parse("10-0"));
        for bad in [
            "",
            "12",
            "12-",
            "-3",
            "a-1",
            "1-2-3",
            "1 -2",
            "+1-2",
            "1-+2",
            "18446744073709551616-0",
            "1-18446744073709551616",
            "123456789012345678901-0",
        ] {
            assert!(!is_stream_id(bad), "{bad:?}");
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_a_resp2_read_reply() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("event:T"),
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("event"), bulk("{}"), bulk("channel"), bulk("c")]),
            ])]),
        ])]);
        let got = read_reply(reply);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "1-0");
        assert_eq!(got[0].field("event"), Some(&b"{}"[..]));
        assert_eq!(got[0].field_str("channel").as_deref(), Some("c"));
    }

    #[test]
    fn parses_autoclaim_with_deleted_ids() {
        let reply = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![Value::Array(vec![
                bulk("2-0"),
                Value::Array(vec![bulk("event"), bulk("x")]),
            ])]),
            Value::Array(vec![bulk("1-0")]),
        ]);
        let (cursor, claimed, deleted) = autoclaim_reply(reply);
        assert_eq!(cursor, "0-0");
        assert_eq!(claimed[0].id, "2-0");
        assert_eq!(deleted, vec!["1-0".to_owned()]);
    }

    #[test]
    fn nil_read_is_empty() {
        assert!(read_reply(Value::Nil).is_empty());
    }
}
