//! The manifests the benchmark serves: the feature set of the data-plane rows and N generated
//! CRs for the control-plane rows. Written as JSON documents (valid YAML) separated by `---`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};
use switchyard_crds::compile::Inventory;

/// Gateway key of the `base` workspace.
pub const BASE_KEY: &str = "sy-bench-base";
/// Gateway key of the `guarded` workspace.
pub const GUARDED_KEY: &str = "sy-bench-guarded";

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default"})
}

fn provider(name: &str, kind: &str, endpoint: &str, models: &[&str]) -> Value {
    let models: Vec<Value> = models
        .iter()
        .map(|m| json!({"name": m, "capabilities": {"chat": true, "streaming": true}, "pricing": {"input": 1.0, "output": 2.0}}))
        .collect();
    json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "Provider", "metadata": meta(name),
        "spec": {"type": kind, "endpoint": endpoint, "auth": {"type": "none"}, "models": models}})
}

fn mux_rule(name: &str, workspace: &str, priority: i64, matcher: Value, target: Value) -> Value {
    json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "MuxRule", "metadata": meta(name),
        "spec": {"workspaceRef": workspace, "priority": priority, "matcher": matcher, "target": target}})
}

/// The feature set, all on one data plane, each row picked by the request:
///
/// - model `bench-base` (any model without a rule): workspace `base` (gateway key, no
///   guardrails), catch-all MuxRule to Provider `mock` (OpenAI dialect);
/// - model `bench-group`: MuxRule to AffinityGroup `group10` of 10 Backends (round robin);
/// - model `bench-policy`: RouterPolicy `with-fallback` to `mock`, fallback `mock-backup`;
/// - model `bench-claude`: MuxRule to Provider `mock-anthropic` (OpenAI⇄Anthropic translation);
/// - key `GUARDED_KEY`: workspace `guarded` with secret redaction, PII alerts and limits.
pub fn features(mock: SocketAddr) -> Vec<Value> {
    let openai = format!("http://{mock}/v1");
    let anthropic = format!("http://{mock}");
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("bench-keys"),
            "stringData": {"base": BASE_KEY, "guarded": GUARDED_KEY}}),
        provider("mock", "openai", &openai, &["bench-base", "bench-policy"]),
        provider(
            "mock-backup",
            "openai",
            &openai,
            &["bench-base", "bench-policy"],
        ),
        provider("mock-anthropic", "anthropic", &anthropic, &["bench-claude"]),
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "Workspace", "metadata": meta("base"),
            "spec": {"default": true, "clients": {"apiKeys": [
                {"name": "bench", "secretRef": {"name": "bench-keys", "key": "base"}}]}}}),
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "Workspace", "metadata": meta("guarded"),
            "spec": {"clients": {"apiKeys": [
                {"name": "bench", "secretRef": {"name": "bench-keys", "key": "guarded"}}]},
                "guardrails": {"secrets": "redact", "pii": "alert"},
                "limits": {"requestsPerMinute": 100_000_000, "tokensPerMinute": 1_000_000_000,
                    "perCaller": {"requestsPerMinute": 100_000_000}}}}),
        mux_rule(
            "to-group",
            "base",
            10,
            json!({"type": "model", "pattern": "bench-group"}),
            json!({"affinityGroupRef": "group10"}),
        ),
        mux_rule(
            "to-claude",
            "base",
            20,
            json!({"type": "model", "pattern": "bench-claude*"}),
            json!({"providerRef": "mock-anthropic"}),
        ),
        mux_rule(
            "catch-all",
            "base",
            100,
            json!({"type": "catch_all"}),
            json!({"providerRef": "mock"}),
        ),
        mux_rule(
            "guarded-all",
            "guarded",
            100,
            json!({"type": "catch_all"}),
            json!({"providerRef": "mock"}),
        ),
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "AffinityGroup", "metadata": meta("group10"),
            "spec": {"purpose": "chat", "backendSelector": {"matchLabels": {"pool": "bench"}},
                "models": ["bench-group"], "loadBalancing": {"strategy": "round_robin"}}}),
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "RouterPolicy", "metadata": meta("with-fallback"),
            "spec": {"priority": 0, "match": {"model": "bench-policy*", "endpointType": "chat"},
                "routeTo": {"providerRef": "mock"}, "fallback": [{"providerRef": "mock-backup"}]}}),
    ];
    for i in 0..10 {
        docs.push(json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "Backend",
            "metadata": {"name": format!("b{i}"), "namespace": "default", "labels": {"pool": "bench"}},
            "spec": {"type": "openai_compatible", "baseUrl": openai,
                "models": [{"name": "bench-group", "capabilities": {"chat": true, "streaming": true}}]}}));
    }
    docs
}

