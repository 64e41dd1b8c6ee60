//! Property tests of the wire timestamp: written like JavaScript's `toISOString()`
//! (`YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC, milliseconds cut, not rounded), read back from any RFC 3339
//! form to the same instant.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use event_bus_core::transport::{decode, encode_envelope};
use event_bus_core::{format_timestamp, Envelope};
use fuzz_targets::events::Probe;
use fuzz_targets::targets::to_millis;
use proptest::prelude::*;
use uuid::Uuid;

/// Instants from year 0 to 9999 (the years RFC 3339 and `toISOString` write with four digits),
/// at nanosecond precision.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let min = -62_167_219_200i64; // 0000-01-01T00:00:00Z
    let max = 253_402_300_799i64; // 9999-12-31T23:59:59Z
    (min..=max, 0..1_000_000_000u32)
        .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).unwrap_or_default())
}

/// What JavaScript's `toISOString` writes, computed field by field.
fn js_iso(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1_000_000
    )
}

fn envelope_json(timestamp: &str) -> String {
    format!(
        r#"{{"id":"{}","eventType":"PROBE","timestamp":"{timestamp}","payload":{{"tenantId":"{}","seq":1}}}}"#,
        Uuid::from_u128(1),
        Uuid::from_u128(2)
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn written_as_to_iso_string_does(t in instant()) {
        prop_assert_eq!(format_timestamp(&t), js_iso(t));
    }

    #[test]
    fn what_is_written_reads_back_cut_to_milliseconds(t in instant()) {
        let text = format_timestamp(&t);
        let envelope = decode::<Probe>(envelope_json(&text).as_bytes());
        prop_assert!(envelope.is_ok(), "{} does not decode: {:?}", text, envelope.err());
        let back = envelope.map(|e| e.timestamp).unwrap_or_default();
        prop_assert_eq!(back, to_millis(t));
        prop_assert_eq!(format_timestamp(&back), text);
    }

    #[test]
    fn an_envelope_round_trips_through_serde(t in instant(), seq in any::<u64>()) {
        let envelope = Envelope::new(Probe { tenant_id: Uuid::from_u128(3), seq, fail_first: 0, fail_in: None })
            .with_timestamp(t);
        let json = serde_json::to_string(&envelope).unwrap_or_default();
        let back: Envelope<Probe> = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.timestamp, to_millis(t));
        prop_assert_eq!(back.payload, envelope.payload);
    }

    #[test]
    fn any_offset_reads_as_the_same_instant(t in instant(), offset_min in -(23 * 60 + 59)..=(23 * 60 + 59i32)) {
        let offset = FixedOffset::east_opt(offset_min * 60).unwrap_or(FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
        let local = offset.from_utc_datetime(&t.naive_utc());
        // Years near the ends of the range can leave four digits once shifted.
        let text = local.to_rfc3339();
        if let Ok(envelope) = decode::<Probe>(envelope_json(&text).as_bytes()) {
            prop_assert_eq!(envelope.timestamp, t);
        } else {
            let year = text.split('-').next().unwrap_or_default();
            prop_assert!(year.len() != 4, "{} was refused", text);
        }
    }

    #[test]
    fn ordering_of_written_timestamps_is_ordering_of_instants(a in instant(), b in instant()) {
        // Fixed-width text sorts like the instants it writes.
        prop_assert_eq!(format_timestamp(&a).cmp(&format_timestamp(&b)), to_millis(a).cmp(&to_millis(b)));
    }
}

/// Instants before year 0 or after 9999 (in UTC).
fn out_of_range() -> impl Strategy<Value = DateTime<Utc>> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp();
    let max = DateTime::<Utc>::MAX_UTC.timestamp();
    prop_oneof![min..-62_167_219_200i64, 253_402_300_800i64..=max]
        .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// What could not be read back is not written: the publish fails instead.
    #[test]
    fn times_outside_four_digit_years_are_not_written(t in out_of_range()) {
        let envelope = Envelope::new(Probe { tenant_id: Uuid::from_u128(3), seq: 1, fail_first: 0, fail_in: None })
            .with_timestamp(t);
        prop_assert!(encode_envelope(&envelope).is_err());
        prop_assert!(serde_json::to_string(&envelope).is_err());
    }

    /// Found while writing the `envelope` target's re-encoding check: an offset can carry a valid
    /// RFC 3339 time out of the four-digit years in UTC; it was read, then written back in a
    /// form nothing reads.
    #[test]
    fn an_offset_that_leaves_the_four_digit_years_is_refused(minutes in 1..(24 * 60i32)) {
        let (h, m) = (minutes / 60, minutes % 60);
        for text in [
            format!("0000-01-01T00:00:00.000+{h:02}:{m:02}"),
            format!("9999-12-31T23:59:59.999-{h:02}:{m:02}"),
        ] {
            let decoded = decode::<Probe>(envelope_json(&text).as_bytes());
            prop_assert!(decoded.is_err(), "{} was read", text);
        }
    }
}

#[test]
fn the_seeds_own_timestamps_read_back() {
    for text in [
        "2026-11-26T18:00:00.000Z",
        "2024-12-01T23:59:59.999Z",
        "1970-01-01T00:00:00.000Z",
    ] {
        let t = decode::<Probe>(envelope_json(text).as_bytes()).map(|e| e.timestamp);
        assert_eq!(t.as_ref().map(format_timestamp).ok().as_deref(), Some(text));
    }
    // Rejected: not RFC 3339.
    for text in [
        "2026-11-26",
        "2026-11-26T18:00Z",
        "",
        "+010000-01-01T00:00:00.000Z",
    ] {
        assert!(
            decode::<Probe>(envelope_json(text).as_bytes()).is_err(),
            "{text}"
        );
    }
}
