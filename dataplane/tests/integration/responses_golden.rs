//! Golden tests for the Responses ⇄ chat translation, against recorded OpenAI streams.
//!
//! Each case in `tests/fixtures/responses/<case>/` (see `SOURCE.md` there for where the
//! recording comes from) holds:
//!
//! - `request.json`: the client's Responses request;
//! - `openai.sse`: what OpenAI itself streams for that request (a recorded stream, abridged);
//! - `chat.in.sse`: the same answer as a chat completions upstream streams it, and `chat.json`
//!   as it answers without streaming;
//! - `stream.out.sse`: what `ChatToResponsesStream` makes of `chat.in.sse` (generated: run with
//!   `UPDATE_GOLDEN=1` and review the diff; `created_at` and a set `completed_at` are stored
//!   as 0).
//!
//! The test checks that our stream matches OpenAI's in shape — the same event types in the
//! same order, every field OpenAI sends present with the same JSON type (the few we cannot
//! produce are listed in [`NOT_PRODUCED`]), the same indices, statuses, texts and arguments —
//! that the body translation of `chat.json` gives the same response object as the stream's
//! last event, and that the stream gives Codex CLI what its parser reads (see `translate/responses/stream.rs`).

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use switchyard_dataplane::sse::{SseEvent, SseParser};
use switchyard_dataplane::translate::{
    ChatToResponsesStream, chat_response_to_responses, responses_to_chat,
};

/// Fields OpenAI sends that a chat upstream gives us nothing for: `obfuscation` (stream
/// padding), moderation and built-in tool accounting, sampling penalties the Responses API
/// does not take, `phase` (Codex models only), `output_schema` and the reasoning `context` and
/// `mode` (echoes of options the chat translation does not have), `prompt_cache_retention`,
/// and `encrypted_content` (OpenAI's own encrypted reasoning; ours carries only Anthropic
/// thinking).
const NOT_PRODUCED: &[&str] = &[
    "obfuscation",
    "moderation",
    "tool_usage",
    "frequency_penalty",
    "presence_penalty",
    "phase",
    "output_schema",
    "context",
    "mode",
    "prompt_cache_retention",
    "encrypted_content",
];

/// Fields whose values must be equal, not only of the same type.
const EXACT: &[&str] = &[
    "type",
    "object",
    "status",
    "role",
    "output_index",
    "content_index",
    "summary_index",
    "sequence_number",
    "delta",
    "text",
    "arguments",
    "name",
    "call_id",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
];

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/responses")
}

fn updating() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn parse_sse(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = parser.push(bytes).unwrap();
    events.extend(parser.finish());
    events
}

fn data(ev: &SseEvent) -> Value {
    serde_json::from_str(&ev.data).unwrap_or_else(|e| panic!("{e}: {}", ev.data))
}

