//! The mock upstream's OpenAI Responses API (`/v1/responses`, `GET`/`DELETE
//! /v1/responses/{id}`, `previous_response_id`) and Anthropic `count_tokens`: wire shapes,
//! event order and sequence numbers, the deterministic numbers, scripted faults, the store and
//! authentication. Run with `cargo test -p switchyard-tests --test integration mock_responses::`.

// Test helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_mock::{Behavior, MockConfig, MockUpstream, ScriptRule};

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

async fn post(mock: &MockUpstream, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/responses", mock.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn create(mock: &MockUpstream, body: &Value) -> Value {
    let resp = post(mock, body).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// `(event name, data)` of each frame; checks the framing, that `data.type` is the event name
/// and that sequence numbers count from 0 without gaps.
fn events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "stream ends with a blank line");
    assert!(
        !text.contains("[DONE]"),
        "the Responses API sends no [DONE]"
    );
    let out: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|frame| {
            let mut lines = frame.lines();
            let event = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            assert!(lines.next().is_none(), "one event and one data line");
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], event, "data.type matches the event name");
            (event.to_owned(), data)
        })
        .collect();
    for (i, (_, data)) in out.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "sequence numbers count from 0");
    }
    out
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

async fn stream(mock: &MockUpstream, mut body: Value) -> Vec<(String, Value)> {
    body["stream"] = json!(true);
    let resp = post(mock, &body).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    events(&resp.text().await.unwrap())
}

fn deltas(events: &[(String, Value)], name: &str) -> String {
    events
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect()
}

const TOOLS: &str = r#"[{"type": "function", "name": "lookup", "description": "Look something up",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]"#;

