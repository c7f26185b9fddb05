//! What coding agents call besides generation: `POST /v1/messages/count_tokens` (forwarded to
//! an Anthropic target, estimated for the others, recorded unbilled), `GET /v1/models/{id}` in
//! both dialects, paths the gateway does not serve (404 in the caller's dialect, counted by a
//! closed set of labels) and the client names of real agents' User-Agents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use switchyard_dataplane::count_tokens::{
    Encoding, REPLY_PRIMING, TOKENS_PER_MESSAGE, text_tokens,
};
use switchyard_dataplane::record::Outcome;
use switchyard_dataplane::server::{METHOD_NOT_ALLOWED, OTHER_PATH, UNSUPPORTED_PATHS};
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::manifests::{
    api_key, guardrails, mux_rule, provider, secret, task_chain, to_provider, workspace,
};
use switchyard_tests::harness::{Gateway, GatewayOptions};

const ANTHROPIC_KEY: &str = "sk-ant-count-tokens-key-0123456789";
const COUNT_PATH: &str = "/v1/messages/count_tokens";

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// What the count-tokens test server received.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

/// An Anthropic `count_tokens` endpoint that checks the provider key: `{"input_tokens": 42}`,
/// or, for a first message `fail 500` / `fail 400`, that error (the 400 naming the key, which
/// the gateway must scrub).
async fn count_server() -> (String, Received) {
    async fn count(
        State(got): State<Received>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        got.0.lock().unwrap().push((headers.clone(), body.clone()));
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(ANTHROPIC_KEY) {
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            )
                .into_response();
        }
        match body.pointer("/messages/0/content").and_then(Value::as_str) {
            Some("fail 500") => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
            Some("fail 400") => (
                StatusCode::BAD_REQUEST,
                json!({"type": "error", "error": {"type": "invalid_request_error",
                    "message": format!("messages: bad block (key {ANTHROPIC_KEY})")}})
                .to_string(),
            )
                .into_response(),
            _ => (
                [("content-type", "application/json")],
                r#"{"input_tokens":42}"#,
            )
                .into_response(),
        }
    }
    let got = Received::default();
    let app = axum::Router::new()
        .route(COUNT_PATH, axum::routing::post(count))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

/// Counting tokens: an Anthropic provider `claude` (keyed) at the count server, an OpenAI
/// provider for `gpt-4o` and a vLLM provider for `llama-3.1-8b` at the mock, and a workspace
/// with a small token limit (so a count that charged tokens would refuse what follows).
async fn counting(count_url: &str, mock: &MockUpstream) -> Gateway {
    let base = mock.base_url();
    let mut ws = workspace("default", true);
    ws["spec"]["limits"] = json!({"tokensPerMinute": 20});
    Gateway::start_objects(&[
        ws,
        secret("keys", &[("anthropic", ANTHROPIC_KEY)]),
        api_key(
            provider("claude", "anthropic", count_url, &["claude-mock"]),
            "keys",
            "anthropic",
        ),
        provider(
            "openai",
            "openai",
            &format!("{base}/v1"),
            &["gpt-4o", "demo-fast"],
        ),
        provider("local", "vllm", &format!("{base}/v1"), &["llama-3.1-8b"]),
    ])
    .await
    .unwrap()
}

