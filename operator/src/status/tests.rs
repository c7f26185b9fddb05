use switchyard_crds::compile::{Inventory, Kind, compile};

use super::*;

const SET: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: ns}
stringData: {openai: sk-test-123456789}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: openai, namespace: ns, generation: 3}
spec: {type: openai, auth: {type: api_key, secretRef: {name: keys, key: openai}}, models: [{name: gpt-4o}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: nokey, namespace: ns, generation: 1}
spec: {type: anthropic, auth: {type: api_key, secretRef: {name: keys, key: anthropic}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {name: default, namespace: ns, generation: 1}
spec: {default: true, guardrails: {secrets: redact}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: good, namespace: ns, generation: 2}
spec: {workspaceRef: default, priority: 1, matcher: {type: catch_all}, target: {providerRef: openai}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: broken, namespace: ns, generation: 1}
spec: {workspaceRef: default, priority: 2, matcher: {type: catch_all}, target: {providerRef: openai-main}}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: p, namespace: ns, generation: 1}
spec: {routeTo: {providerRef: openai}, enabled: true}
"#;

fn compiled() -> switchyard_crds::compile::Compiled {
    let mut inv = Inventory::default();
    switchyard_crds::manifest::add_yaml(&mut inv, "set.yaml", SET).unwrap();
    compile(&inv)
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cond<'a>(conds: &'a [Condition], type_: &str) -> &'a Condition {
    conds
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {conds:?}"))
}

#[test]
fn ready_provider() {
    let c = compiled();
    let d = c.diagnostic(Kind::Provider, "ns", "openai").unwrap();
    let s = provider(
        d,
        None,
        &[],
        &Counters::default(),
        &Probes::default(),
        t("2026-01-01T00:00:00.750Z"),
    );
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.endpoint.as_deref(), Some("https://api.openai.com/v1"));
    let ready = cond(&s.conditions, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Ready")
    );
    assert_eq!(ready.observed_generation, Some(3));
    assert_eq!(
        ready.last_transition_time.0,
        t("2026-01-01T00:00:00Z"),
        "whole seconds"
    );
    assert_eq!(cond(&s.conditions, "SecretResolved").status, "True");
    assert!(
        s.conditions
            .iter()
            .all(|c| !c.reason.is_empty() && !c.message.is_empty())
    );
}

#[test]
fn missing_secret_key_names_secret_and_key() {
    let c = compiled();
    let d = c.diagnostic(Kind::Provider, "ns", "nokey").unwrap();
    let s = provider(
        d,
        None,
        &[],
        &Counters::default(),
        &Probes::default(),
        t("2026-01-01T00:00:00Z"),
    );
    let sr = cond(&s.conditions, "SecretResolved");
    assert_eq!(
        (sr.status.as_str(), sr.reason.as_str()),
        ("False", "SecretKeyNotFound")
    );
    assert!(
        sr.message.contains("\"anthropic\"") && sr.message.contains("\"keys\""),
        "{}",
        sr.message
    );
    assert_eq!(cond(&s.conditions, "Ready").status, "False");
    assert!(!sr.message.contains("sk-test"), "no secret value in status");
}

#[test]
fn broken_rule_has_resolved_refs_false() {
    let c = compiled();
    let d = c.diagnostic(Kind::MuxRule, "ns", "broken").unwrap();
    let s = mux_rule(d, None, &Counters::default(), t("2026-01-01T00:00:00Z"));
    let rr = cond(&s.conditions, "ResolvedRefs");
    assert_eq!(
        (rr.status.as_str(), rr.reason.as_str()),
        ("False", "ProviderNotFound")
    );
    assert_eq!(
        rr.message,
        "MuxRule ns/broken: spec.target: provider \"openai-main\" not found"
    );
    assert_eq!(cond(&s.conditions, "Ready").status, "False");
    assert_eq!(s.target.as_deref(), Some("provider/openai-main"));
}

#[test]
fn transition_time_moves_only_when_status_flips() {
    let c = compiled();
    let d = c.diagnostic(Kind::MuxRule, "ns", "good").unwrap();
    let first = mux_rule(d, None, &Counters::default(), t("2026-01-01T00:00:00Z"));
    // Same verdict an hour later: identical status, so no write happens.
    let again = mux_rule(
        d,
        Some(&first),
        &Counters::default(),
        t("2026-01-01T01:00:00Z"),
    );
    assert_eq!(first, again);
    // The rule breaks: Ready flips and its time moves; a condition that did not flip keeps its time.
    let broken = c.diagnostic(Kind::MuxRule, "ns", "broken").unwrap();
    let flipped = mux_rule(
        broken,
        Some(&first),
        &Counters::default(),
        t("2026-01-01T02:00:00Z"),
    );
    assert_eq!(
        cond(&flipped.conditions, "Ready").last_transition_time.0,
        t("2026-01-01T02:00:00Z")
    );
    assert_eq!(
        cond(&flipped.conditions, "Conflicted")
            .last_transition_time
            .0,
        t("2026-01-01T00:00:00Z"),
        "Conflicted stayed False"
    );
}

