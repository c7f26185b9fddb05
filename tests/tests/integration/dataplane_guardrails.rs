//! Acceptance point 7: workspace guardrails. Redaction replaces a finding before the upstream
//! sees it; block refuses the request in the caller's dialect without calling the upstream;
//! alert lets it through. Whatever the action, the record keeps an alert with a redacted
//! snippet and never the secret, and the recorded prompt is redacted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_crds::workspace::GuardrailAction;
use switchyard_dataplane::guardrails::Category;
use switchyard_dataplane::record::{Interception, Outcome};
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::manifests::{guardrails, provider, workspace};
use switchyard_tests::harness::{Answer, Gateway};

/// A GitHub personal access token shape (`ghp_` + 36 alphanumerics), fake.
const TOKEN: &str = "ghp_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2";
const EMAIL: &str = "jane.doe@example.com";

async fn setup() -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = mock.base_url();
    let gw = Gateway::start_objects(&[
        guardrails(workspace("redacting", true), "redact", "redact"),
        guardrails(workspace("blocking", false), "block", "alert"),
        guardrails(workspace("alerting", false), "alert", "alert"),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
        provider("claude", "anthropic", &base, &["claude-mock"]),
    ])
    .await
    .unwrap();
    (mock, gw)
}

fn prompt() -> String {
    format!("deploy with token {TOKEN} and mail {EMAIL} when done")
}

fn openai(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt()}]})
}

fn anthropic(model: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": prompt()}]})
}

async fn send(gw: &Gateway, path: &str, body: &Value, ws: &str) -> Answer {
    gw.post_with(
        path,
        body,
        &[
            ("x-switchyard-workspace", ws),
            ("anthropic-version", "2023-06-01"),
        ],
    )
    .await
    .unwrap()
}

/// The record keeps the findings and never the secret.
fn assert_record_is_clean(
    r: &Interception,
    action: GuardrailAction,
    email_action: GuardrailAction,
) {
    let text = serde_json::to_string(r).unwrap();
    assert!(!text.contains(TOKEN), "record holds the token: {text}");
    assert!(!text.contains(EMAIL), "record holds the email: {text}");
    let prompt = r.user_prompt.as_deref().unwrap();
    assert!(prompt.contains("[REDACTED:github_token]"), "{prompt}");
    assert!(prompt.contains("[REDACTED:email]"), "{prompt}");
    let token = r.alerts.iter().find(|a| a.kind == "github_token").unwrap();
    assert_eq!(token.category, Category::Secrets);
    assert_eq!(token.action, action);
    assert!(
        token.snippet.contains("[REDACTED:github_token]"),
        "{:?}",
        token
    );
    assert!(
        token.snippet.contains("deploy with token"),
        "context kept: {:?}",
        token
    );
    assert!(
        token.location.starts_with("/messages/0/content"),
        "{:?}",
        token
    );
    let email = r.alerts.iter().find(|a| a.kind == "email").unwrap();
    assert_eq!(email.category, Category::Pii);
    assert_eq!(email.action, email_action);
}

