//! The REST facade's handlers, in process: fixed objects (a manifest set compiled like local
//! mode does), a SQLite store with known interceptions, a fake authenticator (token → user) and
//! a fake authorizer (RBAC rules as a closure), driven through the real router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use futures_util::future::BoxFuture;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jiff::Timestamp;
use serde_json::{Value, json};
use switchyard_crds::compile::{Inventory, compile};
use switchyard_crds::record::{
    Alert, Attempt, Category, Cost, Interception, Outcome, RouteRecord, ToolUsage,
};
use switchyard_crds::usage::Usage;
use switchyard_crds::workspace::GuardrailAction;
use switchyard_operator::channel::{
    Action, AuthError, Authenticator, Authorizer, Identity, SnapshotHub,
};
use switchyard_operator::facade::Facade;
use switchyard_operator::facade::source::{Objects, SharedObjects};
use switchyard_operator::status::{Counters, Probes};
use switchyard_operator::store::Store;
use tower::ServiceExt;
use uuid::Uuid;

const SECRET_VALUE: &str = "sk-live-TOPSECRET-0123456789";
const HEADER_LITERAL: &str = "literal-header-SHOULD-NOT-SHOW";

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: openai-key, namespace: team-a}
stringData: {key: "sk-live-TOPSECRET-0123456789"}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata:
  name: openai-main
  namespace: team-a
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"spec":{"headers":[{"name":"x-org","value":"literal-header-SHOULD-NOT-SHOW"}]}}'
    team: platform
spec:
  type: openai
  endpoint: http://127.0.0.1:9/v1
  auth: {type: api_key, secretRef: {name: openai-key, key: key}}
  headers:
    - {name: x-org, value: literal-header-SHOULD-NOT-SHOW}
    - {name: x-key, valueFrom: {name: openai-key, key: key}}
  models:
    - {name: gpt-4o, capabilities: {chat: true, streaming: true, tools: true, vision: true}, pricing: {input: 2.5, output: 10}}
    - {name: gpt-4o-mini, pricing: {input: 0.15, output: 0.6}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {name: gpu-1, namespace: team-a}
spec: {type: vllm, baseUrl: "http://10.0.0.1:8000/v1", models: [{name: llama3}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {name: gpu-2, namespace: team-a}
spec: {type: ollama, baseUrl: "http://10.0.0.2:11434/v1", models: [{name: llama3}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: AffinityGroup
metadata: {name: llamas, namespace: team-a}
spec:
  purpose: chat
  backends: [gpu-1, gpu-2]
  models: [llama3]
  loadBalancing: {strategy: session_affinity}
---
apiVersion: switchyard.dev/v1alpha1
kind: AffinityGroup
metadata: {name: llamas-rr, namespace: team-a}
spec:
  purpose: tasks
  backends: [gpu-1, gpu-2]
  models: [llama3]
  loadBalancing: {strategy: round_robin}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {name: research, namespace: team-a, labels: {team: research}}
spec: {default: true}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: all, namespace: team-a}
spec: {workspaceRef: research, priority: 100, matcher: {type: catch_all}, target: {providerRef: openai-main}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: py, namespace: team-a}
spec: {workspaceRef: research, priority: 10, matcher: {type: filename_match, pattern: "*.py"}, target: {providerRef: openai-main, model: gpt-4o-mini}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: broken, namespace: team-a}
spec: {workspaceRef: research, priority: 50, matcher: {type: catch_all}, target: {providerRef: nowhere}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: local, namespace: team-a}
spec: {workspaceRef: research, priority: 20, matcher: {type: model, pattern: "llama*"}, target: {affinityGroupRef: llamas-rr}}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: embeddings-local, namespace: team-a}
spec:
  priority: 10
  match: {endpointType: embeddings}
  routeTo: {affinityGroupRef: llamas, model: llama3}
  fallback: [{providerRef: openai-main, model: gpt-4o-mini}]
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: vision, namespace: team-a}
spec:
  priority: 20
  match: {requiresVision: true}
  routeTo: {providerRef: openai-main, model: gpt-4o}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {name: tagged, namespace: team-a}
spec:
  priority: 30
  match: {tags: {tier: gold}, purpose: review}
  routeTo: {providerRef: openai-main, model: gpt-4o}
---
apiVersion: switchyard.dev/v1alpha1
kind: TaskChain
metadata: {name: triage, namespace: team-a}
spec:
  hooks:
    - name: tickets
      url: https://tickets.example/hook
      headers: [{name: X-Source, value: literal-header-SHOULD-NOT-SHOW}]
      properties: {in: header, name: X-Token, value: literal-header-SHOULD-NOT-SHOW}
  tasks:
    - id: answer
      handler: model_execution
      execute: {target: {providerRef: openai-main, model: gpt-4o}}
      promptTemplate: "{{.input}}"
      transition: {branches: [{operator: default, goto: end}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: claude, namespace: team-b}
spec: {type: anthropic, endpoint: "http://127.0.0.1:9", models: [{name: claude-sonnet}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {name: ops, namespace: team-b}
spec: {}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: all, namespace: team-b}
spec: {workspaceRef: ops, matcher: {type: catch_all}, target: {providerRef: claude}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {name: quiet, namespace: team-b}
spec: {}
"#;

// ---------------------------------------------------------------------------------------------
// Fakes

/// Tokens: `admin` (everything), `alice` (everything in team-a), `bob` (team-b workspaces
/// only), `nobody` (nothing).
#[derive(Debug)]
struct Tokens;

impl Authenticator for Tokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async move {
            match token {
                "admin" | "alice" | "bob" | "nobody" => Ok(Identity {
                    username: token.to_owned(),
                    groups: vec!["system:authenticated".into()],
                }),
                "broken" => Err(AuthError::Unavailable("api server down".into())),
                _ => Err(AuthError::Unauthenticated("invalid bearer token".into())),
            }
        })
    }
}

/// RBAC as a function, with every question asked recorded.
#[derive(Debug, Default)]
struct Rbac {
    asked: Mutex<Vec<(String, Action)>>,
}

impl Authorizer for Rbac {
    fn allowed<'a>(
        &'a self,
        who: &'a Identity,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        self.asked
            .lock()
            .unwrap()
            .push((who.username.clone(), action.clone()));
        let ns = action.namespace.as_deref();
        let allowed = match who.username.as_str() {
            "admin" => true,
            "alice" => ns == Some("team-a"),
            "bob" => ns == Some("team-b") && action.resource == "workspaces",
            _ => false,
        };
        Box::pin(async move { Ok(allowed) })
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture

struct Fixture {
    router: Router,
    store: Store,
    rbac: Arc<Rbac>,
    records: Vec<Interception>,
}

/// 2026-01-01T00:00:00Z plus `ms`.
fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_767_225_600_000 + ms).unwrap()
}

fn record(ms: i64) -> Interception {
    Interception {
        id: Uuid::now_v7(),
        request_id: format!("req-{ms}"),
        started_at: at(ms),
        ended_at: at(ms + 250),
        endpoint: "/v1/chat/completions".into(),
        workspace: Some("team-a/research".into()),
        initiator: Some("alice".into()),
        credential_kind: "gateway_key".into(),
        client: "cursor".into(),
        session_id: Some("s-1".into()),
        provider: Some("openai".into()),
        provider_name: Some("team-a/openai-main".into()),
        model_requested: "gpt-4o".into(),
        model_served: Some("gpt-4o".into()),
        route: Some(RouteRecord {
            source: "muxrule".into(),
            rule: Some("team-a/all".into()),
            target: "provider/openai-main:gpt-4o".into(),
        }),
        attempts: vec![Attempt {
            target: "provider/openai-main:gpt-4o".into(),
            backend: None,
            model: "gpt-4o".into(),
            status: Some(200),
            error: None,
            latency_ms: 200,
        }],
        status: 200,
        outcome: Outcome::Success,
        error: None,
        stream: false,
        latency_ms: 250,
        ttft_ms: Some(90),
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
            cache_read_input_tokens: 10,
            cache_write_input_tokens: 0,
        },
        usage_estimated: false,
        cost: Cost {
            input: 0.25,
            output: 0.125,
        },
        cost_source: Some(switchyard_crds::record::CostSource::Declared),
        tool_usages: Vec::new(),
        finish_reason: Some("stop".into()),
        user_prompt: Some(format!("prompt {ms}")),
        tags: BTreeMap::new(),
        metadata: None,
        alerts: Vec::new(),
        snapshot_version: "v1".into(),
        chain: None,
        thread_root_id: None,
    }
}

