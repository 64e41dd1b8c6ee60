//! Delivery behaviour, written once and run against both buses: fan-out, ordering, per-tenant
//! order, retries, dead letters, replay, panics, validation, graceful shutdown. Each test
//! asserts exact counts per subscriber.

use std::collections::HashMap;
use std::time::Duration;

use event_bus_core::{
    DeadLetterFilter, FailureKind, PublishError, RetryPolicy, RunningBus, ShutdownError, StartError,
};
use event_bus_tests::{wait_dead_letters, BusKind, Probe, TestBus, TestTransport};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

event_bus_tests::on_both_buses!(
    fan_out_delivers_every_event_once_to_every_subscriber,
    concurrency_one_keeps_publish_order,
    per_tenant_ordering_keeps_each_tenants_order,
    transient_failures_are_retried_until_success,
    always_failing_handler_is_dead_lettered_after_max_attempts,
    permanent_error_is_dead_lettered_without_retry,
    panics_are_isolated_and_retried_like_failures,
    invalid_events_are_rejected_on_publish,
    partial_fan_out_failure_retries_only_the_failing_subscriber,
    replay_goes_to_the_failing_subscriber_only,
    failing_tenant_does_not_delay_other_tenants,
    graceful_shutdown_lets_in_flight_handlers_finish,
    graceful_shutdown_acknowledges_what_was_handled_in_place,
    shutdown_abandons_a_waiting_retry_at_once,
    shutdown_deadline_counts_a_handler_still_running,
    concurrency_one_holds_for_replays_too,
    context_carries_tenant_attempt_and_message_id,
    publishing_before_start_is_delivered_once_started,
    start_without_subscribers_fails_unless_allowed,
    start_fails_when_a_subscriber_needs_state_the_bus_lacks,
    idle_stats_and_subscribers_are_per_subscriber,
    a_replayed_dead_letter_is_deleted_once_its_replay_is_handled,
    the_seeds_group_name_is_refused_unless_allowed,
    purging_dead_letters_deletes_exactly_what_the_filter_selects,
);

// The same scenarios on a Redis Cluster (3 masters, 3 replicas), but those that only check
// what happens before any Redis command (validation, start checks).
event_bus_tests::on_redis_cluster!(
    fan_out_delivers_every_event_once_to_every_subscriber,
    concurrency_one_keeps_publish_order,
    per_tenant_ordering_keeps_each_tenants_order,
    transient_failures_are_retried_until_success,
    always_failing_handler_is_dead_lettered_after_max_attempts,
    permanent_error_is_dead_lettered_without_retry,
    panics_are_isolated_and_retried_like_failures,
    partial_fan_out_failure_retries_only_the_failing_subscriber,
    replay_goes_to_the_failing_subscriber_only,
    failing_tenant_does_not_delay_other_tenants,
    graceful_shutdown_lets_in_flight_handlers_finish,
    graceful_shutdown_acknowledges_what_was_handled_in_place,
    shutdown_abandons_a_waiting_retry_at_once,
    shutdown_deadline_counts_a_handler_still_running,
    concurrency_one_holds_for_replays_too,
    context_carries_tenant_attempt_and_message_id,
    publishing_before_start_is_delivered_once_started,
    idle_stats_and_subscribers_are_per_subscriber,
    a_replayed_dead_letter_is_deleted_once_its_replay_is_handled,
    purging_dead_letters_deletes_exactly_what_the_filter_selects,
);

fn exactly_once(handled: &HashMap<u64, usize>, n: u64) {
    assert_eq!(handled.len() as u64, n, "distinct events handled");
    let duplicates: Vec<_> = handled.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        duplicates.is_empty(),
        "handled more than once: {duplicates:?}"
    );
    for seq in 0..n {
        assert!(handled.contains_key(&seq), "event {seq} not handled");
    }
}

