//! Property tests of stream entry ids: every parser of `<ms>-<seq>` in the runtime agrees, a
//! written id parses back to itself, ids order as Redis orders them (milliseconds, then
//! sequence, both as numbers: never as text), and the foreign-trim check compares them so.
//! One test asks a real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`) to confirm the
//! order.

use std::cmp::Ordering;

use event_bus_redis::__fuzz as parse;
use proptest::prelude::*;

type Id = (u64, u64);

/// Ids near the edges as well as anywhere: small numbers, powers of ten (where text order and
/// number order part), the maximum.
fn part() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..20u64,
        (0..20u32).prop_map(|e| 10u64.saturating_pow(e)),
        (0..20u32).prop_map(|e| 10u64.saturating_pow(e).saturating_sub(1)),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

fn id() -> impl Strategy<Value = Id> {
    (part(), part())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn written_ids_parse_back(id in id()) {
        let text = parse::format_stream_id(id.0, id.1);
        prop_assert_eq!(&text, &format!("{}-{}", id.0, id.1));
        prop_assert_eq!(parse::stream_id(&text), Some(id));
        prop_assert_eq!(parse::trimming_id(&text), Some(id));
        prop_assert_eq!(parse::retention_id(&text), id);
        prop_assert_eq!(parse::id_millis(&text), id.0);
    }

    #[test]
    fn ids_order_by_number_not_by_text(a in id(), b in id()) {
        let want = a.0.cmp(&b.0).then(a.1.cmp(&b.1));
        prop_assert_eq!(parse::compare_stream_ids(a, b), want);
        let ta = parse::format_stream_id(a.0, a.1);
        let tb = parse::format_stream_id(b.0, b.1);
        let (pa, pb) = (parse::stream_id(&ta), parse::stream_id(&tb));
        prop_assert_eq!(pa.cmp(&pb), want);
    }

    #[test]
    fn every_parser_agrees_on_any_text(text in prop_oneof!["[0-9+-]{0,25}", ".{0,25}", "[0-9]{1,21}-[0-9]{1,21}"]) {
        fuzz_targets::targets::stream_id_text(&text);
        let parsed = parse::stream_id(&text);
        prop_assert_eq!(parse::trimming_id(&text), parsed);
        // Lenient retention reads what it cannot parse as 0: it trims less, never more.
        if parsed.is_none() {
            let (ms, _) = parse::retention_id(&text);
            prop_assert!(text.split('-').next().is_some_and(|m| m.parse::<u64>().ok() == Some(ms)) || ms == 0);
        }
    }

    #[test]
    fn the_trim_check_compares_ids_as_redis_does(
        first in id(), behind in id(), last_extra in id(), added in 0..1_000_000u64, read in 0..1_000_000u64, length in 1..1000u64,
    ) {
        let last = (first.0.saturating_add(last_extra.0), first.1.saturating_add(last_extra.1));
        let stream = (added, length, Some(first), last);
        let gap = parse::removed_unread(stream, (behind, Some(read)));
        let behind_first = parse::compare_stream_ids(behind, first) == Ordering::Less;
        let at_end = parse::compare_stream_ids(behind, last) != Ordering::Less;
        if behind_first {
            prop_assert_eq!(gap, Some(added.saturating_sub(read).saturating_sub(length)));
        } else if at_end {
            prop_assert_eq!(gap, Some(added.saturating_sub(read)));
        } else {
            prop_assert_eq!(gap, None);
        }
    }
}

#[test]
fn nine_comes_before_ten() {
    // The case a text comparison gets wrong.
    assert_eq!(parse::compare_stream_ids((9, 5), (10, 0)), Ordering::Less);
    assert_eq!(parse::compare_stream_ids((1, 9), (1, 10)), Ordering::Less);
    assert_eq!(
        parse::removed_unread((30, 10, Some((10, 0)), (20, 0)), ((9, 99), Some(5))),
        Some(15)
    );
}

/// Redis accepts ids only in increasing order: ids sorted by our order go in one by one, and
/// `XRANGE` gives them back in that order.
#[test]
fn redis_orders_ids_as_we_do() {
    let url = std::env::var("EVENT_BUS_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("{url}: {e}"));
    let conn = std::cell::RefCell::new(
        client
            .get_connection()
            .unwrap_or_else(|e| panic!("no Redis at {url}: {e}")),
    );
    let key = format!(
        "fuzz-targets:stream-ids:{}:{}",
        std::process::id(),
        fastrand_seed()
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    let result = runner.run(&proptest::collection::btree_set(id(), 1..40), |ids| {
        let conn = &mut *conn.borrow_mut();
        let mut ids: Vec<Id> = ids.into_iter().filter(|&i| i != (0, 0)).collect();
        ids.sort_by(|a, b| parse::compare_stream_ids(*a, *b));
        let _: () = redis::cmd("DEL").arg(&key).query(conn).map_err(fail)?;
        for &(ms, seq) in &ids {
            let text = parse::format_stream_id(ms, seq);
            let added: String = redis::cmd("XADD")
                .arg(&key)
                .arg(&text)
                .arg("f")
                .arg("v")
                .query(conn)
                .map_err(|e| {
                    TestCaseError::fail(format!("Redis refused {text} after {ids:?}: {e}"))
                })?;
            prop_assert_eq!(added, text);
        }
        let back: redis::Value = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query(conn)
            .map_err(fail)?;
        let back: Vec<Id> = parse::entries(back)
            .iter()
            .filter_map(|(id, _)| parse::stream_id(id))
            .collect();
        prop_assert_eq!(back, ids);
        Ok(())
    });
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&key).query(&mut *conn.borrow_mut());
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn fail(e: redis::RedisError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn fastrand_seed() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
