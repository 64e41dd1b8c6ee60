//! [`TraceContext`]: a [W3C trace context](https://www.w3.org/TR/trace-context/) carried by an
//! envelope across processes, so that a handler's span continues the trace of the code that
//! published the event.
//!
//! On the wire it is two optional keys of the envelope JSON, named as the W3C headers (and as
//! the CloudEvents distributed-tracing extension names them): `traceparent` and, when there is
//! one, `tracestate`, after the envelope's own keys. They are written only when there is a
//! context, so an envelope without one is byte for byte what it was; readers that do not know
//! them (the seed's zod schemas strip unknown keys) ignore them. A `traceparent` that is not a
//! valid W3C one is ignored on read (logged at debug), never a reason to fail the event.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The longest `tracestate` kept: what the W3C asks every vendor to propagate at least.
const MAX_TRACESTATE: usize = 512;

/// The length of a version-00 `traceparent`: `00-{32 hex}-{16 hex}-{2 hex}`.
const TRACEPARENT_LEN: usize = 55;

/// A W3C trace context: the trace, the span that published the event (the handler's parent),
/// the trace flags, and the vendors' `tracestate`, kept as written.
///
/// A publish writes the envelope's own context if it has one ([`Envelope::with_trace`]), else,
/// with the `opentelemetry` feature, the context of the current span
/// (`TraceContext::current()`). On delivery the handler's `handle` span records `trace_id` and
/// `parent_id` (so logs correlate without OpenTelemetry), and with the feature it becomes a
/// child of that span, in whatever process published it.
///
/// ```
/// use event_bus_core::TraceContext;
///
/// let trace: TraceContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// assert!(trace.is_sampled());
/// assert_eq!(trace.parent_id(), [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
/// let trace = trace.with_tracestate("congo=t61rcWkgMzE");
/// assert_eq!(trace.tracestate(), Some("congo=t61rcWkgMzE"));
/// assert_eq!(trace.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
///
/// // Malformed or all-zero ids are refused.
/// assert!("00-00000000000000000000000000000000-00f067aa0ba902b7-01".parse::<TraceContext>().is_err());
/// # Ok::<(), event_bus_core::InvalidTraceparent>(())
/// ```
///
/// [`Envelope::with_trace`]: crate::Envelope::with_trace
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
    state: Option<Arc<str>>,
}

/// A `traceparent` that is not a valid W3C one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent: {reason}")]
pub struct InvalidTraceparent {
    reason: &'static str,
}

impl TraceContext {
    /// The sampled flag of `trace-flags`.
    pub const SAMPLED: u8 = 0x01;

