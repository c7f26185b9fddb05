use std::time::{Duration, Instant};

use switchyard_crds::circuits::{CircuitEntry, CircuitReport, CircuitStateName};

use super::*;

use CircuitStateName::{Closed, HalfOpen, Open};

fn entry(policy: &str, target: &str, state: CircuitStateName) -> CircuitEntry {
    CircuitEntry {
        policy: policy.into(),
        target: target.into(),
        state,
        failures: 0,
        successes: 0,
        error_rate_percent: 0.0,
        opened_at: None,
        times_opened: u64::from(state != Closed),
    }
}

fn report(dp: &str, circuits: Vec<CircuitEntry>) -> CircuitReport {
    CircuitReport {
        data_plane: dp.into(),
        snapshot_version: "v1".into(),
        at: Timestamp::UNIX_EPOCH,
        circuits,
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T: &str = "provider/openai:gpt-4o";

#[test]
fn merge_takes_the_worst_state_and_counts_data_planes() {
    let board = CircuitBoard::default();
    let now = Instant::now();
    let mut a = entry("ns/p", T, Open);
    a.error_rate_percent = 62.5;
    a.opened_at = Some(ts("2026-01-01T00:00:05Z"));
    a.times_opened = 2;
    let mut b = entry("ns/p", T, HalfOpen);
    b.error_rate_percent = 40.0;
    b.opened_at = Some(ts("2026-01-01T00:00:01Z"));
    let mut c = entry("ns/p", T, Closed);
    c.error_rate_percent = 250.0; // nonsense from a buggy peer: clamped
    c.times_opened = 4;
    board.record(report("dp-a", vec![a]), now);
    board.record(
        report("dp-b", vec![b, entry("default", "backend/x:m", Closed)]),
        now,
    );
    board.record(report("dp-c", vec![c]), now);

    let m = board.merged(now);
    assert_eq!(m.data_planes, 3);
    let circuit = m.get("ns/p", T).unwrap();
    assert_eq!(circuit.state, Open);
    assert_eq!(
        (circuit.data_planes, circuit.open_on, circuit.half_open_on),
        (3, 1, 1)
    );
    assert_eq!(circuit.error_rate_percent, 100.0);
    assert_eq!(circuit.opened_at, Some(ts("2026-01-01T00:00:01Z")));
    assert_eq!(circuit.times_opened_total(), 2 + 1 + 4);
    assert_eq!(m.get("default", "backend/x:m").unwrap().state, Closed);
    assert_eq!(m.count_by_state(), [(Closed, 1), (HalfOpen, 0), (Open, 1)]);
    assert_eq!(m.policy("ns/p").count(), 1);
    assert_eq!(m.policy("ns").count(), 0, "a prefix is not a policy");

    // Half-open beats closed.
    let board = CircuitBoard::default();
    board.record(report("dp-a", vec![entry("ns/p", T, Closed)]), now);
    board.record(report("dp-b", vec![entry("ns/p", T, HalfOpen)]), now);
    assert_eq!(board.merged(now).get("ns/p", T).unwrap().state, HalfOpen);
}

#[test]
fn a_new_report_replaces_the_data_planes_previous_one() {
    let board = CircuitBoard::default();
    let now = Instant::now();
    board.record(report("dp-a", vec![entry("ns/p", T, Open)]), now);
    board.record(report("dp-a", vec![entry("ns/p", T, Closed)]), now);
    let m = board.merged(now);
    assert_eq!(m.data_planes, 1);
    assert_eq!(m.get("ns/p", T).unwrap().state, Closed);
    assert_eq!(m.get("ns/p", T).unwrap().data_planes, 1);
}

#[test]
fn reports_older_than_the_ttl_do_not_count() {
    let board = CircuitBoard::new(Duration::from_secs(35));
    let t0 = Instant::now();
    board.record(report("dp-old", vec![entry("ns/p", T, Open)]), t0);
    board.record(
        report("dp-new", vec![entry("ns/p", T, Closed)]),
        t0 + Duration::from_secs(20),
    );
    let at_35 = t0 + Duration::from_secs(35);
    assert_eq!(board.merged(at_35).get("ns/p", T).unwrap().state, Open);
    let at_36 = t0 + Duration::from_secs(36);
    let m = board.merged(at_36);
    assert_eq!(m.data_planes, 1);
    assert_eq!(m.get("ns/p", T).unwrap().state, Closed);
    assert_eq!(
        board.data_planes(at_36),
        [("dp-new".to_owned(), "v1".to_owned())]
    );

    // Expiry forgets it for good and wakes subscribers (the view changed).
    let mut rx = board.subscribe();
    rx.mark_unchanged();
    board.expire(at_36);
    assert!(rx.has_changed().unwrap());
    assert_eq!(board.merged(t0).data_planes, 1, "dp-old is gone");
    let at_60 = t0 + Duration::from_secs(60);
    board.expire(at_60);
    assert_eq!(board.merged(at_60), Merged::default());
}

#[test]
fn subscribers_wake_on_state_or_opening_changes_only() {
    let board = CircuitBoard::default();
    let now = Instant::now();
    let mut rx = board.subscribe();
    let mut closed = entry("ns/p", T, Closed);
    closed.successes = 10;
    board.record(report("dp-a", vec![closed.clone()]), now);
    assert!(rx.has_changed().unwrap(), "a new circuit");
    rx.mark_unchanged();

    // A heartbeat with other counts and error rate: nothing to do.
    closed.successes = 20;
    closed.error_rate_percent = 5.0;
    board.record(report("dp-a", vec![closed.clone()]), now);
    assert!(!rx.has_changed().unwrap());

    // Opened.
    board.record(report("dp-a", vec![entry("ns/p", T, Open)]), now);
    assert!(rx.has_changed().unwrap());
    rx.mark_unchanged();

    // Closed again, then opened and closed between two reports.
    board.record(report("dp-a", vec![closed.clone()]), now);
    assert!(rx.has_changed().unwrap());
    rx.mark_unchanged();
    closed.times_opened = 2;
    board.record(report("dp-a", vec![closed]), now);
    assert!(rx.has_changed().unwrap(), "the opening count grew");
}

#[test]
fn warm_after_the_warmup() {
    let board = CircuitBoard::with_warmup(Duration::from_secs(35), Duration::from_secs(12));
    let now = Instant::now();
    assert!(!board.is_warm(now));
    assert!(board.is_warm(now + Duration::from_secs(13)));
}
