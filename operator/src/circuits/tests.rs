use std::time::{Duration, Instant};

use switchyard_crds::circuits::{CircuitEntry, CircuitReport, CircuitStateName};
use switchyard_crds::compile::{Compiled, Inventory, Kind, compile};
use switchyard_crds::router_policy::{PolicyState, RouterPolicyStatus};

use super::*;
use crate::status::{PolicyCounters, router_policy};

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

const SET: &str = r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: openai, namespace: ns}
spec: {type: openai, auth: {type: none}, models: [{name: gpt-4o}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: cheap, namespace: ns}
spec: {type: openai, auth: {type: none}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {name: b1, namespace: ns}
spec: {type: vllm, baseUrl: "http://b1:8000/v1", models: [{name: llama}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {name: b2, namespace: ns}
spec: {type: vllm, baseUrl: "http://b2:8000/v1", models: [{name: llama}, {name: qwen}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: AffinityGroup
metadata: {name: g, namespace: ns}
spec: {backends: [b1, b2], models: [llama, qwen]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {name: default, namespace: ns}
spec: {default: true}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: p, namespace: ns}
spec:
  routeTo: {providerRef: openai, model: gpt-4o}
  fallback:
    - {affinityGroupRef: g, model: llama}
    - {providerRef: cheap}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: gp, namespace: ns}
spec:
  routeTo: {affinityGroupRef: g, model: llama}
  circuitBreaker: {notifyOnOpen: false}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: qwen, namespace: ns}
spec:
  routeTo: {affinityGroupRef: g, model: qwen}
"#;

fn compiled() -> Compiled {
    let mut inv = Inventory::default();
    switchyard_crds::manifest::add_yaml(&mut inv, "set.yaml", SET).unwrap();
    let c = compile(&inv);
    for d in &c.diagnostics {
        assert!(d.ready(), "{d:?}");
    }
    c
}

fn snapshot() -> Snapshot {
    compiled().snapshot
}

fn policy<'a>(s: &'a Snapshot, key: &str) -> &'a RouterPolicySnapshot {
    s.router_policies.iter().find(|p| p.key == key).unwrap()
}

fn listed(targets: &[TargetCircuit]) -> Vec<(&str, &str)> {
    targets
        .iter()
        .map(|t| (t.target.as_str(), t.state.as_str()))
        .collect()
}

fn board_with(entries: Vec<CircuitEntry>) -> Merged {
    let board = CircuitBoard::default();
    let now = Instant::now();
    board.record(report("dp-a", entries), now);
    board.merged(now)
}

#[test]
fn every_route_target_is_listed_closed_when_nothing_is_reported() {
    let s = snapshot();
    let (state, targets) = policy_circuits(policy(&s, "ns/p"), &s, &Merged::default());
    assert_eq!(state, None);
    assert_eq!(
        listed(&targets),
        [
            ("provider/openai:gpt-4o", "Closed"),
            ("backend/b1:llama", "Closed"),
            ("backend/b2:llama", "Closed"),
            ("provider/cheap", "Closed"),
        ]
    );
    // Members are listed only for the model they serve.
    let (_, targets) = policy_circuits(policy(&s, "ns/qwen"), &s, &Merged::default());
    assert_eq!(listed(&targets), [("backend/b2:qwen", "Closed")]);
}

#[test]
fn targets_carry_their_merged_state_and_the_primary_sets_the_policy_state() {
    let s = snapshot();
    let merged = board_with(vec![
        entry("ns/p", "provider/openai:gpt-4o", HalfOpen),
        entry("ns/p", "backend/b2:llama", Open),
        entry("ns/p", "provider/cheap:small", Closed),
        entry("ns/p", "provider/cheap:big", Open),
        // Same target under another policy: not this policy's circuit.
        entry("ns/gp", "provider/openai:gpt-4o", Open),
    ]);
    let (state, targets) = policy_circuits(policy(&s, "ns/p"), &s, &merged);
    assert_eq!(state, Some(HalfOpen));
    assert_eq!(
        listed(&targets),
        [
            ("provider/openai:gpt-4o", "HalfOpen"),
            ("backend/b1:llama", "Closed"),
            ("backend/b2:llama", "Open"),
            ("provider/cheap", "Open"),
        ],
        "a target without a model shows the worst of its per-model circuits"
    );
}

#[test]
fn a_group_primary_is_open_only_when_every_member_is() {
    let s = snapshot();
    let gp = policy(&s, "ns/gp");
    let one = board_with(vec![entry("ns/gp", "backend/b1:llama", Open)]);
    let (state, targets) = policy_circuits(gp, &s, &one);
    assert_eq!(state, None, "b2 still serves the group");
    assert_eq!(
        listed(&targets),
        [("backend/b1:llama", "Open"), ("backend/b2:llama", "Closed")]
    );
    let half = board_with(vec![
        entry("ns/gp", "backend/b1:llama", Open),
        entry("ns/gp", "backend/b2:llama", HalfOpen),
    ]);
    assert_eq!(policy_circuits(gp, &s, &half).0, Some(HalfOpen));
    let all = board_with(vec![
        entry("ns/gp", "backend/b1:llama", Open),
        entry("ns/gp", "backend/b2:llama", Open),
    ]);
    assert_eq!(policy_circuits(gp, &s, &all).0, Some(Open));
}

#[test]
fn apply_fills_every_policy_and_replaces_an_old_view() {
    let s = snapshot();
    let mut counters = Counters::default();
    counters.policies.insert(
        "ns/gone".into(),
        PolicyCounters {
            matches: 3,
            circuit: Some("Open".into()),
            targets: Some(vec![TargetCircuit {
                target: "provider/x".into(),
                state: "Open".into(),
            }]),
            ..PolicyCounters::default()
        },
    );
    let merged = board_with(vec![entry("ns/p", T, Open)]);
    apply(&mut counters, &s, &merged);
    let p = &counters.policies["ns/p"];
    assert_eq!(p.circuit.as_deref(), Some("Open"));
    assert_eq!(p.targets.as_ref().unwrap().len(), 4);
    let gone = &counters.policies["ns/gone"];
    assert_eq!(
        (gone.matches, gone.circuit.as_deref(), gone.targets.as_ref()),
        (3, None, None)
    );
    assert_eq!(counters.policies["ns/gp"].circuit, None);

    // Same input, same output (status writes stay idempotent).
    let mut again = counters.clone();
    apply(&mut again, &s, &merged);
    assert_eq!(again, counters);
}

#[test]
fn notifying_policies_follow_notify_on_open() {
    let s = snapshot();
    let mut keys: Vec<String> = notifying_policies(&s).into_iter().collect();
    keys.sort();
    assert_eq!(keys, ["ns/p", "ns/qwen"]);
}

#[test]
fn status_targets_are_bounded() {
    let mut targets = Vec::new();
    for i in 0..MAX_STATUS_TARGETS + 5 {
        push(&mut targets, format!("backend/b{i}:m"), Closed);
    }
    push(&mut targets, "backend/b0:m".into(), Open);
    assert_eq!(targets.len(), MAX_STATUS_TARGETS);
    assert_eq!(targets[0].state, "Closed", "no repeats");
}

#[test]
fn a_fixed_model_the_target_does_not_declare_shows_the_state_of_its_other_circuit() {
    let s = snapshot();
    let mut p = policy(&s, "ns/p").clone();
    // `cheap` declares no model: the data plane keeps one `other` breaker for it.
    p.route[2].model = Some("small".into());
    let merged = board_with(vec![
        entry("ns/p", "provider/cheap:other", Open),
        entry("ns/p", "provider/openai:gpt-4o", Closed),
    ]);
    let (_, targets) = policy_circuits(&p, &s, &merged);
    assert_eq!(
        listed(&targets),
        [
            ("provider/openai:gpt-4o", "Closed"),
            ("backend/b1:llama", "Closed"),
            ("backend/b2:llama", "Closed"),
            ("provider/cheap:small", "Open"),
        ]
    );
}

#[test]
fn circuits_reach_router_policy_status() {
    let c = compiled();
    let d = c.diagnostic(Kind::RouterPolicy, "ns", "p").unwrap();
    let now = ts("2026-01-01T00:00:00Z");
    let board = CircuitBoard::default();
    let at = Instant::now();
    let primary = |state| CircuitReport {
        snapshot_version: c.snapshot.version.clone(),
        at: now,
        ..report("dp-a", vec![entry("ns/p", T, state)])
    };
    let status_with = |board: &CircuitBoard, current: Option<&RouterPolicyStatus>| {
        let mut counters = Counters::default();
        apply(&mut counters, &c.snapshot, &board.merged(at));
        router_policy(d, current, true, &counters, now)
    };

    // Nothing reported: every target is listed Closed, the policy Active.
    let quiet = status_with(&board, None);
    assert_eq!(quiet.state, Some(PolicyState::Active));
    assert_eq!(
        listed(&quiet.targets),
        [
            ("provider/openai:gpt-4o", "Closed"),
            ("backend/b1:llama", "Closed"),
            ("backend/b2:llama", "Closed"),
            ("provider/cheap", "Closed"),
        ]
    );

    board.record(primary(Open), at);
    let s = status_with(&board, Some(&quiet));
    assert_eq!(s.state, Some(PolicyState::CircuitOpen));
    assert_eq!(s.targets[0].state, "Open");
    assert_eq!(
        status_with(&board, Some(&s)),
        s,
        "recomputing changes nothing"
    );

    board.record(primary(HalfOpen), at);
    let half = status_with(&board, Some(&s));
    assert_eq!(half.state, Some(PolicyState::HalfOpen));
    assert_eq!(half.targets[0].state, "HalfOpen");

    // No circuit view yet (operator warming up): status keeps what it shows.
    let kept = router_policy(d, Some(&s), true, &Counters::default(), now);
    assert_eq!((kept.state, &kept.targets), (s.state, &s.targets));
    // A disabled policy routes nothing: no targets.
    let mut counters = Counters::default();
    apply(&mut counters, &c.snapshot, &board.merged(at));
    let off = router_policy(d, Some(&s), false, &counters, now);
    assert_eq!(
        (off.state, off.targets.len()),
        (Some(PolicyState::Disabled), 0)
    );
}