/// Ten records in team-a/research (sessions s-1 and s-2, a thread, alerts, a failure), two in
/// team-b/ops and one refused before a workspace was known.
fn records() -> Vec<Interception> {
    let mut out = Vec::new();
    let root = record(1_000);
    let root_id = root.id;
    out.push(root);
    for i in 1..=3 {
        let mut r = record(1_000 + i * 100);
        r.thread_root_id = Some(root_id);
        r.model_served = Some("gpt-4o-mini".into());
        r.tool_usages = vec![ToolUsage {
            id: format!("call-{i}"),
            name: "search".into(),
        }];
        out.push(r);
    }
    for i in 0..4 {
        let mut r = record(5_000 + i * 1_000);
        r.session_id = Some("s-2".into());
        r.initiator = Some("carol".into());
        r.client = "claude-code".into();
        r.stream = true;
        r.latency_ms = 1_000 * (i as u64 + 1);
        if i == 1 {
            r.alerts = vec![
                Alert {
                    category: Category::Secrets,
                    kind: "github_token".into(),
                    action: GuardrailAction::Redact,
                    snippet: "token [REDACTED:github_token]".into(),
                    location: "/messages/0/content".into(),
                },
                Alert {
                    category: Category::Pii,
                    kind: "email".into(),
                    action: GuardrailAction::Alert,
                    snippet: "mail [REDACTED:email]".into(),
                    location: "/messages/0/content".into(),
                },
            ];
        }
        if i == 3 {
            r.outcome = Outcome::UpstreamError;
            r.status = 502;
            r.error = Some("upstream answered 500".into());
        }
        out.push(r);
    }
    let mut emb = record(9_500);
    emb.endpoint = "/v1/embeddings".into();
    emb.session_id = None;
    emb.user_prompt = None;
    emb.model_requested = "text-embed".into();
    emb.model_served = Some("llama3".into());
    emb.provider = Some("vllm".into());
    emb.provider_name = Some("team-a/gpu-1".into());
    out.push(emb);
    let mut chain = record(9_700);
    chain.chain = Some("team-a/triage".into());
    chain.session_id = None;
    chain.metadata = Some(json!({"ticket": 42}));
    chain.tags = BTreeMap::from([("tier".into(), "gold".into())]);
    out.push(chain);
    for i in 0..2 {
        let mut r = record(3_000 + i * 10);
        r.workspace = Some("team-b/ops".into());
        r.initiator = Some("bob".into());
        r.session_id = Some("s-b".into());
        r.provider = Some("anthropic".into());
        r.provider_name = Some("team-b/claude".into());
        r.model_requested = "claude-sonnet".into();
        r.model_served = Some("claude-sonnet".into());
        out.push(r);
    }
    let mut refused = record(2_000);
    refused.workspace = None;
    refused.initiator = None;
    refused.session_id = None;
    refused.provider = None;
    refused.provider_name = None;
    refused.model_served = None;
    refused.outcome = Outcome::Rejected;
    refused.status = 401;
    refused.route = None;
    refused.attempts = Vec::new();
    refused.usage = Usage::default();
    refused.cost = Cost::default();
    out.push(refused);
    out
}

