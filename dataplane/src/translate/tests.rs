//! Tests that cover both directions, and the helpers the tests of each direction share.

use serde_json::{Value, json};

use super::*;
use crate::sse::{SseEvent, SseParser};

/// The parameter and message of a [`TranslateError::Invalid`]; panics on anything else.
pub(super) fn err_param(r: Result<Value, TranslateError>) -> (String, String) {
    match r {
        Err(TranslateError::Invalid { param, message }) => (param, message),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Runs `input` through a parser and a translator, split into the given chunks.
pub(super) fn run<F>(input: &[u8], cuts: &[usize], mut translate: F) -> Vec<SseEvent>
where
    F: FnMut(&SseEvent) -> Vec<SseEvent>,
{
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        for ev in parser.push(&input[start..cut]).unwrap() {
            out.extend(translate(&ev));
        }
        start = cut;
    }
    if let Some(ev) = parser.finish() {
        out.extend(translate(&ev));
    }
    out
}

#[test]
fn stop_reason_mappings() {
    for (a, o) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        assert_eq!(stop_reason_to_finish_reason(a), o);
    }
    for (o, a) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ] {
        assert_eq!(finish_reason_to_stop_reason(o), a);
    }
}

#[test]
fn error_bodies_translate_both_ways() {
    let a =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    assert_eq!(
        anthropic_response_to_openai(&a, "m"),
        json!({"error": {"message": "Overloaded", "type": "server_error", "param": null,
                         "code": "overloaded_error"}})
    );
    let o = json!({"error": {"message": "Rate limit reached", "type": "requests",
                             "param": null, "code": "rate_limit_exceeded"}});
    assert_eq!(
        openai_response_to_anthropic(&o, "m"),
        json!({"type": "error", "error": {"type": "rate_limit_error",
                                          "message": "Rate limit reached"}})
    );
    assert_eq!(
        openai_error_to_anthropic(&json!({"error": "model not found"})),
        json!({"type": "error", "error": {"type": "api_error", "message": "model not found"}})
    );
}

#[test]
fn malformed_data_and_late_tool_arguments_are_errors() {
    let mut t = AnthropicToOpenAiStream::new("m", false);
    assert!(matches!(
        t.on_event(&SseEvent::named("content_block_delta", "{not json")),
        Err(ref e) if e.is_upstream()
    ));
    let mut t = OpenAiToAnthropicStream::new("m");
    let call = |i: u64, id: Option<&str>, args: &str| {
        let mut c = json!({"index": i, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["function"]["name"] = json!("f");
        }
        SseEvent::data(
            json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [c]}}]}).to_string(),
        )
    };
    t.on_event(&call(0, Some("call_a"), "{}")).unwrap();
    t.on_event(&call(1, Some("call_b"), "{}")).unwrap();
    assert!(matches!(
        t.on_event(&call(0, None, "{\"x\":1}")),
        Err(ref e) if e.is_upstream()
    ));
}
