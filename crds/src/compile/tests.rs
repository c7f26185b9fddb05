//! Table tests of the compiler's rules and property tests of its guarantees (input order never
//! matters, one diagnostic per object, broken objects stay out of the snapshot).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::manifest::add_yaml;
use super::*;
use crate::common::TargetRef;
use crate::snapshot::{TargetKind, TargetSnapshot};
use crate::task_chain::TaskChainSpec;

/// An inventory from YAML documents (objects without a namespace land in `default`).
fn inv(yaml: &str) -> Inventory {
    let mut inv = Inventory::default();
    add_yaml(&mut inv, "test.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    inv
}

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: DEFAULT_NAMESPACE.into(),
        name: name.into(),
    }
}

fn diag<'a>(c: &'a Compiled, kind: Kind, name: &str) -> &'a Diagnostic {
    c.diagnostic(kind, DEFAULT_NAMESPACE, name)
        .unwrap_or_else(|| panic!("no diagnostic for {kind:?} {name}"))
}

fn reasons(d: &Diagnostic) -> Vec<(Severity, &str)> {
    d.issues
        .iter()
        .map(|i| (i.severity, i.reason.as_str()))
        .collect()
}

fn target(kind: TargetKind, name: &str, model: Option<&str>) -> TargetSnapshot {
    TargetSnapshot {
        kind,
        key: format!("default/{name}"),
        model: model.map(str::to_owned),
    }
}

// ---------------------------------------------------------------------------------------------
// Target resolution
// ---------------------------------------------------------------------------------------------