async fn fan_out_delivers_every_event_once_to_every_subscriber<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "fanout", &["probe-a", "probe-b", "probe-concurrent"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..60 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    for sub in ["probe-a", "probe-b", "probe-concurrent"] {
        assert!(
            t.recorder.wait_handled(sub, 60, WAIT).await,
            "{sub} did not finish"
        );
    }
    running.shutdown().await.expect("shutdown");
    for sub in ["probe-a", "probe-b", "probe-concurrent"] {
        exactly_once(&t.recorder.handled(sub), 60);
    }
    assert_eq!(t.recorder.attempts().len(), 180, "no unexpected deliveries");
    t.cleanup().await;
}

async fn concurrency_one_keeps_publish_order<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "order", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenants = [Uuid::new_v4(), Uuid::new_v4()];
    for seq in 0..100 {
        bus.publish(Probe::new(tenants[(seq % 2) as usize], seq))
            .await
            .expect("publish");
    }
    assert!(t.recorder.wait_handled("probe-a", 100, WAIT).await);
    running.shutdown().await.expect("shutdown");
    assert_eq!(t.recorder.order("probe-a"), (0..100).collect::<Vec<_>>());
    t.cleanup().await;
}

async fn per_tenant_ordering_keeps_each_tenants_order<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "tenant-order", &["probe-tenant-ordered"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenants = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    for seq in 0..90u64 {
        let mut p = Probe::new(tenants[(seq % 3) as usize], seq);
        // Uneven handler times would reorder events without per-tenant lanes.
        p.sleep_ms = (seq * 7) % 5;
        bus.publish(p).await.expect("publish");
    }
    assert!(
        t.recorder
            .wait_handled("probe-tenant-ordered", 90, WAIT)
            .await
    );
    running.shutdown().await.expect("shutdown");
    exactly_once(&t.recorder.handled("probe-tenant-ordered"), 90);
    for (i, tenant) in tenants.iter().enumerate() {
        let seen: Vec<u64> = t
            .recorder
            .attempts()
            .into_iter()
            .filter(|a| a.ok && a.tenant == *tenant)
            .map(|a| a.seq)
            .collect();
        let expected: Vec<u64> = (0..90).filter(|s| s % 3 == i as u64).collect();
        assert_eq!(seen, expected, "tenant {i} out of order");
    }
    t.cleanup().await;
}

async fn transient_failures_are_retried_until_success<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "retry", &["probe-retry3"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 7);
    p.fail_first = 2;
    bus.publish(p).await.expect("publish");
    bus.publish(Probe::new(Uuid::new_v4(), 8))
        .await
        .expect("publish");
    assert!(t.recorder.wait_handled("probe-retry3", 2, WAIT).await);
    running.shutdown().await.expect("shutdown");
    let attempts: Vec<(u32, bool)> = t
        .recorder
        .attempts_of("probe-retry3", 7)
        .iter()
        .map(|a| (a.attempt, a.ok))
        .collect();
    assert_eq!(attempts, vec![(1, false), (2, false), (3, true)]);
    assert_eq!(t.recorder.attempts_of("probe-retry3", 8).len(), 1);
    assert!(bus.dead_letters().await.expect("list").is_empty());
    t.cleanup().await;
}

async fn always_failing_handler_is_dead_lettered_after_max_attempts<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "always-fail", &["probe-retry3"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.fail_first = u32::MAX;
    let published = bus.publish(p).await.expect("publish");
    bus.publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    assert!(t.recorder.wait_handled("probe-retry3", 1, WAIT).await);
    running.shutdown().await.expect("shutdown");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.subscriber, "probe-retry3");
    assert_eq!(letter.kind, FailureKind::Handler);
    assert_eq!(letter.runs, 3, "attempts count handler runs");
    assert_eq!(
        letter.reason,
        "max_attempts reached: 3 handler runs failed (max_attempts = 3)"
    );
    assert_eq!(letter.source_message_id, published.entry_id);
    assert_eq!(letter.source_stream, format!("{}:PROBE", t.prefix));
    assert_eq!(letter.event_type, "PROBE");
    assert!(letter.error.contains("fails attempt 3"), "{}", letter.error);
    assert!(letter
        .payload_str()
        .contains(&published.event_id.to_string()));
    let attempts: Vec<u32> = t.recorder.attempt_numbers("probe-retry3", 1);
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(t.recorder.handled("probe-retry3").len(), 1);
    t.cleanup().await;
}