    /// A context from its parts; `None` if either id is all zeros (which the W3C forbids).
    ///
    /// ```
    /// use event_bus_core::TraceContext;
    ///
    /// let trace = TraceContext::new([7; 16], [9; 8], TraceContext::SAMPLED).unwrap();
    /// assert_eq!(trace.to_string(), "00-07070707070707070707070707070707-0909090909090909-01");
    /// assert!(TraceContext::new([0; 16], [9; 8], 0).is_none());
    /// ```
    pub fn new(trace_id: [u8; 16], parent_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && parent_id != [0; 8]).then_some(Self {
            trace_id,
            parent_id,
            flags,
            state: None,
        })
    }

    /// Parses a `traceparent`, by the W3C rules: version `00` exactly, a later version by its
    /// first four fields (version `ff` is invalid); lowercase hex; neither id all zeros.
    pub fn parse(traceparent: &str) -> Result<Self, InvalidTraceparent> {
        let invalid = |reason| InvalidTraceparent { reason };
        let text = traceparent.trim_matches([' ', '\t']).as_bytes();
        if text.len() < TRACEPARENT_LEN {
            return Err(invalid("shorter than 55 characters"));
        }
        let version =
            hex_byte(&text[0..2]).ok_or(invalid("version is not 2 lowercase hex digits"))?;
        if version == 0xff {
            return Err(invalid("version ff"));
        }
        if version == 0 && text.len() != TRACEPARENT_LEN {
            return Err(invalid("version 00 is 55 characters long"));
        }
        if text.len() > TRACEPARENT_LEN && text[TRACEPARENT_LEN] != b'-' {
            return Err(invalid("no '-' after the flags"));
        }
        if text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
            return Err(invalid("fields are not separated by '-'"));
        }
        let mut trace_id = [0u8; 16];
        hex_into(&text[3..35], &mut trace_id)
            .ok_or(invalid("trace-id is not 32 lowercase hex digits"))?;
        let mut parent_id = [0u8; 8];
        hex_into(&text[36..52], &mut parent_id)
            .ok_or(invalid("parent-id is not 16 lowercase hex digits"))?;
        let flags =
            hex_byte(&text[53..55]).ok_or(invalid("trace-flags is not 2 lowercase hex digits"))?;
        Self::new(trace_id, parent_id, flags).ok_or(invalid("an all-zero trace-id or parent-id"))
    }

    /// The same context with a `tracestate` (the vendors' list, kept as written). An empty one,
    /// one longer than 512 bytes or one with characters outside printable ASCII is dropped.
    pub fn with_tracestate(mut self, tracestate: impl AsRef<str>) -> Self {
        self.state = valid_tracestate(tracestate.as_ref()).map(Arc::from);
        self
    }

    /// The trace's id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The id of the span that published the event: the parent of the handler's span.
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The `trace-flags` byte.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the publisher sampled the trace (bit 0 of the flags).
    pub fn is_sampled(&self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// The `tracestate`, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The trace id in lowercase hex, as the `handle` span's `trace_id` field records it.
    pub(crate) fn trace_id_hex(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }

    /// The parent id in lowercase hex, as the `handle` span's `parent_id` field records it.
    pub(crate) fn parent_id_hex(&self) -> Hex<'_> {
        Hex(&self.parent_id)
    }

    /// Writes the `traceparent` into `buf`, without allocating.
    fn write_traceparent<'b>(&self, buf: &'b mut [u8; TRACEPARENT_LEN]) -> &'b str {
        buf[..3].copy_from_slice(b"00-");
        write_hex(&self.trace_id, &mut buf[3..35]);
        buf[35] = b'-';
        write_hex(&self.parent_id, &mut buf[36..52]);
        buf[52] = b'-';
        write_hex(&[self.flags], &mut buf[53..55]);
        // Only ASCII was written.
        std::str::from_utf8(&buf[..]).unwrap_or_default()
    }
}

impl FromStr for TraceContext {
    type Err = InvalidTraceparent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The `traceparent` (version `00`).
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write_traceparent(&mut [0; TRACEPARENT_LEN]))
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &format_args!("{self}"))
            .field("tracestate", &self.state)
            .finish()
    }
}

/// Bytes in lowercase hex.
pub(crate) struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        let len = self.0.len().min(16) * 2;
        write_hex(&self.0[..len / 2], &mut buf[..len]);
        f.write_str(std::str::from_utf8(&buf[..len]).unwrap_or_default())
    }
}

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

fn hex_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    for (pair, byte) in text.chunks_exact(2).zip(out.iter_mut()) {
        *byte = hex_byte(pair)?;
    }
    Some(())
}

fn valid_tracestate(text: &str) -> Option<&str> {
    let text = text.trim_matches([' ', '\t']);
    (!text.is_empty()
        && text.len() <= MAX_TRACESTATE
        && text.bytes().all(|b| (0x20..=0x7e).contains(&b)))
    .then_some(text)
}

/// The envelope keys as read: each absent, valid, or invalid (ignored). Whatever JSON value a
/// key holds, reading it never fails the envelope.
#[derive(Debug, Default)]
pub(crate) struct TraceKeys {
    pub(crate) traceparent: Lenient<TraceContext>,
    pub(crate) tracestate: Lenient<Arc<str>>,
}

impl TraceKeys {
    /// The context the keys hold: `None` when there is no `traceparent` or an invalid one
    /// (logged at debug, with the event's id). A `tracestate` is only read beside a valid
    /// `traceparent`, and an invalid one is dropped, as the W3C says.
    pub(crate) fn resolve(self, event_id: &uuid::Uuid) -> Option<TraceContext> {
        match self.traceparent {
            Lenient::Absent => None,
            Lenient::Invalid => {
                tracing::debug!(%event_id, "ignoring the envelope's invalid traceparent");
                None
            }
            Lenient::Valid(mut trace) => {
                match self.tracestate {
                    Lenient::Valid(state) => trace.state = Some(state),
                    Lenient::Invalid => {
                        tracing::debug!(%event_id, "ignoring the envelope's invalid tracestate")
                    }
                    Lenient::Absent => {}
                }
                Some(trace)
            }
        }
    }
}

/// A key read leniently: any JSON value is accepted, a string is parsed, anything else (or a
/// string that does not parse) is [`Lenient::Invalid`]. `null` counts as absent.
#[derive(Debug, Default)]
pub(crate) enum Lenient<T> {
    #[default]
    Absent,
    Valid(T),
    Invalid,
}

