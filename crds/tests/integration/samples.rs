//! The sample manifests under `config/samples/` are documentation that must keep working:
//! every file loads, each set (and both together) compiles without a single issue, every
//! object is Ready, and the snapshot holds what the samples promise.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use switchyard_crds::common::GoDuration;
use switchyard_crds::compile::{Compiled, ConditionType, Inventory, Kind, compile};
use switchyard_crds::manifest::add_yaml;
use switchyard_crds::snapshot::{Snapshot, TargetKind, TargetSnapshot};

const SETS: [&str; 2] = ["quickstart", "advanced"];

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples")
}

/// The manifest files of one set, sorted, without the kustomization.
fn manifest_files(set: &str) -> Vec<PathBuf> {
    let dir = samples_dir().join(set);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

fn label(path: &Path) -> String {
    path.strip_prefix(samples_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Loads the given sets into one inventory, in the given file order.
fn load(files: &[PathBuf]) -> Inventory {
    let mut inv = Inventory::default();
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        add_yaml(&mut inv, &label(path), &text).unwrap_or_else(|e| panic!("{e}"));
    }
    inv
}

fn files_of(sets: &[&str]) -> Vec<PathBuf> {
    sets.iter().flat_map(|s| manifest_files(s)).collect()
}

fn compile_sets(sets: &[&str]) -> Compiled {
    compile(&load(&files_of(sets)))
}

/// Asserts zero issues of any severity, every object Ready with all its conditions good.
fn assert_clean(sets: &[&str], compiled: &Compiled) {
    let issues = compiled.issue_lines();
    assert!(
        issues.is_empty(),
        "samples {sets:?} must compile without issues:\n{}",
        issues.join("\n")
    );
    assert!(!compiled.diagnostics.is_empty());
    for d in &compiled.diagnostics {
        assert!(d.ready(), "{} is not ready: {}", d.object, d.message());
        assert_eq!(d.reason(), "Ready");
        for c in d.conditions() {
            let good = c.type_ != ConditionType::Conflicted;
            assert_eq!(
                c.status, good,
                "{}: condition {:?} is {} ({}: {})",
                d.object, c.type_, c.status, c.reason, c.message
            );
        }
    }
    assert!(compiled.snapshot.verify());
}

fn target(kind: TargetKind, key: &str, model: Option<&str>) -> TargetSnapshot {
    TargetSnapshot {
        kind,
        key: key.to_owned(),
        model: model.map(str::to_owned),
    }
}

fn policy_route(snapshot: &Snapshot, key: &str) -> Vec<TargetSnapshot> {
    snapshot
        .router_policies
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("policy {key} not in the snapshot"))
        .route
        .clone()
}

/// Every `*.yaml` under `config/samples/`, recursively, sorted.
fn all_sample_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&samples_dir(), &mut out);
    out.sort();
    out
}

fn is_kustomization(path: &Path) -> bool {
    path.file_stem().is_some_and(|n| n == "kustomization")
}

#[test]
fn every_sample_file_loads() {
    let files = all_sample_files();
    // Every manifest belongs to a set this file compiles.
    let in_sets: BTreeSet<PathBuf> = files_of(&SETS).into_iter().collect();
    for path in files.iter().filter(|p| !is_kustomization(p)) {
        assert!(
            in_sets.contains(path),
            "{} is in no sample set",
            label(path)
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut inv = Inventory::default();
        let report = add_yaml(&mut inv, &label(path), &text)
            .unwrap_or_else(|e| panic!("{}: {e}", label(path)));
        assert!(!report.added.is_empty(), "{} adds no object", label(path));
        assert!(
            report.skipped.is_empty(),
            "{} has documents of unexpected kinds: {:?}",
            label(path),
            report.skipped
        );
        for added in &report.added {
            assert!(
                added.contains(" default/"),
                "{}: {added} must be in namespace default or name none",
                label(path)
            );
        }
    }
}

#[test]
fn every_sample_file_is_commented() {
    for path in all_sample_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines().any(|l| l.trim_start().starts_with('#')),
            "{} has no comment: samples are documentation",
            label(&path)
        );
    }
}

#[test]
fn kustomizations_list_every_manifest() {
    for set in SETS {
        let path = samples_dir().join(set).join("kustomization.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let listed: BTreeSet<String> = doc["resources"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no resources", label(&path)))
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        let present: BTreeSet<String> = manifest_files(set)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(listed, present, "{}", label(&path));
    }
}

#[test]
fn each_set_and_both_together_compile_without_issues() {
    for sets in [
        &["quickstart"][..],
        &["advanced"],
        &["quickstart", "advanced"],
    ] {
        let compiled = compile_sets(sets);
        assert_clean(sets, &compiled);
    }
}