async fn permanent_error_is_dead_lettered_without_retry<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "permanent", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.permanent = true;
    bus.publish(p).await.expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    running.shutdown().await.expect("shutdown");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].runs, 1);
    assert_eq!(letters[0].reason, "permanent failure after 1 handler run");
    assert_eq!(letters[0].kind, FailureKind::Handler);
    assert_eq!(t.recorder.attempts_of("probe-a", 1).len(), 1);
    t.cleanup().await;
}

async fn panics_are_isolated_and_retried_like_failures<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "panic", &["probe-retry3"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.panic = true;
    bus.publish(p).await.expect("publish");
    bus.publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    assert!(t.recorder.wait_handled("probe-retry3", 1, WAIT).await);
    running.shutdown().await.expect("shutdown");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, FailureKind::Panic);
    assert_eq!(letters[0].runs, 3);
    assert!(letters[0].error.contains("panicked on purpose"));
    assert_eq!(t.recorder.attempts_of("probe-retry3", 1).len(), 3);
    assert_eq!(t.recorder.handled("probe-retry3").get(&2), Some(&1));
    t.cleanup().await;
}

async fn invalid_events_are_rejected_on_publish<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "invalid", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let err = bus
        .publish(Probe::new(Uuid::nil(), 1))
        .await
        .expect_err("nil tenant");
    match &err {
        PublishError::Invalid { event_type, errors } => {
            assert_eq!(*event_type, "PROBE");
            assert_eq!(errors.issues()[0].path, "tenantId");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_retryable());
    bus.publish(Probe::new(Uuid::new_v4(), 2))
        .await
        .expect("publish");
    assert!(t.recorder.wait_handled("probe-a", 1, WAIT).await);
    running.shutdown().await.expect("shutdown");
    assert_eq!(
        t.recorder.attempts().len(),
        1,
        "the invalid event reached no handler"
    );
    t.cleanup().await;
}

async fn partial_fan_out_failure_retries_only_the_failing_subscriber<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "partial", &["probe-a", "probe-b"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.fail_in = Some("probe-b".to_owned());
    bus.publish(p).await.expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    running.shutdown().await.expect("shutdown");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].subscriber, "probe-b");
    assert_eq!(letters[0].runs, 5);
    assert_eq!(
        t.recorder.attempts_of("probe-a", 1).len(),
        1,
        "probe-a ran once"
    );
    assert_eq!(
        t.recorder.attempts_of("probe-b", 1).len(),
        5,
        "probe-b retried to the limit"
    );
    t.cleanup().await;
}

async fn replay_goes_to_the_failing_subscriber_only<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "replay", &["probe-a", "probe-b"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.fail_in = Some("probe-b".to_owned());
    bus.publish(p).await.expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    assert_eq!(letters.len(), 1);
    // The cause is not fixed: the replay fails again and a new dead letter replaces the old.
    bus.replay_dead_letter(&letters[0]).await.expect("replay");
    assert!(
        t.recorder
            .wait_until(WAIT, |r| r.attempts_of("probe-b", 1).len() == 10)
            .await
    );
    let again = wait_dead_letters(&bus, 1, WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut again = again;
    while (again.len() != 1 || again[0].id == letters[0].id)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        again = bus.dead_letters().await.expect("list");
    }
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].id, letters[0].id);
    assert_eq!(again[0].subscriber, "probe-b");
    assert_eq!(
        t.recorder.attempts_of("probe-a", 1).len(),
        1,
        "probe-a never saw the replay"
    );
    assert_eq!(
        bus.purge_dead_letters(DeadLetterFilter::ours())
            .await
            .expect("purge"),
        1
    );
    assert!(bus.dead_letters().await.expect("list").is_empty());
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