const TARGETS: &str = r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: p-ok}
spec: {type: openai, models: [{name: m1}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: p-any}
spec: {type: openai}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: p-broken}
spec: {type: vllm}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {name: b-ok}
spec: {type: vllm, baseUrl: "http://vllm:8000/v1", models: [{name: bm}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {name: b-broken}
spec: {type: vllm, models: [{name: bm}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: AffinityGroup
metadata: {name: g-ok}
spec: {backends: [b-ok]}
---
apiVersion: switchyard.dev/v1alpha1
kind: AffinityGroup
metadata: {name: g-broken}
spec: {backends: []}
"#;

fn tref(provider: Option<&str>, backend: Option<&str>, group: Option<&str>) -> TargetRef {
    TargetRef {
        provider_ref: provider.map(str::to_owned),
        backend_ref: backend.map(str::to_owned),
        affinity_group_ref: group.map(str::to_owned),
        model: None,
    }
}

fn with_model(mut t: TargetRef, model: &str) -> TargetRef {
    t.model = Some(model.to_owned());
    t
}

/// Expected outcome of resolving one target.
enum Want {
    /// Resolved to this target, with these warnings (reason, message substring).
    Ok(TargetSnapshot, &'static [(&'static str, &'static str)]),
    /// Not resolved: (condition, reason, message substring).
    Err(ConditionType, &'static str, &'static str),
}

#[test]
fn target_resolution_table() {
    use TargetKind::{AffinityGroup as G, Backend as B, Provider as P};
    let cases: Vec<(TargetRef, Want)> = vec![
        (
            tref(Some("p-ok"), None, None),
            Want::Ok(target(P, "p-ok", None), &[]),
        ),
        (
            with_model(tref(Some("p-ok"), None, None), "m1"),
            Want::Ok(target(P, "p-ok", Some("m1")), &[]),
        ),
        (
            with_model(tref(Some("p-ok"), None, None), "zz"),
            Want::Ok(
                target(P, "p-ok", Some("zz")),
                &[(
                    "ModelNotDeclared",
                    r#"spec.target: model "zz" is not among the models of provider "p-ok""#,
                )],
            ),
        ),
        // A provider that declares no models accepts any.
        (
            with_model(tref(Some("p-any"), None, None), "whatever"),
            Want::Ok(target(P, "p-any", Some("whatever")), &[]),
        ),
        (
            tref(Some("ghost"), None, None),
            Want::Err(
                ConditionType::ResolvedRefs,
                "ProviderNotFound",
                r#"spec.target: provider "ghost" not found"#,
            ),
        ),
        (
            tref(Some("p-broken"), None, None),
            Want::Err(
                ConditionType::Ready,
                "TargetNotReady",
                r#"spec.target: provider "p-broken" is not ready (MissingEndpoint)"#,
            ),
        ),
        (
            with_model(tref(None, Some("b-ok"), None), "bm"),
            Want::Ok(target(B, "b-ok", Some("bm")), &[]),
        ),
        (
            tref(None, Some("ghost"), None),
            Want::Err(
                ConditionType::ResolvedRefs,
                "BackendNotFound",
                r#"backend "ghost" not found"#,
            ),
        ),
        (
            tref(None, Some("b-broken"), None),
            Want::Err(
                ConditionType::Ready,
                "TargetNotReady",
                r#"backend "b-broken" is not ready (InvalidEndpoint)"#,
            ),
        ),
        (
            with_model(tref(None, None, Some("g-ok")), "bm"),
            Want::Ok(target(G, "g-ok", Some("bm")), &[]),
        ),
        (
            with_model(tref(None, None, Some("g-ok")), "zz"),
            Want::Ok(
                target(G, "g-ok", Some("zz")),
                &[("ModelNotDeclared", r#"affinity group "g-ok""#)],
            ),
        ),
        (
            tref(None, None, Some("ghost")),
            Want::Err(
                ConditionType::ResolvedRefs,
                "AffinityGroupNotFound",
                r#"affinity group "ghost" not found"#,
            ),
        ),
        (
            tref(None, None, Some("g-broken")),
            Want::Err(
                ConditionType::Ready,
                "TargetNotReady",
                r#"affinity group "g-broken" is not ready (NoMembers)"#,
            ),
        ),
        (
            tref(None, None, None),
            Want::Err(
                ConditionType::Ready,
                "InvalidTarget",
                "spec.target must set exactly one of providerRef, backendRef and affinityGroupRef",
            ),
        ),
        (
            tref(Some("p-ok"), Some("b-ok"), None),
            Want::Err(ConditionType::Ready, "InvalidTarget", "exactly one of"),
        ),
        (
            tref(Some("p-ok"), Some("b-ok"), Some("g-ok")),
            Want::Err(ConditionType::Ready, "InvalidTarget", "exactly one of"),
        ),
        // Two refs, even to objects that do not exist: the shape is checked first.
        (
            tref(Some("ghost"), None, Some("ghost")),
            Want::Err(ConditionType::Ready, "InvalidTarget", "exactly one of"),
        ),
    ];

    let inventory = inv(TARGETS);
    for severity in [Severity::Error, Severity::Warning] {
        let mut cx = Cx::new(&inventory);
        let providers = providers::compile_providers(&mut cx);
        let backends = providers::compile_backends(&mut cx);
        let groups = groups::compile(&mut cx, &backends);
        let usable = targets::Usable {
            providers: &providers,
            backends: &backends,
            groups: &groups,
        };
        for (i, (t, want)) in cases.iter().enumerate() {
            let owner = key(Kind::MuxRule, &format!("owner-{i}"));
            cx.diagnostics.insert(
                owner.clone(),
                Diagnostic {
                    object: owner.clone(),
                    generation: None,
                    issues: Vec::new(),
                    details: Details::MuxRule { target: None },
                },
            );
            let got = targets::resolve(&mut cx, &usable, &owner, severity, "spec.target", t);
            let issues = &cx.diagnostics[&owner].issues;
            match want {
                Want::Ok(expected, warnings) => {
                    assert_eq!(got.as_ref(), Some(expected), "case {i}: {t:?}");
                    assert_eq!(issues.len(), warnings.len(), "case {i}: {issues:?}");
                    for (issue, (reason, text)) in issues.iter().zip(warnings.iter()) {
                        // A model mismatch is only ever a warning.
                        assert_eq!(issue.severity, Severity::Warning, "case {i}");
                        assert_eq!(issue.condition, ConditionType::ResolvedRefs);
                        assert_eq!(issue.reason, *reason, "case {i}");
                        assert!(issue.message.contains(text), "case {i}: {}", issue.message);
                    }
                }
                Want::Err(condition, reason, text) => {
                    assert_eq!(got, None, "case {i}: {t:?}");
                    assert_eq!(issues.len(), 1, "case {i}: {issues:?}");
                    let issue = &issues[0];
                    assert_eq!(issue.severity, severity, "case {i}: the caller decides");
                    assert_eq!(issue.condition, *condition, "case {i}");
                    assert_eq!(issue.reason, *reason, "case {i}");
                    assert!(issue.message.contains(text), "case {i}: {}", issue.message);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MuxRule order
// ---------------------------------------------------------------------------------------------

fn rule(name: &str, workspace: &str, priority: i32) -> String {
    format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: MuxRule\nmetadata: {{name: {name}}}\n\
         spec: {{workspaceRef: {workspace}, priority: {priority}, matcher: {{type: catch_all}}, \
         target: {{providerRef: p}}}}\n---\n"
    )
}

const PROVIDER_P: &str = "apiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec: {type: openai}\n---\n";

fn workspace(name: &str, default: bool, created: Option<&str>) -> String {
    let ts = created.map_or(String::new(), |t| format!(", creationTimestamp: \"{t}\""));
    format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: Workspace\nmetadata: {{name: {name}{ts}}}\n\
         spec: {{default: {default}}}\n---\n"
    )
}

#[test]
fn equal_priorities_are_ordered_by_name() {
    // (name, priority) in input order; expected evaluation order below.
    let rules = [("c", 5), ("f", 9), ("a", 5), ("z", 1), ("b", 5), ("d", 7)];
    let mut yaml = String::from(PROVIDER_P);
    yaml += &workspace("w", false, None);
    yaml += &workspace("other", false, None);
    for (name, priority) in rules {
        yaml += &rule(name, "w", priority);
    }
    // Same priority in another workspace: no tie.
    yaml += &rule("elsewhere", "other", 5);
    let c = compile(&inv(&yaml));
    let ws = c.snapshot.workspace("default/w").unwrap();
    let order: Vec<&str> = ws.mux_rules.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        order,
        [
            "default/z",
            "default/a",
            "default/b",
            "default/c",
            "default/d",
            "default/f"
        ]
    );
    let Details::Workspace { mux_rules, .. } = &diag(&c, Kind::Workspace, "w").details else {
        panic!("workspace details");
    };
    let names: Vec<&str> = mux_rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["z", "a", "b", "c", "d", "f"]);

    for (name, others) in [("a", "b, c"), ("b", "a, c"), ("c", "a, b")] {
        let d = diag(&c, Kind::MuxRule, name);
        assert!(d.ready());
        assert_eq!(reasons(d), [(Severity::Warning, "PriorityTie")], "{name}");
        assert_eq!(
            d.issues[0].message,
            format!("priority 5 is shared with MuxRule {others}; ties are evaluated in name order")
        );
        let conflicted = d
            .conditions()
            .into_iter()
            .find(|c| c.type_ == ConditionType::Conflicted)
            .unwrap();
        assert!(conflicted.status);
        assert_eq!(conflicted.reason, "PriorityTie");
    }
    for name in ["z", "d", "f", "elsewhere"] {
        assert!(diag(&c, Kind::MuxRule, name).issues.is_empty(), "{name}");
    }
}

#[test]
fn a_rule_defined_twice_is_summarized_once_whatever_the_input_order() {
    // Two definitions of "dup" with different priorities and targets: the compiled one (the
    // smaller serialization) is the only one listed in the workspace's status.
    let first = rule("dup", "w", 1);
    let second = rule("dup", "w", 7).replace("providerRef: p", "providerRef: ghost");
    let base = format!("{PROVIDER_P}{}", workspace("w", false, None));
    let a = compile(&inv(&format!("{base}{first}{second}")));
    let b = compile(&inv(&format!("{base}{second}{first}")));
    assert_eq!(a, b);
    let Details::Workspace { mux_rules, .. } = &diag(&a, Kind::Workspace, "w").details else {
        panic!("workspace details");
    };
    assert_eq!(mux_rules.len(), 1, "{mux_rules:?}");
    let kept = &a.snapshot.workspace("default/w").unwrap().mux_rules;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (mux_rules[0].priority, mux_rules[0].target.as_str()),
        (kept[0].priority, "provider/p")
    );
    assert!(mux_rules[0].ready);
    let d = diag(&a, Kind::MuxRule, "dup");
    assert_eq!(reasons(d), [(Severity::Warning, "DuplicateObject")]);
}

// ---------------------------------------------------------------------------------------------
// Default workspace
// ---------------------------------------------------------------------------------------------

#[test]
fn default_workspace_choice() {
    type Ws = (&'static str, bool, Option<&'static str>);
    // (workspaces, expected default, expected to report Conflicted)
    let cases: Vec<(Vec<Ws>, Option<&str>, Vec<&str>)> = vec![
        (vec![("a", false, None), ("b", false, None)], None, vec![]),
        (
            vec![("a", false, None), ("b", true, None)],
            Some("b"),
            vec![],
        ),
        // The oldest wins whatever its name.
        (
            vec![
                ("a", true, Some("2024-05-01T00:00:00Z")),
                ("b", true, Some("2024-01-01T00:00:00Z")),
            ],
            Some("b"),
            vec!["a", "b"],
        ),
        // Same age: by key.
        (
            vec![
                ("b", true, Some("2024-01-01T00:00:00Z")),
                ("a", true, Some("2024-01-01T00:00:00Z")),
            ],
            Some("a"),
            vec!["a", "b"],
        ),
        // No timestamp counts as newest.
        (
            vec![("a", true, None), ("b", true, Some("2030-01-01T00:00:00Z"))],
            Some("b"),
            vec!["a", "b"],
        ),
        (
            vec![("b", true, None), ("a", true, None), ("c", false, None)],
            Some("a"),
            vec!["a", "b"],
        ),
        // Compared as times, not as text: half a second later is newer, other offsets are
        // the same instant in another zone.
        (
            vec![
                ("a", true, Some("2024-01-01T10:00:00.5Z")),
                ("b", true, Some("2024-01-01T10:00:00Z")),
            ],
            Some("b"),
            vec!["a", "b"],
        ),
        (
            vec![
                ("a", true, Some("2024-01-01T10:00:00+02:00")),
                ("b", true, Some("2024-01-01T09:00:00Z")),
            ],
            Some("a"),
            vec!["a", "b"],
        ),
        (
            vec![
                ("a", true, Some("2024-03-01T00:00:00Z")),
                ("b", true, Some("2024-02-01T00:00:00Z")),
                ("c", true, Some("2024-01-01T00:00:00Z")),
            ],
            Some("c"),
            vec!["a", "b", "c"],
        ),
    ];
    for (i, (workspaces, expected, conflicted)) in cases.into_iter().enumerate() {
        let yaml: String = workspaces
            .iter()
            .map(|(n, d, t)| workspace(n, *d, *t))
            .collect();
        let c = compile(&inv(&yaml));
        let want = expected.map(|n| format!("default/{n}"));
        assert_eq!(c.snapshot.default_workspace, want, "case {i}");
        for (name, _, _) in &workspaces {
            let d = diag(&c, Kind::Workspace, name);
            assert!(d.ready(), "case {i}: workspaces never fail on a conflict");
            let Details::Workspace { active, .. } = &d.details else {
                panic!("details")
            };
            assert_eq!(*active, expected == Some(*name), "case {i}: {name} active");
            let is_conflicted = d
                .issues
                .iter()
                .any(|i| i.condition == ConditionType::Conflicted);
            assert_eq!(
                is_conflicted,
                conflicted.contains(name),
                "case {i}: {name}: {:?}",
                d.issues
            );
            if is_conflicted {
                let msg = &d.issues[0].message;
                let winner = want.as_deref().unwrap();
                if expected == Some(*name) {
                    assert!(msg.contains("this one is in effect"), "{msg}");
                } else {
                    assert!(
                        msg.contains(&format!(
                            "{winner} is in effect as the oldest, not this one"
                        )),
                        "{msg}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Route splicing
// ---------------------------------------------------------------------------------------------

#[test]
fn route_splicing_order_and_dedupe() {
    let mut yaml = String::new();
    for p in ["a", "b", "c", "d"] {
        yaml += &format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: {p}}}\nspec: {{type: openai}}\n---\n"
        );
    }
    yaml += r#"
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: main}
spec:
  routeTo: {providerRef: a}
  fallback:
    - routerPolicyRef: mid
    - providerRef: c
    - providerRef: b
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: mid}
spec:
  routeTo: {providerRef: b}
  fallback:
    - {providerRef: c, model: x}
    - routerPolicyRef: leaf
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: leaf}
spec:
  routeTo: {providerRef: a}
  fallback:
    - providerRef: d
    - providerRef: d
---
# Spliced twice: the second copy adds nothing.
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: twice}
spec:
  routeTo: {routerPolicyRef: leaf}
  fallback:
    - routerPolicyRef: leaf
"#;
    let c = compile(&inv(&yaml));
    assert!(c.issue_lines().is_empty(), "{:?}", c.issue_lines());
    let route = |name: &str| -> Vec<TargetSnapshot> {
        c.snapshot
            .router_policies
            .iter()
            .find(|p| p.key == format!("default/{name}"))
            .unwrap()
            .route
            .clone()
    };
    use TargetKind::Provider as P;
    assert_eq!(route("leaf"), [target(P, "a", None), target(P, "d", None)]);
    assert_eq!(
        route("mid"),
        [
            target(P, "b", None),
            target(P, "c", Some("x")),
            target(P, "a", None),
            target(P, "d", None),
        ]
    );
    // main: a, then mid's route (b, c:x, a again -> dropped, d), then c (a different target
    // from c:x), then b again -> dropped.
    assert_eq!(
        route("main"),
        [
            target(P, "a", None),
            target(P, "b", None),
            target(P, "c", Some("x")),
            target(P, "d", None),
            target(P, "c", None),
        ]
    );
    assert_eq!(route("twice"), route("leaf"));
    assert_eq!(
        diag(&c, Kind::RouterPolicy, "main").details,
        Details::RouterPolicy {
            route: Some(
                "provider/a -> provider/b -> provider/c:x -> provider/d -> provider/c".into()
            )
        }
    );
}

#[test]
fn route_cycles_are_errors_on_every_member_only() {
    let yaml = format!(
        "{PROVIDER_P}{}",
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: self}
spec:
  routeTo: {providerRef: p}
  fallback: [{routerPolicyRef: self}]
---
# Leads into the cycle b -> c -> b but is not part of it.
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: a}
spec:
  routeTo: {routerPolicyRef: b}
  fallback: [{providerRef: p}]
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: b}
spec:
  routeTo: {routerPolicyRef: c}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: c}
spec:
  routeTo: {routerPolicyRef: b}
"#
    );
    let c = compile(&inv(&yaml));
    let self_ = diag(&c, Kind::RouterPolicy, "self");
    assert_eq!(reasons(self_), [(Severity::Error, "RouteCycle")]);
    assert!(
        self_.message().contains("self -> self"),
        "{}",
        self_.message()
    );
    for name in ["b", "c"] {
        let d = diag(&c, Kind::RouterPolicy, name);
        assert_eq!(reasons(d), [(Severity::Error, "RouteCycle")], "{name}");
        assert!(d.message().contains("b -> c -> b"), "{}", d.message());
    }
    let a = diag(&c, Kind::RouterPolicy, "a");
    assert!(a.ready(), "{:?}", a.issues);
    assert_eq!(reasons(a), [(Severity::Warning, "TargetNotReady")]);
    let keys: Vec<&str> = c
        .snapshot
        .router_policies
        .iter()
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(keys, ["default/a"]);
}

// ---------------------------------------------------------------------------------------------
// TaskChain graphs
// ---------------------------------------------------------------------------------------------

fn chain_spec(tasks: &str) -> TaskChainSpec {
    let yaml = format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: TaskChain\nmetadata: {{name: c}}\nspec:\n  tasks:\n{tasks}"
    );
    inv(&yaml).task_chains.remove(0).spec
}

#[test]
fn graph_reachability_edge_cases() {
    // (tasks, substrings of each expected problem; empty: valid)
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // A task without branches ends the chain.
        ("    - {id: a, handler: noop}\n", vec![]),
        (
            "    - {id: a, handler: noop, transition: {branches: [{operator: default, goto: b}]}}\n    - {id: b, handler: noop}\n",
            vec![],
        ),
        // The only way out of the loop is b's onFailure: that edge counts.
        (
            "    - {id: a, handler: noop, transition: {branches: [{operator: default, goto: b}]}}\n    - {id: b, handler: noop, transition: {branches: [{operator: default, goto: a}], onFailure: end}}\n",
            vec![],
        ),
        // onFailure into a task that ends.
        (
            "    - {id: a, handler: noop, transition: {branches: [{operator: default, goto: a}], onFailure: c}}\n    - {id: c, handler: raise_error}\n",
            vec![],
        ),
        // A loop with no exit, reached through a branch: only the loop's tasks are reported.
        (
            "    - {id: a, handler: noop, transition: {branches: [{when: x, goto: end}, {operator: default, goto: l1}]}}\n    - {id: l1, handler: noop, transition: {branches: [{operator: default, goto: l2}]}}\n    - {id: l2, handler: noop, transition: {branches: [{operator: default, goto: l1}]}}\n",
            vec![
                r#"task "l1" can never reach "end" (from it only "l1", "l2" can run)"#,
                r#"task "l2" can never reach "end""#,
            ],
        ),
        // A task looping on itself.
        (
            "    - {id: a, handler: noop, transition: {branches: [{operator: default, goto: a}]}}\n",
            vec![r#"task "a" can never reach "end" (from it only "a" can run)"#],
        ),
        // Structural problems are reported instead of reachability.
        (
            "    - {id: a, handler: noop, transition: {branches: [{goto: a}], onFailure: nope}}\n",
            vec![r#"task "a": onFailure "nope" is not a task id or "end""#],
        ),
        (
            "    - {id: end, handler: noop}\n",
            vec![r#"task id "end" is reserved"#],
        ),
        (
            "    - {id: a, handler: noop}\n    - {id: a, handler: noop}\n    - {id: a, handler: noop}\n",
            vec![r#"duplicate task id "a" (tasks 0, 1, 2)"#],
        ),
    ];
    for (i, (tasks, expected)) in cases.iter().enumerate() {
        let problems = chains::graph_problems(&chain_spec(tasks));
        assert_eq!(problems.len(), expected.len(), "case {i}: {problems:?}");
        for (p, e) in problems.iter().zip(expected) {
            assert!(p.contains(e), "case {i}: {p:?} lacks {e:?}");
        }
    }
    let empty = TaskChainSpec {
        description: None,
        debug: false,
        token_limit: 0,
        max_steps: 1,
        hooks: Vec::new(),
        tasks: Vec::new(),
    };
    assert_eq!(chains::graph_problems(&empty), ["no tasks"]);
}

#[test]
fn unreachable_task_is_a_warning_not_an_error() {
    // "stuck" loops forever, but nothing reaches it: a warning, and the chain is served.
    let yaml = r#"
apiVersion: switchyard.dev/v1alpha1
kind: TaskChain
metadata: {name: c}
spec:
  tasks:
    - {id: first, handler: noop}
    - {id: stuck, handler: noop, transition: {branches: [{operator: default, goto: stuck}]}}
"#;
    let c = compile(&inv(yaml));
    let d = diag(&c, Kind::TaskChain, "c");
    assert!(d.ready(), "{:?}", d.issues);
    assert_eq!(reasons(d), [(Severity::Warning, "UnreachableTask")]);
    assert_eq!(
        d.issues[0].message,
        r#"task "stuck" is never reached from the first task "first""#
    );
    assert!(c.snapshot.task_chain("default/c").is_some());
}

#[test]
fn task_chain_range_cases() {
    let cases: &[(&str, Option<(f64, f64)>)] = &[
        ("5-7", Some((5.0, 7.0))),
        ("5", Some((5.0, 5.0))),
        (" 5 - 7 ", Some((5.0, 7.0))),
        ("0.5-1.5", Some((0.5, 1.5))),
        ("-5--1", Some((-5.0, -1.0))),
        ("-5-3", Some((-5.0, 3.0))),
        ("-2", Some((-2.0, -2.0))),
        ("1e-3-2", Some((0.001, 2.0))),
        ("7-7", Some((7.0, 7.0))),
        ("7-5", None),
        ("-1--5", None),
        ("a-b", None),
        ("5-", None),
        ("-", None),
        ("", None),
        ("5-7-9", None),
        ("NaN", None),
        ("inf", None),
        ("0-inf", None),
    ];
    for (text, expected) in cases {
        assert_eq!(crate::task_chain_range(text), *expected, "{text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Headers, URLs and Secrets
// ---------------------------------------------------------------------------------------------

const SECRETS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData:
  token: "  tok-123 \n"
  blank: " \n\t "
  client: " sy-client\n"
---
"#;

#[test]
fn headers_need_exactly_one_of_value_and_value_from() {
    /// (headers YAML, expected resolved (name, value) pairs, expected issue reasons)
    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        ("[{name: X-A, value: lit}]", vec![("X-A", "lit")], vec![]),
        (
            "[{name: X-B, valueFrom: {name: s, key: token}}, {name: X-A, value: lit}]",
            vec![("X-A", "lit"), ("X-B", "tok-123")],
            vec![],
        ),
        (
            "[{name: X-C, value: lit, valueFrom: {name: s, key: token}}]",
            vec![],
            vec!["InvalidHeader"],
        ),
        ("[{name: X-D}]", vec![], vec!["InvalidHeader"]),
        (
            "[{name: X-E, valueFrom: {name: nope, key: token}}]",
            vec![],
            vec!["SecretNotFound"],
        ),
        (
            "[{name: X-F, valueFrom: {name: s, key: blank}}]",
            vec![],
            vec!["SecretKeyEmpty"],
        ),
    ];
    for (i, (headers, resolved, issues)) in cases.into_iter().enumerate() {
        let yaml = format!(
            "{SECRETS}apiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: p}}\n\
             spec: {{type: openai, headers: {headers}}}\n"
        );
        let c = compile(&inv(&yaml));
        let d = diag(&c, Kind::Provider, "p");
        let got: Vec<&str> = d.issues.iter().map(|i| i.reason.as_str()).collect();
        assert_eq!(got, issues, "case {i}");
        if issues.is_empty() {
            let p = c.snapshot.provider("default/p").unwrap();
            let h: Vec<(&str, &str)> = p
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.expose()))
                .collect();
            assert_eq!(h, resolved, "case {i}");
        } else {
            // Header problems of a provider are errors: it is not routed.
            assert!(!d.ready(), "case {i}");
            assert!(c.snapshot.provider("default/p").is_none(), "case {i}");
            if got == ["InvalidHeader"] {
                assert!(
                    d.message()
                        .contains("must set exactly one of value and valueFrom"),
                    "{}",
                    d.message()
                );
            }
        }
    }
}

#[test]
fn urls_with_credentials_are_rejected_without_echoing_them() {
    let yaml = r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: p}
spec: {type: openai, endpoint: "https://admin:Pa55word@llm.example.com/v1"}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {name: b}
spec: {type: vllm, baseUrl: "http://token@vllm.example.com:8000/v1", models: [{name: m}]}
"#;
    let c = compile(&inv(yaml));
    for (kind, name, field) in [
        (Kind::Provider, "p", "spec.endpoint"),
        (Kind::Backend, "b", "spec.baseUrl"),
    ] {
        let d = diag(&c, kind, name);
        assert_eq!(reasons(d), [(Severity::Error, "InvalidURL")], "{name}");
        assert_eq!(
            d.issues[0].message,
            format!("{field} must not carry credentials; use a Secret reference")
        );
        // Nothing the operator writes (conditions, status details) carries the URL.
        let written = format!("{:?} {:?}", d.conditions(), d.details);
        for secret in [
            "Pa55word",
            "admin",
            "token@",
            "llm.example.com",
            "vllm.example.com",
        ] {
            assert!(
                !written.contains(secret),
                "{name} leaks {secret}: {written}"
            );
        }
    }
    assert!(c.snapshot.providers.is_empty() && c.snapshot.backends.is_empty());
}

#[test]
fn secret_values_are_trimmed_and_empty_ones_reported() {
    let yaml = format!(
        "{SECRETS}{}",
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: trimmed}
spec: {type: openai, auth: {type: api_key, secretRef: {name: s, key: token}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: empty}
spec: {type: openai, auth: {type: api_key, secretRef: {name: s, key: blank}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {name: b}
spec: {type: vllm, baseUrl: "http://v/v1", models: [{name: m}], auth: {secretRef: {name: s, key: token}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {name: w}
spec:
  clients:
    apiKeys:
      - {name: ci, secretRef: {name: s, key: client}}
      - {name: nobody, secretRef: {name: s, key: blank}}
"#
    );
    let c = compile(&inv(&yaml));
    let p = c.snapshot.provider("default/trimmed").unwrap();
    assert_eq!(p.api_key.as_ref().unwrap().expose(), "tok-123");
    let b = c.snapshot.backend("default/b").unwrap();
    assert_eq!(b.api_key.as_ref().unwrap().expose(), "tok-123");

    let empty = diag(&c, Kind::Provider, "empty");
    assert_eq!(reasons(empty), [(Severity::Error, "SecretKeyEmpty")]);
    assert_eq!(
        empty.issues[0].message,
        r#"API key: key "blank" in Secret "s" is empty"#
    );
    assert!(c.snapshot.provider("default/empty").is_none());

    // Client keys are matched by the digest of the trimmed value; an empty one is a warning.
    use sha2::{Digest, Sha256};
    assert_eq!(c.snapshot.client_keys.len(), 1);
    assert_eq!(
        c.snapshot.client_keys[0].sha256,
        hex::encode(Sha256::digest(b"sy-client"))
    );
    let w = diag(&c, Kind::Workspace, "w");
    assert!(w.ready());
    assert_eq!(reasons(w), [(Severity::Warning, "SecretKeyEmpty")]);
    // Never the value itself.
    let all = format!("{:?}", c.diagnostics);
    assert!(
        !all.contains("tok-123") && !all.contains("sy-client"),
        "{all}"
    );
}

#[test]
fn missing_secret_names_the_secret_and_the_key() {
    let yaml = r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: p}
spec: {type: openai, auth: {type: api_key, secretRef: {name: openai-creds, key: api-key}}}
"#;
    let c = compile(&inv(yaml));
    let d = diag(&c, Kind::Provider, "p");
    assert_eq!(reasons(d), [(Severity::Error, "SecretNotFound")]);
    let m = &d.issues[0].message;
    assert!(
        m.contains(r#"Secret "openai-creds""#) && m.contains(r#"key "api-key""#),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Small vocabularies, so references hit and miss and names collide.
mod arb {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use k8s_openapi::jiff::Timestamp;
    use proptest::prelude::*;

    use crate::affinity_group::{LoadBalancing, LoadBalancingStrategy};
    use crate::backend::{BackendType, HealthCheck, ServiceRef};
    use crate::common::{ModelSpec, SecretKeyRef, TargetRef};
    use crate::mux_rule::{Matcher, MatcherType};
    use crate::provider::{AuthType, ProviderAuth, ProviderType};
    use crate::router_policy::{CircuitBreaker, PolicyMatch, PolicyTarget};
    use crate::snapshot::SecretValue;
    use crate::task_chain::{Branch, Handler, Operator, TaskSpec, Transition};
    use crate::workspace::{ClientApiKey, WorkspaceClients};
    use crate::*;

    use super::super::Inventory;

    /// Objects without a namespace count as `default`, so `None` and `default` collide.
    const NAMESPACES: &[Option<&str>] = &[None, Some("default"), Some("team")];

    fn meta(ns: usize, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: NAMESPACES[ns].map(str::to_owned),
            ..Default::default()
        }
    }

    fn ns() -> impl Strategy<Value = usize> {
        prop_oneof![3 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)]
    }

    fn pick(names: &'static [&'static str]) -> impl Strategy<Value = String> {
        proptest::sample::select(names).prop_map(str::to_owned)
    }

    fn models() -> impl Strategy<Value = Vec<ModelSpec>> {
        proptest::collection::vec(pick(&["m1", "m2", "m3"]), 0..3).prop_map(|names| {
            names
                .into_iter()
                .map(|name| ModelSpec {
                    name,
                    capabilities: Default::default(),
                    context_length: None,
                    pricing: None,
                })
                .collect()
        })
    }

    fn secret_ref() -> impl Strategy<Value = SecretKeyRef> {
        (pick(&["keys", "ghost"]), pick(&["k1", "k2", "blank", "kx"]))
            .prop_map(|(name, key)| SecretKeyRef { name, key })
    }

    pub fn provider() -> impl Strategy<Value = Provider> {
        (
            ns(),
            pick(&["p1", "p2", "p3"]),
            proptest::sample::select(&[ProviderType::Openai, ProviderType::Vllm][..]),
            proptest::option::of(pick(&["http://h/v1", "https://u:pw@h/v1", "ftp://h"])),
            prop_oneof![
                Just(None),
                Just(Some(None)),
                secret_ref().prop_map(|r| Some(Some(r)))
            ],
            models(),
        )
            .prop_map(|(ns, name, type_, endpoint, auth, models)| {
                let auth = match auth {
                    None => ProviderAuth::default(),
                    Some(secret_ref) => ProviderAuth {
                        type_: AuthType::ApiKey,
                        secret_ref,
                    },
                };
                Provider {
                    metadata: meta(ns, &name),
                    spec: ProviderSpec {
                        type_,
                        endpoint,
                        description: None,
                        auth,
                        models,
                        discover_models: false,
                        pricing: Vec::new(),
                        timeouts: None,
                        headers: Vec::new(),
                    },
                    status: None,
                }
            })
    }

    pub fn backend() -> impl Strategy<Value = Backend> {
        (
            ns(),
            pick(&["b1", "b2", "b3"]),
            proptest::option::of(Just("http://b:8000/v1".to_owned())),
            proptest::option::of(prop_oneof![
                Just(IntOrString::Int(8000)),
                Just(IntOrString::String("http".into()))
            ]),
            models(),
            0u32..3,
            any::<bool>(),
        )
            .prop_map(|(ns, name, base_url, port, models, weight, gpu)| Backend {
                metadata: ObjectMeta {
                    labels: gpu.then(|| BTreeMap::from([("tier".into(), "gpu".into())])),
                    ..meta(ns, &name)
                },
                spec: BackendSpec {
                    type_: BackendType::Vllm,
                    base_url,
                    service_ref: port.map(|port| ServiceRef {
                        name: "svc".into(),
                        port,
                        scheme: Default::default(),
                        path: "/v1".into(),
                    }),
                    description: None,
                    models,
                    auth: None,
                    weight,
                    max_concurrency: None,
                    health_check: HealthCheck::default(),
                    timeouts: None,
                },
                status: None,
            })
    }

    pub fn group() -> impl Strategy<Value = AffinityGroup> {
        (
            ns(),
            pick(&["g1", "g2"]),
            proptest::collection::vec(pick(&["b1", "b2", "b3", "bx"]), 0..3),
            proptest::collection::vec(pick(&["m1", "m2", "m4"]), 0..2),
            proptest::sample::select(
                &[
                    LoadBalancingStrategy::RoundRobin,
                    LoadBalancingStrategy::Weighted,
                    LoadBalancingStrategy::SessionAffinity,
                ][..],
            ),
            any::<bool>(),
        )
            .prop_map(
                |(ns, name, backends, models, strategy, select)| AffinityGroup {
                    metadata: meta(ns, &name),
                    spec: AffinityGroupSpec {
                        purpose: "chat".into(),
                        description: None,
                        backend_selector: select.then(|| LabelSelector {
                            match_labels: Some(BTreeMap::from([("tier".into(), "gpu".into())])),
                            match_expressions: None,
                        }),
                        backends,
                        models,
                        load_balancing: LoadBalancing {
                            strategy,
                            session_header: None,
                        },
                    },
                    status: None,
                },
            )
    }

    pub fn workspace() -> impl Strategy<Value = Workspace> {
        (
            ns(),
            pick(&["w1", "w2", "w3"]),
            any::<bool>(),
            proptest::option::of(0i64..3),
            proptest::option::of(secret_ref()),
        )
            .prop_map(|(ns, name, default, created, client)| Workspace {
                metadata: ObjectMeta {
                    creation_timestamp: created.map(|s| {
                        Time(Timestamp::from_second(1_700_000_000 + s).unwrap_or_default())
                    }),
                    ..meta(ns, &name)
                },
                spec: WorkspaceSpec {
                    default,
                    clients: WorkspaceClients {
                        api_keys: client
                            .map(|secret_ref| ClientApiKey {
                                name: format!("{name}-client"),
                                secret_ref,
                            })
                            .into_iter()
                            .collect(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                status: None,
            })
    }

    fn target_ref() -> impl Strategy<Value = TargetRef> {
        let one = |names: &'static [&'static str]| proptest::option::of(pick(names));
        (
            prop_oneof![
                3 => (one(&["p1", "p2", "px"]), Just(None), Just(None)),
                2 => (Just(None), one(&["b1", "b2", "bx"]), Just(None)),
                2 => (Just(None), Just(None), one(&["g1", "g2", "gx"])),
                1 => (one(&["p1"]), one(&["b1"]), one(&["g1"])),
            ],
            proptest::option::of(pick(&["m1", "m2", "mx"])),
        )
            .prop_map(|((p, b, g), model)| TargetRef {
                provider_ref: p,
                backend_ref: b,
                affinity_group_ref: g,
                model,
            })
    }

    pub fn mux_rule() -> impl Strategy<Value = MuxRule> {
        (
            ns(),
            pick(&["r1", "r2", "r3"]),
            pick(&["w1", "w2", "wx"]),
            0i32..3,
            proptest::sample::select(
                &[
                    MatcherType::CatchAll,
                    MatcherType::FilenameMatch,
                    MatcherType::FimFilename,
                    MatcherType::Model,
                ][..],
            ),
            proptest::option::of(pick(&["", "*.py", "src/[", "gpt-*"])),
            target_ref(),
        )
            .prop_map(
                |(ns, name, workspace_ref, priority, type_, pattern, target)| MuxRule {
                    metadata: meta(ns, &name),
                    spec: MuxRuleSpec {
                        workspace_ref,
                        priority,
                        matcher: Matcher { type_, pattern },
                        target,
                    },
                    status: None,
                },
            )
    }

    fn policy_target() -> impl Strategy<Value = PolicyTarget> {
        prop_oneof![
            3 => target_ref().prop_map(|target| PolicyTarget { target, router_policy_ref: None }),
            2 => pick(&["q1", "q2", "q3", "qx"]).prop_map(|r| PolicyTarget {
                target: TargetRef::default(),
                router_policy_ref: Some(r),
            }),
            1 => (target_ref(), pick(&["q1"])).prop_map(|(target, r)| PolicyTarget {
                target,
                router_policy_ref: Some(r),
            }),
        ]
    }

    pub fn router_policy() -> impl Strategy<Value = RouterPolicy> {
        (
            ns(),
            pick(&["q1", "q2", "q3"]),
            0i32..3,
            prop_oneof![4 => Just(true), 1 => Just(false)],
            proptest::option::of(pick(&["w1", "wx"])),
            proptest::option::of(pick(&["gpt-*", "[x"])),
            policy_target(),
            proptest::collection::vec(policy_target(), 0..3),
        )
            .prop_map(
                |(ns, name, priority, enabled, workspace, model, route_to, fallback)| {
                    RouterPolicy {
                        metadata: meta(ns, &name),
                        spec: RouterPolicySpec {
                            description: None,
                            priority,
                            enabled,
                            match_: PolicyMatch {
                                workspace,
                                model,
                                ..Default::default()
                            },
                            route_to,
                            fallback,
                            circuit_breaker: CircuitBreaker::default(),
                            retries: None,
                            timeouts: None,
                        },
                        status: None,
                    }
                },
            )
    }

    fn task() -> impl Strategy<Value = TaskSpec> {
        (
            pick(&["t1", "t2", "t3"]),
            proptest::collection::vec(
                (
                    proptest::sample::select(
                        &[Operator::Default, Operator::Equals, Operator::Gt][..],
                    ),
                    pick(&["5", "x"]),
                    pick(&["t1", "t2", "t3", "end", "tx"]),
                ),
                0..3,
            ),
            proptest::option::of(pick(&["t1", "end", "tx"])),
            proptest::option::of(target_ref()),
        )
            .prop_map(|(id, branches, on_failure, target)| TaskSpec {
                id,
                description: None,
                handler: if target.is_some() {
                    Handler::ModelExecution
                } else {
                    Handler::Noop
                },
                input_var: None,
                prompt_template: None,
                system_instruction: None,
                valid_conditions: Vec::new(),
                execute: target.map(|t| crate::task_chain::ExecuteConfig {
                    target: Some(t),
                    ..Default::default()
                }),
                hook: None,
                compose: None,
                retry_on_failure: 0,
                timeout: None,
                print: None,
                output_template: None,
                transition: Transition {
                    branches: branches
                        .into_iter()
                        .map(|(operator, when, goto)| Branch {
                            operator,
                            when,
                            goto,
                        })
                        .collect(),
                    on_failure,
                },
            })
    }

    pub fn task_chain() -> impl Strategy<Value = TaskChain> {
        (
            ns(),
            pick(&["c1", "c2"]),
            proptest::collection::vec(task(), 1..4),
        )
            .prop_map(|(ns, name, tasks)| TaskChain {
                metadata: meta(ns, &name),
                spec: TaskChainSpec {
                    description: None,
                    debug: false,
                    token_limit: 0,
                    max_steps: 10,
                    hooks: Vec::new(),
                    tasks,
                },
                status: None,
            })
    }

    fn secrets() -> impl Strategy<Value = super::super::SecretStore> {
        (any::<bool>(), any::<bool>()).prop_map(|(default, team)| {
            let values = || {
                BTreeMap::from([
                    ("k1".to_owned(), SecretValue::new("same")),
                    ("k2".to_owned(), SecretValue::new(" same ")),
                    ("blank".to_owned(), SecretValue::new("  ")),
                ])
            };
            let mut store = BTreeMap::new();
            if default {
                store.insert("default/keys".to_owned(), values());
            }
            if team {
                store.insert("team/keys".to_owned(), values());
            }
            store
        })
    }

    fn services() -> impl Strategy<Value = Option<BTreeMap<String, super::super::ServiceInfo>>> {
        proptest::option::of(Just(BTreeMap::from([(
            "default/svc".to_owned(),
            super::super::ServiceInfo {
                ports: vec![(Some("http".into()), 8000)],
            },
        )])))
    }

    pub fn inventory() -> impl Strategy<Value = Inventory> {
        (
            proptest::collection::vec(provider(), 0..4),
            proptest::collection::vec(backend(), 0..4),
            proptest::collection::vec(group(), 0..3),
            proptest::collection::vec(workspace(), 0..4),
            proptest::collection::vec(mux_rule(), 0..5),
            proptest::collection::vec(router_policy(), 0..5),
            proptest::collection::vec(task_chain(), 0..3),
            secrets(),
            services(),
        )
            .prop_map(
                |(
                    providers,
                    backends,
                    affinity_groups,
                    workspaces,
                    mux_rules,
                    router_policies,
                    task_chains,
                    secrets,
                    services,
                )| Inventory {
                    providers,
                    backends,
                    affinity_groups,
                    workspaces,
                    mux_rules,
                    router_policies,
                    task_chains,
                    secrets,
                    services,
                },
            )
    }
}

/// Fisher-Yates with a xorshift generator seeded by the test case.
fn shuffle<T>(items: &mut [T], seed: &mut u64) {
    for i in (1..items.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = (*seed % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn shuffled(inventory: &Inventory, seed: u64) -> Inventory {
    let mut seed = seed | 1;
    let mut inv = inventory.clone();
    shuffle(&mut inv.providers, &mut seed);
    shuffle(&mut inv.backends, &mut seed);
    shuffle(&mut inv.affinity_groups, &mut seed);
    shuffle(&mut inv.workspaces, &mut seed);
    shuffle(&mut inv.mux_rules, &mut seed);
    shuffle(&mut inv.router_policies, &mut seed);
    shuffle(&mut inv.task_chains, &mut seed);
    inv
}

fn input_keys(inv: &Inventory) -> Vec<ObjectKey> {
    let mut keys = Vec::new();
    keys.extend(inv.providers.iter().map(|o| object_key(Kind::Provider, o)));
    keys.extend(inv.backends.iter().map(|o| object_key(Kind::Backend, o)));
    keys.extend(
        inv.affinity_groups
            .iter()
            .map(|o| object_key(Kind::AffinityGroup, o)),
    );
    keys.extend(
        inv.workspaces
            .iter()
            .map(|o| object_key(Kind::Workspace, o)),
    );
    keys.extend(inv.mux_rules.iter().map(|o| object_key(Kind::MuxRule, o)));
    keys.extend(
        inv.router_policies
            .iter()
            .map(|o| object_key(Kind::RouterPolicy, o)),
    );
    keys.extend(
        inv.task_chains
            .iter()
            .map(|o| object_key(Kind::TaskChain, o)),
    );
    keys
}

/// Whether the snapshot holds the object (MuxRules inside their workspace).
fn in_snapshot(c: &Compiled, k: &ObjectKey) -> bool {
    let s = &c.snapshot;
    let key = k.key();
    match k.kind {
        Kind::Provider => s.provider(&key).is_some(),
        Kind::Backend => s.backend(&key).is_some(),
        Kind::AffinityGroup => s.affinity_group(&key).is_some(),
        Kind::Workspace => s.workspace(&key).is_some(),
        Kind::MuxRule => s
            .workspaces
            .iter()
            .any(|w| w.mux_rules.iter().any(|r| r.key == key)),
        Kind::RouterPolicy => s.router_policies.iter().any(|p| p.key == key),
        Kind::TaskChain => s.task_chain(&key).is_some(),
    }
}

fn target_exists(s: &crate::snapshot::Snapshot, t: &TargetSnapshot) -> bool {
    match t.kind {
        TargetKind::Provider => s.provider(&t.key).is_some(),
        TargetKind::Backend => s.backend(&t.key).is_some(),
        TargetKind::AffinityGroup => s.affinity_group(&t.key).is_some(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn input_order_never_matters(inv in arb::inventory(), seed in any::<u64>()) {
        let first = compile(&inv);
        let again = compile(&shuffled(&inv, seed));
        prop_assert!(first.snapshot.verify());
        prop_assert!(again.snapshot.verify());
        prop_assert_eq!(
            serde_json::to_string(&first.snapshot).unwrap(),
            serde_json::to_string(&again.snapshot).unwrap()
        );
        prop_assert_eq!(&first.diagnostics, &again.diagnostics);
        prop_assert_eq!(&first, &again);
    }

    #[test]
    fn one_diagnostic_per_distinct_object(inv in arb::inventory()) {
        let c = compile(&inv);
        let distinct: BTreeSet<ObjectKey> = input_keys(&inv).into_iter().collect();
        let got: Vec<ObjectKey> = c.diagnostics.iter().map(|d| d.object.clone()).collect();
        prop_assert_eq!(got.len(), distinct.len());
        prop_assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), distinct);
        // Issues are sorted and unique; every condition has a reason and a message.
        for d in &c.diagnostics {
            let mut sorted = d.issues.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&sorted, &d.issues);
            let conditions = d.conditions();
            prop_assert_eq!(conditions[0].type_, ConditionType::Ready);
            prop_assert_eq!(conditions[0].status, d.ready());
            prop_assert!(conditions[0].message.starts_with(&d.object.to_string()));
            for cond in &conditions {
                prop_assert!(!cond.reason.is_empty() && !cond.message.is_empty());
            }
        }
    }

    #[test]
    fn broken_objects_stay_out_of_the_snapshot(inv in arb::inventory()) {
        let c = compile(&inv);
        let s = &c.snapshot;
        let disabled: BTreeSet<String> = inv
            .router_policies
            .iter()
            .filter(|p| !p.spec.enabled)
            .map(|p| object_key(Kind::RouterPolicy, p).key())
            .collect();
        for d in &c.diagnostics {
            let present = in_snapshot(&c, &d.object);
            if !d.ready() {
                prop_assert!(!present, "{} has errors but is in the snapshot", d.object);
            } else if !(d.object.kind == Kind::RouterPolicy && disabled.contains(&d.object.key())) {
                prop_assert!(present, "{} is ready but not in the snapshot", d.object);
            }
        }
        // Everything the snapshot refers to is in it.
        for w in &s.workspaces {
            for r in &w.mux_rules {
                prop_assert!(target_exists(s, &r.target), "{:?}", r);
            }
        }
        for p in &s.router_policies {
            prop_assert!(!p.route.is_empty());
            let distinct: BTreeSet<&TargetSnapshot> = p.route.iter().collect();
            prop_assert_eq!(distinct.len(), p.route.len(), "route of {} has repeats", p.key);
            for t in &p.route {
                prop_assert!(target_exists(s, t), "{:?}", t);
            }
        }
        for ch in &s.task_chains {
            for t in ch.task_targets.values() {
                prop_assert!(target_exists(s, t), "{:?}", t);
            }
        }
        for g in &s.affinity_groups {
            prop_assert!(!g.members.is_empty());
            for m in &g.members {
                prop_assert!(s.backend(&m.backend).is_some());
            }
        }
        if let Some(w) = &s.default_workspace {
            prop_assert!(s.workspace(w).is_some());
        }
        let keys: BTreeMap<&str, usize> = s.client_keys.iter().fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k.sha256.as_str()).or_default() += 1;
            m
        });
        prop_assert!(keys.values().all(|n| *n == 1), "a client key is bound twice");
    }
}

#[test]
fn unquoted_off_and_false_are_off_in_a_workspace_manifest() {
    use crate::workspace::GuardrailAction;
    for off in ["off", "false", "\"off\"", "Off", "OFF"] {
        let yaml = format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: Workspace\nmetadata: {{name: w}}\n\
             spec:\n  guardrails:\n    secrets: redact\n    pii: {off}\n"
        );
        let c = compile(&inv(&yaml));
        let w = c
            .snapshot
            .workspaces
            .first()
            .expect("the workspace compiles");
        assert_eq!(
            (w.guardrail_secrets, w.guardrail_pii),
            (GuardrailAction::Redact, GuardrailAction::Off),
            "pii: {off}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Prices by pattern
// ---------------------------------------------------------------------------------------------

#[test]
fn provider_prices_compile_in_declaration_order_and_the_most_specific_wins() {
    let yaml = r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: p}
spec:
  type: anthropic
  models:
    - {name: claude-opus-4-1-20250805, pricing: {input: 15, output: 75}}
  pricing:
    - {model: "claude-*", input: 1, output: 5}
    - {model: "claude-opus-4-*", input: 5, output: 25, cacheRead: 0.5}
    - {model: claude-sonnet-4-5, input: 3, output: 15}
    - {model: "claude-*", input: 9, output: 9}
    - {model: claude-opus-4-1-20250805, input: 1, output: 1}
"#;
    let c = compile(&inv(yaml));
    let d = diag(&c, Kind::Provider, "p");
    assert_eq!(
        reasons(d),
        [
            (Severity::Warning, "DuplicatePrice"),
            (Severity::Warning, "DuplicatePrice")
        ]
    );
    assert!(d.message().contains("spec.pricing[3]"), "{}", d.message());
    let p = c.snapshot.provider("default/p").unwrap();
    let order: Vec<&str> = p.prices.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(
        order,
        [
            "claude-opus-4-1-20250805",
            "claude-*",
            "claude-opus-4-*",
            "claude-sonnet-4-5"
        ]
    );
    let input = |m: &str| crate::pricing::price_for(&p.prices, m).map(|p| p.input);
    assert_eq!(input("claude-opus-4-1-20250805"), Some(15.0));
    assert_eq!(input("claude-opus-4-1"), Some(15.0));
    assert_eq!(input("claude-opus-4-0"), Some(5.0));
    assert_eq!(input("claude-sonnet-4-5-20250929"), Some(3.0));
    assert_eq!(input("claude-haiku-4-5"), Some(1.0));
    assert_eq!(input("gpt-4o"), None);
}

#[test]
fn an_invalid_price_pattern_is_an_error() {
    for bad in ["*-mini", "claude-*-latest", "a b"] {
        let yaml = format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: p}}\n\
             spec: {{type: openai, pricing: [{{model: \"{bad}\", input: 1, output: 1}}]}}\n"
        );
        let c = compile(&inv(&yaml));
        let d = diag(&c, Kind::Provider, "p");
        assert_eq!(reasons(d), [(Severity::Error, "InvalidPricing")], "{bad}");
        assert!(d.message().contains("spec.pricing[0]"), "{}", d.message());
        assert!(c.snapshot.provider("default/p").is_none(), "{bad}");
    }
}