#[test]
fn counters_reach_status() {
    let c = compiled();
    let mut counters = Counters::default();
    counters
        .rules
        .insert("ns/good".into(), (7, Some(t("2026-01-02T03:04:05.9Z"))));
    counters.policies.insert(
        "ns/p".into(),
        PolicyCounters {
            matches: 4,
            successes: 3,
            errors: 1,
            last_matched_at: None,
            circuit: Some("Open".into()),
            targets: Some(Vec::new()),
        },
    );
    let d = c.diagnostic(Kind::MuxRule, "ns", "good").unwrap();
    let s = mux_rule(d, None, &counters, t("2026-01-01T00:00:00Z"));
    assert_eq!(s.match_count, 7);
    assert_eq!(s.last_matched_at.unwrap().0, t("2026-01-02T03:04:05Z"));
    let d = c.diagnostic(Kind::RouterPolicy, "ns", "p").unwrap();
    let p = router_policy(d, None, true, &counters, t("2026-01-01T00:00:00Z"));
    assert_eq!((p.match_count, p.success_count, p.error_count), (4, 3, 1));
    assert_eq!(p.error_rate_percent, 25.0);
    assert_eq!(p.state, Some(PolicyState::CircuitOpen));
    assert_eq!(p.route.as_deref(), Some("provider/openai"));
    let off = router_policy(d, None, false, &counters, t("2026-01-01T00:00:00Z"));
    assert_eq!(off.state, Some(PolicyState::Disabled));
}

#[test]
fn workspace_fields() {
    let c = compiled();
    let d = c.diagnostic(Kind::Workspace, "ns", "default").unwrap();
    let s = workspace(d, None, &Counters::default(), t("2026-01-01T00:00:00Z"));
    assert!(s.active);
    assert_eq!(
        s.mux_rules
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["good", "broken"]
    );
    assert_eq!(s.mux_rule_count, Some(2));
    assert_eq!(
        s.guardrail_summary.as_deref(),
        Some("secrets=redact,pii=off")
    );
}

#[test]
fn backend_probe_sets_reachable_and_models() {
    let set = "apiVersion: switchyard.dev/v1alpha1\nkind: Backend\nmetadata: {name: b, namespace: ns}\nspec: {type: ollama, baseUrl: 'http://o:11434/v1', models: [{name: m}]}\n";
    let mut inv = Inventory::default();
    switchyard_crds::manifest::add_yaml(&mut inv, "b.yaml", set).unwrap();
    let c = compile(&inv);
    let d = c.diagnostic(Kind::Backend, "ns", "b").unwrap();
    let mut probes = Probes::default();
    probes.backends.insert(
        "ns/b".into(),
        ProbeResult {
            reachable: false,
            error: Some("connection refused".into()),
            models: vec![],
            at: t("2026-01-01T00:00:10Z"),
        },
    );
    let s = backend(
        d,
        None,
        &Counters::default(),
        &probes,
        t("2026-01-01T00:00:11Z"),
    );
    let r = cond(&s.conditions, "Reachable");
    assert_eq!(
        (r.status.as_str(), r.reason.as_str()),
        ("False", "Unreachable")
    );
    assert_eq!(s.error.as_deref(), Some("connection refused"));
    // Without a new probe the last verdict is kept.
    let kept = backend(
        d,
        Some(&s),
        &Counters::default(),
        &Probes::default(),
        t("2026-01-01T00:01:00Z"),
    );
    assert_eq!(cond(&kept.conditions, "Reachable").status, "False");
    assert_eq!(kept, s);
}

#[test]
fn long_messages_are_truncated() {
    let spec = ConditionSpec {
        type_: switchyard_crds::compile::ConditionType::Ready,
        status: false,
        reason: "X".into(),
        message: "é".repeat(10_000),
    };
    let c = conditions(&[spec], &[], None, t("2026-01-01T00:00:00Z"));
    assert!(c[0].message.len() <= MAX_MESSAGE);
}
