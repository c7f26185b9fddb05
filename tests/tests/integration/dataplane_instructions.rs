//! Acceptance point 8: a workspace's custom instructions reach the upstream as the first
//! system message (OpenAI dialect) or prepended to `system` (Anthropic), also through
//! translation, streamed or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::Gateway;
use switchyard_tests::harness::manifests::{provider, workspace};

const INSTRUCTIONS: &str = "Always answer in French.";

async fn setup() -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = mock.base_url();
    let mut ws = workspace("default", true);
    ws["spec"]["customInstructions"] = json!(INSTRUCTIONS);
    let gw = Gateway::start_objects(&[
        ws,
        workspace("plain", false),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
        provider("claude", "anthropic", &base, &["claude-mock"]),
    ])
    .await
    .unwrap();
    (mock, gw)
}

async fn upstream_body(
    gw: &Gateway,
    mock: &MockUpstream,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Value {
    mock.clear();
    let mut h = vec![("anthropic-version", "2023-06-01")];
    h.extend_from_slice(headers);
    let a = gw.post_with(path, &body, &h).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    mock.requests().pop().unwrap().body
}

fn openai_body(model: &str, with_system: bool, stream: bool) -> Value {
    let mut messages = vec![json!({"role": "user", "content": "bonjour"})];
    if with_system {
        messages.insert(0, json!({"role": "system", "content": "You are a tutor."}));
    }
    json!({"model": model, "stream": stream, "max_tokens": 30, "messages": messages})
}

fn anthropic_body(model: &str, system: Option<Value>, stream: bool) -> Value {
    let mut b = json!({"model": model, "stream": stream, "max_tokens": 30, "messages": [{"role": "user", "content": "bonjour"}]});
    if let Some(s) = system {
        b["system"] = s;
    }
    b
}

#[tokio::test]
async fn openai_caller_to_openai_upstream_gets_a_first_system_message() {
    let (mock, gw) = setup().await;
    for stream in [false, true] {
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/chat/completions",
            openai_body("gpt-mock", true, stream),
            &[],
        )
        .await;
        let m = b["messages"].as_array().unwrap();
        assert_eq!(
            m[0],
            json!({"role": "system", "content": INSTRUCTIONS}),
            "{b}"
        );
        assert_eq!(
            m[1],
            json!({"role": "system", "content": "You are a tutor."}),
            "the caller's own comes after"
        );
        assert_eq!(m[2]["role"], "user");
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/chat/completions",
            openai_body("gpt-mock", false, stream),
            &[],
        )
        .await;
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": INSTRUCTIONS})
        );
        assert_eq!(b["messages"].as_array().unwrap().len(), 2);
    }
    // A workspace without instructions adds nothing.
    let b = upstream_body(
        &gw,
        &mock,
        "/v1/chat/completions",
        openai_body("gpt-mock", false, false),
        &[("x-switchyard-workspace", "plain")],
    )
    .await;
    assert_eq!(b["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn anthropic_caller_to_anthropic_upstream_gets_them_prepended_to_system() {
    let (mock, gw) = setup().await;
    for stream in [false, true] {
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/messages",
            anthropic_body("claude-mock", None, stream),
            &[],
        )
        .await;
        assert_eq!(b["system"], INSTRUCTIONS, "{b}");
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/messages",
            anthropic_body("claude-mock", Some(json!("You are a tutor.")), stream),
            &[],
        )
        .await;
        assert_eq!(b["system"], format!("{INSTRUCTIONS}\n\nYou are a tutor."));
        let blocks = json!([{"type": "text", "text": "You are a tutor.", "cache_control": {"type": "ephemeral"}}]);
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/messages",
            anthropic_body("claude-mock", Some(blocks), stream),
            &[],
        )
        .await;
        assert_eq!(
            b["system"][0],
            json!({"type": "text", "text": INSTRUCTIONS})
        );
        assert_eq!(b["system"][1]["text"], "You are a tutor.");
        assert_eq!(
            b["system"][1]["cache_control"]["type"], "ephemeral",
            "cache breakpoint kept"
        );
    }
}

#[tokio::test]
async fn instructions_survive_translation_both_ways() {
    let (mock, gw) = setup().await;
    for stream in [false, true] {
        // OpenAI caller, Anthropic upstream: the instructions open `system`.
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/chat/completions",
            openai_body("claude-mock", true, stream),
            &[],
        )
        .await;
        assert_eq!(
            b["system"],
            format!("{INSTRUCTIONS}\n\nYou are a tutor."),
            "{b}"
        );
        assert_eq!(b["messages"].as_array().unwrap().len(), 1);
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/chat/completions",
            openai_body("claude-mock", false, stream),
            &[],
        )
        .await;
        assert_eq!(b["system"], INSTRUCTIONS);
        // Anthropic caller, OpenAI upstream: the first system message.
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/messages",
            anthropic_body("gpt-mock", Some(json!("You are a tutor.")), stream),
            &[],
        )
        .await;
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m[0]["role"], "system");
        let text = m[0]["content"].as_str().unwrap();
        assert!(text.starts_with(INSTRUCTIONS), "{b}");
        assert!(text.contains("You are a tutor."), "{b}");
        let b = upstream_body(
            &gw,
            &mock,
            "/v1/messages",
            anthropic_body("gpt-mock", None, stream),
            &[],
        )
        .await;
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": INSTRUCTIONS})
        );
    }
}