async fn failing_tenant_does_not_delay_other_tenants<B: TestTransport>() {
    let kind = B::KIND;
    let mut t = TestBus::new(kind, "tenant-isolation", &["probe-tenant-ordered"]);
    t.retry = RetryPolicy::default()
        .max_attempts(5)
        .backoff(Duration::from_millis(100), Duration::from_millis(400))
        .jitter(false);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let (slow, fast) = (Uuid::new_v4(), Uuid::new_v4());
    let mut p = Probe::new(slow, 0);
    p.fail_first = 3; // ≥ 100 + 200 + 400 ms of backoff before it succeeds
    bus.publish(p).await.expect("publish");
    for seq in 1..=30 {
        bus.publish(Probe::new(fast, seq)).await.expect("publish");
    }
    assert!(
        t.recorder
            .wait_handled("probe-tenant-ordered", 31, WAIT)
            .await
    );
    running.shutdown().await.expect("shutdown");
    let order = t.recorder.order("probe-tenant-ordered");
    assert_eq!(order.len(), 31);
    assert_eq!(
        *order.last().expect("some"),
        0,
        "the failing tenant's event finished last: {order:?}"
    );
    assert_eq!(t.recorder.attempts_of("probe-tenant-ordered", 0).len(), 4);
    t.cleanup().await;
}

async fn graceful_shutdown_lets_in_flight_handlers_finish<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "shutdown", &["probe-concurrent"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 0..8 {
        let mut p = Probe::new(tenant, seq);
        p.sleep_ms = 300;
        bus.publish(p).await.expect("publish");
    }
    // Wait until every handler is running, then shut down while they sleep.
    assert!(t.recorder.wait_until(WAIT, |r| r.starts() == 8).await);
    assert!(
        t.recorder.handled("probe-concurrent").is_empty(),
        "none finished yet"
    );
    running.shutdown().await.expect("shutdown");
    exactly_once(&t.recorder.handled("probe-concurrent"), 8);
    if kind == BusKind::Redis {
        assert_eq!(
            pending(&t, "probe-concurrent").await,
            0,
            "every handled entry was acknowledged before shutdown returned"
        );
    }
    assert!(
        matches!(
            bus.publish(Probe::new(tenant, 99)).await,
            Err(PublishError::Closed)
        ),
        "publishing after shutdown is refused on every bus"
    );
    t.cleanup().await;
}

/// `probe-a` (concurrency 1) runs on its reader's task: the delivery running when the
/// shutdown starts finishes, and is acknowledged before `shutdown` returns.
async fn graceful_shutdown_acknowledges_what_was_handled_in_place<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "shutdown-in-place", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 0);
    p.sleep_ms = 300;
    bus.publish(p).await.expect("publish");
    assert!(t.recorder.wait_until(WAIT, |r| r.starts() == 1).await);
    running.shutdown().await.expect("shutdown");
    exactly_once(&t.recorder.handled("probe-a"), 1);
    if kind == BusKind::Redis {
        assert_eq!(pending(&t, "probe-a").await, 0);
    }
    t.cleanup().await;
}

/// Entries of `group` delivered and not acknowledged (Redis).
async fn pending(t: &TestBus, group: &str) -> i64 {
    t.pending(&format!("{}:PROBE", t.prefix), group).await
}

/// `probe-a` runs one delivery at a time on its feeder's task; a retry waiting its backoff
/// there must not hold up a shutdown (it is abandoned, its entry left unacknowledged).
async fn shutdown_abandons_a_waiting_retry_at_once<B: TestTransport>() {
    let kind = B::KIND;
    let mut t = TestBus::new(kind, "abandon", &["probe-a"]);
    t.retry = RetryPolicy::default()
        .max_attempts(5)
        .backoff(Duration::from_secs(60), Duration::from_secs(60));
    // Longer than the backoff: a shutdown that waited for the retry would run attempt 2
    // before returning. (The policy is used as given: the consumer's lease keeps the entry
    // while the retry waits, however long.)
    t.shutdown_timeout = Duration::from_secs(30);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.fail_first = 1;
    bus.publish(p).await.expect("publish");
    assert!(
        t.recorder
            .wait_until(WAIT, |r| r.attempts_of("probe-a", 1).len() == 1)
            .await
    );
    running
        .shutdown()
        .await
        .expect("the waiting retry is abandoned");
    assert_eq!(t.recorder.attempt_numbers("probe-a", 1), vec![1]);
    assert!(bus.dead_letters().await.expect("list").is_empty());
    if kind == BusKind::Redis {
        assert_eq!(pending(&t, "probe-a").await, 1, "left for a later claim");
    }
    t.cleanup().await;
}