/// Times are the translation's; pin them.
fn normalize(mut v: Value) -> Value {
    if let Some(r) = v.get_mut("response") {
        r["created_at"] = json!(0);
        if !r["completed_at"].is_null() {
            r["completed_at"] = json!(0);
        }
    }
    v
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of `reference` is in `ours` with the same JSON type (null matches anything:
/// an unset option on one side), and [`EXACT`] fields are equal. Item ids differ by design.
fn same_shape(reference: &Value, ours: &Value, path: &str, failures: &mut Vec<String>) {
    match (reference, ours) {
        (Value::Object(r), Value::Object(o)) => {
            for (k, rv) in r {
                let p = format!("{path}.{k}");
                match o.get(k) {
                    None if NOT_PRODUCED.contains(&k.as_str()) => {}
                    None => failures.push(format!("{p}: missing (OpenAI sends {rv})")),
                    Some(ov) => {
                        if EXACT.contains(&k.as_str()) && rv != ov {
                            failures.push(format!("{p}: {ov} where OpenAI sends {rv}"));
                        } else {
                            same_shape(rv, ov, &p, failures);
                        }
                    }
                }
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            if r.len() != o.len() {
                failures.push(format!("{path}: {} elements, OpenAI {}", o.len(), r.len()));
            }
            for (i, (rv, ov)) in r.iter().zip(o).enumerate() {
                same_shape(rv, ov, &format!("{path}[{i}]"), failures);
            }
        }
        (Value::Null, _) | (_, Value::Null) => {}
        (r, o) if kind(r) != kind(o) => {
            failures.push(format!(
                "{path}: {} where OpenAI sends {}",
                kind(o),
                kind(r)
            ));
        }
        _ => {}
    }
}

/// What Codex CLI's SSE parser (openai/codex `codex-rs/codex-api/src/sse/responses.rs`) reads.
fn codex_reads(events: &[Value], failures: &mut Vec<String>) {
    let Some(last) = events.last() else {
        failures.push("no events".into());
        return;
    };
    // `response.completed` with `response.id` and a usage it can deserialize.
    if last["type"] != "response.completed" {
        failures.push(format!("last event is {}", last["type"]));
    }
    let response = &last["response"];
    if !response["id"].is_string() {
        failures.push("response.completed without response.id".into());
    }
    let usage = &response["usage"];
    for key in ["input_tokens", "output_tokens", "total_tokens"] {
        if !usage[key].is_i64() {
            failures.push(format!("usage.{key} is not an integer: {usage}"));
        }
    }
    for (outer, inner) in [
        ("input_tokens_details", "cached_tokens"),
        ("output_tokens_details", "reasoning_tokens"),
    ] {
        if !usage[outer][inner].is_i64() {
            failures.push(format!("usage.{outer}.{inner} is not an integer"));
        }
    }
    // Every `response.output_item.done` carries a whole item of a type it knows.
    for ev in events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
    {
        let item = &ev["item"];
        let ok = match item["type"].as_str() {
            Some("message") => {
                item["role"] == "assistant"
                    && item["content"].as_array().is_some_and(|c| {
                        c.iter().all(|p| {
                            (p["type"] == "output_text" && p["text"].is_string())
                                || (p["type"] == "refusal" && p["refusal"].is_string())
                        })
                    })
            }
            Some("function_call") => {
                item["name"].is_string()
                    && item["arguments"].is_string()
                    && item["call_id"].is_string()
            }
            Some("reasoning") => item["id"].is_string() && item["summary"].is_array(),
            _ => false,
        };
        if !ok {
            failures.push(format!("output_item.done Codex cannot read: {item}"));
        }
    }
    // Deltas it displays: `delta` strings; reasoning summary deltas with `summary_index`.
    for ev in events {
        let ty = ev["type"].as_str().unwrap_or("");
        if ty.ends_with(".delta") && !ev["delta"].is_string() {
            failures.push(format!("{ty} without a string delta"));
        }
        if ty.starts_with("response.reasoning_summary") && !ev["summary_index"].is_i64() {
            failures.push(format!("{ty} without summary_index"));
        }
    }
}

fn run_case(path: &Path, failures: &mut Vec<String>) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let request: Value =
        serde_json::from_str(&fs::read_to_string(path.join("request.json")).unwrap()).unwrap();
    // The request translates (it is what the client sent for this answer).
    let chat = responses_to_chat(&request, "qwen3-32b")
        .unwrap_or_else(|e| panic!("{name}: request does not translate: {e}"));
    assert_eq!(
        chat["stream_options"],
        json!({"include_usage": true}),
        "{name}"
    );

    let reference: Vec<Value> = parse_sse(&fs::read(path.join("openai.sse")).unwrap())
        .iter()
        .map(data)
        .collect();
    let response_id = reference[0]["response"]["id"].as_str().unwrap();
    let mut t = ChatToResponsesStream::new(response_id, "", &request);
    let mut out = Vec::new();
    for ev in parse_sse(&fs::read(path.join("chat.in.sse")).unwrap()) {
        out.extend(t.on_event(&ev).unwrap());
    }
    out.extend(t.finish());
    let ours: Vec<Value> = out.iter().map(data).collect();

    // Named events: the `event:` line is the type.
    for (ev, d) in out.iter().zip(&ours) {
        if ev.event.as_deref() != d["type"].as_str() {
            failures.push(format!(
                "{name}: event {:?} carries {}",
                ev.event, d["type"]
            ));
        }
    }
    let types = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    };
    if types(&reference) != types(&ours) {
        failures.push(format!(
            "{name}: event types differ:\n  OpenAI {:?}\n  ours   {:?}",
            types(&reference),
            types(&ours)
        ));
    }
    for (i, (r, o)) in reference.iter().zip(&ours).enumerate() {
        let mut f = Vec::new();
        same_shape(r, o, &format!("{name}: event {i} ({})", r["type"]), &mut f);
        failures.extend(f);
        if o.get("response")
            .is_some_and(|r| r.get("output_text").is_some())
        {
            failures.push(format!(
                "{name}: output_text is an SDK property, not a wire field"
            ));
        }
    }
    let mut f = Vec::new();
    codex_reads(&ours, &mut f);
    failures.extend(f.into_iter().map(|m| format!("{name}: {m}")));
    // The final response object is the one a response store keeps.
    if let Some(last) = ours.last()
        && last["response"] != t.response()
    {
        failures.push(format!("{name}: response() differs from the final event"));
    }

    // The same answer, not streamed: the same response object as the stream's last event
    // (times aside), so it has OpenAI's shape too.
    let chat_body: Value =
        serde_json::from_str(&fs::read_to_string(path.join("chat.json")).unwrap()).unwrap();
    let body = chat_response_to_responses(&chat_body, &request, response_id);
    let mut f = Vec::new();
    same_shape(
        &reference.last().unwrap()["response"],
        &body,
        &format!("{name}: chat.json"),
        &mut f,
    );
    failures.extend(f);
    let stream_final = normalize(json!({ "response": t.response() }));
    if normalize(json!({ "response": body })) != stream_final {
        failures.push(format!(
            "{name}: the body translation differs from the stream's final response"
        ));
    }

    // Exact regression against the generated file.
    let golden = path.join("stream.out.sse");
    if updating() {
        let text: String = out
            .iter()
            .map(|ev| {
                let v = normalize(data(ev));
                SseEvent::named(ev.event.clone().unwrap_or_default(), v.to_string()).to_bytes()
            })
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        fs::write(&golden, text).unwrap();
        return;
    }
    let Ok(expected) = fs::read(&golden) else {
        failures.push(format!(
            "{}: missing (run with UPDATE_GOLDEN=1)",
            golden.display()
        ));
        return;
    };
    let expected: Vec<Value> = parse_sse(&expected).iter().map(data).collect();
    let actual: Vec<Value> = ours.into_iter().map(normalize).collect();
    if expected != actual {
        for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
            if e != a {
                failures.push(format!(
                    "{name}: stream.out.sse event {i}:\n  expected {e}\n  actual   {a}"
                ));
            }
        }
        if expected.len() != actual.len() {
            failures.push(format!(
                "{name}: stream.out.sse has {} events, the translation {}",
                expected.len(),
                actual.len()
            ));
        }
    }
}

#[test]
fn responses_streams_match_recorded_openai_streams() {
    let mut cases: Vec<PathBuf> = fs::read_dir(fixtures_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let names: Vec<String> = cases
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["function_call", "reasoning_function_call", "text"]);
    let mut failures = Vec::new();
    for case in &cases {
        run_case(case, &mut failures);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The shape check itself catches a missing field and a wrong order (it could not fail
/// otherwise).
#[test]
fn shape_check_detects_differences() {
    let mut f = Vec::new();
    same_shape(
        &json!({"type": "a", "item": {"id": "x", "status": "completed", "obfuscation": "z"}}),
        &json!({"type": "a", "item": {"id": "y", "status": "completed"}}),
        "e",
        &mut f,
    );
    assert!(f.is_empty(), "{f:?}");
    same_shape(
        &json!({"type": "a", "item": {"call_id": "c", "status": "completed"}}),
        &json!({"type": "b", "item": {"status": 1}}),
        "e",
        &mut f,
    );
    assert_eq!(f.len(), 3, "{f:?}");
}