#[test]
fn every_object_of_every_set_has_a_diagnostic() {
    let inv = load(&files_of(&SETS));
    let compiled = compile(&inv);
    let expected = inv.providers.len()
        + inv.backends.len()
        + inv.affinity_groups.len()
        + inv.workspaces.len()
        + inv.mux_rules.len()
        + inv.router_policies.len()
        + inv.task_chains.len();
    assert_eq!(compiled.diagnostics.len(), expected);
    // Every kind is shown by at least one sample.
    let kinds: BTreeSet<Kind> = compiled.diagnostics.iter().map(|d| d.object.kind).collect();
    assert_eq!(kinds.len(), 7, "kinds covered: {kinds:?}");
}

#[test]
fn quickstart_snapshot() {
    let compiled = compile_sets(&["quickstart"]);
    let s = &compiled.snapshot;
    assert_eq!(s.default_workspace.as_deref(), Some("default/default"));
    let ws = s.workspace("default/default").expect("default workspace");
    assert!(ws.custom_instructions.is_some());
    assert_eq!(ws.guardrail_secrets.as_str(), "redact");
    assert_eq!(ws.guardrail_pii.as_str(), "alert");
    /// (key, priority, matcher, pattern, model)
    type Rule<'a> = (&'a str, i32, &'a str, Option<&'a str>, Option<&'a str>);
    let rules: Vec<Rule> = ws
        .mux_rules
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.priority,
                r.matcher.as_str(),
                r.pattern.as_deref(),
                r.target.model.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            (
                "default/python-chat",
                10,
                "chat_filename",
                Some("*.py"),
                Some("demo-smart")
            ),
            (
                "default/fim-fast",
                20,
                "fim_filename",
                None,
                Some("demo-fast")
            ),
            ("default/catch-all", 100, "catch_all", None, None),
        ]
    );
    assert!(
        ws.mux_rules
            .iter()
            .all(|r| r.target.kind == TargetKind::Provider && r.target.key == "default/demo")
    );

    let demo = s.provider("default/demo").expect("provider demo");
    assert_eq!(demo.endpoint, "http://127.0.0.1:8081/v1");
    assert!(demo.api_key.is_none());
    let models: Vec<&str> = demo.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(models, ["demo-fast", "demo-smart"]);
    assert!(demo.models.iter().all(|m| m.pricing.is_some()));
    assert!(s.provider("default/demo-backup").is_some());

    assert_eq!(
        policy_route(s, "default/smart-with-fallback"),
        [
            target(TargetKind::Provider, "default/demo", None),
            target(TargetKind::Provider, "default/demo-backup", None),
        ]
    );
    let policy = &s.router_policies[0];
    assert_eq!(policy.match_.model.as_deref(), Some("demo-smart*"));
    assert_eq!(policy.circuit_breaker.consecutive_failures, 3);
    let d = compiled
        .diagnostic(Kind::RouterPolicy, "default", "smart-with-fallback")
        .unwrap();
    assert_eq!(
        d.details,
        switchyard_crds::compile::Details::RouterPolicy {
            route: Some("provider/demo -> provider/demo-backup".into())
        }
    );
}

