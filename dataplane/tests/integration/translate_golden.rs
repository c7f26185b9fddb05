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