impl Fixture {
    async fn new() -> Fixture {
        let mut inv = Inventory::default();
        switchyard_crds::manifest::add_yaml(&mut inv, "fixture.yaml", MANIFESTS).unwrap();
        let compiled = compile(&inv);
        let hub = SnapshotHub::new();
        hub.publish(compiled.snapshot.clone());
        let objects = Objects::from_inventory(&inv).with_status(
            &compiled,
            &Counters::default(),
            &Probes::default(),
            Timestamp::now(),
        );
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let records = records();
        store.insert(&records).await.unwrap();
        let rbac = Arc::new(Rbac::default());
        let facade = Arc::new(Facade::new(
            store.clone(),
            Arc::new(SharedObjects::new(objects)),
            hub,
            Arc::new(Tokens),
            rbac.clone(),
        ));
        Fixture {
            router: facade.router(),
            store,
            rbac,
            records,
        }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    /// GET as `admin`, expecting 200.
    async fn get(&self, uri: &str) -> Value {
        self.get_as("admin", uri).await
    }

    async fn get_as(&self, token: &str, uri: &str) -> Value {
        let (status, body) = self.call("GET", uri, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        body
    }

    /// GET as `admin`, expecting an error in the one shape; returns (status, param).
    async fn error(&self, uri: &str) -> (u16, Option<String>) {
        let (status, body) = self.call("GET", uri, Some("admin"), None).await;
        assert_error_shape(status, &body);
        (
            status.as_u16(),
            body["error"]["param"].as_str().map(str::to_owned),
        )
    }

    fn asked(&self) -> Vec<(String, Action)> {
        std::mem::take(&mut *self.rbac.asked.lock().unwrap())
    }
}

fn assert_error_shape(status: StatusCode, body: &Value) {
    assert!(!status.is_success(), "{body}");
    let e = &body["error"];
    assert_eq!(e["status"], status.as_u16(), "{body}");
    assert!(e["code"].is_string() && e["message"].is_string(), "{body}");
    let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    assert!(
        keys.is_subset(&BTreeSet::from(["status", "code", "message", "param"])),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn newest_first(records: &[Interception], keep: impl Fn(&Interception) -> bool) -> Vec<String> {
    let mut r: Vec<&Interception> = records.iter().filter(|r| keep(r)).collect();
    r.sort_by_key(|r| std::cmp::Reverse((r.started_at, r.id)));
    r.iter().map(|r| r.id.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Authentication, errors, OpenAPI

#[tokio::test]
async fn unauthenticated_requests_get_401_in_the_error_shape() {
    let f = Fixture::new().await;
    for token in [None, Some("forged")] {
        for uri in [
            "/api/v1/providers",
            "/api/v1/interceptions",
            "/api/v1/sessions/s-1",
        ] {
            let (status, body) = f.call("GET", uri, token, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
            assert_error_shape(status, &body);
            assert_eq!(body["error"]["code"], "unauthenticated");
        }
    }
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/routerpolicies/test-match",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The token is never echoed; an authenticator that cannot decide is a 503.
    let (status, body) = f
        .call("GET", "/api/v1/providers", Some("forged"), None)
        .await;
    assert!(!body.to_string().contains("forged"), "{body}");
    assert_eq!(status, 401);
    let (status, body) = f
        .call("GET", "/api/v1/providers", Some("broken"), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error_shape(status, &body);
    assert!(
        f.asked().is_empty(),
        "nothing is authorized before authentication"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let f = Fixture::new().await;
    let (status, body) = f.call("GET", "/api/v1/nope", Some("admin"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(status, &body);
    let (status, body) = f
        .call("DELETE", "/api/v1/providers", Some("admin"), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_shape(status, &body);
    let (status, body) = f.call("GET", "/elsewhere", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(status, &body);
}

/// Every route the facade serves, as the OpenAPI document must list them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/providers"),
    ("get", "/api/v1/namespaces/{namespace}/providers"),
    ("get", "/api/v1/namespaces/{namespace}/providers/{name}"),
    ("get", "/api/v1/backends"),
    ("get", "/api/v1/namespaces/{namespace}/backends"),
    ("get", "/api/v1/namespaces/{namespace}/backends/{name}"),
    ("get", "/api/v1/affinitygroups"),
    ("get", "/api/v1/namespaces/{namespace}/affinitygroups"),
    (
        "get",
        "/api/v1/namespaces/{namespace}/affinitygroups/{name}",
    ),
    ("get", "/api/v1/workspaces"),
    ("get", "/api/v1/namespaces/{namespace}/workspaces"),
    ("get", "/api/v1/namespaces/{namespace}/workspaces/{name}"),
    (
        "get",
        "/api/v1/namespaces/{namespace}/workspaces/{name}/muxes",
    ),
    (
        "get",
        "/api/v1/namespaces/{namespace}/workspaces/{name}/usage",
    ),
    (
        "get",
        "/api/v1/namespaces/{namespace}/workspaces/{name}/alerts",
    ),
    (
        "get",
        "/api/v1/namespaces/{namespace}/workspaces/{name}/messages",
    ),
    ("get", "/api/v1/muxrules"),
    ("get", "/api/v1/namespaces/{namespace}/muxrules"),
    ("get", "/api/v1/namespaces/{namespace}/muxrules/{name}"),
    ("get", "/api/v1/routerpolicies"),
    ("get", "/api/v1/namespaces/{namespace}/routerpolicies"),
    (
        "get",
        "/api/v1/namespaces/{namespace}/routerpolicies/{name}",
    ),
    ("post", "/api/v1/routerpolicies/test-match"),
    ("get", "/api/v1/taskchains"),
    ("get", "/api/v1/namespaces/{namespace}/taskchains"),
    ("get", "/api/v1/namespaces/{namespace}/taskchains/{name}"),
    ("get", "/api/v1/state"),
    ("get", "/api/v1/namespaces/{namespace}/state"),
    ("get", "/api/v1/interceptions"),
    ("get", "/api/v1/interceptions/summary"),
    ("get", "/api/v1/sessions"),
    ("get", "/api/v1/sessions/{id}"),
    ("get", "/api/v1/clients"),
    ("get", "/api/v1/models"),
];

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.insert(x.as_str().unwrap().to_owned());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_document_lists_every_route_with_resolvable_schemas() {
    let f = Fixture::new().await;
    // Public: no token needed.
    let (status, doc) = f.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let listed: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(listed, expected);
    // Each listed route is served (not a 404/405 from the router).
    for (method, path) in ROUTES {
        let uri = path
            .replace("{namespace}", "team-a")
            .replace("{name}", "research")
            .replace("{id}", "s-1");
        let body = (*method == "post").then(|| json!({"context": {"model": "gpt-4o"}}));
        let (status, resp) = f
            .call(&method.to_uppercase(), &uri, Some("admin"), body)
            .await;
        assert!(
            status.is_success()
                || (status == 404
                    && resp["error"]["code"] == "not_found"
                    && !resp["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("no such route")),
            "{method} {uri}: {status} {resp}"
        );
    }
    // Every reference resolves to a component; every operation documents 200 and its errors.
    let mut all = BTreeSet::new();
    refs(&doc, &mut all);
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("ref outside components: {r}"));
        assert!(schemas.contains_key(name), "dangling {r}");
    }
    for name in [
        "ErrorBody",
        "ProviderList",
        "Provider",
        "InterceptionList",
        "InterceptionView",
        "InterceptionSummary",
        "SessionList",
        "SessionThreads",
        "TestMatchRequest",
        "TestMatchResponse",
        "TokenUsageAggregate",
        "WorkspaceAlerts",
        "MessageList",
        "MuxList",
        "RuntimeStateList",
    ] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
    let interception = &schemas["InterceptionView"]["properties"];
    for field in [
        "token_usages",
        "tool_usages",
        "user_prompts",
        "metadata",
        "alerts",
        "route",
        "attempts",
    ] {
        assert!(
            interception.get(field).is_some(),
            "InterceptionView.{field}"
        );
    }
    let op = &doc["paths"]["/api/v1/interceptions"]["get"];
    for code in ["200", "400", "401", "403", "503"] {
        assert!(op["responses"].get(code).is_some(), "{code}");
    }
    let q: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(q, ["q", "limit", "after_id", "offset"]);
    assert_eq!(
        doc["paths"]["/api/v1/openapi.json"]["get"]["security"],
        json!([])
    );
    assert!(doc["paths"]["/api/v1/routerpolicies/test-match"]["post"]["requestBody"].is_object());
}

// ---------------------------------------------------------------------------------------------
// CR views

#[tokio::test]
async fn cr_views_list_and_get_with_status() {
    let f = Fixture::new().await;
    let all = f.get("/api/v1/providers").await;
    assert_eq!(names(&all), ["team-a/openai-main", "team-b/claude"]);
    let ns = f.get("/api/v1/namespaces/team-b/providers").await;
    assert_eq!(names(&ns), ["team-b/claude"]);
    let one = f
        .get("/api/v1/namespaces/team-a/providers/openai-main")
        .await;
    assert_eq!(one["kind"], "Provider");
    assert_eq!(one["spec"]["type"], "openai");
    let ready = one["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(one["status"]["endpoint"], "http://127.0.0.1:9/v1");
    for (plural, expected) in [
        ("backends", vec!["team-a/gpu-1", "team-a/gpu-2"]),
        ("affinitygroups", vec!["team-a/llamas", "team-a/llamas-rr"]),
        (
            "workspaces",
            vec!["team-a/research", "team-b/ops", "team-b/quiet"],
        ),
        (
            "muxrules",
            vec![
                "team-a/all",
                "team-a/broken",
                "team-a/local",
                "team-a/py",
                "team-b/all",
            ],
        ),
        (
            "routerpolicies",
            vec!["team-a/embeddings-local", "team-a/tagged", "team-a/vision"],
        ),
        ("taskchains", vec!["team-a/triage"]),
    ] {
        assert_eq!(
            names(&f.get(&format!("/api/v1/{plural}")).await),
            expected,
            "{plural}"
        );
        let first = expected[0].split_once('/').unwrap();
        let got = f
            .get(&format!(
                "/api/v1/namespaces/{}/{plural}/{}",
                first.0, first.1
            ))
            .await;
        assert_eq!(got["metadata"]["name"], first.1);
        assert!(got["status"]["conditions"].is_array(), "{plural}: {got}");
    }
    let broken = f.get("/api/v1/namespaces/team-a/muxrules/broken").await;
    let ready = &broken["status"]["conditions"][0];
    assert_eq!(
        (ready["type"].as_str(), ready["status"].as_str()),
        (Some("Ready"), Some("False"))
    );
    // 404 in the error shape; unknown query parameters are refused.
    assert_eq!(
        f.error("/api/v1/namespaces/team-a/providers/missing").await,
        (404, None)
    );
    assert_eq!(
        f.error("/api/v1/providers?labelSelector=x").await,
        (400, Some("labelSelector".into()))
    );
}

#[tokio::test]
async fn no_view_leaks_a_secret_or_literal_header() {
    let f = Fixture::new().await;
    let provider = f
        .get("/api/v1/namespaces/team-a/providers/openai-main")
        .await;
    assert_eq!(provider["spec"]["headers"][0]["value"], "<redacted>");
    assert_eq!(
        provider["spec"]["headers"][1]["valueFrom"]["name"],
        "openai-key"
    );
    assert_eq!(provider["spec"]["auth"]["secretRef"]["key"], "key");
    assert_eq!(
        provider["metadata"]["annotations"],
        json!({"team": "platform"})
    );
    assert!(provider["metadata"].get("managedFields").is_none());
    let chain = f.get("/api/v1/namespaces/team-a/taskchains/triage").await;
    assert_eq!(
        chain["spec"]["hooks"][0]["headers"][0]["value"],
        "<redacted>"
    );
    assert_eq!(
        chain["spec"]["hooks"][0]["properties"]["value"],
        "<redacted>"
    );
    let tm = json!({"context": {"model": "gpt-4o"}});
    let mut bodies = vec![
        f.call(
            "POST",
            "/api/v1/routerpolicies/test-match",
            Some("admin"),
            Some(tm),
        )
        .await
        .1,
    ];
    for (method, path) in ROUTES.iter().filter(|(m, _)| *m == "get") {
        let _ = method;
        for (ns, name) in [
            ("team-a", "openai-main"),
            ("team-a", "triage"),
            ("team-a", "research"),
        ] {
            let uri = path
                .replace("{namespace}", ns)
                .replace("{name}", name)
                .replace("{id}", "s-1");
            bodies.push(f.call("GET", &uri, Some("admin"), None).await.1);
        }
    }
    for b in bodies {
        let text = b.to_string();
        assert!(!text.contains(SECRET_VALUE), "secret in {text}");
        assert!(!text.contains(HEADER_LITERAL), "literal header in {text}");
    }
}

#[tokio::test]
async fn cr_views_are_authorized_per_namespace() {
    let f = Fixture::new().await;
    // alice: team-a only. The all-namespace list is filtered (cluster scope asked first).
    let list = f.get_as("alice", "/api/v1/providers").await;
    assert_eq!(names(&list), ["team-a/openai-main"]);
    let asked = f.asked();
    assert_eq!(asked[0].1, Action::switchyard("list", "providers"));
    assert!(
        asked[1..]
            .iter()
            .all(|(_, a)| a.verb == "list" && a.namespace.is_some())
    );
    // Namespaced: 403 outside.
    let (status, body) = f
        .call(
            "GET",
            "/api/v1/namespaces/team-b/providers",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error_shape(status, &body);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alice may not list providers")
    );
    let (status, _) = f
        .call(
            "GET",
            "/api/v1/namespaces/team-b/providers/claude",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.asked().last().unwrap().1,
        Action::switchyard("get", "providers")
            .in_namespace("team-b")
            .named("claude")
    );
    // A 403 before any 404: a missing object elsewhere is not revealed.
    let (status, _) = f
        .call(
            "GET",
            "/api/v1/namespaces/team-b/providers/missing",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // nobody sees empty lists, and is refused everything namespaced.
    assert_eq!(
        names(&f.get_as("nobody", "/api/v1/workspaces").await),
        Vec::<String>::new()
    );
    let (status, _) = f
        .call(
            "GET",
            "/api/v1/namespaces/team-a/state",
            Some("nobody"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn workspaces_by_provider_name() {
    let f = Fixture::new().await;
    let by = |q: &'static str| {
        let f = &f;
        async move {
            names(
                &f.get(&format!("/api/v1/workspaces?provider_name={q}"))
                    .await,
            )
        }
    };
    assert_eq!(by("openai-main").await, ["team-a/research"]);
    assert_eq!(by("team-a/openai-main").await, ["team-a/research"]);
    assert_eq!(by("team-b/openai-main").await, Vec::<String>::new());
    assert_eq!(by("claude").await, ["team-b/ops"]);
    assert_eq!(by("unknown").await, Vec::<String>::new());
    assert_eq!(
        names(
            &f.get("/api/v1/namespaces/team-b/workspaces?provider_name=claude")
                .await
        ),
        ["team-b/ops"]
    );
    assert_eq!(
        names(&f.get("/api/v1/workspaces").await),
        ["team-a/research", "team-b/ops", "team-b/quiet"]
    );
}

#[tokio::test]
async fn workspace_muxes_in_evaluation_order() {
    let f = Fixture::new().await;
    let m = f
        .get("/api/v1/namespaces/team-a/workspaces/research/muxes")
        .await;
    assert_eq!(m["workspace"], "team-a/research");
    let rows: Vec<(String, i64, bool)> = m["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["priority"].as_i64().unwrap(),
                r["usable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("py".to_owned(), 10, true),
            ("local".to_owned(), 20, true),
            ("broken".to_owned(), 50, false),
            ("all".to_owned(), 100, true),
        ]
    );
    let py = &m["items"][0];
    assert_eq!(py["matcher_type"], "filename_match");
    assert_eq!(py["matcher"], "*.py");
    assert_eq!(
        py["target"],
        json!({"kind": "provider", "name": "openai-main", "model": "gpt-4o-mini"})
    );
    assert_eq!(py["provider_name"], "team-a/openai-main");
    assert_eq!(py["provider_type"], "openai");
    assert_eq!(m["items"][1]["target"]["kind"], "affinitygroup");
    assert_eq!(
        f.error("/api/v1/namespaces/team-a/workspaces/missing/muxes")
            .await
            .0,
        404
    );
    let (status, _) = f
        .call(
            "GET",
            "/api/v1/namespaces/team-a/workspaces/research/muxes",
            Some("bob"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn backend_runtime_state() {
    let f = Fixture::new().await;
    let s = f.get("/api/v1/state").await;
    assert!(s["snapshot_version"].is_string());
    let items = s["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let b = &items[0];
    assert_eq!(b["key"], "team-a/gpu-1");
    assert_eq!(b["id"], "team-a/gpu-1", "no UID outside a cluster");
    assert_eq!(b["backend"]["type"], "vllm");
    assert_eq!(b["backend"]["base_url"], "http://10.0.0.1:8000/v1");
    assert_eq!(b["models"], json!(["llama3"]));
    assert_eq!(b["pulled_models"], json!([]));
    assert_eq!(b["ready"], true);
    assert_eq!(b["healthy"], true);
    assert_eq!(b["affinity_groups"], json!(["llamas", "llamas-rr"]));
    assert_eq!(
        f.get("/api/v1/namespaces/team-b/state").await["items"],
        json!([])
    );
}

// ---------------------------------------------------------------------------------------------
// Workspace usage, alerts, messages

#[tokio::test]
async fn workspace_usage_by_model_with_costs() {
    let f = Fixture::new().await;
    let u = f
        .get("/api/v1/namespaces/team-a/workspaces/research/usage")
        .await;
    let ws: Vec<&Interception> = f
        .records
        .iter()
        .filter(|r| r.workspace.as_deref() == Some("team-a/research"))
        .collect();
    // A chain run's usage is its calls' (counted on their own records): it counts nothing.
    let total_in: u64 = ws.iter().map(|r| r.own_usage().0.input_tokens).sum();
    let total_out: u64 = ws.iter().map(|r| r.own_usage().0.output_tokens).sum();
    let cost: f64 = ws
        .iter()
        .map(|r| r.own_usage().1)
        .map(|c| c.input + c.output)
        .sum();
    assert_eq!(u["workspace"], "team-a/research");
    assert_eq!(u["token_usage"]["requests"], ws.len());
    assert_eq!(u["token_usage"]["input_tokens"], total_in);
    assert_eq!(u["token_usage"]["output_tokens"], total_out);
    assert!((u["token_usage"]["total_cost"].as_f64().unwrap() - cost).abs() < 1e-9);
    let mini = &u["tokens_by_model"]["gpt-4o-mini"];
    assert_eq!(mini["model"], "gpt-4o-mini");
    assert_eq!(mini["provider_type"], "openai");
    assert_eq!(mini["token_usage"]["requests"], 3);
    assert_eq!(mini["token_usage"]["cache_read_input_tokens"], 30);
    assert_eq!(u["tokens_by_model"]["llama3"]["provider_type"], "vllm");
    let models: BTreeSet<&str> = u["tokens_by_model"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(models, BTreeSet::from(["gpt-4o", "gpt-4o-mini", "llama3"]));
    // bob may get workspaces in team-b only.
    let (status, _) = f
        .call(
            "GET",
            "/api/v1/namespaces/team-a/workspaces/research/usage",
            Some("bob"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.get_as("bob", "/api/v1/namespaces/team-b/workspaces/ops/usage")
            .await["token_usage"]["requests"],
        2
    );
    assert_eq!(
        f.error("/api/v1/namespaces/team-b/workspaces/nope/usage")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn workspace_alerts_and_messages_paginate() {
    let f = Fixture::new().await;
    let a = f
        .get("/api/v1/namespaces/team-a/workspaces/research/alerts")
        .await;
    assert_eq!(
        a["summary"],
        json!({"secrets": 1, "pii": 1, "total_alerts": 2})
    );
    assert_eq!(a["count"], 1);
    let alerts = a["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["category"], "secrets");
    assert_eq!(alerts[0]["kind"], "github_token");
    assert_eq!(alerts[0]["action"], "redact");
    assert_eq!(alerts[1]["snippet"], "mail [REDACTED:email]");
    assert_eq!(alerts[0]["initiator"], "carol");
    let none = f
        .get("/api/v1/namespaces/team-a/workspaces/research/alerts?q=initiator:alice")
        .await;
    assert_eq!(
        (
            none["count"].as_u64(),
            none["alerts"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );

    let expected = newest_first(&f.records, |r| {
        r.workspace.as_deref() == Some("team-a/research")
    });
    let m = f
        .get("/api/v1/namespaces/team-a/workspaces/research/messages?limit=4")
        .await;
    assert_eq!(m["total"], expected.len());
    let page: Vec<&str> = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["chat_id"].as_str().unwrap())
        .collect();
    assert_eq!(page, expected[..4]);
    let next = m["next_after_id"].as_str().unwrap();
    let m2 = f
        .get(&format!(
            "/api/v1/namespaces/team-a/workspaces/research/messages?limit=4&after_id={next}"
        ))
        .await;
    let m3 = f
        .get("/api/v1/namespaces/team-a/workspaces/research/messages?limit=4&offset=4")
        .await;
    assert_eq!(m2["data"], m3["data"]);
    assert_eq!(m3["offset"], 4);
    // A message: prompt, answer, alert summary, token usage.
    let all = f
        .get("/api/v1/namespaces/team-a/workspaces/research/messages?limit=100")
        .await;
    let with_alerts = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["alerts_summary"]["total_alerts"] == 2)
        .unwrap();
    assert_eq!(with_alerts["type"], "chat");
    assert_eq!(with_alerts["prompt"]["message"], "prompt 6000");
    assert_eq!(with_alerts["answer"]["finish_reason"], "stop");
    assert_eq!(with_alerts["answer"]["output_tokens"], 20);
    assert_eq!(with_alerts["token_usage"]["input_tokens"], 100);
    assert_eq!(with_alerts["token_usage"]["total_tokens"], 130);
    let embedding = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "embeddings")
        .unwrap();
    assert!(embedding.get("prompt").is_none());
    // The workspace comes from the path, so it is not a filter key here.
    assert_eq!(
        f.error("/api/v1/namespaces/team-a/workspaces/research/messages?q=workspace:team-b/ops")
            .await,
        (400, Some("workspace".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// Interceptions

#[tokio::test]
async fn interceptions_carry_every_field() {
    let f = Fixture::new().await;
    let list = f.get("/api/v1/interceptions?limit=1000").await;
    assert_eq!(list["count"], f.records.len());
    assert!(list.get("next_after_id").is_none(), "not a full page");
    assert_eq!(ids(&list, "results"), newest_first(&f.records, |_| true));
    let chain = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chain"] == "team-a/triage")
        .unwrap();
    assert_eq!(chain["metadata"], json!({"ticket": 42}));
    assert_eq!(chain["tags"], json!({"tier": "gold"}));
    assert_eq!(chain["model"], "gpt-4o");
    assert_eq!(chain["provider"], "openai");
    assert_eq!(chain["provider_name"], "team-a/openai-main");
    assert_eq!(chain["route"]["source"], "muxrule");
    assert_eq!(chain["route"]["rule"], "team-a/all");
    assert_eq!(chain["attempts"][0]["status"], 200);
    let tu = &chain["token_usages"][0];
    assert_eq!(tu["interception_id"], chain["id"]);
    assert_eq!(
        (
            tu["input_tokens"].as_u64(),
            tu["output_tokens"].as_u64(),
            tu["cache_read_input_tokens"].as_u64()
        ),
        (Some(100), Some(20), Some(10))
    );
    assert_eq!(tu["input_cost"], 0.25);
    assert_eq!(tu["cost_source"], "declared");
    assert_eq!(chain["user_prompts"][0]["prompt"], "prompt 9700");
    let call = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tool_usages"].as_array().is_some_and(|t| !t.is_empty()))
        .unwrap();
    assert_eq!(call["tool_usages"][0]["tool"], "search");
    assert!(call["thread_root_id"].is_string());
    let alerted = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .unwrap();
    assert_eq!(alerted["alerts"][0]["category"], "secrets");
    assert_eq!(alerted["metadata"], json!({}));
}

#[tokio::test]
async fn interception_filters_each_key() {
    let f = Fixture::new().await;
    let r = &f.records;
    type Keep = Box<dyn Fn(&Interception) -> bool>;
    let cases: Vec<(&str, Keep)> = vec![
        (
            "initiator:carol",
            Box::new(|x| x.initiator.as_deref() == Some("carol")),
        ),
        (
            "provider:anthropic",
            Box::new(|x| x.provider.as_deref() == Some("anthropic")),
        ),
        (
            "provider_name:team-a/gpu-1",
            Box::new(|x| x.provider_name.as_deref() == Some("team-a/gpu-1")),
        ),
        (
            "model:gpt-4o-mini",
            Box::new(|x| {
                x.model_requested == "gpt-4o-mini"
                    || x.model_served.as_deref() == Some("gpt-4o-mini")
            }),
        ),
        (
            "client:claude-code",
            Box::new(|x| x.client == "claude-code"),
        ),
        (
            "workspace:team-b/ops",
            Box::new(|x| x.workspace.as_deref() == Some("team-b/ops")),
        ),
        (
            "session_id:s-2",
            Box::new(|x| x.session_id.as_deref() == Some("s-2")),
        ),
        (
            "started_after:2026-01-01T00:00:06Z",
            Box::new(|x| x.started_at >= at(6_000)),
        ),
        (
            "started_before:2026-01-01T00:00:02Z",
            Box::new(|x| x.started_at < at(2_000)),
        ),
        (
            "started_after:2026-01-01T00:00:01Z%20started_before:2026-01-01T00:00:06Z%20initiator:carol",
            Box::new(|x| {
                x.started_at >= at(1_000)
                    && x.started_at < at(6_000)
                    && x.initiator.as_deref() == Some("carol")
            }),
        ),
    ];
    for (q, keep) in cases {
        let expected = newest_first(r, keep);
        assert!(
            !expected.is_empty() && expected.len() < r.len(),
            "{q}: trivial"
        );
        let got = f.get(&format!("/api/v1/interceptions?q={q}")).await;
        assert_eq!(ids(&got, "results"), expected, "{q}");
        assert_eq!(got["count"], expected.len(), "{q}");
    }
}

#[tokio::test]
async fn interception_pagination_cursor_and_offset_agree() {
    let f = Fixture::new().await;
    let expected = newest_first(&f.records, |_| true);
    let mut by_cursor = Vec::new();
    let mut uri = "/api/v1/interceptions?limit=4".to_owned();
    loop {
        let page = f.get(&uri).await;
        by_cursor.extend(ids(&page, "results"));
        match page["next_after_id"].as_str() {
            Some(next) => uri = format!("/api/v1/interceptions?limit=4&after_id={next}"),
            None => break,
        }
    }
    assert_eq!(by_cursor, expected);
    let mut by_offset = Vec::new();
    for offset in (0..expected.len()).step_by(5) {
        let page = f
            .get(&format!("/api/v1/interceptions?limit=5&offset={offset}"))
            .await;
        by_offset.extend(ids(&page, "results"));
    }
    assert_eq!(by_offset, expected);
    // The default page is 100.
    assert_eq!(
        ids(&f.get("/api/v1/interceptions").await, "results").len(),
        expected.len()
    );
}

#[tokio::test]
async fn bad_parameters_are_400_naming_them() {
    let f = Fixture::new().await;
    let id = Uuid::now_v7();
    for (uri, param) in [
        ("/api/v1/interceptions?q=colour:blue", "colour"),
        (
            "/api/v1/interceptions?q=started_after:yesterday",
            "started_after",
        ),
        (
            "/api/v1/interceptions?q=started_before:2026-02-30T00:00:00Z",
            "started_before",
        ),
        ("/api/v1/interceptions?q=model:a%20model:b", "model"),
        ("/api/v1/interceptions?q=justaword", "q"),
        ("/api/v1/interceptions?limit=0", "limit"),
        ("/api/v1/interceptions?limit=1001", "limit"),
        ("/api/v1/interceptions?limit=ten", "limit"),
        ("/api/v1/interceptions?offset=-3", "offset"),
        ("/api/v1/interceptions?after_id=xyz", "after_id"),
        (
            &format!("/api/v1/interceptions?after_id={id}&offset=2") as &str,
            "offset",
        ),
        (&format!("/api/v1/interceptions?after_id={id}"), "after_id"),
        ("/api/v1/interceptions?page=2", "page"),
        ("/api/v1/interceptions?q=workspace:research", "workspace"),
        ("/api/v1/interceptions/summary?q=colour:blue", "colour"),
        ("/api/v1/interceptions/summary?limit=3", "limit"),
        ("/api/v1/sessions?q=started_after:nope", "started_after"),
        ("/api/v1/sessions?after=zz", "after"),
        ("/api/v1/sessions?after=x&offset=1", "after"),
        ("/api/v1/sessions/s-1?after_id=nope", "after_id"),
        (
            &format!("/api/v1/sessions/s-1?after_id={id}&before_id={id}"),
            "before_id",
        ),
        (&format!("/api/v1/sessions/s-1?before_id={id}"), "before_id"),
        ("/api/v1/sessions/s-1?limit=201", "limit"),
        ("/api/v1/sessions/s-1?q=session_id:s-2", "session_id"),
        ("/api/v1/clients?q=colour:blue", "colour"),
        ("/api/v1/models?q=started_before:tomorrow", "started_before"),
    ] {
        let (status, got) = f.error(uri).await;
        assert_eq!((status, got.as_deref()), (400, Some(param)), "{uri}");
    }
    // The message names the key too.
    let (_, body) = f
        .call(
            "GET",
            "/api/v1/interceptions?q=colour:blue",
            Some("admin"),
            None,
        )
        .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    let (_, body) = f
        .call(
            "GET",
            "/api/v1/interceptions?q=started_after:yesterday",
            Some("admin"),
            None,
        )
        .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("started_after")
    );
}

#[tokio::test]
async fn records_are_authorized_as_get_workspaces() {
    let f = Fixture::new().await;
    // alice may get workspaces in team-a only: filtered to its records (not the team-b ones,
    // not the refused one without a workspace).
    let list = f.get_as("alice", "/api/v1/interceptions").await;
    let expected = newest_first(&f.records, |r| {
        r.workspace.as_deref() == Some("team-a/research")
    });
    assert_eq!(ids(&list, "results"), expected);
    let asked = f.asked();
    assert_eq!(asked[0].1, Action::switchyard("get", "workspaces"));
    let namespaces: BTreeSet<&str> = asked[1..]
        .iter()
        .map(|(_, a)| a.namespace.as_deref().unwrap())
        .collect();
    assert_eq!(namespaces, BTreeSet::from(["team-a", "team-b"]));
    // The admin (cluster scope) sees everything, the record without a workspace included.
    assert_eq!(
        f.get("/api/v1/interceptions").await["count"],
        f.records.len()
    );
    // A workspace filter outside alice's namespaces is a 403.
    let (status, body) = f
        .call(
            "GET",
            "/api/v1/interceptions?q=workspace:team-b/ops",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error_shape(status, &body);
    assert_eq!(
        f.asked().last().unwrap().1,
        Action::switchyard("get", "workspaces")
            .in_namespace("team-b")
            .named("ops")
    );
    // Every record endpoint is filtered the same way.
    let s = f.get_as("alice", "/api/v1/interceptions/summary").await;
    assert_eq!(s["total_calls"], expected.len());
    assert_eq!(
        f.get_as("alice", "/api/v1/clients").await,
        json!(["claude-code", "cursor"])
    );
    assert!(
        !f.get_as("alice", "/api/v1/models")
            .await
            .as_array()
            .unwrap()
            .contains(&json!("claude-sonnet"))
    );
    let sessions = f.get_as("bob", "/api/v1/sessions").await;
    assert_eq!(ids(&sessions, "sessions"), ["s-b"]);
    let (status, _) = f
        .call("GET", "/api/v1/sessions/s-1", Some("bob"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a session bob cannot see does not exist for him"
    );
    // nobody: no namespace at all, empty results.
    assert_eq!(
        f.get_as("nobody", "/api/v1/interceptions").await["count"],
        0
    );
}

#[tokio::test]
async fn summary_matches_the_records() {
    let f = Fixture::new().await;
    let s = f
        .get("/api/v1/interceptions/summary?q=workspace:team-a/research")
        .await;
    let ws: Vec<&Interception> = f
        .records
        .iter()
        .filter(|r| r.workspace.as_deref() == Some("team-a/research"))
        .collect();
    assert_eq!(s["total_calls"], ws.len());
    let ok = ws.iter().filter(|r| r.outcome == Outcome::Success).count();
    assert!((s["success_rate"].as_f64().unwrap() - ok as f64 / ws.len() as f64).abs() < 1e-9);
    let mut latencies: Vec<u64> = ws.iter().map(|r| r.latency_ms).collect();
    latencies.sort();
    let mean = latencies.iter().sum::<u64>() as f64 / latencies.len() as f64;
    assert!((s["avg_latency_ms"].as_f64().unwrap() - mean).abs() < 1e-6);
    let rank = |p: usize| latencies[(p * latencies.len()).div_ceil(100) - 1];
    assert_eq!(s["p50_latency_ms"], rank(50));
    assert_eq!(s["p95_latency_ms"], rank(95));
    // A chain run's usage is its calls' (counted on their own records): it counts nothing.
    let sum = |f: fn(&Usage) -> u64| ws.iter().map(|r| f(&r.own_usage().0)).sum::<u64>();
    assert_eq!(s["input_tokens"], sum(|u| u.input_tokens));
    assert_eq!(s["output_tokens"], sum(|u| u.output_tokens));
    assert_eq!(s["total_tokens"], sum(|u| u.total()));
    let cost: f64 = ws
        .iter()
        .map(|r| r.own_usage().1)
        .map(|c| c.input + c.output)
        .sum();
    assert!((s["total_cost"].as_f64().unwrap() - cost).abs() < 1e-9);
    assert_eq!(s["period_start"], "2026-01-01T00:00:01Z");
    assert_eq!(s["period_end"], "2026-01-01T00:00:09.7Z");
    assert_eq!(s["model_usage"]["gpt-4o-mini"]["requests"], 3);
    assert_eq!(s["model_usage"]["llama3"]["requests"], 1);
    let period = f
        .get("/api/v1/interceptions/summary?q=started_after:2026-01-01T00:00:00Z%20started_before:2026-01-02T00:00:00Z")
        .await;
    assert_eq!(period["period_start"], "2026-01-01T00:00:00Z");
    assert_eq!(period["period_end"], "2026-01-02T00:00:00Z");
    assert_eq!(period["total_calls"], f.records.len());
}

#[tokio::test]
async fn clients_and_models_seen() {
    let f = Fixture::new().await;
    assert_eq!(
        f.get("/api/v1/clients").await,
        json!(["claude-code", "cursor"])
    );
    assert_eq!(
        f.get("/api/v1/models").await,
        json!([
            "claude-sonnet",
            "gpt-4o",
            "gpt-4o-mini",
            "llama3",
            "text-embed"
        ])
    );
    assert_eq!(
        f.get("/api/v1/models?q=workspace:team-b/ops").await,
        json!(["claude-sonnet"])
    );
    assert_eq!(
        f.get("/api/v1/clients?q=initiator:carol").await,
        json!(["claude-code"])
    );
}

// ---------------------------------------------------------------------------------------------
// Sessions

#[tokio::test]
async fn sessions_list_filter_and_paginate() {
    let f = Fixture::new().await;
    let all = f.get("/api/v1/sessions").await;
    // Newest first by first start: the chain run (9.7 s) and the embedding (9.5 s) are sessions
    // of their own (no session id: keyed by interception id), then s-2 (5 s), s-b (3 s), the
    // refused call (2 s) and s-1 (1 s).
    let got = ids(&all, "sessions");
    assert_eq!(all["count"], got.len());
    assert_eq!(got.len(), 6);
    let by_start = |ms: i64| {
        f.records
            .iter()
            .find(|r| r.started_at == at(ms))
            .unwrap()
            .id
            .to_string()
    };
    assert_eq!(
        got,
        [
            by_start(9_700),
            by_start(9_500),
            "s-2".into(),
            "s-b".into(),
            by_start(2_000),
            "s-1".into()
        ]
    );
    let s1 = &all["sessions"][5];
    assert_eq!(s1["initiator"], "alice");
    assert_eq!(s1["interceptions"], 4);
    assert_eq!(s1["threads"], 1);
    assert_eq!(s1["models"], json!(["gpt-4o", "gpt-4o-mini"]));
    assert_eq!(s1["last_prompt"], "prompt 1300");
    assert_eq!(
        s1["token_usage_summary"],
        json!({"input_tokens": 400, "output_tokens": 80, "cache_read_input_tokens": 40,
               "cache_write_input_tokens": 0, "cost": 1.5})
    );
    // Filters: client and session_id among the nine keys.
    assert_eq!(
        ids(
            &f.get("/api/v1/sessions?q=client:claude-code").await,
            "sessions"
        ),
        ["s-2"]
    );
    assert_eq!(
        ids(
            &f.get("/api/v1/sessions?q=session_id:s-b").await,
            "sessions"
        ),
        ["s-b"]
    );
    // Cursor and offset agree.
    let first = f.get("/api/v1/sessions?limit=2").await;
    let next = first["next_cursor"].as_str().unwrap();
    assert_eq!(first["sessions"][1]["cursor"].as_str(), Some(next));
    let by_cursor = f
        .get(&format!("/api/v1/sessions?limit=2&after={next}"))
        .await;
    let by_offset = f.get("/api/v1/sessions?limit=2&offset=2").await;
    assert_eq!(by_cursor["sessions"], by_offset["sessions"]);
    assert_eq!(ids(&by_cursor, "sessions"), got[2..4]);
}

#[tokio::test]
async fn session_threads_with_calls_and_pages() {
    let f = Fixture::new().await;
    let s = f.get("/api/v1/sessions/s-1").await;
    assert_eq!(s["id"], "s-1");
    assert_eq!(s["initiators"], json!(["alice"]));
    assert_eq!(s["thread_count"], 1);
    let t = &s["threads"][0];
    assert_eq!(t["prompt"], "prompt 1000");
    assert_eq!(
        t["agentic_actions"].as_array().unwrap().len(),
        4,
        "root and three calls"
    );
    assert_eq!(t["agentic_actions"][1]["tool_calls"][0]["tool"], "search");
    assert_eq!(t["agentic_actions"][1]["model"], "gpt-4o-mini");
    assert_eq!(t["token_usage"]["input_tokens"], 400);
    assert_eq!(s["token_usage_summary"]["output_tokens"], 80);
    assert_eq!(s["page_started_at"], "2026-01-01T00:00:01Z");

    // s-2: four roots; pages forward and backward.
    let page = f.get("/api/v1/sessions/s-2?limit=2").await;
    let roots = |v: &Value| -> Vec<String> {
        v["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["prompt"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(roots(&page), ["prompt 5000", "prompt 6000"]);
    assert_eq!(page["thread_count"], 4);
    assert_eq!(
        page["token_usage_summary"]["input_tokens"], 400,
        "all threads, not the page"
    );
    let last = page["threads"][1]["id"].as_str().unwrap();
    let after = f
        .get(&format!("/api/v1/sessions/s-2?limit=2&after_id={last}"))
        .await;
    assert_eq!(roots(&after), ["prompt 7000", "prompt 8000"]);
    let first_of_after = after["threads"][0]["id"].as_str().unwrap();
    let before = f
        .get(&format!(
            "/api/v1/sessions/s-2?limit=1&before_id={first_of_after}"
        ))
        .await;
    assert_eq!(roots(&before), ["prompt 6000"]);
    let filtered = f
        .get("/api/v1/sessions/s-2?q=started_after:2026-01-01T00:00:07Z")
        .await;
    assert_eq!(roots(&filtered), ["prompt 7000", "prompt 8000"]);
    assert_eq!(f.error("/api/v1/sessions/unknown").await.0, 404);
}

// ---------------------------------------------------------------------------------------------
// Test-match

async fn test_match(f: &Fixture, token: &str, context: Value) -> (StatusCode, Value) {
    f.call(
        "POST",
        "/api/v1/routerpolicies/test-match",
        Some(token),
        Some(json!({ "context": context })),
    )
    .await
}

#[tokio::test]
async fn test_match_policies_mux_rules_and_declared_models() {
    let f = Fixture::new().await;
    // No policy: the workspace's mux rules (py first for a .py file).
    let (status, r) = test_match(
        &f,
        "admin",
        json!({"model": "gpt-4o", "filenames": ["src/app.py"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["workspace"], "team-a/research", "the default workspace");
    assert_eq!(r["matched_policies"], json!([]));
    assert!(r.get("selected_policy").is_none());
    assert_eq!(
        (r["source"].as_str(), r["rule"].as_str()),
        (Some("muxrule"), Some("team-a/py"))
    );
    assert_eq!(r["logical_model_id"], "gpt-4o-mini");
    assert_eq!(r["target"]["kind"], "provider");
    assert_eq!(r["target"]["key"], "team-a/openai-main");
    assert_eq!(r["target"]["provider_type"], "openai");
    assert_eq!(r["target"]["url"], "http://127.0.0.1:9/v1");
    assert_eq!(
        r["route_header"],
        "muxrule=team-a/py; target=provider/openai-main; model=gpt-4o-mini"
    );
    // Vision and tags: policies, in priority order; the first is selected.
    let (_, r) = test_match(
        &f,
        "admin",
        json!({"model": "gpt-4o", "vision": true, "tags": {"tier": "gold"}, "purpose": "review", "workspace": "team-a/research"}),
    )
    .await;
    let matched: Vec<&str> = r["matched_policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(matched, ["team-a/vision", "team-a/tagged"]);
    assert_eq!(r["selected_policy"]["key"], "team-a/vision");
    assert_eq!(r["source"], "policy");
    assert_eq!(r["logical_model_id"], "gpt-4o");
    assert_eq!(
        r["route_header"],
        "policy=team-a/vision; target=provider/openai-main; model=gpt-4o"
    );
    // A tag that does not match leaves only vision; purpose alone is not enough for tagged.
    let (_, r) = test_match(&f, "admin", json!({"model": "gpt-4o", "purpose": "review"})).await;
    assert_eq!(r["source"], "muxrule");
    assert_eq!(r["rule"], "team-a/all");
    assert_eq!(
        r["logical_model_id"], "gpt-4o",
        "catch_all keeps the requested model"
    );
    // team-b: its own workspace, by bare name.
    let (_, r) = test_match(&f, "admin", json!({"model": "x", "workspace": "ops"})).await;
    assert_eq!(r["workspace"], "team-b/ops");
    assert_eq!(r["target"]["provider_type"], "anthropic");
    assert_eq!(
        r["route"],
        json!([{"kind": "provider", "key": "team-b/claude", "model": "x"}])
    );
}

#[tokio::test]
async fn test_match_resolves_affinity_group_members() {
    let f = Fixture::new().await;
    // Embeddings: the policy routes to the session-affinity group; with a session id the
    // member is deterministic, and the same session always gets the same member.
    let ctx =
        json!({"model": "text-embed", "endpoint_type": "embeddings", "session_id": "sess-42"});
    let (status, r) = test_match(&f, "admin", ctx.clone()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["selected_policy"]["key"], "team-a/embeddings-local");
    assert_eq!(r["logical_model_id"], "llama3");
    let g = &r["target"]["group"];
    assert_eq!(g["strategy"], "session_affinity");
    let member = g["selected_member"].as_str().unwrap().to_owned();
    assert!(["team-a/gpu-1", "team-a/gpu-2"].contains(&member.as_str()));
    assert_eq!(g["eligible_members"].as_array().unwrap().len(), 2);
    let url = if member == "team-a/gpu-1" {
        "http://10.0.0.1:8000/v1"
    } else {
        "http://10.0.0.2:11434/v1"
    };
    assert_eq!(r["target"]["url"], url);
    for _ in 0..3 {
        assert_eq!(
            test_match(&f, "admin", ctx.clone()).await.1["target"]["group"]["selected_member"],
            member.as_str()
        );
    }
    assert_eq!(
        r["route"],
        json!([
            {"kind": "affinitygroup", "key": "team-a/llamas", "model": "llama3"},
            {"kind": "provider", "key": "team-a/openai-main", "model": "gpt-4o-mini"}
        ])
    );
    assert_eq!(
        r["route_header"],
        "policy=team-a/embeddings-local; target=affinitygroup/llamas; model=llama3"
    );
    // Without a session: the eligible members only.
    let (_, r) = test_match(
        &f,
        "admin",
        json!({"model": "text-embed", "endpoint_type": "embeddings"}),
    )
    .await;
    assert!(r["target"]["group"].get("selected_member").is_none(), "{r}");
    // Round robin (the `local` mux rule): eligible members, no pick.
    let (_, r) = test_match(&f, "admin", json!({"model": "llama3"})).await;
    assert_eq!(r["rule"], "team-a/local");
    let g = &r["target"]["group"];
    assert_eq!(g["strategy"], "round_robin");
    assert!(g.get("selected_member").is_none());
    assert_eq!(
        g["eligible_members"],
        json!([{"backend": "team-a/gpu-1", "healthy": true}, {"backend": "team-a/gpu-2", "healthy": true}])
    );
}

#[tokio::test]
async fn test_match_errors_and_authorization() {
    let f = Fixture::new().await;
    // A workspace that does not exist: 404 naming the field; bad bodies: 400.
    let (status, r) = test_match(
        &f,
        "admin",
        json!({"model": "m", "workspace": "team-a/nope"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(status, &r);
    assert_eq!(r["error"]["param"], "context.workspace");
    let (status, r) = test_match(&f, "admin", json!({"model": ""})).await;
    assert_eq!(
        (status, r["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("context.model"))
    );
    for body in [
        json!({}),
        json!({"context": {"model": "m", "colour": 1}}),
        json!({"context": {"model": "m", "endpoint_type": "fax"}}),
    ] {
        let (status, r) = f
            .call(
                "POST",
                "/api/v1/routerpolicies/test-match",
                Some("admin"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
        assert_error_shape(status, &r);
    }
    // No route: a 200 that says why (the data plane would answer 404 model_not_found).
    let (status, r) = test_match(
        &f,
        "admin",
        json!({"model": "m", "workspace": "team-b/quiet"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(
        r.get("target").is_none() && r.get("source").is_none(),
        "{r}"
    );
    assert_eq!(r["route"], json!([]));
    assert!(
        r["no_route"]
            .as_str()
            .unwrap()
            .contains("no route for model \"m\""),
        "{r}"
    );
    // Authorization: list routerpolicies in the workspace's namespace.
    let (status, _) = test_match(
        &f,
        "alice",
        json!({"model": "m", "workspace": "team-b/ops"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = test_match(&f, "alice", json!({"model": "m", "workspace": "ops"})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "resolved by name, then authorized"
    );
    let (status, _) = test_match(&f, "alice", json!({"model": "m"})).await;
    assert_eq!(status, StatusCode::OK, "the default workspace is in team-a");
    assert!(
        f.asked()
            .iter()
            .all(|(_, a)| a.resource == "routerpolicies" && a.verb == "list")
    );
    let (status, _) = test_match(&f, "bob", json!({"model": "m", "workspace": "ops"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "bob may only get workspaces");
    // The store is untouched by a dry run.
    assert_eq!(
        f.store.count(&Default::default()).await.unwrap(),
        f.records.len() as u64
    );
}