fn count_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn count_tokens_is_forwarded_to_an_anthropic_target_with_its_key() {
    let (url, got) = count_server().await;
    let mock = mock().await;
    let gw = counting(&url, &mock).await;
    // A Messages body as Claude Code reuses it: the fields counting refuses are dropped.
    let body = json!({
        "model": "claude-mock", "max_tokens": 1024, "stream": true,
        "metadata": {"user_id": "user_abc_account__session_5e55-10n"},
        "system": "You are Claude Code.",
        "messages": [{"role": "user", "content": "count me"}],
        "tools": [{"name": "ls", "description": "list", "input_schema": {"type": "object"}}]
    });
    let a = gw
        .post_with(
            COUNT_PATH,
            &body,
            &[
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", "token-counting-2024-11-01"),
                ("user-agent", "claude-cli/2.0.69 (external, cli)"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json().unwrap(), json!({"input_tokens": 42}));
    assert_eq!(a.header("x-switchyard-token-count"), Some("upstream"));
    assert_eq!(
        a.route(),
        "model; target=provider/claude; model=claude-mock"
    );

    let received = got.0.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, sent) = &received[0];
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(h("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(h("anthropic-version"), Some("2023-06-01"));
    assert_eq!(h("anthropic-beta"), Some("token-counting-2024-11-01"));
    assert_eq!(h("x-request-id"), Some(a.request_id().as_str()));
    let keys: BTreeSet<&str> = sent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["messages", "model", "system", "tools"]),
        "{sent}"
    );
    assert!(mock.requests().is_empty(), "nothing generated");

    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.endpoint, COUNT_PATH);
    assert_eq!(r.status, 200);
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.client, "claude-code");
    assert_eq!(r.session_id.as_deref(), Some("5e55-10n"));
    assert_eq!(r.workspace.as_deref(), Some("default/default"));
    assert_eq!(r.provider.as_deref(), Some("anthropic"));
    assert_eq!(r.provider_name.as_deref(), Some("default/claude"));
    assert_eq!(r.usage.total(), 0, "unbilled: {:?}", r.usage);
    assert!(!r.usage_estimated);
    assert_eq!((r.cost.input, r.cost.output), (0.0, 0.0));
    assert!(!r.stream);

    // Counting charged no tokens: a generation is still admitted under the 20-token limit,
    // after which the limit (now spent) refuses.
    for _ in 0..3 {
        let c = gw.post(COUNT_PATH, &body).await.unwrap();
        assert_eq!(c.status, 200, "{}", c.text);
    }
    let chat = json!({"model": "demo-fast", "messages": [{"role": "user", "content": "a b c d e f g h i j k l m n o p q r s t u v w x y z"}]});
    let g = gw.post("/v1/chat/completions", &chat).await.unwrap();
    assert_eq!(g.status, 200, "{}", g.text);
    let refused = gw.post("/v1/chat/completions", &chat).await.unwrap();
    assert_eq!(
        refused.status, 429,
        "the token limit is live: {}",
        refused.text
    );
}

#[tokio::test]
async fn a_failed_forward_falls_back_to_the_estimate_a_refusal_is_relayed_scrubbed() {
    let (url, got) = count_server().await;
    let mock = mock().await;
    let gw = counting(&url, &mock).await;
    let a = gw
        .post(COUNT_PATH, &count_body("claude-mock", "fail 500"))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.header("x-switchyard-token-count"),
        Some("estimate; encoding=cl100k_base")
    );
    let expected = TOKENS_PER_MESSAGE
        + text_tokens("user", Encoding::Cl100kBase).unwrap()
        + text_tokens("fail 500", Encoding::Cl100kBase).unwrap()
        + REPLY_PRIMING;
    assert_eq!(a.json().unwrap()["input_tokens"], expected);
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.attempts.len(), 1, "{:?}", r.attempts);
    assert_eq!(r.attempts[0].status, Some(500));
    assert_eq!(r.usage.total(), 0);

    let b = gw
        .post_with(
            COUNT_PATH,
            &count_body("claude-mock", "fail 400"),
            &[("anthropic-version", "2023-06-01")],
        )
        .await
        .unwrap();
    assert_eq!(b.status, 400, "{}", b.text);
    let v = b.json().unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(!b.text.contains(ANTHROPIC_KEY), "{}", b.text);
    assert!(b.text.contains("[REDACTED]"), "{}", b.text);
    let r = gw.record_of(&b.request_id()).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.outcome, Outcome::UpstreamError);
    assert!(!serde_json::to_string(&r).unwrap().contains(ANTHROPIC_KEY));
    assert_eq!(r.usage.total(), 0);
    assert_eq!(got.0.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn count_tokens_is_estimated_with_the_targets_encoding_for_other_dialects() {
    let (url, got) = count_server().await;
    let mock = mock().await;
    let gw = counting(&url, &mock).await;
    let text = "Switchyard routes every request by workspace, mux rules and policies.";
    for (model, encoding) in [
        ("gpt-4o", Encoding::O200kBase),
        ("llama-3.1-8b", Encoding::Cl100kBase),
    ] {
        let body = json!({
            "model": model,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]
        });
        let a = gw
            .post_with(COUNT_PATH, &body, &[("user-agent", "pydantic-ai/1.0.10")])
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            a.header("x-switchyard-token-count").unwrap(),
            format!("estimate; encoding={}", encoding.as_str())
        );
        let t = |s: &str| text_tokens(s, encoding).unwrap();
        let expected = (TOKENS_PER_MESSAGE + t("system") + t("Be brief."))
            + (TOKENS_PER_MESSAGE + t("user") + t(text))
            + REPLY_PRIMING;
        assert_eq!(
            a.json().unwrap(),
            json!({"input_tokens": expected}),
            "{model}"
        );
        let r = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(r.endpoint, COUNT_PATH);
        assert_eq!(r.client, "pydantic-ai");
        assert_eq!(r.model_requested, model);
        assert_eq!(r.usage.total(), 0);
        assert!(r.provider.is_none(), "the gateway counted, no upstream");
    }
    // The tokenizer itself, on the cookbook's own example.
    assert_eq!(text_tokens("hello world", Encoding::O200kBase).unwrap(), 2);
    assert!(mock.requests().is_empty());
    assert!(got.0.lock().unwrap().is_empty());
    let metrics = gw.metrics_text();
    assert!(
        metrics.contains(r#"endpoint="/v1/messages/count_tokens""#),
        "{metrics}"
    );
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("switchyard_tokens_total") && l.contains("gpt-4o")),
        "no tokens counted: {metrics}"
    );
}

