//! Golden tests for the OpenAI ⇄ Anthropic translation layer.
//!
//! Fixtures live in `tests/fixtures/translate/<direction>/<case>/` (see the README there):
//!
//! - `chat_to_messages`: an OpenAI chat client routed to an Anthropic Messages upstream
//!   (`openai_chat_to_anthropic`, `anthropic_response_to_openai`, `AnthropicToOpenAiStream`);
//! - `messages_to_chat`: an Anthropic Messages client routed to an OpenAI-dialect upstream
//!   (`anthropic_to_openai_chat`, `openai_response_to_anthropic`, `OpenAiToAnthropicStream`).
//!
//! Each case holds any of the pairs `request.in.json` → `request.out.json` (or
//! `request.error.json`), `response.in.json` → `response.out.json` and `stream.in.sse` →
//! `stream.out.sse`, plus an optional `case.json` (`{"model": …, "include_usage": …,
//! "target": …}`; `target` is the Provider or Backend type a `messages_to_chat` request is
//! translated for, `openai` by default).
//! JSON is compared as values; streams are parsed with `SseParser` and compared event by event
//! (event name, then data as JSON when it is JSON). OpenAI's `created` is set to 0 before
//! comparing. Run with `UPDATE_GOLDEN=1` to rewrite the expected files (review the diff!).

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use switchyard_dataplane::sse::{SseEvent, SseParser};
use switchyard_dataplane::translate::{
    AnthropicToOpenAiStream, ChatTarget, OpenAiToAnthropicStream, TranslateError,
    anthropic_response_to_openai, anthropic_to_openai_chat, openai_chat_to_anthropic,
    openai_response_to_anthropic,
};
use switchyard_dataplane::usage::Usage;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    /// OpenAI chat client → Anthropic upstream.
    ChatToMessages,
    /// Anthropic Messages client → OpenAI upstream.
    MessagesToChat,
}

impl Direction {
    fn dir(self) -> &'static str {
        match self {
            Direction::ChatToMessages => "chat_to_messages",
            Direction::MessagesToChat => "messages_to_chat",
        }
    }

    fn default_model(self) -> &'static str {
        match self {
            Direction::ChatToMessages => "claude-sonnet-4-5-20250929",
            Direction::MessagesToChat => "gpt-4.1-2025-04-14",
        }
    }
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/translate")
}

fn updating() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write_json(path: &Path, v: &Value) {
    let mut text = serde_json::to_string_pretty(v).unwrap();
    text.push('\n');
    fs::write(path, text).unwrap();
}

/// OpenAI's `created` is the translation time; pin it.
fn normalize(mut v: Value) -> Value {
    if let Some(created) = v.get_mut("created") {
        assert!(created.is_i64(), "created must be an integer: {created}");
        *created = json!(0);
    }
    v
}

fn error_json(e: &TranslateError) -> Value {
    match e {
        TranslateError::Invalid { param, message } => {
            json!({ "kind": "invalid", "param": param, "message": message })
        }
        TranslateError::Unsupported(param) => json!({ "kind": "unsupported", "param": param }),
    }
}

fn parse_sse(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = parser.push(bytes).unwrap();
    events.extend(parser.finish());
    events
}

/// Runs a stream through parser and translator, `chunk` bytes at a time.
fn translate_stream(dir: Direction, case: &Value, input: &[u8], chunk: usize) -> Vec<SseEvent> {
    let model = case["model"].as_str().unwrap();
    let include_usage = case["include_usage"].as_bool().unwrap();
    let mut parser = SseParser::new();
    let mut upstream = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        upstream.extend(parser.push(piece).unwrap());
    }
    upstream.extend(parser.finish());
    let mut out = Vec::new();
    match dir {
        Direction::ChatToMessages => {
            let mut t = AnthropicToOpenAiStream::new(model, include_usage);
            for ev in &upstream {
                out.extend(t.on_event(ev).unwrap());
            }
        }
        Direction::MessagesToChat => {
            let mut t = OpenAiToAnthropicStream::new(model);
            for ev in &upstream {
                out.extend(t.on_event(ev).unwrap());
            }
            out.extend(t.finish());
        }
    }
    out
}

