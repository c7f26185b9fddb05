//! Acceptance point 3: OpenAI-format requests to an Anthropic provider and Anthropic-format
//! requests to an OpenAI-dialect provider, streamed and not, with tool calls, system prompts,
//! multi-turn history, cache token usage (never double counted) and stop reasons.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_dataplane::record::{Interception, Outcome};
use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
use switchyard_tests::harness::manifests::{priced, provider, workspace};
use switchyard_tests::harness::{Answer, Gateway, anthropic_stream_text, openai_stream_text};

async fn setup() -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = mock.base_url();
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        priced(
            provider("claude", "anthropic", &base, &["claude-mock"]),
            "claude-mock",
            json!({"input": 3.0, "output": 15.0, "cacheRead": 0.3, "cacheWrite": 3.75}),
        ),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
    ])
    .await
    .unwrap();
    (mock, gw)
}

fn cache(mock: &MockUpstream, read: u64, write: Option<u64>) {
    mock.script(ScriptRule::new(Behavior {
        cache_read: Some(read),
        cache_write: write,
        ..Default::default()
    }));
}

/// OpenAI chat with a system prompt, an earlier tool round trip and a new tool request.
fn openai_tool_request(stream: bool) -> Value {
    json!({
        "model": "claude-mock",
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "max_tokens": 300,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "what is the weather"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"q\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": "call tool get_weather for Paris"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
        }}]
    })
}

/// What the Anthropic upstream must have received for [`openai_tool_request`].
fn assert_anthropic_upstream_body(body: &Value) {
    assert_eq!(body["model"], "claude-mock");
    assert_eq!(
        body["system"], "You are terse.",
        "system message moved to `system`: {body}"
    );
    assert_eq!(body["max_tokens"], 300);
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{body}");
    let tool_use = &messages[1]["content"][0];
    assert_eq!(tool_use["type"], "tool_use");
    assert_eq!(tool_use["id"], "call_1");
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(tool_use["input"], json!({"q": "Rome"}));
    let last = messages[2]["content"].as_array().unwrap();
    assert_eq!(last[0]["type"], "tool_result");
    assert_eq!(last[0]["tool_use_id"], "call_1");
    assert!(
        last.iter()
            .any(|b| b["text"] == "call tool get_weather for Paris"),
        "{body}"
    );
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["tools"][0]["input_schema"]["required"], json!(["q"]));
    assert!(body.get("stream_options").is_none());
}

/// Cache tokens: the Anthropic upstream reports input 3 (13 words minus 7 read and 3 written).
fn assert_usage_not_double_counted(r: &Interception) {
    assert_eq!(r.usage.input_tokens, 3, "{:?}", r.usage);
    assert_eq!(r.usage.cache_read_input_tokens, 7);
    assert_eq!(r.usage.cache_write_input_tokens, 3);
    assert_eq!(r.usage.total_input(), 13, "the whole prompt, counted once");
    assert!(!r.usage_estimated);
}

fn arguments(v: &Value) -> Value {
    serde_json::from_str(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn openai_request_to_anthropic_provider_with_a_tool_call() {
    let (mock, gw) = setup().await;
    cache(&mock, 7, Some(3));
    let a = gw
        .post("/v1/chat/completions", &openai_tool_request(false))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let got = mock.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/messages");
    assert_anthropic_upstream_body(&got[0].body);

    let v = a.json().unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-mock");
    let choice = &v["choices"][0];
    assert_eq!(
        choice["finish_reason"], "tool_calls",
        "tool_use → tool_calls"
    );
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert!(call["id"].as_str().unwrap().starts_with("toolu_mock_"));
    assert!(
        arguments(&call["function"]["arguments"])["q"]
            .as_str()
            .unwrap()
            .contains("Paris")
    );
    assert_eq!(
        v["usage"]["prompt_tokens"], 13,
        "OpenAI prompt_tokens include cached tokens: {v}"
    );
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 7);

    let recs = gw.records_of(&a.request_id()).await.unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.provider.as_deref(), Some("anthropic"));
    assert_usage_not_double_counted(r);
    // Each part of the input at its own price (per 1M tokens).
    let want_input = (3.0 * 3.0 + 7.0 * 0.3 + 3.0 * 3.75) / 1e6;
    assert!((r.cost.input - want_input).abs() < 1e-12, "{:?}", r.cost);
    assert!((r.cost.output - r.usage.output_tokens as f64 * 15.0 / 1e6).abs() < 1e-12);
    assert_eq!(r.tool_usages.len(), 1);
    assert_eq!(r.tool_usages[0].name, "get_weather");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_use"));
}