/// How a [`Lenient`] key's string is parsed.
pub(crate) trait ParseKey: Sized {
    fn parse_key(text: &str) -> Option<Self>;
}

impl ParseKey for TraceContext {
    fn parse_key(text: &str) -> Option<Self> {
        TraceContext::parse(text).ok()
    }
}

impl ParseKey for Arc<str> {
    fn parse_key(text: &str) -> Option<Self> {
        valid_tracestate(text).map(Arc::from)
    }
}

impl<'de, T: ParseKey> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor(std::marker::PhantomData))
    }
}

struct LenientVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: ParseKey> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(T::parse_key(v).map_or(Lenient::Invalid, Lenient::Valid))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Lenient::Invalid)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Lenient::Invalid)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Lenient::Invalid)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Lenient::Invalid)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(Lenient::Invalid)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Absent)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Absent)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Lenient::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient::Invalid)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient::Invalid)
    }
}

/// Writes the trace keys after the envelope's own fields.
pub(crate) fn serialize_keys<S: serde::ser::SerializeStruct>(
    trace: Option<&TraceContext>,
    out: &mut S,
) -> Result<(), S::Error> {
    let Some(trace) = trace else {
        out.skip_field("traceparent")?;
        return out.skip_field("tracestate");
    };
    out.serialize_field(
        "traceparent",
        trace.write_traceparent(&mut [0; TRACEPARENT_LEN]),
    )?;
    match trace.tracestate() {
        Some(state) => out.serialize_field("tracestate", state),
        None => out.skip_field("tracestate"),
    }
}

#[cfg(feature = "opentelemetry")]
mod otel;
#[cfg(feature = "opentelemetry")]
pub(crate) use otel::set_parent;

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_writes_version_00() {
        let trace = TraceContext::parse(VALID).expect("valid");
        assert_eq!(trace.to_string(), VALID);
        assert_eq!(
            trace.trace_id_hex().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(trace.parent_id_hex().to_string(), "00f067aa0ba902b7");
        assert!(trace.is_sampled());
    }

    #[test]
    fn follows_the_w3c_rules() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é1",
        ] {
            assert!(TraceContext::parse(bad).is_err(), "{bad:?}");
        }
        // A later version is read by its first four fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        let trace = TraceContext::parse(later).expect("a later version");
        assert!(!trace.is_sampled());
        assert_eq!(trace.to_string(), VALID.replace("-01", "-00"));
    }

    #[test]
    fn tracestate_is_kept_as_written_or_dropped() {
        let trace = TraceContext::parse(VALID).expect("valid");
        assert_eq!(
            trace.clone().with_tracestate(" a=1,b=2 ").tracestate(),
            Some("a=1,b=2")
        );
        assert_eq!(trace.clone().with_tracestate("").tracestate(), None);
        assert_eq!(trace.clone().with_tracestate("a=\n").tracestate(), None);
        assert_eq!(trace.with_tracestate("a".repeat(513)).tracestate(), None);
    }

    #[test]
    fn any_json_value_is_read_without_failing() {
        #[derive(serde::Deserialize)]
        struct Keys {
            #[serde(default)]
            traceparent: Lenient<TraceContext>,
            #[serde(default)]
            tracestate: Lenient<Arc<str>>,
        }
        let read = |json: &str| {
            let keys: Keys = serde_json::from_str(json).expect("never fails");
            TraceKeys {
                traceparent: keys.traceparent,
                tracestate: keys.tracestate,
            }
            .resolve(&uuid::Uuid::nil())
        };
        assert_eq!(read("{}"), None);
        assert_eq!(read(r#"{"traceparent":null}"#), None);
        assert_eq!(
            read(r#"{"traceparent":"garbage","tracestate":"a=1"}"#),
            None
        );
        assert_eq!(read(r#"{"traceparent":42}"#), None);
        assert_eq!(
            read(r#"{"traceparent":{"a":[1,{"b":2}]},"tracestate":[1]}"#),
            None
        );
        let trace = read(&format!(
            r#"{{"traceparent":"{VALID}","tracestate":"a=1"}}"#
        ));
        assert_eq!(trace.as_ref().and_then(|t| t.tracestate()), Some("a=1"));
        let trace = read(&format!(r#"{{"traceparent":"{VALID}","tracestate":7}}"#));
        assert_eq!(trace.map(|t| t.to_string()).as_deref(), Some(VALID));
    }
}