fn event_data(ev: &SseEvent) -> Value {
    match serde_json::from_str::<Value>(&ev.data) {
        Ok(v) => normalize(v),
        Err(_) => Value::String(ev.data.clone()),
    }
}

fn compare_streams(expected: &[SseEvent], actual: &[SseEvent]) -> Result<(), String> {
    let mut report = String::new();
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if e.event != a.event || event_data(e) != event_data(a) {
            let _ = writeln!(
                report,
                "  event {i}:\n    expected {:?} {}\n    actual   {:?} {}",
                e.event,
                event_data(e),
                a.event,
                event_data(a)
            );
        }
    }
    if expected.len() != actual.len() {
        let _ = writeln!(
            report,
            "  expected {} events, got {}; extra: {:?}",
            expected.len(),
            actual.len(),
            if actual.len() > expected.len() {
                &actual[expected.len()..]
            } else {
                &expected[actual.len()..]
            }
        );
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

fn check_json(expected_path: &Path, actual: &Value, failures: &mut Vec<String>) {
    if updating() {
        write_json(expected_path, actual);
        return;
    }
    if !expected_path.exists() {
        failures.push(format!("{} is missing", expected_path.display()));
        return;
    }
    let expected = normalize(read_json(expected_path));
    if &expected != actual {
        failures.push(format!(
            "{} differs:\n  expected {}\n  actual   {}",
            expected_path.display(),
            expected,
            actual
        ));
    }
}

fn run_case(dir: Direction, path: &Path, failures: &mut Vec<String>) -> usize {
    let mut case = json!({
        "model": dir.default_model(),
        "include_usage": true,
        "target": "openai",
    });
    if path.join("case.json").exists() {
        let overrides = read_json(&path.join("case.json"));
        for (k, v) in overrides.as_object().unwrap() {
            case[k] = v.clone();
        }
    }
    let model = case["model"].as_str().unwrap().to_owned();
    let mut checked = 0;

    let request_in = path.join("request.in.json");
    if request_in.exists() {
        checked += 1;
        let req = read_json(&request_in);
        let result = match dir {
            Direction::ChatToMessages => openai_chat_to_anthropic(&req, &model),
            Direction::MessagesToChat => {
                let target = ChatTarget::from_kind(case["target"].as_str().unwrap());
                anthropic_to_openai_chat(&req, &model, target)
            }
        };
        let (out_path, other_path, actual) = match &result {
            Ok(v) => (
                path.join("request.out.json"),
                path.join("request.error.json"),
                v.clone(),
            ),
            Err(e) => (
                path.join("request.error.json"),
                path.join("request.out.json"),
                error_json(e),
            ),
        };
        if updating() && other_path.exists() {
            fs::remove_file(&other_path).unwrap();
        }
        if !updating() && other_path.exists() {
            failures.push(format!(
                "{}: expected {} but translation gave {}",
                request_in.display(),
                other_path.display(),
                actual
            ));
        } else {
            check_json(&out_path, &actual, failures);
        }
    }

    let response_in = path.join("response.in.json");
    if response_in.exists() {
        checked += 1;
        let resp = read_json(&response_in);
        let actual = normalize(match dir {
            Direction::ChatToMessages => anthropic_response_to_openai(&resp, &model),
            Direction::MessagesToChat => openai_response_to_anthropic(&resp, &model),
        });
        check_json(&path.join("response.out.json"), &actual, failures);
    }

    let stream_in = path.join("stream.in.sse");
    if stream_in.exists() {
        checked += 1;
        let input = fs::read(&stream_in).unwrap();
        let actual = translate_stream(dir, &case, &input, input.len());
        // The same stream delivered one byte at a time must translate identically.
        let bytewise = translate_stream(dir, &case, &input, 1);
        if let Err(report) = compare_streams(&actual, &bytewise) {
            failures.push(format!(
                "{}: byte-by-byte delivery changed the output:\n{report}",
                stream_in.display()
            ));
        }
        let out_path = path.join("stream.out.sse");
        if updating() {
            let mut text = Vec::new();
            for ev in &actual {
                let mut ev = ev.clone();
                if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                    ev.data = normalize(v).to_string();
                }
                text.extend_from_slice(&ev.to_bytes());
            }
            fs::write(&out_path, text).unwrap();
        } else if !out_path.exists() {
            failures.push(format!("{} is missing", out_path.display()));
        } else {
            let expected = parse_sse(&fs::read(&out_path).unwrap());
            if let Err(report) = compare_streams(&expected, &actual) {
                failures.push(format!("{} differs:\n{report}", out_path.display()));
            }
        }
    }
    checked
}