#[tokio::test]
async fn openai_stream_from_anthropic_provider_with_a_tool_call() {
    let (mock, gw) = setup().await;
    cache(&mock, 7, Some(3));
    let a = gw
        .post("/v1/chat/completions", &openai_tool_request(true))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_anthropic_upstream_body(&mock.requests()[0].body);
    assert_eq!(mock.requests()[0].body["stream"], true);

    let (chunks, done) = a.sse_data().unwrap();
    assert!(done, "{}", a.text);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(openai_stream_text(&chunks).starts_with("mock reply:"));
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("toolu_mock_"));
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert!(
        serde_json::from_str::<Value>(&args).unwrap()["q"]
            .as_str()
            .unwrap()
            .contains("Paris")
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        chunks.last().unwrap()["choices"],
        json!([]),
        "usage chunk (asked for) last"
    );
    assert_eq!(usage["prompt_tokens"], 13);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 7);

    let recs = gw.records_of(&a.request_id()).await.unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.stream);
    assert_eq!(r.outcome, Outcome::Success);
    assert_usage_not_double_counted(r);
    assert_eq!(
        r.usage.output_tokens,
        usage["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        r.tool_usages
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["get_weather"]
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_use"));
}

/// Anthropic Messages with a system prompt, an earlier tool round trip and a new tool request.
fn anthropic_tool_request(stream: bool) -> Value {
    json!({
        "model": "gpt-mock",
        "stream": stream,
        "max_tokens": 300,
        "system": "Be terse.",
        "messages": [
            {"role": "user", "content": "look something up"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "old"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found it"},
                {"type": "text", "text": "call tool lookup now"}
            ]}
        ],
        "tools": [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    })
}

fn assert_openai_upstream_body(body: &Value, stream: bool) {
    assert_eq!(body["model"], "gpt-mock");
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "user"],
        "{body}"
    );
    assert_eq!(messages[0]["content"], "Be terse.");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(messages[2]["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(
        arguments(&messages[2]["tool_calls"][0]["function"]["arguments"]),
        json!({"q": "old"})
    );
    assert_eq!(messages[3]["tool_call_id"], "toolu_1");
    assert_eq!(messages[4]["content"], "call tool lookup now");
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "lookup");
    assert!(body["tools"][0]["function"]["parameters"].is_object());
    if stream {
        assert_eq!(
            body["stream_options"]["include_usage"], true,
            "usage asked for the record"
        );
    }
}

/// The OpenAI upstream reports prompt_tokens 11 including 4 cached.
fn assert_openai_usage_split(r: &Interception) {
    assert_eq!(r.usage.input_tokens, 7, "{:?}", r.usage);
    assert_eq!(r.usage.cache_read_input_tokens, 4);
    assert_eq!(r.usage.cache_write_input_tokens, 0);
    assert_eq!(r.usage.total_input(), 11);
    assert!(!r.usage_estimated);
}