/// A handler still running at the shutdown deadline is stopped and reported, also when it runs
/// on the feeder's task (`probe-a`, concurrency 1).
async fn shutdown_deadline_counts_a_handler_still_running<B: TestTransport>() {
    let kind = B::KIND;
    let mut t = TestBus::new(kind, "deadline", &["probe-a"]);
    t.shutdown_timeout = Duration::from_millis(300);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.sleep_ms = 60_000;
    bus.publish(p).await.expect("publish");
    assert!(t.recorder.wait_until(WAIT, |r| r.starts() == 1).await);
    match running.shutdown().await {
        Err(ShutdownError::Deadline { unfinished }) => assert_eq!(unfinished, 1),
        other => panic!("expected a deadline error for one delivery, got {other:?}"),
    }
    assert!(t.recorder.attempts().is_empty(), "the handler was stopped");
    if kind == BusKind::Redis {
        assert_eq!(pending(&t, "probe-a").await, 1, "left for a later claim");
    }
    t.cleanup().await;
}

/// Concurrency 1 holds for every delivery of a subscriber, whatever brings it: a replay
/// waits for the delivery running before it.
async fn concurrency_one_holds_for_replays_too<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "one-at-a-time", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let mut failing = Probe::new(tenant, 1);
    failing.permanent = true;
    failing.sleep_ms = 200;
    bus.publish(failing).await.expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    assert_eq!(letters.len(), 1);
    let mut slow = Probe::new(tenant, 2);
    slow.sleep_ms = 300;
    bus.publish(slow).await.expect("publish");
    assert!(t.recorder.wait_until(WAIT, |r| r.starts() == 2).await);
    // The slow delivery is running: the replay must wait for it.
    bus.replay_dead_letter(&letters[0]).await.expect("replay");
    assert!(
        t.recorder
            .wait_until(WAIT, |r| r.attempts_of("probe-a", 1).len() == 2
                && r.attempts_of("probe-a", 2).len() == 1)
            .await
    );
    assert_eq!(t.recorder.peak_running(), 1, "never two at once");
    assert_eq!(
        t.recorder.order("probe-a"),
        vec![2],
        "only the slow one succeeded"
    );
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

async fn context_carries_tenant_attempt_and_message_id<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "context", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    let mut p = Probe::new(tenant, 5);
    p.fail_first = 1;
    bus.publish(p).await.expect("publish");
    assert!(t.recorder.wait_handled("probe-a", 1, WAIT).await);
    running.shutdown().await.expect("shutdown");
    let attempts = t.recorder.attempts_of("probe-a", 5);
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a.tenant == tenant));
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
    t.cleanup().await;
}

/// Events this bus publishes before `start` reach its subscribers once they start (their
/// groups exist from the first publish on Redis), even for a subscriber that starts at
/// `latest`.
async fn publishing_before_start_is_delivered_once_started<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "before-start", &["probe-a", "probe-b"]);
    let bus = t.build::<B>().await;
    let tenant = Uuid::new_v4();
    for seq in 0..5 {
        bus.publish(Probe::new(tenant, seq)).await.expect("publish");
    }
    let running = bus.start().await.expect("start");
    bus.publish(Probe::new(tenant, 5)).await.expect("publish");
    running.idle().await;
    for sub in ["probe-a", "probe-b"] {
        exactly_once(&t.recorder.handled(sub), 6);
        assert_eq!(t.recorder.order(sub), (0..6).collect::<Vec<_>>());
    }
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