fn run_direction(dir: Direction) {
    let root = fixtures_root().join(dir.dir());
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases under {}", root.display());
    let mut failures = Vec::new();
    for case in &cases {
        let checked = run_case(dir, case, &mut failures);
        assert!(checked > 0, "{} has no *.in.* files", case.display());
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches (rerun with UPDATE_GOLDEN=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn chat_to_messages_golden() {
    run_direction(Direction::ChatToMessages);
}

#[test]
fn messages_to_chat_golden() {
    run_direction(Direction::MessagesToChat);
}

/// Thinking blocks a client received through the OpenAI dialect, sent back unchanged, reach
/// Anthropic with their signatures intact — for plain and for streamed responses.
#[test]
fn thinking_signatures_round_trip_through_openai_clients() {
    let case = fixtures_root().join("chat_to_messages/thinking");
    let anthropic = read_json(&case.join("response.in.json"));
    let original: Vec<Value> = anthropic["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking")
        .cloned()
        .collect();
    assert!(original.iter().any(|b| b["type"] == "thinking"));
    assert!(original.iter().any(|b| b["type"] == "redacted_thinking"));

    let send_back = |message: Value| {
        let req = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "Plan the rollout."},
                message,
                {"role": "user", "content": "Go on."}
            ]
        });
        let out = openai_chat_to_anthropic(&req, "claude-sonnet-4-5-20250929").unwrap();
        out["messages"][1]["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking")
            .cloned()
            .collect::<Vec<Value>>()
    };

    // Non-streaming: the whole assistant message goes back.
    let openai = anthropic_response_to_openai(&anthropic, "claude-sonnet-4-5-20250929");
    assert_eq!(send_back(openai["choices"][0]["message"].clone()), original);

    // Streaming: a client accumulates `thinking_blocks` deltas.
    let input = fs::read(case.join("stream.in.sse")).unwrap();
    let mut t = AnthropicToOpenAiStream::new("claude-sonnet-4-5-20250929", false);
    let mut blocks = Vec::new();
    let mut content = String::new();
    for ev in parse_sse(&input) {
        for out in t.on_event(&ev).unwrap() {
            if out.is_done() {
                continue;
            }
            let v: Value = serde_json::from_str(&out.data).unwrap();
            let delta = &v["choices"][0]["delta"];
            if let Some(b) = delta["thinking_blocks"].as_array() {
                blocks.extend(b.iter().cloned());
            }
            if let Some(c) = delta["content"].as_str() {
                content.push_str(c);
            }
        }
    }
    let streamed_original: Vec<Value> = parse_sse(&input)
        .iter()
        .filter_map(|ev| serde_json::from_str::<Value>(&ev.data).ok())
        .filter(|v| v["type"] == "content_block_start")
        .filter(|v| v["content_block"]["type"] == "redacted_thinking")
        .map(|v| v["content_block"].clone())
        .collect();
    let message = json!({"role": "assistant", "content": content, "thinking_blocks": blocks});
    let back = send_back(message);
    assert_eq!(back.len(), 1 + streamed_original.len());
    assert_eq!(back[0]["type"], "thinking");
    assert!(!back[0]["signature"].as_str().unwrap().is_empty());
    assert!(!back[0]["thinking"].as_str().unwrap().is_empty());
    assert_eq!(back[1..], streamed_original[..]);
}