/// `n` CRs (rounded down to a multiple of 10) in blocks of ten: 2 Providers, 1 Workspace,
/// 6 MuxRules (model globs) and 1 RouterPolicy with a fallback.
pub fn generated(n: usize, mock: SocketAddr) -> Vec<Value> {
    let endpoint = format!("http://{mock}/v1");
    let mut docs = Vec::with_capacity(n);
    for k in 0..n / 10 {
        let (pa, pb, ws) = (format!("p{k}a"), format!("p{k}b"), format!("w{k}"));
        docs.push(provider(&pa, "openai", &endpoint, &[&format!("m{k}")]));
        docs.push(provider(&pb, "openai", &endpoint, &[&format!("m{k}")]));
        docs.push(json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "Workspace", "metadata": meta(&ws),
            "spec": {"guardrails": {"secrets": "redact"}}}));
        for j in 0..6 {
            docs.push(mux_rule(
                &format!("r{k}-{j}"),
                &ws,
                j,
                json!({"type": "model", "pattern": format!("m{k}-{j}*")}),
                json!({"providerRef": if j % 2 == 0 { &pa } else { &pb }, "model": format!("m{k}")}),
            ));
        }
        docs.push(
            json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "RouterPolicy",
            "metadata": meta(&format!("rp{k}")),
            "spec": {"priority": 1000 + k, "match": {"model": format!("rp{k}-*")},
                "routeTo": {"providerRef": pa}, "fallback": [{"providerRef": pb}]}}),
        );
    }
    docs
}

/// The edited part of the edit→served row: a default workspace whose catch-all rule sends
/// every request to `mock` with model `model`.
pub fn editable(mock: SocketAddr, model: &str) -> Vec<Value> {
    vec![
        provider("edit-target", "openai", &format!("http://{mock}/v1"), &[]),
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "Workspace", "metadata": meta("edit"),
            "spec": {"default": true}}),
        mux_rule(
            "edit-all",
            "edit",
            100,
            json!({"type": "catch_all"}),
            json!({"providerRef": "edit-target", "model": model}),
        ),
    ]
}

/// Documents per file: the YAML reader refuses a text of more than 1,024 documents.
pub const FILE_DOCS: usize = 1000;

/// Writes `docs` as `dir/PREFIX-N.yaml` files of at most [`FILE_DOCS`] documents each.
pub fn write_files(dir: &Path, prefix: &str, docs: &[Value]) -> anyhow::Result<()> {
    for (i, chunk) in docs.chunks(FILE_DOCS).enumerate() {
        write_atomic(&dir.join(format!("{prefix}-{i}.yaml")), chunk)?;
    }
    Ok(())
}

/// Documents as one multi-document text.
pub fn to_text(docs: &[Value]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

/// Writes documents to `path` atomically (a temporary file renamed over it).
pub fn write_atomic(path: &Path, docs: &[Value]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, to_text(docs)).with_context(|| format!("writing {tmp:?}"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {path:?}"))?;
    Ok(())
}

/// The documents as a compiler inventory (through the same reader local mode uses).
pub fn inventory(docs: &[Value]) -> anyhow::Result<Inventory> {
    let mut inv = Inventory::default();
    for chunk in docs.chunks(FILE_DOCS) {
        switchyard_crds::manifest::add_yaml(&mut inv, "generated", &to_text(chunk))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("reading generated manifests")?;
    }
    Ok(inv)
}