#[test]
fn advanced_snapshot() {
    let compiled = compile_sets(&["advanced"]);
    let s = &compiled.snapshot;
    // No default workspace in this set.
    assert_eq!(s.default_workspace, None);

    let group = s
        .affinity_group("default/local-llama")
        .expect("group local-llama");
    assert_eq!(group.strategy.as_str(), "session_affinity");
    assert_eq!(group.session_header, "x-session-id");
    let members: Vec<(&str, Vec<&str>)> = group
        .members
        .iter()
        .map(|m| {
            (
                m.backend.as_str(),
                m.models.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        members,
        [
            (
                "default/ollama-workstation",
                vec!["llama3.1:8b", "qwen2.5-coder:7b"]
            ),
            ("default/vllm-llama", vec!["llama3.1:8b"]),
        ]
    );
    let vllm = s.backend("default/vllm-llama").expect("vllm backend");
    assert_eq!(vllm.url, "http://vllm-llama.default.svc:8000/v1");
    assert_eq!(
        vllm.api_key.as_ref().map(|k| k.expose()),
        Some("vllm-token-REPLACE-ME")
    );
    assert_eq!((vllm.weight, vllm.max_concurrency), (2, Some(64)));
    let ollama = s.backend("default/ollama-workstation").unwrap();
    assert_eq!(ollama.url, "http://ollama.lab.example.internal:11434/v1");

    let anthropic = s.provider("default/anthropic").expect("anthropic");
    assert_eq!(
        anthropic.api_key.as_ref().map(|k| k.expose()),
        Some("sk-ant-REPLACE-ME")
    );

    let ws = s.workspace("default/research").expect("research workspace");
    let rules: Vec<&str> = ws.mux_rules.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(rules, ["default/research-claude", "default/research-local"]);
    assert_eq!(
        ws.mux_rules[1].target,
        target(
            TargetKind::AffinityGroup,
            "default/local-llama",
            Some("llama3.1:8b")
        )
    );
    assert_eq!(s.client_keys.len(), 1);
    assert_eq!(s.client_keys[0].workspace, "default/research");
    assert_eq!(s.client_keys[0].name, "research-team");

    // research-claude-resilient splices the whole route of local-pool after its own routeTo.
    let local_pool = policy_route(s, "default/local-pool");
    assert_eq!(
        local_pool,
        [
            target(
                TargetKind::AffinityGroup,
                "default/local-llama",
                Some("llama3.1:8b")
            ),
            target(
                TargetKind::Provider,
                "default/anthropic",
                Some("claude-haiku-4-5")
            ),
        ]
    );
    let mut expected = vec![target(TargetKind::Provider, "default/anthropic", None)];
    expected.extend(local_pool);
    assert_eq!(
        policy_route(s, "default/research-claude-resilient"),
        expected
    );
    let keys: Vec<&str> = s.router_policies.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["default/research-claude-resilient", "default/local-pool"],
        "evaluation order is by priority"
    );

    let chain = s.task_chain("default/triage").expect("chain triage");
    assert_eq!(chain.tasks.len(), 6);
    assert_eq!(chain.hooks.len(), 1);
    assert_eq!(chain.hooks[0].timeout_ms, 5000);
    let auth = chain.hooks[0]
        .headers
        .iter()
        .find(|h| h.name == "Authorization")
        .expect("Authorization header");
    assert_eq!(auth.value.expose(), "Bearer ticketing-REPLACE-ME");
    let targets: Vec<&str> = chain.task_targets.keys().map(String::as_str).collect();
    assert_eq!(targets, ["classify", "draft_reply", "score"]);
}

#[test]
fn compiling_twice_or_in_another_file_order_gives_the_same_version() {
    for sets in [
        &["quickstart"][..],
        &["advanced"],
        &["quickstart", "advanced"],
    ] {
        let files = files_of(sets);
        let first = compile(&load(&files));
        let second = compile(&load(&files));
        assert_eq!(first.snapshot.version, second.snapshot.version);
        assert_eq!(first, second);
        let mut reversed = files.clone();
        reversed.reverse();
        let third = compile(&load(&reversed));
        assert_eq!(first, third, "file order must not matter for {sets:?}");
    }
}

/// Re-serializes a document through its Rust type.
fn round_trip(doc: &serde_json::Value) -> Option<serde_json::Value> {
    fn via<T: serde::de::DeserializeOwned + serde::Serialize>(
        doc: &serde_json::Value,
    ) -> serde_json::Value {
        let typed: T = serde_json::from_value(doc.clone()).unwrap();
        serde_json::to_value(typed).unwrap()
    }
    use switchyard_crds::*;
    Some(match doc["kind"].as_str()? {
        "Provider" => via::<Provider>(doc),
        "Backend" => via::<Backend>(doc),
        "AffinityGroup" => via::<AffinityGroup>(doc),
        "Workspace" => via::<Workspace>(doc),
        "MuxRule" => via::<MuxRule>(doc),
        "RouterPolicy" => via::<RouterPolicy>(doc),
        "TaskChain" => via::<TaskChain>(doc),
        "Secret" => via::<k8s_openapi::api::core::v1::Secret>(doc),
        _ => return None,
    })
}

/// Paths in `original` that `again` lacks or changes (numbers and durations compared by value).
fn lost_fields(path: &str, original: &serde_json::Value, again: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match (original, again) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .flat_map(|(k, v)| match b.get(k) {
                Some(w) => lost_fields(&format!("{path}.{k}"), v, w),
                None => vec![format!("{path}.{k}")],
            })
            .collect(),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .flat_map(|(i, (v, w))| lost_fields(&format!("{path}[{i}]"), v, w))
            .collect(),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Vec::new(),
        // Durations are normalized ("60s" is written back as "1m").
        (Value::String(a), Value::String(b))
            if a.parse::<GoDuration>()
                .is_ok_and(|d| b.parse::<GoDuration>() == Ok(d)) =>
        {
            Vec::new()
        }
        (a, b) if a == b => Vec::new(),
        _ => vec![format!("{path} ({original} became {again})")],
    }
}

/// serde ignores unknown fields and the API server prunes them, so a misspelled field in a
/// sample would silently do nothing: every field written must survive a round trip through
/// the Rust types.
#[test]
fn sample_fields_are_all_known() {
    for set in SETS {
        for path in manifest_files(set) {
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
            for doc in docs.iter().filter(|d| !d.is_null()) {
                let again = round_trip(doc)
                    .unwrap_or_else(|| panic!("{}: unexpected kind {}", label(&path), doc["kind"]));
                let lost = lost_fields("", doc, &again);
                assert!(
                    lost.is_empty(),
                    "{}: fields not in the API: {lost:?}",
                    label(&path)
                );
            }
        }
    }
}
