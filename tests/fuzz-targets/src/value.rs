//! A `redis::Value` from arbitrary bytes, and back: the `reply` target's input format, so the
//! fuzzer mutates reply trees directly instead of RESP text whose length prefixes most
//! mutations break. [`encode`] turns real replies into its seed corpus.
//!
//! Each node is a tag byte (`tag % 14` picks the kind), then the kind's data: an integer is 8
//! little-endian bytes, text is a length (one byte below 250, else `250 + ` two little-endian
//! bytes) and that many bytes, a list is a count byte and its nodes. Input that runs out reads as
//! zeros; nesting deeper than [`MAX_DEPTH`], and nodes past [`MAX_NODES`], read as `Nil` (a few
//! bytes must not make a tree so large that cloning it is all a run does).

use redis::{Value, VerbatimFormat};

/// How deep a built value nests at most.
pub const MAX_DEPTH: usize = 12;

/// How many nodes a built value has at most.
pub const MAX_NODES: usize = 512;

/// How many error and push nodes a built value has at most (each is made by the RESP parser,
/// which costs far more than any other node).
pub const MAX_PARSED: usize = 8;

const NIL: u8 = 0;
const INT: u8 = 1;
const BULK: u8 = 2;
const ARRAY: u8 = 3;
const SIMPLE: u8 = 4;
const OKAY: u8 = 5;
const MAP: u8 = 6;
const SET: u8 = 7;
const DOUBLE: u8 = 8;
const BOOLEAN: u8 = 9;
const VERBATIM: u8 = 10;
const ATTRIBUTE: u8 = 11;
const PUSH: u8 = 12;
const ERROR: u8 = 13;
const KINDS: u8 = 14;

struct Reader<'a> {
    data: &'a [u8],
    nodes: usize,
    parsed: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn int(&mut self) -> i64 {
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.byte();
        }
        i64::from_le_bytes(bytes)
    }

    fn len(&mut self) -> usize {
        match self.byte() {
            b @ 0..250 => usize::from(b),
            _ => 250 + usize::from(u16::from_le_bytes([self.byte(), self.byte()])),
        }
    }

    fn bytes(&mut self) -> Vec<u8> {
        let n = self.len();
        self.take(n).to_vec()
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn list(&mut self, depth: usize) -> Vec<Value> {
        let n = self.byte();
        (0..n).map(|_| self.value(depth + 1)).collect()
    }

    fn pairs(&mut self, depth: usize) -> Vec<(Value, Value)> {
        let n = self.byte();
        (0..n)
            .map(|_| (self.value(depth + 1), self.value(depth + 1)))
            .collect()
    }

    fn value(&mut self, depth: usize) -> Value {
        if depth > MAX_DEPTH || self.data.is_empty() || self.nodes >= MAX_NODES {
            return Value::Nil;
        }
        self.nodes += 1;
        match self.byte() % KINDS {
            NIL => Value::Nil,
            INT => Value::Int(self.int()),
            BULK => Value::BulkString(self.bytes()),
            ARRAY => Value::Array(self.list(depth)),
            SIMPLE => Value::SimpleString(self.text()),
            OKAY => Value::Okay,
            MAP => Value::Map(self.pairs(depth)),
            SET => Value::Set(self.list(depth)),
            DOUBLE => Value::Double(f64::from_bits(self.int().cast_unsigned())),
            BOOLEAN => Value::Boolean(self.byte() & 1 == 1),
            VERBATIM => {
                let format = match self.byte() % 3 {
                    0 => VerbatimFormat::Text,
                    1 => VerbatimFormat::Markdown,
                    _ => VerbatimFormat::Unknown(self.text()),
                };
                Value::VerbatimString {
                    format,
                    text: self.text(),
                }
            }
            ATTRIBUTE => {
                let data = Box::new(self.value(depth + 1));
                Value::Attribute {
                    data,
                    attributes: self.pairs(depth),
                }
            }
            PUSH | ERROR if self.parsed >= MAX_PARSED => Value::Nil,
            PUSH => {
                self.parsed += 1;
                // The kind comes from the RESP parser, which names it from the first element.
                let data = self.list(depth);
                redis::parse_redis_value(&push_resp(&data)).unwrap_or(Value::Push {
                    kind: redis::PushKind::Other(String::new()),
                    data,
                })
            }
            ERROR => {
                self.parsed += 1;
                let message = self.text().replace(['\r', '\n'], " ");
                redis::parse_redis_value(format!("-ERR {message}\r\n").as_bytes())
                    .unwrap_or(Value::Nil)
            }
            _ => Value::Nil,
        }
    }
}