#[tokio::test]
async fn count_tokens_routes_like_messages_through_mux_rules() {
    let (url, got) = count_server().await;
    let mock = mock().await;
    let base = mock.base_url();
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        secret("keys", &[("anthropic", ANTHROPIC_KEY)]),
        api_key(
            provider("claude", "anthropic", &url, &["claude-mock"]),
            "keys",
            "anthropic",
        ),
        provider("openai", "openai", &format!("{base}/v1"), &["gpt-4o"]),
        mux_rule(
            "to-claude",
            "default",
            1,
            "catch_all",
            None,
            to_provider("claude", Some("claude-mock")),
        ),
    ])
    .await
    .unwrap();
    let a = gw
        .post(COUNT_PATH, &count_body("gpt-4o", "hi"))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-switchyard-token-count"), Some("upstream"));
    assert!(
        a.route().starts_with("muxrule=default/to-claude; "),
        "{}",
        a.route()
    );
    let received = got.0.lock().unwrap().clone();
    assert_eq!(received[0].1["model"], "claude-mock", "the rule's model");
}

#[tokio::test]
async fn counts_are_of_what_the_model_sees_instructions_and_guardrails_included() {
    const INSTRUCTIONS: &str = "Answer in French.";
    /// A GitHub personal access token shape, fake.
    const TOKEN: &str = "ghp_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2";
    let (url, got) = count_server().await;
    let mock = mock().await;
    let base = mock.base_url();
    let mut ws = guardrails(workspace("default", true), "block", "off");
    ws["spec"]["customInstructions"] = json!(INSTRUCTIONS);
    let mut redacting = guardrails(workspace("redacting", false), "redact", "off");
    redacting["spec"]["customInstructions"] = json!(INSTRUCTIONS);
    let gw = Gateway::start_objects(&[
        ws,
        redacting,
        secret("keys", &[("anthropic", ANTHROPIC_KEY)]),
        api_key(
            provider("claude", "anthropic", &url, &["claude-mock"]),
            "keys",
            "anthropic",
        ),
        provider("openai", "openai", &format!("{base}/v1"), &["gpt-4o"]),
    ])
    .await
    .unwrap();
    // The workspace's instructions are counted as the system prompt the model gets.
    let a = gw
        .post(COUNT_PATH, &count_body("gpt-4o", "hello"))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let t = |s: &str| text_tokens(s, Encoding::O200kBase).unwrap();
    let expected = (TOKENS_PER_MESSAGE + t("system") + t(INSTRUCTIONS))
        + (TOKENS_PER_MESSAGE + t("user") + t("hello"))
        + REPLY_PRIMING;
    assert_eq!(a.json().unwrap()["input_tokens"], expected);
    // A secret is refused where the workspace blocks them, nothing sent anywhere.
    let text = format!("my token is {TOKEN}");
    for model in ["gpt-4o", "claude-mock"] {
        let b = gw
            .post(COUNT_PATH, &count_body(model, &text))
            .await
            .unwrap();
        assert_eq!(b.status, 400, "{}", b.text);
        assert_eq!(b.json().unwrap()["type"], "error");
        assert!(b.text.contains("guardrails"), "{}", b.text);
        let r = gw.record_of(&b.request_id()).await.unwrap();
        assert!(!serde_json::to_string(&r).unwrap().contains(TOKEN));
        assert_eq!(r.alerts.len(), 1);
    }
    assert!(got.0.lock().unwrap().is_empty());
    // Redacted before it goes to the provider that counts, with the instructions.
    let c = gw
        .post_with(
            COUNT_PATH,
            &count_body("claude-mock", &text),
            &[("x-switchyard-workspace", "redacting")],
        )
        .await
        .unwrap();
    assert_eq!(c.status, 200, "{}", c.text);
    let received = got.0.lock().unwrap().clone();
    let sent = received[0].1.to_string();
    assert!(
        !sent.contains(TOKEN) && sent.contains("[REDACTED:"),
        "{sent}"
    );
    assert_eq!(received[0].1["system"], INSTRUCTIONS);
}

