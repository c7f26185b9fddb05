//! The mock upstream's own tests: every dialect's wire shapes, the deterministic usage numbers,
//! each scripted behaviour, script rules, cancellation detection and the binary.

// Test helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_mock::{
    Behavior, CancelPhase, MockConfig, MockUpstream, RecordedRequest, ScriptRule,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn mock() -> MockUpstream {
    MockUpstream::start(any_port()).await.unwrap()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

async fn post(mock: &MockUpstream, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", mock.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post_anthropic(mock: &MockUpstream, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The JSON payloads of `data:` lines, stopping at `[DONE]` (which is reported separately).
fn sse_data(text: &str) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    let mut done = false;
    for frame in text.split("\n\n").filter(|f| !f.is_empty()) {
        let data = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("frame without data: {frame:?}"));
        if data == "[DONE]" {
            done = true;
        } else {
            out.push(serde_json::from_str(data).unwrap());
        }
    }
    (out, done)
}

/// `(event name, data)` of each Anthropic frame.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "stream ends with a blank line");
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|frame| {
            let mut lines = frame.lines();
            let event = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            assert!(
                lines.next().is_none(),
                "one event and one data line: {frame:?}"
            );
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], event, "data.type matches the event name");
            (event.to_owned(), data)
        })
        .collect()
}

fn content_deltas(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn chat_body(model: &str, user: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            { "role": "system", "content": "You are terse." },
            { "role": "user", "content": user },
        ],
    })
}

// ---------------------------------------------------------------------------------------------
// OpenAI dialect

#[tokio::test]
async fn openai_chat_non_stream_shape_and_usage() {
    let mock = mock().await;
    let resp = post(
        &mock,
        "/v1/chat/completions",
        chat_body("demo-fast", "hello there world"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let id: u64 = resp.headers()["x-mock-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], format!("chatcmpl-mock-{id}"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "demo-fast");
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply: hello there world"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // 3 system words + 3 user words in, 5 reply words out.
    assert_eq!(body["usage"]["prompt_tokens"], 6);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 11);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    let r: &RecordedRequest = &recorded[0];
    assert_eq!(
        (r.id, r.method.as_str(), r.path.as_str()),
        (id, "POST", "/v1/chat/completions")
    );
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(r.headers.iter().all(|(n, _)| *n == n.to_ascii_lowercase()));
    assert_eq!(r.model(), Some("demo-fast"));
    assert_eq!(r.body["messages"][1]["content"], "hello there world");
}

#[tokio::test]
async fn openai_chat_reply_echoes_eight_words_and_content_parts() {
    let mock = mock().await;
    let body = json!({
        "model": "m",
        "messages": [
            { "role": "user", "content": "earlier question" },
            { "role": "assistant", "content": "earlier answer here" },
            { "role": "user", "content": [
                { "type": "text", "text": "one two three four five" },
                { "type": "image_url", "image_url": { "url": "data:," } },
                { "type": "text", "text": "six seven eight nine ten" },
            ] },
        ],
    });
    let body: Value = post(&mock, "/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply: one two three four five six seven eight"
    );
    assert_eq!(body["usage"]["prompt_tokens"], 2 + 3 + 10);
    assert_eq!(body["usage"]["completion_tokens"], 10);
}

#[tokio::test]
async fn openai_chat_stream_frames_with_include_usage() {
    let mock = mock().await;
    let mut body = chat_body("demo-smart", "alpha beta");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let resp = post(&mock, "/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = resp.text().await.unwrap();
    let (chunks, done) = sse_data(&text);
    assert!(done, "ends with [DONE]");
    assert!(text.ends_with("data: [DONE]\n\n"));
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "demo-smart");
        assert_eq!(c["id"], chunks[0]["id"]);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        content_deltas(&chunks),
        ["mock", " reply:", " alpha", " beta"]
    );
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 2]["usage"], Value::Null);
    // The usage chunk: empty choices, usage, and nothing after it but [DONE].
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["prompt_tokens"], 5);
    assert_eq!(chunks[n - 1]["usage"]["completion_tokens"], 4);
    assert_eq!(chunks[n - 1]["usage"]["total_tokens"], 9);
    assert!(
        chunks[..n - 1]
            .iter()
            .all(|c| c["choices"][0]["index"] == 0)
    );
}