fn tools() -> Value {
    serde_json::from_str(TOOLS).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Non-streamed

#[tokio::test]
async fn non_stream_response_object_usage_and_echoed_parameters() {
    let mock = mock().await;
    let resp = post(
        &mock,
        &json!({
            "model": "demo-fast+latency=1",
            "instructions": "Be brief.",
            "input": "hello there world",
            "temperature": 0.5,
            "metadata": { "k": "v" },
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let request_id = resp.headers()["x-mock-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["id"], format!("resp_mock_{request_id}"));
    assert_eq!(r["object"], "response");
    assert!(r["created_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(r["completed_at"].as_u64().unwrap() >= r["created_at"].as_u64().unwrap());
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "demo-fast", "directives are stripped");
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["incomplete_details"], Value::Null);
    assert_eq!(
        r["output"],
        json!([{
            "id": format!("msg_mock_{request_id}"),
            "type": "message",
            "status": "completed",
            "content": [{ "type": "output_text", "annotations": [], "logprobs": [], "text": "mock reply: hello there world" }],
            "role": "assistant",
        }])
    );
    // instructions 2 words + input 3; reply 5 words.
    assert_eq!(
        r["usage"],
        json!({
            "input_tokens": 5,
            "input_tokens_details": { "cached_tokens": 0, "cache_write_tokens": 0 },
            "output_tokens": 5,
            "output_tokens_details": { "reasoning_tokens": 0 },
            "total_tokens": 10,
        })
    );
    // Echoed as OpenAI echoes them, with the API's defaults.
    assert_eq!(r["instructions"], "Be brief.");
    assert_eq!(r["temperature"], 0.5);
    assert_eq!(r["metadata"], json!({ "k": "v" }));
    assert_eq!(r["top_p"], 1.0);
    assert_eq!(r["tool_choice"], "auto");
    assert_eq!(r["tools"], json!([]));
    assert_eq!(r["parallel_tool_calls"], true);
    assert_eq!(r["store"], true);
    assert_eq!(r["background"], false);
    assert_eq!(r["previous_response_id"], Value::Null);
    assert_eq!(r["max_output_tokens"], Value::Null);
    assert_eq!(r["truncation"], "disabled");
    assert_eq!(r["service_tier"], "default");
    assert_eq!(r["reasoning"], json!({ "effort": null, "summary": null }));
    assert_eq!(
        r["text"],
        json!({ "format": { "type": "text" }, "verbosity": "medium" })
    );
    assert!(
        r.get("output_text").is_none(),
        "an SDK convenience, not a wire field"
    );

    // Recorded untranslated.
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/responses");
    assert_eq!(recorded[0].body["input"], "hello there world");
    assert_eq!(recorded[0].model(), Some("demo-fast+latency=1"));
}

#[tokio::test]
async fn input_items_count_and_the_last_user_message_is_echoed() {
    let mock = mock().await;
    let r = create(
        &mock,
        &json!({
            "model": "mock-model",
            "instructions": [{ "role": "developer", "content": "Answer well" }],
            "input": [
                { "role": "user", "content": [{ "type": "input_text", "text": "first question here" }] },
                { "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": "an answer" }] },
                { "type": "message", "role": "user", "content": [
                    { "type": "input_text", "text": "one two three four five six seven eight nine" },
                    { "type": "input_image", "image_url": "data:image/png;base64,AAAA" },
                ] },
            ],
        }),
    )
    .await;
    assert_eq!(
        r["output"][0]["content"][0]["text"],
        "mock reply: one two three four five six seven eight"
    );
    assert_eq!(r["usage"]["input_tokens"], 2 + 3 + 2 + 9);
    assert_eq!(r["usage"]["output_tokens"], 10);
}

#[tokio::test]
async fn function_call_when_asked_and_a_text_answer_to_its_output() {
    let mock = mock().await;
    let r = create(
        &mock,
        &json!({ "model": "demo-fast", "tools": tools(), "input": "please call tool lookup" }),
    )
    .await;
    let n = r["id"]
        .as_str()
        .unwrap()
        .strip_prefix("resp_mock_")
        .unwrap()
        .to_owned();
    assert_eq!(
        r["output"],
        json!([{
            "id": format!("fc_mock_{n}"),
            "type": "function_call",
            "status": "completed",
            "arguments": "{\"q\":\"please call tool lookup\"}",
            "call_id": format!("call_mock_{n}"),
            "name": "lookup",
        }])
    );
    assert_eq!(r["status"], "completed");
    // Output tokens: the words of the arguments.
    assert_eq!(r["usage"]["output_tokens"], 4);
    // Function tools are echoed with the API's defaults.
    assert_eq!(r["tools"][0]["strict"], true);
    assert_eq!(r["tools"][0]["name"], "lookup");

    // Without tools the same text gets a text answer; the tool_call behaviour forces a call.
    let plain = create(
        &mock,
        &json!({ "model": "demo-fast", "input": "please call tool lookup" }),
    )
    .await;
    assert_eq!(plain["output"][0]["type"], "message");
    let forced = create(
        &mock,
        &json!({ "model": "demo-fast+tool=search", "input": "x" }),
    )
    .await;
    assert_eq!(forced["output"][0]["name"], "search");

    // The tool result turn, chained: a text answer echoing the conversation's user message,
    // billed for the whole conversation.
    let follow = create(
        &mock,
        &json!({
            "model": "demo-fast",
            "tools": tools(),
            "previous_response_id": r["id"],
            "input": [{ "type": "function_call_output", "call_id": format!("call_mock_{n}"), "output": "sunny and warm" }],
        }),
    )
    .await;
    assert_eq!(follow["previous_response_id"], r["id"]);
    assert_eq!(follow["output"][0]["type"], "message");
    assert_eq!(
        follow["output"][0]["content"][0]["text"],
        "mock reply: please call tool lookup"
    );
    let previous = r["usage"]["total_tokens"].as_u64().unwrap();
    assert_eq!(follow["usage"]["input_tokens"], previous + 3);
}

#[tokio::test]
async fn reasoning_items_when_asked() {
    let mock = mock().await;
    let r = create(
        &mock,
        &json!({
            "model": "demo-smart",
            "input": "think about this",
            "reasoning": { "effort": "low", "summary": "auto" },
            "include": ["reasoning.encrypted_content"],
        }),
    )
    .await;
    let n = r["id"]
        .as_str()
        .unwrap()
        .strip_prefix("resp_mock_")
        .unwrap()
        .to_owned();
    let item = &r["output"][0];
    assert_eq!(item["id"], format!("rs_mock_{n}"));
    assert_eq!(item["type"], "reasoning");
    assert_eq!(
        item["summary"],
        json!([{ "type": "summary_text", "text": "mock thinking: think about this" }])
    );
    assert!(
        item["encrypted_content"]
            .as_str()
            .unwrap()
            .starts_with("mock-encrypted-")
    );
    assert_eq!(r["output"][1]["type"], "message");
    assert_eq!(
        r["reasoning"],
        json!({ "effort": "low", "summary": "auto" })
    );
    // Reasoning words (5) are output tokens too.
    assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 5);
    assert_eq!(r["usage"]["output_tokens"], 5 + 5);

    // Effort alone: a reasoning item without summary or encrypted content.
    let r = create(
        &mock,
        &json!({ "model": "demo-smart", "input": "hi", "reasoning": { "effort": "medium" } }),
    )
    .await;
    assert_eq!(r["output"][0]["summary"], json!([]));
    assert!(r["output"][0].get("encrypted_content").is_none());
    // `effort: none`: no reasoning.
    let r = create(
        &mock,
        &json!({ "model": "demo-smart", "input": "hi", "reasoning": { "effort": "none" } }),
    )
    .await;
    assert_eq!(r["output"][0]["type"], "message");
    assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn max_output_tokens_makes_the_response_incomplete() {
    let mock = mock().await;
    let r = create(
        &mock,
        &json!({ "model": "demo-fast", "input": "a b c", "max_output_tokens": 3 }),
    )
    .await;
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({ "reason": "max_output_tokens" })
    );
    assert_eq!(r["completed_at"], Value::Null);
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["output"][0]["content"][0]["text"], "mock reply: a");
    assert_eq!(r["max_output_tokens"], 3);
    assert_eq!(r["usage"]["output_tokens"], 3);

    let ev = stream(
        &mock,
        json!({ "model": "demo-fast", "input": "a b c", "max_output_tokens": 3 }),
    )
    .await;
    let (last, data) = ev.last().unwrap();
    assert_eq!(last, "response.incomplete");
    assert_eq!(data["response"]["status"], "incomplete");
}

// ---------------------------------------------------------------------------------------------
// Streamed

#[tokio::test]
async fn stream_text_event_order_ids_and_usage() {
    let mock = mock().await;
    let ev = stream(
        &mock,
        json!({ "model": "demo-fast", "instructions": "Be brief.", "input": "stream this please" }),
    )
    .await;
    assert_eq!(
        names(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &ev[0].1["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    let id = created["id"].as_str().unwrap();
    assert_eq!(ev[1].1["response"]["id"], id);
    let n = id.strip_prefix("resp_mock_").unwrap();
    let msg_id = format!("msg_mock_{n}");

    let added = &ev[2].1;
    assert_eq!(added["output_index"], 0);
    assert_eq!(
        added["item"],
        json!({ "id": msg_id, "type": "message", "status": "in_progress", "content": [], "role": "assistant" })
    );
    assert_eq!(
        ev[3].1["part"],
        json!({ "type": "output_text", "annotations": [], "logprobs": [], "text": "" })
    );
    for (name, data) in &ev[3..11] {
        assert_eq!(data["item_id"], msg_id, "{name}");
        assert_eq!(data["output_index"], 0, "{name}");
        assert_eq!(data["content_index"], 0, "{name}");
    }
    // One word per delta; the deltas make the done text.
    assert_eq!(ev[4].1["delta"], "mock");
    assert_eq!(ev[5].1["delta"], " reply:");
    let text = deltas(&ev, "response.output_text.delta");
    assert_eq!(text, "mock reply: stream this please");
    assert_eq!(ev[9].1["text"], text);
    assert_eq!(ev[10].1["part"]["text"], text);
    assert_eq!(ev[11].1["item"]["status"], "completed");
    assert_eq!(ev[11].1["item"]["content"][0]["text"], text);
    let done = &ev[12].1["response"];
    assert_eq!(done["id"], id);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], json!([ev[11].1["item"]]));
    assert_eq!(done["usage"]["input_tokens"], 5);
    assert_eq!(done["usage"]["output_tokens"], 5);
    assert_eq!(done["usage"]["total_tokens"], 10);

    // `chunks` groups the words into that many deltas.
    let ev = stream(
        &mock,
        json!({ "model": "demo-fast+chunks=2", "input": "a b c" }),
    )
    .await;
    let count = names(&ev)
        .iter()
        .filter(|n| **n == "response.output_text.delta")
        .count();
    assert_eq!(count, 2);
    assert_eq!(
        deltas(&ev, "response.output_text.delta"),
        "mock reply: a b c"
    );
}

#[tokio::test]
async fn stream_function_call_events() {
    let mock = mock().await;
    let ev = stream(
        &mock,
        json!({ "model": "demo-fast", "tools": tools(), "input": "now call tool lookup please" }),
    )
    .await;
    let names = names(&ev);
    assert_eq!(
        names[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    assert_eq!(
        names[names.len() - 3..],
        [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert!(
        names[3..names.len() - 3]
            .iter()
            .all(|n| *n == "response.function_call_arguments.delta")
    );
    assert!(names.len() > 6, "arguments come in several fragments");
    let n = ev[0].1["response"]["id"]
        .as_str()
        .unwrap()
        .strip_prefix("resp_mock_")
        .unwrap()
        .to_owned();
    let fc_id = format!("fc_mock_{n}");
    assert_eq!(
        ev[2].1["item"],
        json!({
            "id": fc_id, "type": "function_call", "status": "in_progress", "arguments": "",
            "call_id": format!("call_mock_{n}"), "name": "lookup",
        })
    );
    let arguments = deltas(&ev, "response.function_call_arguments.delta");
    assert_eq!(arguments, "{\"q\":\"now call tool lookup please\"}");
    let args_done = &ev[ev.len() - 3].1;
    assert_eq!(args_done["arguments"], arguments);
    assert_eq!(args_done["name"], "lookup");
    assert_eq!(args_done["item_id"], fc_id);
    assert_eq!(args_done["output_index"], 0);
    let item = &ev[ev.len() - 2].1["item"];
    assert_eq!(item["status"], "completed");
    assert_eq!(item["arguments"], arguments);
    let done = &ev[ev.len() - 1].1["response"];
    assert_eq!(done["output"], json!([item]));
    assert_eq!(done["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn stream_reasoning_summary_then_message() {
    let mock = mock().await;
    let ev = stream(
        &mock,
        json!({
            "model": "demo-smart",
            "input": "why is the sky blue",
            "reasoning": { "effort": "high", "summary": "detailed" },
        }),
    )
    .await;
    let names = names(&ev);
    assert_eq!(
        names[..5],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
        ]
    );
    let at = names
        .iter()
        .position(|n| *n == "response.reasoning_summary_text.done")
        .unwrap();
    assert_eq!(
        names[at..at + 4],
        [
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
        ]
    );
    let summary = deltas(&ev, "response.reasoning_summary_text.delta");
    assert_eq!(summary, "mock thinking: why is the sky blue");
    assert_eq!(ev[at].1["text"], summary);
    assert_eq!(ev[at].1["summary_index"], 0);
    assert_eq!(
        ev[at + 1].1["part"],
        json!({ "type": "summary_text", "text": summary })
    );
    assert_eq!(ev[2].1["item"]["summary"], json!([]));
    assert_eq!(ev[at + 2].1["item"]["summary"][0]["text"], summary);
    assert_eq!(ev[at + 2].1["output_index"], 0);
    // The message is the second output item.
    assert_eq!(ev[at + 3].1["output_index"], 1);
    assert_eq!(ev[at + 3].1["item"]["type"], "message");
    let done = &ev.last().unwrap().1["response"];
    assert_eq!(done["output"].as_array().unwrap().len(), 2);
    assert_eq!(
        done["usage"]["output_tokens_details"]["reasoning_tokens"],
        7
    );
}

/// The fields each event type must carry: the required (non-`Optional`) fields of the event
/// models in openai-python `src/openai/types/responses/response_*_event.py`.
const EVENT_FIELDS: &[(&str, &[&str])] = &[
    ("response.created", &["response"]),
    ("response.in_progress", &["response"]),
    ("response.completed", &["response"]),
    ("response.incomplete", &["response"]),
    ("response.failed", &["response"]),
    ("response.output_item.added", &["item", "output_index"]),
    ("response.output_item.done", &["item", "output_index"]),
    (
        "response.content_part.added",
        &["content_index", "item_id", "output_index", "part"],
    ),
    (
        "response.content_part.done",
        &["content_index", "item_id", "output_index", "part"],
    ),
    (
        "response.output_text.delta",
        &[
            "content_index",
            "delta",
            "item_id",
            "logprobs",
            "output_index",
        ],
    ),
    (
        "response.output_text.done",
        &[
            "content_index",
            "item_id",
            "logprobs",
            "output_index",
            "text",
        ],
    ),
    (
        "response.function_call_arguments.delta",
        &["delta", "item_id", "output_index"],
    ),
    (
        "response.function_call_arguments.done",
        &["arguments", "item_id", "name", "output_index"],
    ),
    (
        "response.reasoning_summary_part.added",
        &["item_id", "output_index", "part", "summary_index"],
    ),
    (
        "response.reasoning_summary_part.done",
        &["item_id", "output_index", "part", "summary_index"],
    ),
    (
        "response.reasoning_summary_text.delta",
        &["delta", "item_id", "output_index", "summary_index"],
    ),
    (
        "response.reasoning_summary_text.done",
        &["item_id", "output_index", "summary_index", "text"],
    ),
    ("error", &["message"]),
];

/// The keys of a `response` object in the live-API snapshot of openai-python
/// `tests/lib/responses/test_responses.py` (`test_output_text`).
const RESPONSE_FIELDS: &[&str] = &[
    "id",
    "object",
    "created_at",
    "status",
    "background",
    "error",
    "incomplete_details",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "model",
    "output",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "usage",
    "user",
    "metadata",
];

fn assert_fields(value: &Value, fields: &[&str], what: &str) {
    for field in fields {
        assert!(value.get(field).is_some(), "{what} lacks {field}: {value}");
    }
}

#[tokio::test]
async fn every_event_and_response_has_the_fields_the_sdk_types_require() {
    let mock = mock().await;
    let mut all = Vec::new();
    for body in [
        json!({ "model": "demo-fast", "input": "plain text" }),
        json!({ "model": "demo-fast", "tools": tools(), "input": "call tool lookup" }),
        json!({ "model": "demo-fast", "input": "x", "reasoning": { "effort": "low", "summary": "auto" } }),
        json!({ "model": "demo-fast", "input": "a b c", "max_output_tokens": 2 }),
        json!({ "model": "demo-fast+error_event", "input": "a b c" }),
    ] {
        all.extend(stream(&mock, body).await);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, data) in &all {
        let (_, fields) = EVENT_FIELDS
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("unexpected event {name}"));
        assert_fields(data, fields, name);
        if let Some(response) = data.get("response") {
            assert_fields(response, RESPONSE_FIELDS, name);
        }
        seen.insert(name.as_str());
    }
    // Every event type in the table was exercised.
    assert_eq!(seen.len(), EVENT_FIELDS.len());
    let r = create(&mock, &json!({ "model": "demo-fast", "input": "x" })).await;
    assert_fields(&r, RESPONSE_FIELDS, "response");
}

// ---------------------------------------------------------------------------------------------
// Scripted behaviour

#[tokio::test]
async fn scripted_status_is_an_openai_error() {
    let mock = mock().await;
    let resp = post(
        &mock,
        &json!({ "model": "demo-fast+status=429", "input": "x" }),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"].is_string());

    // A path rule applies to the Responses endpoint only.
    mock.script(
        ScriptRule::new(Behavior {
            status: Some(503),
            message: Some("busy".into()),
            ..Default::default()
        })
        .path("/v1/responses")
        .times(1),
    );
    let resp = post(&mock, &json!({ "model": "demo-fast", "input": "x" })).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "busy");
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(
        post(&mock, &json!({ "model": "demo-fast", "input": "x" }))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn scripted_error_event_sends_error_then_response_failed() {
    let mock = mock().await;
    let ev = stream(
        &mock,
        json!({ "model": "demo-fast+error_event+cut=2+message=went away", "input": "a b c" }),
    )
    .await;
    assert_eq!(
        names(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "error",
            "response.failed",
        ]
    );
    let error = &ev[6].1;
    assert_eq!(error["code"], "server_error");
    assert_eq!(error["message"], "went away");
    // The openai SDKs raise on a top-level `error` key.
    assert_eq!(
        error["error"],
        json!({ "type": "server_error", "code": "server_error", "message": "went away", "param": null })
    );
    let failed = &ev[7].1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({ "code": "server_error", "message": "went away" })
    );
    assert_eq!(failed["id"], ev[0].1["response"]["id"]);
    // Stored as failed.
    let stored = mock
        .stored_response(failed["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(stored["status"], "failed");

    // Without a cut: after the first delta.
    let ev = stream(
        &mock,
        json!({ "model": "demo-fast+error_event", "input": "a b" }),
    )
    .await;
    assert_eq!(deltas(&ev, "response.output_text.delta"), "mock");
    assert_eq!(names(&ev)[ev.len() - 2..], ["error", "response.failed"]);
    // Ignored without streaming.
    let r = create(
        &mock,
        &json!({ "model": "demo-fast+error_event", "input": "a" }),
    )
    .await;
    assert_eq!(r["status"], "completed");
}

#[tokio::test]
async fn scripted_cut_latency_chunk_delay_and_reset() {
    let mock = mock().await;
    // Cut after 2 deltas: a body error, no terminal event.
    let resp = post(
        &mock,
        &json!({ "model": "demo-fast+cut=2", "input": "a b c", "stream": true }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut failed = false;
    use futures_util::StreamExt as _;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the cut is a body error");
    assert_eq!(text.matches("event: response.output_text.delta").count(), 2);
    assert!(!text.contains("response.completed"));
    // Non-stream: half the body, then the connection breaks.
    let resp = post(&mock, &json!({ "model": "demo-fast+cut=1", "input": "a" })).await;
    assert!(resp.bytes().await.is_err());

    // Latency before the head; a chunk delay before every delta (4 deltas).
    let started = Instant::now();
    let resp = post(
        &mock,
        &json!({ "model": "demo-fast+latency=150", "input": "a" }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    let ev = stream(
        &mock,
        json!({ "model": "demo-fast+chunk_delay=40", "input": "a b" }),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(4 * 40));
    assert_eq!(ev.last().unwrap().0, "response.completed");

    // Reset: no response at all.
    let err = post_raw(&mock, &json!({ "model": "demo-fast+reset", "input": "a" })).await;
    assert!(err.is_err());
}

#[tokio::test]
async fn scripted_bytes_and_inject_keep_the_sequence() {
    let mock = mock().await;
    // About 100 KiB of filler: 9 deltas of 12 KiB, each with its own sequence number.
    let ev = stream(
        &mock,
        json!({ "model": "demo-fast+bytes=100k", "input": "x" }),
    )
    .await;
    let text = deltas(&ev, "response.output_text.delta");
    assert_eq!(text.len(), 9 * 12 * 1024);
    assert!(text.starts_with("lorem lorem"));
    let done = &ev.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], text);
    assert_eq!(done["usage"]["output_tokens"], 9 * 2048);
    // Too big to keep (over 4 MiB of JSON): not stored, so not retrievable.
    let big = create(
        &mock,
        &json!({ "model": "demo-fast+bytes=5M", "input": "x" }),
    )
    .await;
    assert!(mock.stored_response(big["id"].as_str().unwrap()).is_none());
    assert!(mock.stored_response(done["id"].as_str().unwrap()).is_some());

    // inject: raw text after the first delta, then the stream goes on.
    let resp = client()
        .post(format!("{}/v1/responses", mock.base_url()))
        .header("x-mock-inject", ": keep-alive")
        .json(&json!({ "model": "demo-fast", "input": "a", "stream": true }))
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.contains("event: response.output_text.delta"));
    let first = text.find("event: response.output_text.delta").unwrap();
    let injected = text.find(": keep-alive").unwrap();
    assert!(injected > first, "after the first delta");
    assert!(text.contains("event: response.completed"));
}

async fn post_raw(mock: &MockUpstream, body: &Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/v1/responses", mock.base_url()))
        .json(body)
        .send()
        .await
}

// ---------------------------------------------------------------------------------------------
// The store: previous_response_id, GET and DELETE

#[tokio::test]
async fn previous_response_id_found_and_not_found() {
    let mock = mock().await;
    let first = create(
        &mock,
        &json!({ "model": "demo-fast", "input": "my name is Ada" }),
    )
    .await;
    let second = create(
        &mock,
        &json!({ "model": "demo-fast", "previous_response_id": first["id"], "input": "what is it" }),
    )
    .await;
    assert_eq!(second["previous_response_id"], first["id"]);
    assert_eq!(
        second["output"][0]["content"][0]["text"],
        "mock reply: what is it"
    );
    assert_eq!(
        second["usage"]["input_tokens"],
        first["usage"]["total_tokens"].as_u64().unwrap() + 3
    );

    let resp = post(
        &mock,
        &json!({ "model": "demo-fast", "previous_response_id": "resp_unknown", "input": "x" }),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "error": {
            "message": "Previous response with id 'resp_unknown' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        } })
    );
    // A stream refers back the same way.
    let ev = stream(
        &mock,
        json!({ "model": "demo-fast", "previous_response_id": second["id"], "input": "again" }),
    )
    .await;
    assert_eq!(
        ev.last().unwrap().1["response"]["previous_response_id"],
        second["id"]
    );
}

#[tokio::test]
async fn get_and_delete_stored_responses() {
    let mock = mock().await;
    let c = client();
    let r = create(&mock, &json!({ "model": "demo-fast", "input": "keep me" })).await;
    let id = r["id"].as_str().unwrap();
    let url = format!("{}/v1/responses/{id}", mock.base_url());
    let got: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, r);
    assert_eq!(mock.stored_response(id), Some(r.clone()));

    let deleted = c.delete(&url).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(
        deleted,
        json!({ "id": id, "object": "response.deleted", "deleted": true })
    );
    for resp in [
        c.get(&url).send().await.unwrap(),
        c.delete(&url).send().await.unwrap(),
    ] {
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(
            body["error"]["message"],
            format!("Response with id '{id}' not found.")
        );
    }
    // A deleted response cannot be continued.
    let resp = post(
        &mock,
        &json!({ "model": "demo-fast", "previous_response_id": id, "input": "x" }),
    )
    .await;
    assert_eq!(resp.status(), 400);

    // store: false keeps nothing.
    let r = create(
        &mock,
        &json!({ "model": "demo-fast", "input": "forget me", "store": false }),
    )
    .await;
    assert_eq!(r["store"], false);
    let url = format!(
        "{}/v1/responses/{}",
        mock.base_url(),
        r["id"].as_str().unwrap()
    );
    assert_eq!(c.get(&url).send().await.unwrap().status(), 404);

    // The GET and DELETE are recorded too; wrong methods and deeper paths are refused.
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.starts_with("/v1/responses/"))
    );
    let put = c.put(&url).send().await.unwrap();
    assert_eq!(put.status(), 405);
    let deeper = c.get(format!("{url}/input_items")).send().await.unwrap();
    assert_eq!(deeper.status(), 404);
    let body: Value = deeper.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    assert_eq!(
        c.get(format!("{}/v1/responses", mock.base_url()))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
}

#[tokio::test]
async fn the_store_is_bounded_and_reset_empties_it() {
    let config = MockConfig {
        response_capacity: 2,
        ..MockConfig::default()
    };
    let mock = MockUpstream::start_with(any_port(), config).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = create(
            &mock,
            &json!({ "model": "demo-fast", "input": format!("n {i}") }),
        )
        .await;
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    assert!(
        mock.stored_response(&ids[0]).is_none(),
        "the oldest is evicted"
    );
    assert!(mock.stored_response(&ids[1]).is_some());
    assert!(mock.stored_response(&ids[2]).is_some());
    mock.reset();
    assert!(mock.stored_response(&ids[2]).is_none());
    // The control API's reset too.
    let r = create(&mock, &json!({ "model": "demo-fast", "input": "x" })).await;
    let id = r["id"].as_str().unwrap();
    assert!(mock.stored_response(id).is_some());
    let reset = client()
        .post(format!("{}/_mock/reset", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert!(mock.stored_response(id).is_none());
}

// ---------------------------------------------------------------------------------------------
// Bad requests and authentication

#[tokio::test]
async fn malformed_requests_get_openai_400s_with_the_param() {
    let mock = mock().await;
    for (body, param) in [
        (json!({ "input": "x" }), "model"),
        (json!({ "model": "m", "input": 5 }), "input"),
        (
            json!({ "model": "m", "input": [{ "role": "user", "content": "x" }, "y"] }),
            "input[1]",
        ),
        (
            json!({ "model": "m", "input": [{ "content": "x" }] }),
            "input[0].type",
        ),
        (
            json!({ "model": "m", "input": [{ "type": "message", "content": "x" }] }),
            "input[0].role",
        ),
        (
            json!({ "model": "m", "input": [{ "role": "user", "content": 3 }] }),
            "input[0].content",
        ),
        (json!({ "model": "m", "input": "x", "tools": {} }), "tools"),
        (
            json!({ "model": "m", "input": "x", "max_output_tokens": -1 }),
            "max_output_tokens",
        ),
        (
            json!({ "model": "m", "input": "x", "previous_response_id": 7 }),
            "previous_response_id",
        ),
        (
            json!({ "model": "m", "input": "x", "conversation": "conv_1" }),
            "conversation",
        ),
    ] {
        let resp = post(&mock, &body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(err["error"]["param"], param, "{body}");
        assert!(err["error"]["message"].is_string());
    }
    let resp = client()
        .post(format!("{}/v1/responses", mock.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn responses_need_the_openai_key_when_one_is_required() {
    let config = MockConfig {
        require_key: Some("sk-resp".into()),
        ..MockConfig::default()
    };
    let mock = MockUpstream::start_with(any_port(), config).await.unwrap();
    let c = client();
    let url = format!("{}/v1/responses", mock.base_url());
    let body = json!({ "model": "demo-fast", "input": "x" });
    for key in [None, Some("wrong")] {
        let mut req = c.post(&url).json(&body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_api_key");
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(
            !err.to_string().contains("sk-resp"),
            "the key is never echoed"
        );
    }
    let ok: Value = c
        .post(&url)
        .bearer_auth("sk-resp")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = format!("{url}/{}", ok["id"].as_str().unwrap());
    assert_eq!(c.get(&item).send().await.unwrap().status(), 401);
    assert_eq!(c.delete(&item).send().await.unwrap().status(), 401);
    assert_eq!(
        c.get(&item)
            .bearer_auth("sk-resp")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

// ---------------------------------------------------------------------------------------------
// Anthropic count_tokens

async fn count_tokens(mock: &MockUpstream, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages/count_tokens", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn count_tokens_numbers_agree_with_messages() {
    let mock = mock().await;
    let body = json!({
        "model": "demo-smart",
        "system": [{ "type": "text", "text": "You are a careful assistant.", "cache_control": { "type": "ephemeral" } }],
        "tools": [{ "name": "lookup", "description": "Look things up", "input_schema": { "type": "object" } }],
        "messages": [
            { "role": "user", "content": "first question" },
            { "role": "assistant", "content": [
                { "type": "text", "text": "let me look" },
                { "type": "tool_use", "id": "t1", "name": "lookup", "input": { "q": "a b c" } },
            ] },
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "t1", "content": [{ "type": "text", "text": "result words here" }] },
                { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "AAAA" } },
            ] },
        ],
    });
    let resp = count_tokens(&mock, &body).await;
    assert_eq!(resp.status(), 200);
    let counted: Value = resp.json().await.unwrap();
    // system 5 + 2 + 3 + tool result 3; tool definitions, tool_use and images count nothing.
    assert_eq!(counted, json!({ "input_tokens": 13 }));

    // The same body through /v1/messages reports the same total (split into cache numbers).
    let mut message = body.clone();
    message["max_tokens"] = json!(64);
    let answer: Value = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(&message)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let usage = &answer["usage"];
    let total = usage["input_tokens"].as_u64().unwrap()
        + usage["cache_creation_input_tokens"].as_u64().unwrap()
        + usage["cache_read_input_tokens"].as_u64().unwrap();
    assert_eq!(total, 13);
    assert!(usage["cache_creation_input_tokens"].as_u64().unwrap() > 0);

    // max_tokens is not needed; a string system prompt counts its words.
    let counted: Value = count_tokens(
        &mock,
        &json!({ "model": "m", "system": "be brief", "messages": [{ "role": "user", "content": "one two three four" }] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(counted["input_tokens"], 6);

    // Recorded.
    let recorded = mock.requests();
    assert!(
        recorded
            .iter()
            .any(|r| r.path == "/v1/messages/count_tokens")
    );
}

#[tokio::test]
async fn count_tokens_errors_scripts_and_auth() {
    let mock = mock().await;
    for body in [
        json!({ "messages": [{ "role": "user", "content": "x" }] }),
        json!({ "model": "demo-smart" }),
        json!({ "model": "demo-smart", "messages": "x" }),
    ] {
        let resp = count_tokens(&mock, &body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["type"], "error");
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Field required")
        );
    }
    let body = json!({ "model": "demo-smart", "messages": [{ "role": "user", "content": "x" }] });
    // Scripted status and latency apply.
    let resp = client()
        .post(format!("{}/v1/messages/count_tokens", mock.base_url()))
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-status", "529")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 529);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["type"], "overloaded_error");
    let started = Instant::now();
    let mut slow = body.clone();
    slow["model"] = json!("demo-smart+latency=120");
    assert_eq!(count_tokens(&mock, &slow).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(120));

    // No anthropic-version: 400.
    let resp = client()
        .post(format!("{}/v1/messages/count_tokens", mock.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // With a required key: 401 without it or with a wrong one.
    let keyed = MockUpstream::start_with(
        any_port(),
        MockConfig {
            anthropic_key: Some("ak-count".into()),
            ..MockConfig::default()
        },
    )
    .await
    .unwrap();
    let url = format!("{}/v1/messages/count_tokens", keyed.base_url());
    for key in [None, Some("wrong")] {
        let mut req = client()
            .post(&url)
            .header("anthropic-version", "2023-06-01")
            .json(&body);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "authentication_error");
    }
    let ok = client()
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "ak-count")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// The binary

#[test]
fn binary_serves_responses_and_count_tokens() {
    let (mut child, url) = switchyard_tests::harness::spawn_mock_upstream(
        env!("CARGO_BIN_EXE_run-mock-upstream"),
        &["--response-capacity", "1"],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (first, second, first_get, counted) = runtime.block_on(async {
        let c = client();
        let mut ids = Vec::new();
        for input in ["one", "two"] {
            let r: Value = c
                .post(format!("{url}/v1/responses"))
                .json(&json!({ "model": "demo-fast", "input": input }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(r);
        }
        let first_get = c
            .get(format!(
                "{url}/v1/responses/{}",
                ids[0]["id"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .status();
        let counted: Value = c
            .post(format!("{url}/v1/messages/count_tokens"))
            .header("anthropic-version", "2023-06-01")
            .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "a b" }] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (ids[0].clone(), ids[1].clone(), first_get, counted)
    });
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success());
    assert_eq!(first["status"], "completed");
    assert_eq!(second["output"][0]["content"][0]["text"], "mock reply: two");
    // --response-capacity 1: the first one was evicted.
    assert_eq!(first_get, 404);
    assert_eq!(counted, json!({ "input_tokens": 2 }));
}
