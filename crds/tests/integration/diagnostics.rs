//! Every diagnostic the compiler has, produced by the broken sample set in
//! `tests/fixtures/broken/`: a table of (object, severity, condition, reason, message parts),
//! checked both ways (every row is produced, every produced issue is in the table), plus the
//! conditions the operator writes for a few of them and what reaches the snapshot.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use switchyard_crds::compile::{
    Compiled, ConditionSpec, ConditionType, Diagnostic, Inventory, Issue, Kind, Severity, compile,
};
use switchyard_crds::manifest::add_yaml;
use switchyard_crds::snapshot::TargetKind;

use ConditionType::{Conflicted, Ready, ResolvedRefs, SecretResolved};
use Kind::{AffinityGroup, Backend, MuxRule, Provider, RouterPolicy, TaskChain, Workspace};
use Severity::{Error, Warning};

const NS: &str = "default";

fn broken_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() > 3, "the broken set spans several files");
    files
}

fn load(files: &[PathBuf]) -> Inventory {
    let mut inv = Inventory::default();
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        add_yaml(&mut inv, &name, &text).unwrap_or_else(|e| panic!("{e}"));
    }
    inv
}

fn compiled() -> Compiled {
    compile(&load(&broken_files()))
}

/// One expected issue.
struct Row {
    kind: Kind,
    name: &'static str,
    severity: Severity,
    condition: ConditionType,
    reason: &'static str,
    /// Parts of the message (besides the object, which is always checked).
    parts: &'static [&'static str],
}