#[tokio::test]
async fn openai_chat_stream_without_include_usage_has_no_usage() {
    let mock = mock().await;
    let mut body = chat_body("demo-fast", "x");
    body["stream"] = json!(true);
    let text = post(&mock, "/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let (chunks, done) = sse_data(&text);
    assert!(done);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn openai_tool_call_non_stream_and_stream() {
    let mock = mock().await;
    let tools = json!([{ "type": "function", "function": { "name": "lookup", "parameters": {} } }]);
    let mut body = chat_body("demo-fast", "please call tool lookup now");
    body["tools"] = tools.clone();
    let resp: Value = post(&mock, "/v1/chat/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    let choice = &resp["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(call["function"]["name"], "lookup");
    let args = call["function"]["arguments"].as_str().unwrap();
    assert_eq!(args, r#"{"q":"please call tool lookup now"}"#);
    assert_eq!(resp["usage"]["completion_tokens"], 5);

    body["stream"] = json!(true);
    let text = post(&mock, "/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let (chunks, done) = sse_data(&text);
    assert!(done);
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["tool_calls"][0]["index"], 0);
    assert_eq!(first["tool_calls"][0]["function"]["name"], "lookup");
    assert!(
        first["tool_calls"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("call_mock_")
    );
    let fragments: String = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(fragments, args);
    assert!(chunks.len() > 3, "arguments come in several fragments");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // Without tools the phrase is just text; the header forces a call anyway.
    let plain = chat_body("demo-fast", "call tool lookup");
    let resp: Value = post(&mock, "/v1/chat/completions", plain.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    let resp: Value = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header("x-mock-tool-call", "search")
        .json(&plain)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "search"
    );
}

#[tokio::test]
async fn openai_tool_result_turn_does_not_call_again() {
    let mock = mock().await;
    let body = json!({
        "model": "demo-fast",
        "tools": [{ "type": "function", "function": { "name": "lookup" } }],
        "messages": [
            { "role": "user", "content": "call tool lookup" },
            { "role": "assistant", "content": null, "tool_calls": [{ "id": "c1", "type": "function",
                "function": { "name": "lookup", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "c1", "content": "result is 42" },
        ],
    });
    let resp: Value = post(&mock, "/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    // The tool-result turn is echoed, as the Anthropic dialect echoes tool_result blocks.
    assert_eq!(
        resp["choices"][0]["message"]["content"],
        "mock reply: result is 42"
    );
    assert_eq!(resp["usage"]["prompt_tokens"], 3 + 3);
}

#[tokio::test]
async fn openai_tool_call_with_scripted_arguments_after_a_system_message() {
    let mock = mock().await;
    let body = json!({
        "model": "demo-fast",
        "tools": [{ "type": "function", "function": { "name": "Bash" } }],
        "messages": [
            { "role": "user", "content": r#"call tool Bash with {"command": "echo hi"} now"# },
            // As a gateway translates Claude Code's mid-conversation system entry.
            { "role": "system", "content": "Today's date is 2026-12-08." },
        ],
    });
    let resp: Value = post(&mock, "/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
    let call = &resp["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "Bash");
    assert_eq!(call["arguments"], r#"{"command":"echo hi"}"#);
}

#[tokio::test]
async fn openai_max_tokens_and_stop() {
    let mock = mock().await;
    let mut body = chat_body("m", "a b c d");
    body["max_tokens"] = json!(3);
    let resp: Value = post(&mock, "/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["choices"][0]["message"]["content"], "mock reply: a");
    assert_eq!(resp["choices"][0]["finish_reason"], "length");
    assert_eq!(resp["usage"]["completion_tokens"], 3);
    let mut body = chat_body("m", "a b c d");
    body["stop"] = json!(["c d"]);
    let resp: Value = post(&mock, "/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["choices"][0]["message"]["content"], "mock reply: a b");
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn openai_completions_and_fim() {
    let mock = mock().await;
    let resp: Value = post(
        &mock,
        "/v1/completions",
        json!({ "model": "demo-fast", "prompt": "def add(a, b):" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(resp["object"], "text_completion");
    assert!(resp["id"].as_str().unwrap().starts_with("cmpl-mock-"));
    assert_eq!(resp["choices"][0]["text"], "mock reply: def add(a, b):");
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    assert_eq!(resp["usage"]["prompt_tokens"], 3);
    assert_eq!(resp["usage"]["completion_tokens"], 5);

    let fim = json!({ "model": "demo-fast", "prompt": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))" });
    let resp: Value = post(&mock, "/v1/completions", fim.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["choices"][0]["text"], "<fim>");
    assert_eq!(resp["usage"]["prompt_tokens"], 3 + 2);
    assert_eq!(resp["usage"]["completion_tokens"], 1);

    let mut stream = fim;
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({ "include_usage": true });
    let text = post(&mock, "/v1/completions", stream)
        .await
        .text()
        .await
        .unwrap();
    let (chunks, done) = sse_data(&text);
    assert!(done);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert_eq!(chunks[0]["choices"][0]["text"], "<fim>");
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[2]["choices"], json!([]));
    assert_eq!(chunks[2]["usage"]["completion_tokens"], 1);
}

#[tokio::test]
async fn openai_embeddings_are_deterministic() {
    let mock = mock().await;
    let one: Value = post(
        &mock,
        "/v1/embeddings",
        json!({ "model": "embed", "input": "hello world" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(one["object"], "list");
    assert_eq!(one["model"], "embed");
    assert_eq!(one["data"][0]["object"], "embedding");
    assert_eq!(one["data"][0]["index"], 0);
    let v = one["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(v.len(), 8);
    let norm: f64 = v.iter().map(|x| x.as_f64().unwrap().powi(2)).sum();
    assert!((norm - 1.0).abs() < 1e-3);
    assert_eq!(
        one["usage"],
        json!({ "prompt_tokens": 2, "total_tokens": 2 })
    );

    let many: Value = post(
        &mock,
        "/v1/embeddings",
        json!({ "model": "embed", "input": ["hello world", "other text here"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        many["data"][0]["embedding"], one["data"][0]["embedding"],
        "same text, same vector"
    );
    assert_ne!(many["data"][1]["embedding"], one["data"][0]["embedding"]);
    assert_eq!(many["data"][1]["index"], 1);
    assert_eq!(many["usage"]["prompt_tokens"], 5);

    let b64: Value = post(
        &mock,
        "/v1/embeddings",
        json!({ "model": "embed", "input": "hello world", "encoding_format": "base64" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        b64["data"][0]["embedding"].as_str().unwrap().len(),
        44,
        "8 f32 = 32 bytes"
    );
}

#[tokio::test]
async fn openai_models_list_and_retrieve() {
    let mock = mock().await;
    let c = client();
    let list: Value = c
        .get(format!("{}/v1/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["demo-fast", "demo-smart", "mock-model"]);
    assert_eq!(list["data"][0]["object"], "model");
    let one = c
        .get(format!("{}/v1/models/demo-fast", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = c
        .get(format!("{}/v1/models/nope", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let anthropic: Value = c
        .get(format!("{}/v1/models", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["has_more"], false);
}

#[tokio::test]
async fn openai_auth_and_malformed_requests() {
    let config = MockConfig {
        require_key: Some("sk-test".into()),
        ..MockConfig::default()
    };
    let mock = MockUpstream::start_with(any_port(), config).await.unwrap();
    let url = format!("{}/v1/chat/completions", mock.base_url());
    let c = client();
    for auth in [None, Some("Bearer wrong")] {
        let mut req = c.post(&url).json(&chat_body("m", "hi"));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["param"], Value::Null);
        assert!(body["error"]["message"].is_string());
    }
    let ok = c
        .post(&url)
        .bearer_auth("sk-test")
        .json(&chat_body("m", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let models = c
        .get(format!("{}/v1/models", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
    // Ollama's native API needs no key.
    let tags = c
        .get(format!("{}/api/tags", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 200);

    let bad = c
        .post(&url)
        .bearer_auth("sk-test")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let no_messages = c
        .post(&url)
        .bearer_auth("sk-test")
        .json(&json!({ "model": "m" }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_messages.status(), 400);
    let body: Value = no_messages.json().await.unwrap();
    assert_eq!(body["error"]["param"], "messages");
    let unknown = c
        .post(format!("{}/v1/nope", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let wrong_method = c.get(&url).bearer_auth("sk-test").send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
}

// ---------------------------------------------------------------------------------------------
// Anthropic dialect

fn anthropic_body(user: &str) -> Value {
    json!({
        "model": "demo-smart",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [{ "role": "user", "content": user }],
    })
}

#[tokio::test]
async fn anthropic_requires_version_and_key() {
    let config = MockConfig {
        anthropic_key: Some("ak-test".into()),
        ..MockConfig::default()
    };
    let mock = MockUpstream::start_with(any_port(), config).await.unwrap();
    let url = format!("{}/v1/messages", mock.base_url());
    let c = client();
    for key in [None, Some("wrong")] {
        let mut req = c
            .post(&url)
            .header("anthropic-version", "2023-06-01")
            .json(&anthropic_body("hi"));
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "authentication_error");
        assert!(body["error"]["message"].is_string());
    }
    let no_version = c
        .post(&url)
        .header("x-api-key", "ak-test")
        .json(&anthropic_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let body: Value = no_version.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let ok = c
        .post(&url)
        .header("x-api-key", "ak-test")
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut no_max = anthropic_body("hi");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let resp = c
        .post(&url)
        .header("x-api-key", "ak-test")
        .header("anthropic-version", "2023-06-01")
        .json(&no_max)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn anthropic_non_stream_message() {
    let mock = mock().await;
    let resp = post_anthropic(&mock, anthropic_body("what is rust")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "demo-smart");
    assert_eq!(
        body["content"],
        json!([{ "type": "text", "text": "mock reply: what is rust" }])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert_eq!(
        body["usage"],
        json!({ "input_tokens": 5, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 })
    );

    let mut limited = anthropic_body("a b c");
    limited["max_tokens"] = json!(2);
    let body: Value = post_anthropic(&mock, limited).await.json().await.unwrap();
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["content"][0]["text"], "mock reply:");
    let mut stopped = anthropic_body("a b c");
    stopped["stop_sequences"] = json!(["b"]);
    let body: Value = post_anthropic(&mock, stopped).await.json().await.unwrap();
    assert_eq!(body["stop_reason"], "stop_sequence");
    assert_eq!(body["stop_sequence"], "b");
    assert_eq!(body["content"][0]["text"], "mock reply: a");
}

#[tokio::test]
async fn anthropic_stream_event_order() {
    let mock = mock().await;
    let mut body = anthropic_body("one two");
    body["stream"] = json!(true);
    let resp = post_anthropic(&mock, body).await;
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!(start["model"], "demo-smart");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 4);
    assert_eq!(
        events[1].1["content_block"],
        json!({ "type": "text", "text": "" })
    );
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "mock reply: one two");
    assert_eq!(events[8].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[8].1["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn anthropic_tool_use() {
    let mock = mock().await;
    let mut body = anthropic_body("call tool get_weather for Paris");
    body["tools"] = json!([{ "name": "get_weather", "input_schema": { "type": "object" } }]);
    let resp: Value = post_anthropic(&mock, body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["stop_reason"], "tool_use");
    assert_eq!(resp["content"][0]["type"], "text");
    let tool = &resp["content"][1];
    assert_eq!(tool["type"], "tool_use");
    assert_eq!(tool["name"], "get_weather");
    assert!(tool["id"].as_str().unwrap().starts_with("toolu_mock_"));
    assert_eq!(
        tool["input"],
        json!({ "q": "call tool get_weather for Paris" })
    );

    body["stream"] = json!(true);
    let events = sse_events(&post_anthropic(&mock, body).await.text().await.unwrap());
    let starts: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(starts[1]["index"], 1);
    assert_eq!(starts[1]["content_block"]["type"], "tool_use");
    assert_eq!(starts[1]["content_block"]["name"], "get_weather");
    assert_eq!(starts[1]["content_block"]["input"], json!({}));
    let json_text: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| {
            assert_eq!(d["index"], 1);
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_text).unwrap(),
        json!({ "q": "call tool get_weather for Paris" })
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    // A tool_result turn is echoed, and does not trigger another call.
    let follow_up = json!({
        "model": "demo-smart",
        "max_tokens": 100,
        "tools": [{ "name": "get_weather", "input_schema": { "type": "object" } }],
        "messages": [
            { "role": "user", "content": "call tool get_weather" },
            { "role": "assistant", "content": [{ "type": "tool_use", "id": "t1", "name": "get_weather", "input": {} }] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "t1", "content": "sunny 21C" }] },
        ],
    });
    let resp: Value = post_anthropic(&mock, follow_up).await.json().await.unwrap();
    assert_eq!(resp["stop_reason"], "end_turn");
    assert_eq!(resp["content"][0]["text"], "mock reply: sunny 21C");
    assert_eq!(resp["usage"]["input_tokens"], 3 + 2);
}

#[tokio::test]
async fn anthropic_tool_use_with_scripted_arguments_after_a_system_entry() {
    let mock = mock().await;
    let mut body = anthropic_body(r#"call tool Bash with {"command": "echo hi"}"#);
    body["tools"] = json!([{ "name": "Bash", "input_schema": { "type": "object" } }]);
    // Claude Code (2.1.x) puts a `role: "system"` entry after the prompt.
    body["messages"].as_array_mut().unwrap().push(
        json!({ "role": "system", "content": [{ "type": "text", "text": "# Environment" }] }),
    );
    let resp: Value = post_anthropic(&mock, body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["stop_reason"], "tool_use");
    assert_eq!(resp["content"][1]["name"], "Bash");
    assert_eq!(resp["content"][1]["input"], json!({ "command": "echo hi" }));

    body["stream"] = json!(true);
    let events = sse_events(&post_anthropic(&mock, body).await.text().await.unwrap());
    let json_text: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(json_text, r#"{"command":"echo hi"}"#);
}

#[tokio::test]
async fn anthropic_thinking_stream() {
    let mock = mock().await;
    let mut body = anthropic_body("think hard");
    body["thinking"] = json!({ "type": "enabled", "budget_tokens": 1024 });
    let resp: Value = post_anthropic(&mock, body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["content"][0]["type"], "thinking");
    assert_eq!(resp["content"][0]["thinking"], "mock thinking: think hard");
    assert!(
        resp["content"][0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("mock-signature-")
    );
    assert_eq!(resp["content"][1]["type"], "text");
    assert_eq!(resp["usage"]["output_tokens"], 4 + 4);

    body["stream"] = json!(true);
    let events = sse_events(&post_anthropic(&mock, body).await.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "content_block_start", "ping"]
    );
    assert_eq!(events[1].1["content_block"]["type"], "thinking");
    let kinds: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "thinking_delta",
            "thinking_delta",
            "thinking_delta",
            "thinking_delta",
            "signature_delta",
            "text_delta",
            "text_delta",
            "text_delta",
            "text_delta"
        ]
    );
    assert_eq!(names.iter().filter(|n| **n == "ping").count(), 1);
    assert_eq!(
        names.iter().filter(|n| **n == "content_block_stop").count(),
        2
    );
}

#[tokio::test]
async fn anthropic_cache_tokens_creation_then_read() {
    let mock = mock().await;
    let body = json!({
        "model": "demo-smart",
        "max_tokens": 100,
        "system": [
            { "type": "text", "text": "a long shared system prompt of ten words right here", "cache_control": { "type": "ephemeral" } },
        ],
        "messages": [{ "role": "user", "content": "question one" }],
    });
    let first: Value = post_anthropic(&mock, body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["usage"]["cache_creation_input_tokens"], 10);
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(first["usage"]["input_tokens"], 2);
    let mut second_body = body.clone();
    second_body["messages"][0]["content"] = json!("another question here");
    second_body["stream"] = json!(true);
    let events = sse_events(
        &post_anthropic(&mock, second_body)
            .await
            .text()
            .await
            .unwrap(),
    );
    let usage = &events[0].1["message"]["usage"];
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["cache_read_input_tokens"], 10);
    assert_eq!(usage["input_tokens"], 3);

    // Without cache_control nothing is cached; overrides win.
    let plain: Value = post_anthropic(&mock, anthropic_body("x"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(plain["usage"]["cache_read_input_tokens"], 0);
    let mut scripted = anthropic_body("x y z");
    scripted["model"] = json!("demo-smart+cache_read=2+cache_write=1");
    let over: Value = post_anthropic(&mock, scripted).await.json().await.unwrap();
    assert_eq!(over["model"], "demo-smart");
    assert_eq!(over["usage"]["cache_read_input_tokens"], 2);
    assert_eq!(over["usage"]["cache_creation_input_tokens"], 1);
    assert_eq!(over["usage"]["input_tokens"], 5 - 3);
    // OpenAI reports cache_read as cached_tokens.
    let chat: Value = post(
        &mock,
        "/v1/chat/completions",
        chat_body("m+cache_read=4", "q"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
}

#[tokio::test]
async fn anthropic_count_tokens() {
    let mock = mock().await;
    let resp: Value = client()
        .post(format!("{}/v1/messages/count_tokens", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_body("three words here"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp, json!({ "input_tokens": 5 }));
}

// ---------------------------------------------------------------------------------------------
// Ollama dialect

#[tokio::test]
async fn ollama_tags_show_chat() {
    let mock = mock().await;
    let c = client();
    let tags: Value = c
        .get(format!("{}/api/tags", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = tags["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    let m = &models[0];
    assert_eq!(m["name"], "demo-fast");
    assert_eq!(m["model"], "demo-fast");
    assert!(m["modified_at"].is_string());
    assert!(m["size"].as_u64().unwrap() > 0);
    assert_eq!(m["digest"].as_str().unwrap().len(), 64);
    for key in [
        "format",
        "family",
        "families",
        "parameter_size",
        "quantization_level",
    ] {
        assert!(!m["details"][key].is_null(), "details.{key}");
    }

    let show: Value = c
        .post(format!("{}/api/show", mock.base_url()))
        .json(&json!({ "model": "demo-fast" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(show["model_info"]["llama.context_length"], 8192);
    assert_eq!(show["capabilities"], json!(["completion", "tools"]));
    let missing = c
        .post(format!("{}/api/show", mock.base_url()))
        .json(&json!({ "model": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<Value>().await.unwrap()["error"].is_string());

    let chat = json!({ "model": "demo-fast", "stream": false, "messages": [{ "role": "user", "content": "hi ollama" }] });
    let resp: Value = c
        .post(format!("{}/api/chat", mock.base_url()))
        .json(&chat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["model"], "demo-fast");
    assert_eq!(
        resp["message"],
        json!({ "role": "assistant", "content": "mock reply: hi ollama" })
    );
    assert_eq!(resp["done"], true);
    assert_eq!(resp["done_reason"], "stop");
    assert_eq!(resp["prompt_eval_count"], 2);
    assert_eq!(resp["eval_count"], 4);

    // Streaming is the default.
    let mut stream = chat;
    stream.as_object_mut().unwrap().remove("stream");
    let resp = c
        .post(format!("{}/api/chat", mock.base_url()))
        .json(&stream)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(text.ends_with('\n'));
    assert_eq!(lines.len(), 5);
    assert!(lines[..4].iter().all(|l| l["done"] == false));
    let joined: String = lines
        .iter()
        .map(|l| l["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(joined, "mock reply: hi ollama");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["prompt_eval_count"], 2);
    assert_eq!(last["eval_count"], 4);

    // The OpenAI-compatible side is the OpenAI dialect.
    let resp = post(&mock, "/v1/chat/completions", chat_body("demo-fast", "x")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn ollama_tool_call() {
    let mock = mock().await;
    let chat = json!({
        "model": "demo-fast",
        "stream": false,
        "tools": [{ "type": "function", "function": { "name": "lookup" } }],
        "messages": [{ "role": "user", "content": "call tool lookup" }],
    });
    let resp: Value = post(&mock, "/api/chat", chat).await.json().await.unwrap();
    assert_eq!(
        resp["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    assert_eq!(
        resp["message"]["tool_calls"][0]["function"]["arguments"],
        json!({ "q": "call tool lookup" })
    );
}

// ---------------------------------------------------------------------------------------------
// Scripted behaviour

#[tokio::test]
async fn scripted_status_with_retry_after_in_each_dialect() {
    let mock = mock().await;
    let c = client();
    // Header, OpenAI shape, default Retry-After on 429.
    let resp = c
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header("x-mock-status", "429")
        .json(&chat_body("demo-fast", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // Directive with an explicit Retry-After; the status is not 429/503.
    let resp = post(
        &mock,
        "/v1/chat/completions",
        chat_body("demo-fast+status=500+retry_after=7", "x"),
    )
    .await;
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "server_error"
    );
    let resp = post(
        &mock,
        "/v1/chat/completions",
        chat_body("demo-fast+status=502", "x"),
    )
    .await;
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().get("retry-after").is_none());
    // Anthropic shape.
    let mut body = anthropic_body("x");
    body["model"] = json!("demo-smart+status=529");
    let resp = post_anthropic(&mock, body).await;
    assert_eq!(resp.status(), 529);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");
    let mut body = anthropic_body("x");
    body["model"] = json!("demo-smart+status=503");
    let resp = post_anthropic(&mock, body).await;
    assert_eq!(resp.headers()["retry-after"], "1");
    // Ollama shape.
    let resp = post(
        &mock,
        "/api/chat",
        json!({ "model": "demo-fast+status=500", "messages": [] }),
    )
    .await;
    assert_eq!(resp.status(), 500);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn scripted_latency_delays_headers() {
    let mock = mock().await;
    let started = Instant::now();
    let resp = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header("x-mock-latency-ms", "150")
        .json(&chat_body("demo-fast", "x"))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    post(
        &mock,
        "/v1/chat/completions",
        chat_body("demo-fast+latency=100", "x"),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(mock.cancelled().is_empty());
}

#[tokio::test]
async fn scripted_chunks_and_chunk_delay() {
    let mock = mock().await;
    let mut body = chat_body("demo-fast+chunks=6+chunk_delay=30", "hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let started = Instant::now();
    let text = post(&mock, "/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(6 * 30));
    let (chunks, done) = sse_data(&text);
    assert!(done);
    assert_eq!(
        content_deltas(&chunks),
        ["mock", " reply:", " hi", " lorem", " lorem", " lorem"]
    );
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 6);

    // Fewer chunks than words: grouped.
    let mut body = chat_body("demo-fast", "a b c d e f");
    body["stream"] = json!(true);
    let text = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header("x-mock-chunks", "2")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        content_deltas(&sse_data(&text).0),
        ["mock reply: a b", " c d e f"]
    );
}

#[tokio::test]
async fn scripted_cut_mid_stream_is_a_body_error_without_done() {
    let mock = mock().await;
    let mut body = chat_body("demo-fast+cut=2", "one two three four");
    body["stream"] = json!(true);
    let mut resp = post(&mock, "/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let mut received = Vec::new();
    let error = loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => panic!("the stream ended cleanly"),
            Err(error) => break error,
        }
    };
    assert!(
        error.is_body() || error.is_decode() || error.is_request(),
        "{error:?}"
    );
    let text = String::from_utf8(received).unwrap();
    assert!(!text.contains("[DONE]"));
    assert!(!text.contains("finish_reason\":\"stop"));
    let (chunks, _) = sse_data(&text);
    assert_eq!(content_deltas(&chunks), ["mock", " reply:"]);

    // Anthropic: no message_delta / message_stop.
    let mut body = anthropic_body("x y");
    body["stream"] = json!(true);
    let resp = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-cut-after", "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.is_err());

    // Non-stream: half a body, then the connection goes.
    let resp = post(
        &mock,
        "/v1/chat/completions",
        chat_body("demo-fast+cut=1", "x"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err());
    assert!(
        mock.cancelled().is_empty(),
        "a scripted cut is not a cancellation"
    );
}

#[tokio::test]
async fn scripted_reset_before_first_byte_is_a_connection_error() {
    let mock = mock().await;
    let err = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header("x-mock-reset", "1")
        .json(&chat_body("demo-fast", "x"))
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "{err:?}");
    let err = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({ "model": "demo-smart+reset", "max_tokens": 10, "messages": [] }))
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "{err:?}");

    // On the wire: the socket closes with no byte of response.
    let mut socket = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    let body = chat_body("demo-fast+reset", "x").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(
        buf.is_empty(),
        "no response bytes: {:?}",
        String::from_utf8_lossy(&buf)
    );
    // Recorded all the same.
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn scripted_error_event_in_each_dialect() {
    let mock = mock().await;
    let mut body = chat_body("demo-fast+error_event", "a b c");
    body["stream"] = json!(true);
    let resp = post(&mock, "/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let (chunks, done) = sse_data(&text);
    assert!(!done);
    assert_eq!(content_deltas(&chunks), ["mock"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(last["error"]["message"].is_string());

    let mut body = anthropic_body("a b c");
    body["stream"] = json!(true);
    let resp = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-error-event", "true")
        .header("x-mock-cut-after", "2")
        .json(&body)
        .send()
        .await
        .unwrap();
    let events = sse_events(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(events[5].1["error"]["type"], "overloaded_error");

    let resp = post(
        &mock,
        "/api/chat",
        json!({ "model": "demo-fast+error_event", "messages": [{ "role": "user", "content": "a" }] }),
    )
    .await;
    let text = resp.text().await.unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(last["error"].is_string());
}

#[tokio::test]
async fn scripted_bytes_streams_a_large_body_quickly() {
    let mock = mock().await;
    let mut body = chat_body("demo-fast+bytes=50M", "x");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let started = Instant::now();
    let mut resp = post(&mock, "/v1/chat/completions", body).await;
    let mut total = 0usize;
    let mut tail = Vec::new();
    while let Some(bytes) = resp.chunk().await.unwrap() {
        total += bytes.len();
        tail.extend_from_slice(&bytes);
        if tail.len() > 64 << 10 {
            tail.drain(..tail.len() - (32 << 10));
        }
    }
    let elapsed = started.elapsed();
    assert!(total >= 50 << 20, "{total} bytes");
    assert!(total < 55 << 20, "{total} bytes");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let tail = String::from_utf8_lossy(&tail);
    assert!(tail.ends_with("data: [DONE]\n\n"));
    assert!(tail.contains("\"completion_tokens\":"));

    let resp = post(
        &mock,
        "/v1/chat/completions",
        chat_body("demo-fast+bytes=100k", "x"),
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.len() >= 100 << 10);
    assert_eq!(
        body["usage"]["completion_tokens"].as_u64().unwrap(),
        content.split_whitespace().count() as u64
    );
}

#[tokio::test]
async fn scripted_reply_override() {
    let mock = mock().await;
    let resp: Value = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header("x-mock-reply", "my key is AKIAABCDEFGHIJKLMNOP")
        .json(&chat_body("demo-fast", "x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp["choices"][0]["message"]["content"],
        "my key is AKIAABCDEFGHIJKLMNOP"
    );
    assert_eq!(resp["usage"]["completion_tokens"], 4);
}

// ---------------------------------------------------------------------------------------------
// Script rules and the control API

#[tokio::test]
async fn script_rule_with_times_through_the_library() {
    let mock = mock().await;
    mock.script(
        ScriptRule::new(Behavior {
            status: Some(503),
            ..Behavior::default()
        })
        .model("demo-*")
        .path("/v1/chat/completions")
        .times(2),
    );
    let statuses = async |model: &str| {
        post(&mock, "/v1/chat/completions", chat_body(model, "x"))
            .await
            .status()
    };
    assert_eq!(statuses("mock-model").await, 200, "other model");
    assert_eq!(statuses("demo-fast").await, 503);
    assert_eq!(
        statuses("demo-smart+chunks=2").await,
        503,
        "matched without directives"
    );
    assert_eq!(statuses("demo-fast").await, 200, "used up");
    let resp = post(
        &mock,
        "/v1/embeddings",
        json!({ "model": "demo-fast", "input": "x" }),
    )
    .await;
    assert_eq!(resp.status(), 200, "other path");

    // Headers override rules.
    mock.script(ScriptRule::new(Behavior {
        status: Some(500),
        ..Behavior::default()
    }));
    let resp = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header("x-mock-status", "418")
        .json(&chat_body("m", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(statuses("m").await, 500);
    mock.clear_scripts();
    assert_eq!(statuses("m").await, 200);
}

#[tokio::test]
async fn script_rule_and_request_log_over_http() {
    let mock = mock().await;
    let c = client();
    let base = mock.base_url();
    let resp = c
        .post(format!("{base}/_mock/script"))
        .json(&json!({
            "match": { "model": "demo-fast", "path": "/v1/chat/completions" },
            "times": 1,
            "behavior": { "status": 429, "retry_after": 3 },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.unwrap()["id"].is_u64());
    let rules: Value = c
        .get(format!("{base}/_mock/script"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rules[0]["remaining"], 1);

    let first = post(&mock, "/v1/chat/completions", chat_body("demo-fast", "x")).await;
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "3");
    let second = post(&mock, "/v1/chat/completions", chat_body("demo-fast", "x")).await;
    assert_eq!(second.status(), 200);
    let rules: Value = c
        .get(format!("{base}/_mock/script"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rules[0]["remaining"], 0);

    let bad = c
        .post(format!("{base}/_mock/script"))
        .json(&json!({ "behavior": { "nope": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let log: Value = c
        .get(format!("{base}/_mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2, "control requests are not recorded");
    assert_eq!(log[0]["path"], "/v1/chat/completions");
    assert_eq!(log[0]["body"]["model"], "demo-fast");
    assert!(
        log[0]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "content-type")
    );

    assert_eq!(
        c.delete(format!("{base}/_mock/requests"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(mock.requests().is_empty());
    assert_eq!(
        c.delete(format!("{base}/_mock/script"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let rules: Value = c
        .get(format!("{base}/_mock/script"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rules, json!([]));
    let health = c.get(format!("{base}/_mock/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn request_log_is_bounded_and_can_be_off() {
    let config = MockConfig {
        log_capacity: 5,
        ..MockConfig::default()
    };
    let mock = MockUpstream::start_with(any_port(), config).await.unwrap();
    for i in 0..8 {
        post(
            &mock,
            "/v1/chat/completions",
            chat_body("m", &format!("n{i}")),
        )
        .await;
    }
    let log = mock.requests();
    assert_eq!(log.len(), 5);
    assert_eq!(
        log.iter().map(|r| r.id).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8]
    );
    assert_eq!(log[0].body["messages"][1]["content"], "n3");
    mock.clear();
    assert!(mock.requests().is_empty());

    let config = MockConfig {
        record: false,
        ..MockConfig::default()
    };
    let quiet = MockUpstream::start_with(any_port(), config).await.unwrap();
    post(&quiet, "/v1/chat/completions", chat_body("m", "x")).await;
    assert!(quiet.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Cancellation

#[tokio::test]
async fn cancellation_mid_stream_is_noticed_within_100ms() {
    let mock = mock().await;
    let mut body = chat_body("demo-fast+chunks=100+chunk_delay=50", "x");
    body["stream"] = json!(true);
    let mut resp = post(&mock, "/v1/chat/completions", body).await;
    let id: u64 = resp.headers()["x-mock-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    resp.chunk().await.unwrap().unwrap();
    resp.chunk().await.unwrap().unwrap();
    let dropped = Instant::now();
    drop(resp);
    let cancelled = mock.wait_for_cancelled(1, Duration::from_secs(2)).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    let c = &cancelled[0];
    assert_eq!(c.id, id);
    assert_eq!(c.path, "/v1/chat/completions");
    assert_eq!(c.phase, CancelPhase::Streaming);
    assert!(c.frames_sent >= 2);
    let noticed = c.at.saturating_duration_since(dropped);
    assert!(
        noticed < Duration::from_millis(100),
        "noticed after {noticed:?}"
    );

    // A stream that finishes is not a cancellation.
    mock.clear();
    let mut body = chat_body("demo-fast+chunk_delay=5", "x");
    body["stream"] = json!(true);
    post(&mock, "/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(mock.cancelled().is_empty());
}

#[tokio::test]
async fn cancellation_during_latency_is_noticed() {
    let mock = mock().await;
    let mut socket = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    let body = anthropic_body("x").to_string();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nanthropic-version: 2023-06-01\r\nx-mock-latency-ms: 5000\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    mock.wait_for_requests(1, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let closed = Instant::now();
    drop(socket);
    let cancelled = mock.wait_for_cancelled(1, Duration::from_secs(2)).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].phase, CancelPhase::Latency);
    assert_eq!(cancelled[0].path, "/v1/messages");
    assert_eq!(cancelled[0].frames_sent, 0);
    let noticed = cancelled[0].at.saturating_duration_since(closed);
    assert!(
        noticed < Duration::from_millis(100),
        "noticed after {noticed:?}"
    );
    assert!(cancelled[0].elapsed < Duration::from_secs(1));

    let list: Value = client()
        .get(format!("{}/_mock/cancelled", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["phase"], "latency");
}

#[tokio::test]
async fn anthropic_stream_cancellation_with_raw_socket() {
    let mock = mock().await;
    let mut socket = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    let mut body = anthropic_body("x");
    body["stream"] = json!(true);
    body["model"] = json!("demo-smart+chunks=50+chunk_delay=40");
    let body = body.to_string();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let closed = Instant::now();
    drop(socket);
    let cancelled = mock.wait_for_cancelled(1, Duration::from_secs(2)).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].phase, CancelPhase::Streaming);
    assert!(cancelled[0].at.saturating_duration_since(closed) < Duration::from_millis(100));
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and the binary

#[tokio::test]
async fn shutdown_frees_the_port_and_base_url_is_loopback() {
    let mock = MockUpstream::start("0.0.0.0:0".parse().unwrap())
        .await
        .unwrap();
    let port = mock.addr().port();
    assert_eq!(mock.base_url(), format!("http://127.0.0.1:{port}"));
    let resp = client()
        .get(format!("{}/", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    mock.shutdown().await;
    let err = client()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await;
    assert!(err.is_err());
}

#[test]
fn binary_prints_its_address_and_serves() {
    let (mut child, url) = switchyard_tests::harness::spawn_mock_upstream(
        env!("CARGO_BIN_EXE_run-mock-upstream"),
        &["--require-key", "sk-bin", "--models", "a,b"],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (unauthorized, models) = runtime.block_on(async {
        let c = client();
        let unauthorized = c
            .get(format!("{url}/v1/models"))
            .send()
            .await
            .unwrap()
            .status();
        let models: Value = c
            .get(format!("{url}/v1/models"))
            .bearer_auth("sk-bin")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (unauthorized, models)
    });
    // SIGTERM: a clean exit.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(unauthorized, 401);
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
}