/// A bus that finds no subscriber (the handler crate not linked) refuses to start, unless told
/// it only publishes.
async fn start_without_subscribers_fails_unless_allowed<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "no-subscribers", &[]);
    let bus = t.build::<B>().await;
    match bus.start().await {
        Err(StartError::NoSubscribers { events }) => {
            assert!(events.iter().any(|e| e == "PROBE"), "{events:?}")
        }
        other => panic!("expected NoSubscribers, got {other:?}"),
    }
    let mut allowed = t.clone();
    allowed.allow_no_subscribers = true;
    let bus = allowed.build::<B>().await;
    let running = bus.start().await.expect("a publish-only bus starts");
    assert!(running.subscribers().is_empty());
    bus.publish(Probe::new(Uuid::new_v4(), 1))
        .await
        .expect("publish");
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

/// A subscriber whose `State<T>` parameter names a type the bus was not given stops the bus
/// at start, before any event is read.
async fn start_fails_when_a_subscriber_needs_state_the_bus_lacks<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "missing-state", &["probe-a", "probe-needs-state"]);
    let bus = t.build::<B>().await;
    match bus.start().await {
        Err(StartError::MissingState {
            subscriber,
            type_name,
            ..
        }) => {
            assert_eq!(subscriber, "probe-needs-state");
            assert!(type_name.ends_with("NeverGiven"), "{type_name}");
        }
        other => panic!("expected MissingState, got {other:?}"),
    }
    t.cleanup().await;
}

/// `idle()` waits for every delivery (retries included); `stats()` counts per subscriber;
/// `subscribers()` lists the running ones.
async fn idle_stats_and_subscribers_are_per_subscriber<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "stats", &["probe-a", "probe-retry3"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    assert_eq!(running.subscribers(), vec!["probe-a", "probe-retry3"]);
    let tenant = Uuid::new_v4();
    for seq in 0..10 {
        let mut p = Probe::new(tenant, seq);
        if seq == 0 {
            p.fail_first = 1;
            p.fail_first_in = Some("probe-retry3".to_owned());
        }
        bus.publish(p).await.expect("publish");
    }
    running.idle().await;
    let stats = running.stats();
    assert_eq!(stats.published, 10);
    let a = stats.subscriber("probe-a").expect("probe-a");
    assert_eq!(
        (a.handled, a.failed, a.retried, a.dead_lettered),
        (10, 0, 0, 0)
    );
    let r = stats.subscriber("probe-retry3").expect("probe-retry3");
    assert_eq!(
        (r.handled, r.failed, r.retried, r.dead_lettered),
        (10, 1, 1, 0)
    );
    assert_eq!(stats.handled, 20);
    running.shutdown().await.expect("shutdown");
    assert_eq!(bus.stats().handled, 20, "the counts outlive the shutdown");
    t.cleanup().await;
}