/// Usage survives both directions with every cache token counted exactly once.
#[test]
fn usage_is_not_double_counted_across_directions() {
    let anthropic_usage = json!({
        "input_tokens": 21, "cache_creation_input_tokens": 1024,
        "cache_read_input_tokens": 14806, "output_tokens": 393
    });
    let resp = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "stop_sequence": null, "usage": anthropic_usage
    });
    let openai = anthropic_response_to_openai(&resp, "claude");
    assert_eq!(openai["usage"]["prompt_tokens"], json!(21 + 1024 + 14806));
    assert_eq!(
        openai["usage"]["total_tokens"],
        json!(21 + 1024 + 14806 + 393)
    );
    // And back: an Anthropic client behind an OpenAI hop sees the original split.
    let back = openai_response_to_anthropic(&openai, "claude");
    assert_eq!(
        back["usage"],
        Usage::from_anthropic(&anthropic_usage)
            .unwrap()
            .to_anthropic()
    );
}

/// Checks that `events` form a stream an Anthropic client (Claude Code, the SDKs) accepts:
/// `message_start` first; blocks opened at consecutive indexes from 0, one at a time, each
/// delta of its block's kind and only while it is open, each block closed; then one
/// `message_delta` with a stop reason and usage, and `message_stop` last. Returns the message
/// the client accumulates (content blocks with `tool_use` inputs parsed) and its stop reason.
fn accumulate_anthropic_stream(events: &[SseEvent]) -> (Vec<Value>, String) {
    let data: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    for (e, d) in events.iter().zip(&data) {
        assert_eq!(e.event.as_deref(), d["type"].as_str(), "event name = type");
    }
    assert_eq!(data.first().unwrap()["type"], "message_start");
    assert_eq!(data.last().unwrap()["type"], "message_stop");
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial_json = String::new();
    let mut open: Option<usize> = None;
    let mut stop_reason = None;
    for d in &data[1..data.len() - 1] {
        match d["type"].as_str().unwrap() {
            "content_block_start" => {
                assert!(open.is_none(), "a block opened while another is open: {d}");
                assert!(stop_reason.is_none(), "a block after message_delta: {d}");
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(index, blocks.len(), "block indexes are consecutive from 0");
                blocks.push(d["content_block"].clone());
                partial_json.clear();
                open = Some(index);
            }
            "content_block_delta" => {
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(
                    open,
                    Some(index),
                    "a delta for a block that is not open: {d}"
                );
                let block = &mut blocks[index];
                let delta = &d["delta"];
                match (
                    block["type"].as_str().unwrap(),
                    delta["type"].as_str().unwrap(),
                ) {
                    ("text", "text_delta") => {
                        let text = block["text"].as_str().unwrap().to_owned();
                        block["text"] = json!(text + delta["text"].as_str().unwrap());
                    }
                    ("thinking", "thinking_delta") => {
                        let text = block["thinking"].as_str().unwrap().to_owned();
                        block["thinking"] = json!(text + delta["thinking"].as_str().unwrap());
                    }
                    ("thinking", "signature_delta") => {
                        block["signature"] = delta["signature"].clone();
                    }
                    ("tool_use", "input_json_delta") => {
                        partial_json.push_str(delta["partial_json"].as_str().unwrap());
                    }
                    (b, t) => panic!("a {t} for a {b} block"),
                }
            }
            "content_block_stop" => {
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(open.take(), Some(index), "closing a block that is not open");
                let block = &mut blocks[index];
                if block["type"] == "tool_use" && !partial_json.is_empty() {
                    block["input"] = serde_json::from_str(&partial_json).unwrap();
                }
                if block["type"] == "thinking" {
                    assert!(
                        !block["signature"].as_str().unwrap_or("").is_empty(),
                        "Claude Code drops thinking blocks without a signature: {block}"
                    );
                }
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta with a block open");
                assert!(stop_reason.is_none(), "two message_delta events");
                stop_reason = Some(d["delta"]["stop_reason"].as_str().unwrap().to_owned());
                assert!(d["usage"]["output_tokens"].is_u64(), "{d}");
            }
            "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    (
        blocks,
        stop_reason.expect("a message_delta with the stop reason"),
    )
}

/// Every stream an OpenAI-dialect upstream sends (except the error case) reaches the
/// Anthropic client as a well-formed event sequence.
#[test]
fn messages_to_chat_streams_are_valid_anthropic_event_sequences() {
    let root = fixtures_root().join("messages_to_chat");
    let mut checked = 0;
    for entry in fs::read_dir(&root).unwrap() {
        let case = entry.unwrap().path();
        let input = case.join("stream.in.sse");
        if !input.exists() || case.ends_with("error_midstream") {
            continue;
        }
        let events = translate_stream(
            Direction::MessagesToChat,
            &json!({"model": "m", "include_usage": true}),
            &fs::read(&input).unwrap(),
            7,
        );
        let (blocks, _) = accumulate_anthropic_stream(&events);
        assert!(!blocks.is_empty(), "{}", case.display());
        checked += 1;
    }
    assert!(checked >= 5, "{checked}");
}

/// Claude Code's tool loop on a vLLM target: its request is translated, vLLM's streamed answer
/// (text, then a tool call) reaches it as a text and a `tool_use` block with stop reason
/// `tool_use`, and the next request (the answer plus the tool's result, and a system reminder)
/// translates into the matching assistant tool call and tool message.
#[test]
fn claude_code_tool_loop_completes_on_vllm() {
    let case = fixtures_root().join("messages_to_chat/claude_code_vllm");
    let mut request = read_json(&case.join("request.in.json"));
    let first = anthropic_to_openai_chat(&request, "qwen", ChatTarget::Vllm).unwrap();
    assert!(first["tools"].as_array().unwrap().len() >= 5);
    let events = translate_stream(
        Direction::MessagesToChat,
        &json!({"model": "qwen", "include_usage": true}),
        &fs::read(case.join("stream.in.sse")).unwrap(),
        3,
    );
    let (blocks, stop_reason) = accumulate_anthropic_stream(&events);
    assert_eq!(stop_reason, "tool_use");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0]["type"], "text");
    assert_eq!(blocks[1]["type"], "tool_use");
    assert_eq!(blocks[1]["name"], "Edit");
    assert_eq!(blocks[1]["input"]["new_string"], "if self.probes < 1 {");
    let id = blocks[1]["id"].as_str().unwrap().to_owned();

    // Claude Code runs the tool and sends the whole conversation again.
    let messages = request["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": blocks}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": id,
         "content": "The file has been updated.", "cache_control": {"type": "ephemeral"}}
    ]}));
    messages.push(
        json!({"role": "system", "content": "<system-reminder>Run the tests.</system-reminder>"}),
    );
    let next = anthropic_to_openai_chat(&request, "qwen", ChatTarget::Vllm).unwrap();
    let out = next["messages"].as_array().unwrap();
    let n = out.len();
    assert_eq!(out[n - 2]["role"], "assistant");
    assert_eq!(out[n - 2]["tool_calls"][0]["id"], json!(id));
    let args: Value = serde_json::from_str(
        out[n - 2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["old_string"], "if self.probes <= 1 {");
    assert_eq!(
        out[n - 1],
        json!({"role": "tool", "tool_call_id": id,
               "content": "The file has been updated.\n\n<system-reminder>Run the tests.</system-reminder>"})
    );
    // Only the first message is a system message on vLLM.
    assert!(out[1..].iter().all(|m| m["role"] != "system"));
}