#[tokio::test]
async fn bad_count_requests_are_4xx_in_anthropics_shape_and_unbilled() {
    let (url, _got) = count_server().await;
    let mock = mock().await;
    let base = mock.base_url();
    let gw = Gateway::start_objects_with(
        &[
            workspace("default", true),
            provider("openai", "openai", &format!("{base}/v1"), &["gpt-4o"]),
            provider("claude", "anthropic", &url, &["claude-mock"]),
        ],
        GatewayOptions {
            max_body_bytes: Some(4096),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let big = count_body("gpt-4o", &"x".repeat(8192));
    for (body, status, what) in [
        (b"{not json".to_vec(), 400, "not JSON"),
        (
            serde_json::to_vec(&json!({"messages": [{"role": "user", "content": "x"}]})).unwrap(),
            400,
            "no model",
        ),
        (
            serde_json::to_vec(&json!({"model": "gpt-4o"})).unwrap(),
            400,
            "no messages",
        ),
        (
            serde_json::to_vec(
                &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}),
            )
            .unwrap(),
            400,
            "bad content",
        ),
        (
            serde_json::to_vec(&count_body("no-such-model", "x")).unwrap(),
            404,
            "no route",
        ),
        (serde_json::to_vec(&big).unwrap(), 413, "too large"),
    ] {
        let a = gw.post_raw(COUNT_PATH, body, &[]).await.unwrap();
        assert_eq!(a.status, status, "{what}: {}", a.text);
        let v = a.json().unwrap();
        assert_eq!(v["type"], "error", "{what}: Anthropic's shape");
        assert!(v["error"]["type"].is_string() && v["error"]["message"].is_string());
        let r = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(r.endpoint, COUNT_PATH, "{what}");
        assert_eq!(r.outcome, Outcome::Rejected, "{what}");
        assert_eq!(r.usage.total(), 0, "{what}");
    }
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn models_by_id_in_both_dialects_as_the_listing_has_them() {
    let mock = mock().await;
    let base = mock.base_url();
    let mut foreign = provider(
        "elsewhere",
        "openai",
        &format!("{base}/v1"),
        &["foreign-model"],
    );
    foreign["metadata"]["namespace"] = json!("other");
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        provider(
            "main",
            "openai",
            &format!("{base}/v1"),
            &["demo-fast", "meta-llama/Llama-3.1-8B"],
        ),
        provider("claude", "anthropic", &base, &["claude-mock"]),
        foreign,
        task_chain("triage", "demo-fast"),
    ])
    .await
    .unwrap();
    for (dialect, headers) in [
        ("openai", vec![]),
        ("anthropic", vec![("anthropic-version", "2023-06-01")]),
    ] {
        let list = gw.get("/v1/models", &headers).await.unwrap();
        assert_eq!(list.status, 200, "{}", list.text);
        let listed = list.json().unwrap()["data"].as_array().unwrap().clone();
        let ids: Vec<&str> = listed.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"meta-llama/Llama-3.1-8B") && ids.contains(&"chain/triage"));
        for m in &listed {
            let id = m["id"].as_str().unwrap();
            let one = gw.get(&format!("/v1/models/{id}"), &headers).await.unwrap();
            assert_eq!(one.status, 200, "{dialect} {id}: {}", one.text);
            assert_eq!(&one.json().unwrap(), m, "{dialect}: as listed");
        }
        let missing = gw.get("/v1/models/foreign-model", &headers).await.unwrap();
        assert_eq!(missing.status, 404, "another namespace's model");
        let v = missing.json().unwrap();
        match dialect {
            "openai" => {
                assert_eq!(v["error"]["code"], "model_not_found");
                assert_eq!(v["error"]["type"], "invalid_request_error");
            }
            _ => {
                assert_eq!(v["type"], "error");
                assert_eq!(v["error"]["type"], "not_found_error");
            }
        }
    }
    let o = gw
        .get("/v1/models/demo-fast", &[])
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        o,
        json!({"id": "demo-fast", "object": "model", "created": 0, "owned_by": "switchyard"})
    );
    let a = gw
        .get(
            "/v1/models/claude-mock",
            &[("anthropic-version", "2023-06-01")],
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        a,
        json!({"type": "model", "id": "claude-mock", "display_name": "claude-mock", "created_at": "1970-01-01T00:00:00Z"})
    );
}