#[tokio::test]
async fn redaction_happens_before_the_upstream_in_both_dialects() {
    let (mock, gw) = setup().await;
    for (path, body) in [
        ("/v1/chat/completions", openai("gpt-mock")),
        ("/v1/messages", anthropic("claude-mock")),
        ("/v1/chat/completions", openai("claude-mock")),
        ("/v1/messages", anthropic("gpt-mock")),
    ] {
        mock.clear();
        let a = send(&gw, path, &body, "redacting").await;
        assert_eq!(a.status, 200, "{}", a.text);
        let got = mock.requests();
        assert_eq!(got.len(), 1);
        let sent = String::from_utf8_lossy(&got[0].raw_body).into_owned();
        assert!(
            !sent.contains(TOKEN) && !sent.contains(EMAIL),
            "the upstream saw a finding: {sent}"
        );
        assert!(
            sent.contains("deploy with token [REDACTED:github_token] and mail [REDACTED:email]"),
            "{sent}"
        );
        assert!(
            !a.text.contains(TOKEN),
            "the echo comes from the redacted prompt"
        );
        let recs = gw.records_of(&a.request_id()).await.unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].outcome, Outcome::Success);
        assert_record_is_clean(&recs[0], GuardrailAction::Redact, GuardrailAction::Redact);
    }
    let metrics = gw.metrics_text();
    assert!(
        metrics
            .contains(r#"switchyard_guardrail_alerts_total{category="secrets",action="redact"} 4"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn block_refuses_in_the_callers_dialect_and_calls_nothing() {
    let (mock, gw) = setup().await;
    let a = send(&gw, "/v1/chat/completions", &openai("gpt-mock"), "blocking").await;
    assert_eq!(a.status, 400, "{}", a.text);
    let e = a.json().unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "guardrail_blocked");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("github_token")
    );
    assert!(!a.text.contains(TOKEN));

    let b = send(&gw, "/v1/messages", &anthropic("claude-mock"), "blocking").await;
    assert_eq!(b.status, 400, "{}", b.text);
    let e = b.json().unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("blocked"));

    let mut s = openai("gpt-mock");
    s["stream"] = json!(true);
    let c = send(&gw, "/v1/chat/completions", &s, "blocking").await;
    assert_eq!(
        c.status, 400,
        "a streamed request is refused before any stream starts: {}",
        c.text
    );
    assert!(
        c.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );

    assert!(mock.requests().is_empty(), "the upstream received nothing");
    for x in [&a, &b, &c] {
        let recs = gw.records_of(&x.request_id()).await.unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].status, recs[0].outcome), (400, Outcome::Rejected));
        assert!(recs[0].attempts.is_empty());
        assert_record_is_clean(&recs[0], GuardrailAction::Block, GuardrailAction::Alert);
    }
}

#[tokio::test]
async fn alert_lets_the_request_through_but_the_record_is_redacted() {
    let (mock, gw) = setup().await;
    let a = send(&gw, "/v1/chat/completions", &openai("gpt-mock"), "alerting").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got = mock.requests();
    assert_eq!(
        got[0].body["messages"][0]["content"],
        prompt(),
        "alert changes nothing upstream"
    );
    let recs = gw.records_of(&a.request_id()).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_record_is_clean(&recs[0], GuardrailAction::Alert, GuardrailAction::Alert);

    let s = send(
        &gw,
        "/v1/messages",
        &{
            let mut b = anthropic("claude-mock");
            b["stream"] = json!(true);
            b
        },
        "alerting",
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.text);
    let recs = gw.records_of(&s.request_id()).await.unwrap();
    assert_record_is_clean(&recs[0], GuardrailAction::Alert, GuardrailAction::Alert);
    assert!(!gw.spool_text().contains(TOKEN));
    assert!(
        !std::fs::read_to_string(gw.records_path())
            .unwrap()
            .contains(TOKEN)
    );
}

#[tokio::test]
async fn a_request_refused_before_the_guardrails_ran_is_recorded_redacted_too() {
    let (mock, gw) = setup().await;
    let mut ids = Vec::new();
    for (body, headers) in [
        (openai("no-such-model"), vec![]),
        (
            openai("no-such-model"),
            vec![("x-switchyard-workspace", "alerting")],
        ),
        (
            openai("gpt-mock"),
            vec![("x-switchyard-workspace", "ghost")],
        ),
    ] {
        let a = gw
            .post_with("/v1/chat/completions", &body, &headers)
            .await
            .unwrap();
        assert_eq!(a.status, 404, "{}", a.text);
        ids.push(a.request_id());
    }
    for id in ids {
        let r = gw.record_of(&id).await.unwrap();
        assert_eq!(r.outcome, Outcome::Rejected);
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains(TOKEN) && !text.contains(EMAIL), "{text}");
        assert!(
            r.user_prompt
                .unwrap()
                .contains("deploy with token [REDACTED:github_token]")
        );
    }
    assert!(mock.requests().is_empty());
}