#[tokio::test]
async fn anthropic_request_to_openai_provider_with_a_tool_call() {
    let (mock, gw) = setup().await;
    cache(&mock, 4, None);
    let a = gw
        .post_with(
            "/v1/messages",
            &anthropic_tool_request(false),
            &[("anthropic-version", "2023-06-01")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let got = mock.requests();
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[0].header("anthropic-version"), None);
    assert_openai_upstream_body(&got[0].body, false);

    let v = a.json().unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["stop_reason"], "tool_use", "tool_calls → tool_use");
    let tool = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    assert_eq!(tool["name"], "lookup");
    assert!(tool["input"]["q"].as_str().unwrap().contains("lookup"));
    assert_eq!(
        v["usage"]["input_tokens"], 7,
        "Anthropic input excludes cache reads: {v}"
    );
    assert_eq!(v["usage"]["cache_read_input_tokens"], 4);

    let r = &gw.records_of(&a.request_id()).await.unwrap()[..];
    assert_eq!(r.len(), 1);
    assert_openai_usage_split(&r[0]);
    assert_eq!(r[0].tool_usages[0].name, "lookup");
    assert_eq!(r[0].finish_reason.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn anthropic_stream_from_openai_provider_with_a_tool_call() {
    let (mock, gw) = setup().await;
    cache(&mock, 4, None);
    let a = gw
        .post_with(
            "/v1/messages",
            &anthropic_tool_request(true),
            &[("anthropic-version", "2023-06-01")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_openai_upstream_body(&mock.requests()[0].body, true);

    let events = a.sse_events().unwrap();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{}", a.text);
    assert_eq!(names.last(), Some(&"message_stop"));
    let start = events
        .iter()
        .find(|(e, v)| e == "content_block_start" && v["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(start.1["content_block"]["name"], "lookup");
    let json_text: String = events
        .iter()
        .filter_map(|(_, v)| v.pointer("/delta/partial_json").and_then(Value::as_str))
        .collect();
    assert!(serde_json::from_str::<Value>(&json_text).unwrap()["q"].is_string());
    let delta = events.iter().find(|(e, _)| e == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta.1["usage"]["input_tokens"], 7, "{}", a.text);
    assert_eq!(delta.1["usage"]["cache_read_input_tokens"], 4);

    let r = &gw.records_of(&a.request_id()).await.unwrap()[..];
    assert_eq!(r.len(), 1);
    assert!(r[0].stream);
    assert_openai_usage_split(&r[0]);
    assert_eq!(
        r[0].usage.output_tokens,
        delta.1["usage"]["output_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        r[0].tool_usages
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["lookup"]
    );
}

async fn stop_reason_of(
    gw: &Gateway,
    path: &str,
    model: &str,
    max_tokens: u64,
    stream: bool,
) -> (Answer, String) {
    let body = json!({"model": model, "max_tokens": max_tokens, "stream": stream,
        "messages": [{"role": "user", "content": "tell me a long story about gateways"}]});
    let a = gw
        .post_with(path, &body, &[("anthropic-version", "2023-06-01")])
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let reason = match (path, stream) {
        ("/v1/chat/completions", false) => a.json().unwrap()["choices"][0]["finish_reason"].clone(),
        ("/v1/chat/completions", true) => {
            let (chunks, _) = a.sse_data().unwrap();
            chunks
                .iter()
                .filter_map(|c| c.pointer("/choices/0/finish_reason"))
                .find(|f| !f.is_null())
                .unwrap()
                .clone()
        }
        (_, false) => a.json().unwrap()["stop_reason"].clone(),
        (_, true) => {
            let events = a.sse_events().unwrap();
            events.iter().find(|(e, _)| e == "message_delta").unwrap().1["delta"]["stop_reason"]
                .clone()
        }
    };
    (a, reason.as_str().unwrap().to_owned())
}

#[tokio::test]
async fn stop_reasons_are_translated_both_ways() {
    let (_mock, gw) = setup().await;
    for stream in [false, true] {
        let (a, r) = stop_reason_of(&gw, "/v1/chat/completions", "claude-mock", 100, stream).await;
        assert_eq!(r, "stop", "end_turn → stop (stream {stream})");
        assert!(
            if stream {
                openai_stream_text(&a.sse_data().unwrap().0)
            } else {
                a.json().unwrap()["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            } == "mock reply: tell me a long story about gateways"
        );
        let (_, r) = stop_reason_of(&gw, "/v1/chat/completions", "claude-mock", 2, stream).await;
        assert_eq!(r, "length", "max_tokens → length (stream {stream})");
        let (a, r) = stop_reason_of(&gw, "/v1/messages", "gpt-mock", 100, stream).await;
        assert_eq!(r, "end_turn", "stop → end_turn (stream {stream})");
        if stream {
            assert_eq!(
                anthropic_stream_text(&a.sse_events().unwrap()),
                "mock reply: tell me a long story about gateways"
            );
        }
        let (_, r) = stop_reason_of(&gw, "/v1/messages", "gpt-mock", 2, stream).await;
        assert_eq!(r, "max_tokens", "length → max_tokens (stream {stream})");
    }
}