/// A small deterministic generator (no dependency for random paths).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn segment(&mut self) -> String {
        const CHARS: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~:%";
        let len = 1 + self.next() % 24;
        (0..len)
            .map(|_| CHARS[(self.next() % CHARS.len() as u64) as usize] as char)
            .collect()
    }
}

fn unsupported_series(metrics: &str) -> Vec<(String, u64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("switchyard_unsupported_requests_total{path=\""))
        .filter_map(|rest| {
            let (label, value) = rest.split_once("\"} ")?;
            Some((label.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn unserved_paths_are_404_in_the_callers_dialect_with_closed_labels() {
    let mock = mock().await;
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        provider(
            "main",
            "openai",
            &format!("{}/v1", mock.base_url()),
            &["demo-fast"],
        ),
    ])
    .await
    .unwrap();
    let http = gw.http_client();
    // Known paths, with ids and query strings.
    for (method, path, label) in [
        // `/v1/responses` itself is served; its other sub-resources are not.
        ("GET", "/v1/responses/resp_123/input_items", "/v1/responses"),
        (
            "GET",
            "/v1/files/file-123/content?x=sk-secret-in-query",
            "/v1/files",
        ),
        ("POST", "/v1/audio/transcriptions", "/v1/audio/*"),
        ("POST", "/api/chat", "/api/chat"),
        ("GET", "/api/tags", "/api/tags"),
        (
            "POST",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "/v1beta/models/*",
        ),
        (
            "POST",
            "/model/anthropic.claude-v2/invoke",
            "/model/*/invoke*",
        ),
        ("POST", "/v1/messages/batches", "/v1/messages/batches"),
        ("GET", "/healthz", OTHER_PATH),
        ("GET", "/metrics", OTHER_PATH),
    ] {
        let req = http.request(method.parse().unwrap(), gw.url(path));
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["error"]["type"], "invalid_request_error",
            "{path}: OpenAI's shape"
        );
        assert_eq!(v["error"]["code"], "unsupported_path");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("not served") && !msg.contains("sk-secret"),
            "{msg}"
        );
        let series = unsupported_series(&gw.metrics_text());
        assert!(
            series.iter().any(|(l, n)| l == label && *n >= 1),
            "{label}: {series:?}"
        );
    }
    // Anthropic's shape when the caller speaks it.
    let a = gw
        .post_with(
            "/v1/complete",
            &json!({}),
            &[("anthropic-version", "2023-06-01")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 404);
    let v = a.json().unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("not_found_error"))
    );

    // A wrong method on a served path.
    let w = gw.get("/v1/chat/completions", &[]).await.unwrap();
    assert_eq!(w.status, 405, "{}", w.text);
    assert_eq!(w.json().unwrap()["error"]["code"], "method_not_allowed");
    let w = gw
        .get("/v1/messages", &[("anthropic-version", "2023-06-01")])
        .await
        .unwrap();
    assert_eq!(w.status, 405);
    assert_eq!(w.json().unwrap()["type"], "error");

    // A thousand random paths (some under known prefixes) leave a closed set of series.
    let mut rng = Lcg(0x5eed);
    for i in 0..1_000 {
        let mut path = String::new();
        if i % 3 == 0 {
            let (prefix, _) = UNSUPPORTED_PATHS[(rng.next() as usize) % UNSUPPORTED_PATHS.len()];
            path.push_str(prefix);
        }
        for _ in 0..(1 + rng.next() % 5) {
            path.push('/');
            path.push_str(&rng.segment());
        }
        let resp = http.post(gw.url(&path)).send().await.unwrap();
        assert!(
            matches!(resp.status().as_u16(), 404 | 405 | 400),
            "{path}: {}",
            resp.status()
        );
    }
    let mut allowed: BTreeSet<&str> = UNSUPPORTED_PATHS.iter().map(|(_, l)| *l).collect();
    allowed.extend([
        "/model/*/invoke*",
        "/model/*/converse*",
        OTHER_PATH,
        METHOD_NOT_ALLOWED,
    ]);
    let series = unsupported_series(&gw.metrics_text());
    assert!(series.len() <= allowed.len(), "{series:?}");
    for (label, _) in &series {
        assert!(
            allowed.contains(label.as_str()),
            "label {label} is not of the set"
        );
    }
    let total: u64 = series.iter().map(|(_, n)| n).sum();
    assert!(total >= 1_000, "every unserved request counted: {total}");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn records_name_the_agents_of_real_user_agents() {
    let mock = mock().await;
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        provider(
            "main",
            "openai",
            &format!("{}/v1", mock.base_url()),
            &["demo-fast"],
        ),
    ])
    .await
    .unwrap();
    let body = json!({"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]});
    for (headers, client) in [
        (
            vec![("user-agent", "claude-cli/2.0.69 (external, cli)")],
            "claude-code",
        ),
        (
            vec![
                (
                    "user-agent",
                    "codex_cli_rs/0.46.0 (Mac OS 15.1.0; arm64) iTerm.app/3.5.10",
                ),
                ("originator", "codex_cli_rs"),
            ],
            "codex",
        ),
        (vec![("user-agent", "Agents/Python 0.3.2")], "openai-agents"),
        (
            vec![(
                "user-agent",
                "ai-sdk/openai/2.0.30 ai-sdk/provider-utils/3.0.9 runtime/node.js/22",
            )],
            "vercel-ai-sdk",
        ),
        (
            vec![(
                "user-agent",
                "langchainjs-openai/1.0.0 (node/v22.3.0; linux; x64)",
            )],
            "langchain-js",
        ),
        (vec![("user-agent", "Cline/3.74.0")], "cline"),
        (
            vec![("user-agent", "OpenAI/Python 1.99.0")],
            "openai-python",
        ),
        (vec![("user-agent", "my-agent/2.1 (linux)")], "my-agent"),
        (vec![], "unknown"),
    ] {
        let a = gw
            .post_with("/v1/chat/completions", &body, &headers)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        let r = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(r.client, client, "{headers:?}");
    }
}