/// A replayed dead letter stays listed until its replay is handled, then it is gone.
async fn a_replayed_dead_letter_is_deleted_once_its_replay_is_handled<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "replay-ok", &["probe-a"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let mut p = Probe::new(Uuid::new_v4(), 1);
    p.permanent = true;
    bus.publish(p).await.expect("publish");
    let letters = wait_dead_letters(&bus, 1, WAIT).await;
    assert_eq!(letters.len(), 1);
    t.recorder.heal();
    bus.replay_dead_letter(&letters[0]).await.expect("replay");
    running.idle().await;
    assert!(t.recorder.wait_handled("probe-a", 1, WAIT).await);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !bus.dead_letters().await.expect("list").is_empty()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(bus.dead_letters().await.expect("list").is_empty());
    assert_eq!(t.recorder.attempt_numbers("probe-a", 1), vec![1, 1]);
    assert_eq!(running.stats().handled, 1);
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

/// A subscriber named `event-processors` would join the seed's one consumer group and take its
/// entries: start refuses it, unless the builder allows that name.
async fn the_seeds_group_name_is_refused_unless_allowed<B: TestTransport>() {
    let kind = B::KIND;
    let mut t = TestBus::new(kind, "reserved", &["event-processors"]);
    let bus = t.build::<B>().await;
    match bus.start().await {
        Err(StartError::ReservedName { subscriber, .. }) => {
            assert_eq!(subscriber, "event-processors")
        }
        other => panic!("expected ReservedName, got {other:?}"),
    }
    t.allowed_group_names = vec!["event-processors".to_owned()];
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("allowed by name");
    bus.publish(Probe::new(Uuid::new_v4(), 1))
        .await
        .expect("publish");
    assert!(t.recorder.wait_handled("event-processors", 1, WAIT).await);
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}

/// `purge_dead_letters` deletes exactly the letters its filter selects (by subscriber, by id, by
/// event type; every condition must hold) and returns how many; the others stay listed.
async fn purging_dead_letters_deletes_exactly_what_the_filter_selects<B: TestTransport>() {
    let kind = B::KIND;
    let t = TestBus::new(kind, "purge-filter", &["probe-a", "probe-b"]);
    let bus = t.build::<B>().await;
    let running = bus.start().await.expect("start");
    let tenant = Uuid::new_v4();
    for seq in 1..=3 {
        let mut p = Probe::new(tenant, seq);
        p.permanent = true; // dead-lettered by both subscribers
        bus.publish(p).await.expect("publish");
    }
    let letters = wait_dead_letters(&bus, 6, WAIT).await;
    assert_eq!(letters.len(), 6);
    assert!(letters.iter().all(|l| !l.is_foreign()), "{letters:?}");
    let of = |sub: &str| -> Vec<String> {
        letters
            .iter()
            .filter(|l| l.subscriber == sub)
            .map(|l| l.id.clone())
            .collect()
    };
    let (a, b) = (of("probe-a"), of("probe-b"));
    assert_eq!((a.len(), b.len()), (3, 3));
    let purge = |filter: DeadLetterFilter| {
        let bus = bus.clone();
        async move { bus.purge_dead_letters(filter).await.expect("purge") }
    };
    let listed = || {
        let bus = bus.clone();
        async move {
            let mut ids: Vec<String> = bus
                .dead_letters()
                .await
                .expect("list")
                .into_iter()
                .map(|l| l.id)
                .collect();
            ids.sort();
            ids
        }
    };

    // Nothing matches: a condition no letter passes, or conditions that exclude each other.
    assert_eq!(
        purge(DeadLetterFilter::foreign()).await,
        0,
        "no foreign letter"
    );
    assert_eq!(
        purge(DeadLetterFilter::ours().event_type("OTHER_TYPE")).await,
        0
    );
    assert_eq!(
        purge(DeadLetterFilter::ours().subscriber("nobody")).await,
        0
    );
    assert_eq!(purge(DeadLetterFilter::all().ids(["no-such-id"])).await, 0);
    assert_eq!(
        purge(DeadLetterFilter::ours().ids(Vec::<String>::new())).await,
        0
    );
    assert_eq!(
        purge(
            DeadLetterFilter::ours()
                .subscriber("probe-b")
                .ids([a[0].as_str()])
        )
        .await,
        0,
        "probe-a's letter is not probe-b's"
    );
    assert_eq!(listed().await.len(), 6, "nothing was deleted");

    // By subscriber: all of probe-b's, none of probe-a's.
    assert_eq!(
        purge(DeadLetterFilter::ours().subscriber("probe-b")).await,
        3
    );
    let mut left = a.clone();
    left.sort();
    assert_eq!(listed().await, left);
    assert_eq!(
        purge(DeadLetterFilter::ours().subscriber("probe-b")).await,
        0
    );

    // By id: exactly those two.
    assert_eq!(
        purge(DeadLetterFilter::ours().ids([a[0].clone(), a[2].clone()])).await,
        2
    );
    assert_eq!(listed().await, vec![a[1].clone()]);

    // The default is ours; narrowed to the event type, it takes the last one.
    assert_eq!(DeadLetterFilter::default(), DeadLetterFilter::ours());
    assert_eq!(
        purge(DeadLetterFilter::default().event_type("PROBE")).await,
        1
    );
    assert!(listed().await.is_empty());
    running.shutdown().await.expect("shutdown");
    t.cleanup().await;
}