/// `>n` followed by the elements' RESP, for the parser to build the push value.
fn push_resp(data: &[Value]) -> Vec<u8> {
    let mut out = format!(">{}\r\n", data.len()).into_bytes();
    for v in data {
        write_resp(v, &mut out);
    }
    out
}

fn write_resp(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::BulkString(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Int(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Value::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for v in items {
                write_resp(v, out);
            }
        }
        // Push data only needs a shape the parser accepts; other kinds read as nil.
        _ => out.extend_from_slice(b"_\r\n"),
    }
}

/// Builds a value from `data`; any bytes make a value.
pub fn build(data: &[u8]) -> Value {
    Reader {
        data,
        nodes: 0,
        parsed: 0,
    }
    .value(0)
}

/// The bytes [`build`] reads back as `value` (for the kinds a seed corpus needs: errors and
/// pushes are written as `Nil`; lists longer than 255 elements are cut).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn write_len(len: usize, out: &mut Vec<u8>) {
    match u8::try_from(len) {
        Ok(b) if b < 250 => out.push(b),
        _ => {
            let rest = u16::try_from(len.saturating_sub(250)).unwrap_or(u16::MAX);
            out.push(250);
            out.extend_from_slice(&rest.to_le_bytes());
        }
    }
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_len(bytes.len(), out);
    let n = bytes.len().min(250 + usize::from(u16::MAX));
    out.extend_from_slice(&bytes[..n]);
}

fn write_list(items: &[Value], out: &mut Vec<u8>) {
    let n = items.len().min(255);
    out.push(u8::try_from(n).unwrap_or(u8::MAX));
    for v in &items[..n] {
        write(v, out);
    }
}

fn write_pairs(pairs: &[(Value, Value)], out: &mut Vec<u8>) {
    let n = pairs.len().min(255);
    out.push(u8::try_from(n).unwrap_or(u8::MAX));
    for (k, v) in &pairs[..n] {
        write(k, out);
        write(v, out);
    }
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::BulkString(b) => {
            out.push(BULK);
            write_bytes(b, out);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            write_list(items, out);
        }
        Value::SimpleString(s) => {
            out.push(SIMPLE);
            write_bytes(s.as_bytes(), out);
        }
        Value::Okay => out.push(OKAY),
        Value::Map(pairs) => {
            out.push(MAP);
            write_pairs(pairs, out);
        }
        Value::Set(items) => {
            out.push(SET);
            write_list(items, out);
        }
        Value::Double(d) => {
            out.push(DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::Boolean(b) => {
            out.push(BOOLEAN);
            out.push(u8::from(*b));
        }
        Value::VerbatimString { format, text } => {
            out.push(VERBATIM);
            match format {
                VerbatimFormat::Text => out.push(0),
                VerbatimFormat::Markdown => out.push(1),
                VerbatimFormat::Unknown(f) => {
                    out.push(2);
                    write_bytes(f.as_bytes(), out);
                }
                _ => out.push(0),
            }
            write_bytes(text.as_bytes(), out);
        }
        Value::Attribute { data, attributes } => {
            out.push(ATTRIBUTE);
            write(data, out);
            write_pairs(attributes, out);
        }
        _ => out.push(NIL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_shapes_round_trip() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("event:T"),
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("event"), bulk(&"x".repeat(600))]),
            ])]),
        ])]);
        assert_eq!(build(&encode(&reply)), reply);
        let map = Value::Map(vec![(
            Value::SimpleString("length".to_owned()),
            Value::Attribute {
                data: Box::new(Value::Int(-3)),
                attributes: vec![(Value::Boolean(true), Value::Double(1.5))],
            },
        )]);
        assert_eq!(build(&encode(&map)), map);
    }

    #[test]
    fn any_bytes_build_a_value() {
        assert_eq!(build(b""), Value::Nil);
        assert!(matches!(
            build(&[13, 3, b'a', b'b', b'c']),
            Value::ServerError(_)
        ));
        assert!(matches!(build(&[12, 1, 2, 1, b'x']), Value::Push { .. }));
        // Deep nesting stops at MAX_DEPTH.
        let deep = [ARRAY, 1].repeat(1000);
        let mut v = build(&deep);
        let mut depth = 0;
        while let Value::Array(mut items) = v {
            v = items.pop().unwrap_or(Value::Nil);
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH + 1);
    }
}