/// One caller text field per case: the endpoint, a body carrying [`TOKEN`] in that field only,
/// and a name for failure messages. Every dialect and endpoint the gateway serves.
fn field_cases() -> Vec<(&'static str, &'static str, Value)> {
    let t = TOKEN;
    let user = |extra: Value| {
        let mut m = json!({"role": "user", "content": "hello"});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    let chat = |extra: Value| {
        let mut b =
            json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hello"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let claude = |extra: Value| {
        let mut b = json!({"model": "claude-mock", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let tool = |description: &str, param_description: &str| {
        json!({"type": "function", "function": {"name": "lookup", "description": description,
            "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": param_description}}}}})
    };
    let chat_path = "/v1/chat/completions";
    let messages_path = "/v1/messages";
    vec![
        // OpenAI chat.
        (
            "message name",
            chat_path,
            chat(json!({"messages": [user(json!({"name": t}))]})),
        ),
        ("user", chat_path, chat(json!({"user": t}))),
        (
            "text part",
            chat_path,
            chat(json!({"messages": [{"role": "user", "content": [{"type": "text", "text": t}]}]})),
        ),
        (
            "developer message",
            chat_path,
            chat(
                json!({"messages": [{"role": "developer", "content": t}, {"role": "user", "content": "hi"}]}),
            ),
        ),
        (
            "tool description",
            chat_path,
            chat(json!({"tools": [tool(t, "query")]})),
        ),
        (
            "tool parameter description",
            chat_path,
            chat(json!({"tools": [tool("Look up", t)]})),
        ),
        (
            "tool name in tool_choice",
            chat_path,
            chat(
                json!({"tools": [tool("Look up", "q")], "tool_choice": {"type": "function", "function": {"name": t}}}),
            ),
        ),
        (
            "response_format description",
            chat_path,
            chat(
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "description": t, "schema": {"type": "object"}}}}),
            ),
        ),
        (
            "response_format schema",
            chat_path,
            chat(
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "string", "description": t}}}}}}),
            ),
        ),
        (
            "metadata value",
            chat_path,
            chat(json!({"metadata": {"ticket": t}})),
        ),
        (
            "stop sequence",
            chat_path,
            chat(json!({"stop": ["END", t]})),
        ),
        (
            "tool call arguments",
            chat_path,
            chat(json!({"messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": format!("{{\"q\": \"{t}\"}}")}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ]})),
        ),
        (
            "tool message content",
            chat_path,
            chat(json!({"messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": t}]},
            ]})),
        ),
        (
            "prediction",
            chat_path,
            chat(json!({"prediction": {"type": "content", "content": t}})),
        ),
        // OpenAI completions and embeddings.
        (
            "prompt",
            "/v1/completions",
            json!({"model": "gpt-mock", "prompt": format!("deploy {t}")}),
        ),
        (
            "prompt array",
            "/v1/completions",
            json!({"model": "gpt-mock", "prompt": ["a", t]}),
        ),
        (
            "suffix",
            "/v1/completions",
            json!({"model": "gpt-mock", "prompt": "def f(", "suffix": t}),
        ),
        (
            "completions user",
            "/v1/completions",
            json!({"model": "gpt-mock", "prompt": "x", "user": t}),
        ),
        (
            "completions stop",
            "/v1/completions",
            json!({"model": "gpt-mock", "prompt": "x", "stop": t}),
        ),
        (
            "input",
            "/v1/embeddings",
            json!({"model": "gpt-mock", "input": t}),
        ),
        (
            "input array",
            "/v1/embeddings",
            json!({"model": "gpt-mock", "input": ["a", t]}),
        ),
        (
            "embeddings user",
            "/v1/embeddings",
            json!({"model": "gpt-mock", "input": "x", "user": t}),
        ),
        // Anthropic messages.
        ("system string", messages_path, claude(json!({"system": t}))),
        (
            "system blocks",
            messages_path,
            claude(
                json!({"system": [{"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}]}),
            ),
        ),
        (
            "content blocks",
            messages_path,
            claude(
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": t}]}]}),
            ),
        ),
        (
            "tool_use input",
            messages_path,
            claude(json!({"messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "tu1", "name": "lookup", "input": {"q": t}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "ok"}]},
            ]})),
        ),
        (
            "tool_result nested content",
            messages_path,
            claude(json!({"messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "tu1", "name": "lookup", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": [{"type": "text", "text": t}]}]},
            ]})),
        ),
        (
            "anthropic tool description",
            messages_path,
            claude(
                json!({"tools": [{"name": "lookup", "description": t, "input_schema": {"type": "object"}}]}),
            ),
        ),
        (
            "anthropic input_schema description",
            messages_path,
            claude(
                json!({"tools": [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object", "properties": {"q": {"type": "string", "description": t}}}}]}),
            ),
        ),
        (
            "anthropic metadata",
            messages_path,
            claude(json!({"metadata": {"user_id": t}})),
        ),
        (
            "stop_sequences",
            messages_path,
            claude(json!({"stop_sequences": [t]})),
        ),
        (
            "document text source",
            messages_path,
            claude(json!({"messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": t}, "title": "notes"},
                {"type": "text", "text": "summarise"},
            ]}]})),
        ),
    ]
}