const fn row(
    kind: Kind,
    name: &'static str,
    severity: Severity,
    condition: ConditionType,
    reason: &'static str,
    parts: &'static [&'static str],
) -> Row {
    Row {
        kind,
        name,
        severity,
        condition,
        reason,
        parts,
    }
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // Providers: credentials.
    row(Provider, "no-secret", Error, SecretResolved, "SecretNotFound", &[r#"API key: Secret "missing-secret" not found"#, r#"key "api-key""#]),
    row(Provider, "missing-key", Error, SecretResolved, "SecretKeyNotFound", &[r#"key "anthropic" not found in Secret "provider-keys""#]),
    row(Provider, "empty-key", Error, SecretResolved, "SecretKeyEmpty", &[r#"key "blank" in Secret "provider-keys" is empty"#]),
    row(Provider, "no-secret-ref", Error, SecretResolved, "MissingSecretRef", &["spec.auth.secretRef is required for auth type api_key"]),
    row(Provider, "ignored-ref", Warning, SecretResolved, "SecretRefIgnored", &["spec.auth.secretRef is ignored"]),
    // Providers: endpoints and headers.
    row(Provider, "vllm-no-endpoint", Error, Ready, "MissingEndpoint", &["spec.endpoint is required for provider type vllm"]),
    row(Provider, "creds-in-url", Error, Ready, "InvalidURL", &["spec.endpoint must not carry credentials"]),
    row(Provider, "ftp-endpoint", Error, Ready, "InvalidURL", &["spec.endpoint must start with http:// or https://"]),
    row(Provider, "no-host", Error, Ready, "InvalidURL", &["spec.endpoint has no host"]),
    row(Provider, "fragment-url", Error, Ready, "InvalidURL", &["spec.endpoint must not have a fragment"]),
    row(Provider, "bad-headers", Error, Ready, "InvalidHeader", &[r#"header "X-Both" must set exactly one of value and valueFrom"#]),
    row(Provider, "bad-headers", Error, Ready, "InvalidHeader", &[r#"header "X-Neither" must set exactly one"#]),
    row(Provider, "dup-model", Warning, Ready, "DuplicateModel", &[r#"model "gpt-4o" is declared twice"#]),
    row(Provider, "dup-price", Warning, Ready, "DuplicatePrice", &[r#"spec.pricing[1]: "claude-opus-4-*" is priced twice; the first is used"#]),
    row(Provider, "bad-price", Error, Ready, "InvalidPricing", &["spec.pricing[0]: price pattern \"*-mini\": `*` may only end a pattern"]),
    row(Provider, "twice", Warning, Conflicted, "DuplicateObject", &["defined 2 times; one definition was kept"]),
    // Backends.
    row(Backend, "both-urls", Error, Ready, "InvalidEndpoint", &["exactly one of spec.baseUrl and spec.serviceRef must be set"]),
    row(Backend, "no-url", Error, Ready, "InvalidEndpoint", &["exactly one of spec.baseUrl and spec.serviceRef"]),
    row(Backend, "svc-missing", Error, ResolvedRefs, "ServiceNotFound", &[r#"Service "ghost-svc" not found"#]),
    row(Backend, "svc-bad-port-name", Error, ResolvedRefs, "PortNotFound", &[r#"Service "vllm-svc" has no port named "grpc""#]),
    row(Backend, "svc-port-range", Error, Ready, "InvalidPort", &["serviceRef port 70000 is out of range"]),
    row(Backend, "token-missing", Error, SecretResolved, "SecretNotFound", &[r#"bearer token: Secret "tgi-token" not found"#, r#"key "token""#]),
    row(Backend, "creds-backend", Error, Ready, "InvalidURL", &["spec.baseUrl must not carry credentials"]),
    row(Backend, "no-models", Warning, Ready, "NoModels", &["no models declared in spec.models and none observed yet"]),
    // AffinityGroups.
    row(AffinityGroup, "unserved-models", Warning, ResolvedRefs, "ModelNotServed", &[r#"model "gpt-5" is not served by any member backend (ok-ollama)"#]),
    row(AffinityGroup, "unserved-models", Error, Ready, "NoServableModels", &["no ready member backend serves any of the group's models"]),
    row(AffinityGroup, "partly-served", Warning, ResolvedRefs, "ModelNotServed", &[r#"model "mistral-7b""#, "(ok-ollama, ok-vllm)"]),
    row(AffinityGroup, "empty-group", Error, ResolvedRefs, "NoMembers", &["no backends"]),
    row(AffinityGroup, "ghost-members", Error, ResolvedRefs, "NoMembers", &["no backends"]),
    row(AffinityGroup, "ghost-members", Warning, ResolvedRefs, "BackendNotFound", &[r#"backend "ghost-a" not found"#]),
    row(AffinityGroup, "ghost-members", Warning, ResolvedRefs, "BackendNotFound", &[r#"backend "ghost-b" not found"#]),
    row(AffinityGroup, "bad-selector", Error, Ready, "InvalidSelector", &[r#"spec.backendSelector: unknown label selector operator "Near""#]),
    row(AffinityGroup, "zero-weights", Error, Ready, "ZeroWeights", &["strategy weighted but every member has weight 0"]),
    // Workspaces.
    row(Workspace, "main", Warning, Conflicted, "ConflictingDefault", &["several Workspaces are marked default (default/main, default/shadow); this one is in effect"]),
    row(Workspace, "shadow", Warning, Conflicted, "ConflictingDefault", &["default/main is in effect as the oldest, not this one"]),
    row(Workspace, "team-a", Warning, Conflicted, "DuplicateClientKey", &[r#"client API key "alice" holds the same key as another binding"#, "default/team-b (bob)"]),
    row(Workspace, "team-b", Warning, Conflicted, "DuplicateClientKey", &[r#"client API key "bob""#, "default/team-a (alice)"]),
    row(Workspace, "team-c", Warning, SecretResolved, "SecretNotFound", &[r#"client API key "carol": Secret "carol-key" not found"#]),
    // MuxRules.
    row(MuxRule, "py", Error, ResolvedRefs, "ProviderNotFound", &[r#"spec.target: provider "openai-main" not found"#]),
    row(MuxRule, "to-missing-backend", Error, ResolvedRefs, "BackendNotFound", &[r#"spec.target: backend "ghost-backend" not found"#]),
    row(MuxRule, "to-missing-group", Error, ResolvedRefs, "AffinityGroupNotFound", &[r#"spec.target: affinity group "ghost-group" not found"#]),
    row(MuxRule, "orphan", Error, ResolvedRefs, "WorkspaceNotFound", &[r#"workspace "ghost-ws" not found"#]),
    row(MuxRule, "bad-glob", Error, Ready, "InvalidGlob", &[r#"spec.matcher.pattern "src/[abc" is not a valid glob"#]),
    row(MuxRule, "ok-tie-a", Warning, Conflicted, "PriorityTie", &["priority 50 is shared with MuxRule ok-tie-b"]),
    row(MuxRule, "ok-tie-b", Warning, Conflicted, "PriorityTie", &["priority 50 is shared with MuxRule ok-tie-a"]),
    row(MuxRule, "two-refs", Error, Ready, "InvalidTarget", &["spec.target must set exactly one of providerRef, backendRef and affinityGroupRef"]),
    row(MuxRule, "not-ready", Error, Ready, "TargetNotReady", &[r#"spec.target: provider "no-secret" is not ready (SecretNotFound)"#]),
    row(MuxRule, "ok-undeclared-model", Warning, ResolvedRefs, "ModelNotDeclared", &[r#"model "gpt-9" is not among the models of provider "ok-openai""#]),
    // RouterPolicies.
    row(RouterPolicy, "scoped-missing-ws", Error, ResolvedRefs, "WorkspaceNotFound", &[r#"spec.match.workspace: workspace "ghost-ws" not found"#]),
    row(RouterPolicy, "ok-ref-missing", Warning, ResolvedRefs, "RouterPolicyNotFound", &[r#"spec.fallback[0]: RouterPolicy "ghost-policy" not found"#]),
    row(RouterPolicy, "only-missing-ref", Warning, ResolvedRefs, "RouterPolicyNotFound", &[r#"spec.routeTo: RouterPolicy "ghost-policy" not found"#]),
    row(RouterPolicy, "only-missing-ref", Error, Ready, "NoUsableTarget", &["neither routeTo nor any fallback is usable"]),
    row(RouterPolicy, "bad-model-glob", Error, Ready, "InvalidGlob", &[r#"spec.match.model "gpt-[4" is not a valid glob"#]),
    row(RouterPolicy, "cycle-a", Error, Ready, "RouteCycle", &["routeTo/fallback cycle: cycle-a -> cycle-b -> cycle-a"]),
    row(RouterPolicy, "cycle-b", Error, Ready, "RouteCycle", &["cycle-a -> cycle-b -> cycle-a"]),
    row(RouterPolicy, "ring-1", Error, Ready, "RouteCycle", &["ring-1 -> ring-2 -> ring-3 -> ring-1"]),
    row(RouterPolicy, "ring-2", Error, Ready, "RouteCycle", &["ring-1 -> ring-2 -> ring-3 -> ring-1"]),
    row(RouterPolicy, "ring-3", Error, Ready, "RouteCycle", &["ring-1 -> ring-2 -> ring-3 -> ring-1"]),
    row(RouterPolicy, "splices-cycle", Warning, Ready, "TargetNotReady", &[r#"spec.routeTo: RouterPolicy "cycle-a" is not ready"#]),
    row(RouterPolicy, "splices-cycle", Error, Ready, "NoUsableTarget", &["neither routeTo nor any fallback is usable"]),
    row(RouterPolicy, "ref-and-target", Error, Ready, "InvalidTarget", &["spec.fallback[0] must set either routerPolicyRef or one concrete target, not both"]),
    row(RouterPolicy, "ok-two-refs", Warning, Ready, "InvalidTarget", &["spec.routeTo must set exactly one of providerRef, backendRef and affinityGroupRef"]),
    row(RouterPolicy, "dead-targets", Warning, Ready, "TargetNotReady", &[r#"spec.routeTo: provider "no-secret" is not ready (SecretNotFound)"#]),
    row(RouterPolicy, "dead-targets", Warning, ResolvedRefs, "BackendNotFound", &[r#"spec.fallback[0]: backend "ghost-backend" not found"#]),
    row(RouterPolicy, "dead-targets", Warning, Ready, "TargetNotReady", &[r#"spec.fallback[1]: affinity group "empty-group" is not ready (NoMembers)"#]),
    row(RouterPolicy, "dead-targets", Error, Ready, "NoUsableTarget", &["neither routeTo nor any fallback is usable"]),
    row(RouterPolicy, "bad-ws-selector", Error, Ready, "InvalidSelector", &[r#"spec.match.workspaceSelector: label selector operator In on "team" needs values"#]),
    // TaskChains: graph.
    row(TaskChain, "dup-ids", Error, Ready, "InvalidGraph", &[r#"duplicate task id "step" (tasks 0, 1)"#]),
    row(TaskChain, "dup-ids", Warning, Ready, "UnreachableTask", &[r#"task "step2" is never reached"#]),
    row(TaskChain, "bad-goto", Error, Ready, "InvalidGraph", &[r#"task "first": goto "nowhere" is not a task id or "end""#]),
    row(TaskChain, "bad-on-failure", Error, Ready, "InvalidGraph", &[r#"task "first": onFailure "cleanup" is not a task id or "end""#]),
    row(TaskChain, "endless", Error, Ready, "InvalidGraph", &[r#"task "ping" can never reach "end" (from it only "ping", "pong" can run)"#]),
    row(TaskChain, "endless", Error, Ready, "InvalidGraph", &[r#"task "pong" can never reach "end""#]),
    row(TaskChain, "bad-range", Error, Ready, "InvalidGraph", &[r#"operator in_range needs `when` as "min-max", got "high-low""#]),
    row(TaskChain, "bad-range", Error, Ready, "InvalidGraph", &[r#"operator gt needs a number in `when`, got "seven""#]),
    row(TaskChain, "reserved-end", Error, Ready, "InvalidGraph", &[r#"task id "end" is reserved for ending the chain"#]),
    row(TaskChain, "two-defaults", Error, Ready, "InvalidGraph", &[r#"task "first": 2 default branches; at most one is allowed"#]),
    row(TaskChain, "ok-unreachable", Warning, Ready, "UnreachableTask", &[r#"task "orphan" is never reached from the first task "first""#]),
    // TaskChains: tasks and hooks.
    row(TaskChain, "no-conditions", Error, Ready, "InvalidTask", &[r#"task "classify": handler condition_key requires validConditions"#]),
    row(TaskChain, "undeclared-hook", Error, Ready, "InvalidTask", &[r#"task "call": hook "ticketing" is not declared in spec.hooks"#]),
    row(TaskChain, "dup-hook", Error, Ready, "InvalidHook", &[r#"hook "search" is declared twice"#]),
    row(TaskChain, "hook-secret-missing", Error, SecretResolved, "SecretNotFound", &[r#"header "Authorization": Secret "search-token" not found"#, r#"key "token""#]),
    row(TaskChain, "bad-target", Error, ResolvedRefs, "ProviderNotFound", &[r#"task "ask": execute.target: provider "openai-main" not found"#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "classify": branch when "maybe" is not one of validConditions (yes, no)"#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "answer": handler model_execution requires execute with model, models or target"#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "answer": inputVar "nonexistent" is not input, previous_output or a task id"#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "answer": compose.withVar "nothing" is not"#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "answer": promptTemplate: "{{" at byte 7 is never closed"#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "answer": hook is only used by handler hook"#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "embed": handler embedding requires execute"#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "embed": execute.hooks names undeclared hook "ghost-hook""#]),
    row(TaskChain, "bad-tasks", Error, Ready, "InvalidTask", &[r#"task "call": handler hook requires hook"#]),
    row(TaskChain, "bad-tasks", Warning, Ready, "UnreachableTask", &[r#"task "embed" is never reached"#]),
    row(TaskChain, "bad-tasks", Warning, Ready, "UnreachableTask", &[r#"task "call" is never reached"#]),
];

/// The condition types `Diagnostic::conditions()` writes for a kind.
fn written(d: &Diagnostic, condition: ConditionType) -> Option<ConditionSpec> {
    d.conditions().into_iter().find(|c| c.type_ == condition)
}

/// Whether a condition of this type is in its bad state.
fn is_bad(c: &ConditionSpec) -> bool {
    c.status == (c.type_ == Conflicted)
}

fn matches(row: &Row, d: &Diagnostic, issue: &Issue) -> bool {
    d.object.kind == row.kind
        && d.object.namespace == NS
        && d.object.name == row.name
        && issue.severity == row.severity
        && issue.condition == row.condition
        && issue.reason == row.reason
        && row.parts.iter().all(|p| issue.message.contains(p))
}

#[test]
fn every_row_is_reported_where_the_operator_shows_it() {
    let c = compiled();
    for r in ROWS {
        let what = format!("{} {NS}/{} {}", r.kind.as_str(), r.name, r.reason);
        let d = c
            .diagnostic(r.kind, NS, r.name)
            .unwrap_or_else(|| panic!("{what}: no diagnostic"));
        let issue = d
            .issues
            .iter()
            .find(|i| matches(r, d, i))
            .unwrap_or_else(|| panic!("{what}: not reported; issues: {:#?}", d.issues));
        let object = d.object.to_string();
        assert!(object.ends_with(r.name));

        // Where a reader finds the message: the Ready condition for errors, the condition it
        // is reported on for warnings (when the kind writes that condition), else the CLI line.
        let condition = written(d, r.condition);
        let shown = match (r.severity, &condition) {
            (Error, _) => {
                assert!(
                    !d.ready(),
                    "{what}: an error must make the object not Ready"
                );
                d.message()
            }
            (Warning, Some(c)) if r.condition != Ready => c.message.clone(),
            (Warning, _) => {
                let line = format!("{object}: {}", issue.message);
                assert!(c.issue_lines().contains(&line), "{what}: {line}");
                line
            }
        };
        assert!(shown.starts_with(&object), "{what}: {shown}");
        for part in r.parts {
            assert!(shown.contains(part), "{what}: {shown:?} lacks {part:?}");
        }
        // The condition the issue is reported on is in its bad state, naming the same thing.
        if let Some(cond) = condition.filter(|_| r.severity == Error || r.condition != Ready) {
            assert!(is_bad(&cond), "{what}: {cond:?}");
            if r.condition != Ready {
                for part in r.parts {
                    assert!(cond.message.contains(part), "{what}: {cond:?}");
                }
            }
        } else if r.condition != Ready {
            assert!(
                r.kind == Provider && r.condition == ResolvedRefs
                    || r.condition == Conflicted && !matches!(r.kind, Workspace | MuxRule),
                "{what}: {:?} is not written for {:?}",
                r.condition,
                r.kind
            );
        }
    }
}

#[test]
fn every_reported_issue_is_in_the_table() {
    let c = compiled();
    let mut unexpected = Vec::new();
    for d in &c.diagnostics {
        for issue in &d.issues {
            if !ROWS.iter().any(|r| matches(r, d, issue)) {
                unexpected.push(format!(
                    "{}: {:?} {:?} {} {}",
                    d.object, issue.severity, issue.condition, issue.reason, issue.message
                ));
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "issues without a row:\n{}",
        unexpected.join("\n")
    );
    // And no two rows match the same issue (each row is one issue).
    for d in &c.diagnostics {
        for issue in &d.issues {
            let n = ROWS.iter().filter(|r| matches(r, d, issue)).count();
            assert_eq!(n, 1, "{}: {} matches {n} rows", d.object, issue.message);
        }
    }
}

/// Reasons the compiler can report: every `"CamelCase"` literal in its source, minus the
/// few that are not reasons.
fn compiler_reasons() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/compile");
    let not_reasons = ["False", "Reachable"];
    let mut out = BTreeSet::new();
    for file in [
        "mod.rs",
        "providers.rs",
        "groups.rs",
        "targets.rs",
        "workspaces.rs",
        "policies.rs",
        "chains.rs",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        // Up to the unit tests, if a file has any.
        let text = text.split("#[cfg(test)]").next().unwrap();
        for literal in text.split('"').skip(1).step_by(2) {
            let camel = literal.len() > 2
                && literal.starts_with(|c: char| c.is_ascii_uppercase())
                && literal.chars().all(|c| c.is_ascii_alphabetic())
                && literal.chars().skip(1).any(|c| c.is_ascii_lowercase());
            if camel && !not_reasons.contains(&literal) {
                out.insert(literal.to_owned());
            }
        }
    }
    out
}

#[test]
fn the_broken_set_covers_every_reason_the_compiler_has() {
    let reasons = compiler_reasons();
    assert!(reasons.len() > 30, "{reasons:?}");
    let c = compiled();
    let produced: BTreeSet<&str> = c
        .diagnostics
        .iter()
        .flat_map(|d| d.issues.iter().map(|i| i.reason.as_str()))
        .collect();
    let in_table: BTreeSet<&str> = ROWS.iter().map(|r| r.reason).collect();
    for reason in &reasons {
        assert!(
            produced.contains(reason.as_str()),
            "reason {reason} is not produced by tests/fixtures/broken"
        );
        assert!(in_table.contains(reason.as_str()), "no row for {reason}");
    }
}

fn condition(c: &Compiled, kind: Kind, name: &str, type_: ConditionType) -> ConditionSpec {
    let d = c.diagnostic(kind, NS, name).unwrap();
    written(d, type_).unwrap_or_else(|| panic!("{kind:?} {name}: no {type_:?} condition"))
}

#[test]
fn conditions_of_a_rule_with_a_missing_provider() {
    let c = compiled();
    let d = c.diagnostic(MuxRule, NS, "py").unwrap();
    let expected = r#"MuxRule default/py: spec.target: provider "openai-main" not found"#;
    let conditions = d.conditions();
    let summary: Vec<(ConditionType, bool, &str, &str)> = conditions
        .iter()
        .map(|c| (c.type_, c.status, c.reason.as_str(), c.message.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Ready, false, "ProviderNotFound", expected),
            (ResolvedRefs, false, "ProviderNotFound", expected),
            (Conflicted, false, "NoConflicts", "no conflicts"),
        ]
    );
}

#[test]
fn conditions_of_a_provider_with_a_missing_secret() {
    let c = compiled();
    let secret = condition(&c, Provider, "no-secret", SecretResolved);
    assert!(!secret.status);
    assert_eq!(secret.reason, "SecretNotFound");
    assert_eq!(
        secret.message,
        r#"Provider default/no-secret: API key: Secret "missing-secret" not found (key "api-key"); in a cluster the operator only sees Secrets labelled switchyard.dev/secret=true"#
    );
    let ready = condition(&c, Provider, "no-secret", Ready);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (false, "SecretNotFound")
    );
    // A Provider references no other object: it has no ResolvedRefs condition.
    let d = c.diagnostic(Provider, NS, "no-secret").unwrap();
    let types: Vec<ConditionType> = d.conditions().iter().map(|c| c.type_).collect();
    assert_eq!(types, [Ready, SecretResolved]);

    let key = condition(&c, Provider, "missing-key", SecretResolved);
    assert_eq!(key.reason, "SecretKeyNotFound");
    assert!(
        key.message
            .contains(r#"key "anthropic" not found in Secret "provider-keys""#)
    );
    // A rule pointing at it is not ready, and says why.
    let rule = condition(&c, MuxRule, "not-ready", Ready);
    assert_eq!(
        rule.message,
        r#"MuxRule default/not-ready: spec.target: provider "no-secret" is not ready (SecretNotFound)"#
    );
}

#[test]
fn both_default_workspaces_are_conflicted_and_the_older_wins() {
    let c = compiled();
    for name in ["main", "shadow"] {
        let conflicted = condition(&c, Workspace, name, Conflicted);
        assert!(conflicted.status, "{name}");
        assert_eq!(conflicted.reason, "ConflictingDefault");
        assert!(conflicted.message.contains("default/main, default/shadow"));
        // A conflict is not an error: both are still usable workspaces.
        assert!(condition(&c, Workspace, name, Ready).status, "{name}");
    }
    assert_eq!(
        c.snapshot.default_workspace.as_deref(),
        Some("default/main")
    );
}

#[test]
fn cycles_and_graph_problems_are_named_in_ready() {
    let c = compiled();
    let ready = condition(&c, RouterPolicy, "ring-2", Ready);
    assert_eq!(ready.reason, "RouteCycle");
    assert_eq!(
        ready.message,
        "RouterPolicy default/ring-2: routeTo/fallback cycle: ring-1 -> ring-2 -> ring-3 -> ring-1"
    );
    let ready = condition(&c, TaskChain, "endless", Ready);
    assert_eq!(ready.reason, "InvalidGraph");
    assert!(
        ready
            .message
            .starts_with("TaskChain default/endless: task \"ping\"")
    );
    assert!(
        ready.message.contains("; task \"pong\""),
        "{}",
        ready.message
    );
}

#[test]
fn warnings_leave_objects_ready() {
    let c = compiled();
    // A warning on ResolvedRefs turns that condition False without taking the object out.
    let refs = condition(&c, MuxRule, "ok-undeclared-model", ResolvedRefs);
    assert_eq!(
        (refs.status, refs.reason.as_str()),
        (false, "ModelNotDeclared")
    );
    assert!(condition(&c, MuxRule, "ok-undeclared-model", Ready).status);
    let tie = condition(&c, MuxRule, "ok-tie-a", Conflicted);
    assert_eq!((tie.status, tie.reason.as_str()), (true, "PriorityTie"));
}

/// Whether the snapshot holds the object.
fn in_snapshot(c: &Compiled, kind: Kind, name: &str) -> bool {
    let s = &c.snapshot;
    let key = format!("{NS}/{name}");
    match kind {
        Provider => s.provider(&key).is_some(),
        Backend => s.backend(&key).is_some(),
        AffinityGroup => s.affinity_group(&key).is_some(),
        Workspace => s.workspace(&key).is_some(),
        MuxRule => s
            .workspaces
            .iter()
            .any(|w| w.mux_rules.iter().any(|r| r.key == key)),
        RouterPolicy => s.router_policies.iter().any(|p| p.key == key),
        TaskChain => s.task_chain(&key).is_some(),
    }
}

#[test]
fn broken_objects_stay_out_of_the_snapshot_and_the_rest_compiles() {
    let c = compiled();
    assert!(c.snapshot.verify());
    let mut ready = BTreeSet::new();
    for d in &c.diagnostics {
        let name = d.object.name.as_str();
        assert_eq!(
            in_snapshot(&c, d.object.kind, name),
            d.ready(),
            "{}: in the snapshot exactly when Ready ({})",
            d.object,
            d.message()
        );
        if d.ready() {
            ready.insert((d.object.kind, name));
        }
        if name.starts_with("ok-") {
            assert!(d.ready(), "{} must compile: {}", d.object, d.message());
        }
    }
    // Exactly these are usable: the ok- objects and those with warnings only.
    let expected: BTreeSet<(Kind, &str)> = [
        (Provider, "ok-openai"),
        (Provider, "ignored-ref"),
        (Provider, "dup-model"),
        (Provider, "dup-price"),
        (Provider, "twice"),
        (Backend, "ok-ollama"),
        (Backend, "ok-vllm"),
        (Backend, "no-models"),
        (Backend, "zero-weight"),
        (AffinityGroup, "ok-group"),
        (AffinityGroup, "partly-served"),
        (Workspace, "main"),
        (Workspace, "shadow"),
        (Workspace, "team-a"),
        (Workspace, "team-b"),
        (Workspace, "team-c"),
        (MuxRule, "ok-tie-a"),
        (MuxRule, "ok-tie-b"),
        (MuxRule, "ok-undeclared-model"),
        (MuxRule, "ok-catch-all"),
        (RouterPolicy, "ok-policy"),
        (RouterPolicy, "ok-ref-missing"),
        (RouterPolicy, "ok-two-refs"),
        (TaskChain, "ok-chain"),
        (TaskChain, "ok-unreachable"),
    ]
    .into_iter()
    .collect();
    assert_eq!(ready, expected);

    // The workspace keeps its good rules, in order, without the broken ones.
    let main = c.snapshot.workspace("default/main").unwrap();
    let rules: Vec<&str> = main.mux_rules.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        rules,
        [
            "default/ok-tie-a",
            "default/ok-tie-b",
            "default/ok-undeclared-model",
            "default/ok-catch-all"
        ]
    );
    assert!(!rules.contains(&"default/py"));
    // The workspace's status still lists every rule, with its readiness.
    let d = c.diagnostic(Workspace, NS, "main").unwrap();
    let switchyard_crds::compile::Details::Workspace { mux_rules, .. } = &d.details else {
        panic!("details");
    };
    let listed: Vec<(&str, bool)> = mux_rules
        .iter()
        .map(|r| (r.name.as_str(), r.ready))
        .collect();
    assert_eq!(
        listed,
        [
            ("py", false),
            ("to-missing-backend", false),
            ("to-missing-group", false),
            ("bad-glob", false),
            ("ok-tie-a", true),
            ("ok-tie-b", true),
            ("two-refs", false),
            ("not-ready", false),
            ("ok-undeclared-model", true),
            ("ok-catch-all", true),
        ]
    );

    // Duplicate client keys are accepted nowhere.
    assert!(c.snapshot.client_keys.is_empty());
    // The valid policy routes to the provider, then the group.
    let policy = &c.snapshot.router_policies;
    let ok = policy
        .iter()
        .find(|p| p.key == "default/ok-policy")
        .unwrap();
    let route: Vec<(TargetKind, &str)> =
        ok.route.iter().map(|t| (t.kind, t.key.as_str())).collect();
    assert_eq!(
        route,
        [
            (TargetKind::Provider, "default/ok-openai"),
            (TargetKind::AffinityGroup, "default/ok-group")
        ]
    );
    // The group with a model nobody serves keeps only what is served.
    let partly = c.snapshot.affinity_group("default/partly-served").unwrap();
    assert!(partly.members.iter().all(|m| m.models == ["llama3.1:8b"]));
    // A backend reached through a Service.
    assert_eq!(
        c.snapshot.backend("default/ok-vllm").unwrap().url,
        "http://vllm-svc.default.svc:8000/v1"
    );
}

#[test]
fn nothing_secret_reaches_a_diagnostic() {
    let c = compiled();
    let all = format!("{:?}", c.diagnostics);
    let conditions: String = c
        .diagnostics
        .iter()
        .flat_map(|d| d.conditions())
        .map(|c| c.message)
        .collect();
    for secret in [
        "hunter2",
        "admin:",
        "s3cr3t-pw",
        "ops:",
        "sk-test-not-a-real-key",
        "sy-shared-key",
    ] {
        assert!(!all.contains(secret), "diagnostics contain {secret}");
        assert!(!conditions.contains(secret), "conditions contain {secret}");
    }
}

#[test]
fn the_broken_set_compiles_the_same_in_any_file_order() {
    let files = broken_files();
    let forward = compile(&load(&files));
    let mut reversed = files.clone();
    reversed.reverse();
    assert_eq!(forward, compile(&load(&reversed)));
}