/// A content sent as an object (not a string or an array), in each dialect.
fn object_content_cases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/v1/chat/completions",
            json!({"model": "gpt-mock", "messages": [{"role": "user", "content": {"type": "text", "text": TOKEN}}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "claude-mock", "max_tokens": 50, "messages": [{"role": "user", "content": {"type": "text", "text": TOKEN}}]}),
        ),
    ]
}

/// Every request the mock received, as sent.
fn received(mock: &MockUpstream) -> String {
    mock.requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.raw_body).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn redact_covers_every_caller_text_field_of_every_endpoint() {
    let (mock, gw) = setup().await;
    for (name, path, body) in field_cases() {
        mock.clear();
        let a = send(&gw, path, &body, "redacting").await;
        assert_eq!(a.status, 200, "{name}: {}", a.text);
        let sent = received(&mock);
        assert_eq!(mock.requests().len(), 1, "{name}");
        assert!(
            !sent.contains(TOKEN),
            "{name}: the upstream saw the key: {sent}"
        );
        // The gateway does not forward OpenAI `metadata` (it is for stored completions).
        assert!(
            name == "metadata value" || sent.contains("[REDACTED:github_token]"),
            "{name}: the field was not forwarded redacted: {sent}"
        );
        let rec = gw.record_of(&a.request_id()).await.unwrap();
        assert!(
            rec.alerts.iter().any(|x| x.kind == "github_token"),
            "{name}: no alert"
        );
        // The whole record (initiator from `user`, metadata, prompt, alerts) keeps no finding.
        let whole = serde_json::to_string(&rec).unwrap();
        assert!(
            !whole.contains(TOKEN),
            "{name}: the record holds the key: {whole}"
        );
        let alerts = serde_json::to_string(&rec.alerts).unwrap();
        assert!(!alerts.contains(TOKEN), "{name}: an alert holds the key");
        let prompt = rec.user_prompt.unwrap_or_default();
        assert!(
            !prompt.contains(TOKEN),
            "{name}: the recorded prompt holds the key"
        );
    }
    for (path, body) in object_content_cases() {
        mock.clear();
        let a = send(&gw, path, &body, "redacting").await;
        assert!(
            !received(&mock).contains(TOKEN),
            "{path}: content object leaked"
        );
        assert!(!a.text.contains(TOKEN), "{path}: the answer echoes the key");
    }
}

#[tokio::test]
async fn block_and_alert_see_the_same_fields_as_redact() {
    let (mock, gw) = setup().await;
    for (name, path, body) in field_cases() {
        let a = send(&gw, path, &body, "blocking").await;
        assert_eq!(a.status, 400, "{name}: {}", a.text);
        assert!(a.text.contains("github_token"), "{name}: {}", a.text);
        assert!(
            !a.text.contains(TOKEN),
            "{name}: the refusal echoes the key"
        );
        let rec = gw.record_of(&a.request_id()).await.unwrap();
        let alert = rec.alerts.iter().find(|x| x.kind == "github_token");
        assert_eq!(
            alert.map(|x| x.action),
            Some(GuardrailAction::Block),
            "{name}"
        );
    }
    for (path, body) in object_content_cases() {
        let a = send(&gw, path, &body, "blocking").await;
        assert_eq!(a.status, 400, "{path}: {}", a.text);
        assert!(
            !a.text.contains(TOKEN),
            "{path}: the refusal echoes the key"
        );
    }
    assert!(
        mock.requests().is_empty(),
        "a blocked request reached the upstream: {}",
        received(&mock)
    );
    for (name, path, body) in field_cases() {
        let a = send(&gw, path, &body, "alerting").await;
        assert_eq!(a.status, 200, "{name}: {}", a.text);
        let rec = gw.record_of(&a.request_id()).await.unwrap();
        let alert = rec.alerts.iter().find(|x| x.kind == "github_token");
        assert_eq!(
            alert.map(|x| x.action),
            Some(GuardrailAction::Alert),
            "{name}"
        );
    }
}
