//! Response and error body translation Anthropic Messages → OpenAI chat (non-streaming).

use serde_json::{Value, json};

use crate::translate::common::{str_field, unix_now};
use crate::usage::Usage;

/// Anthropic `stop_reason` → OpenAI `finish_reason`: `end_turn`, `stop_sequence` and
/// `pause_turn` → `stop`; `max_tokens` and `model_context_window_exceeded` → `length`;
/// `tool_use` → `tool_calls`; `refusal` → `content_filter`; anything else → `stop`.
pub fn stop_reason_to_finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`) as an OpenAI error
/// body (`{"error":{"message","type","param","code"}}`). `api_error` and `overloaded_error`
/// become type `server_error`; the Anthropic type is kept as `code`.
pub fn anthropic_error_to_openai(err: &Value) -> Value {
    let inner = err.get("error").filter(|e| e.is_object()).unwrap_or(err);
    let ty = str_field(inner, "type").unwrap_or("api_error");
    let message = str_field(inner, "message").unwrap_or("upstream error");
    let openai_type = match ty {
        "api_error" | "overloaded_error" => "server_error",
        other => other,
    };
    json!({
        "error": { "message": message, "type": openai_type, "param": null, "code": ty }
    })
}

/// Translates an Anthropic Messages response into an OpenAI chat completion.
///
/// `model` is the name reported to the client (the upstream's `model` when empty). Text blocks
/// are concatenated into `message.content` (`null` when there is none); `tool_use` blocks become
/// `tool_calls` (ids kept, input serialised); thinking becomes `message.reasoning_content` (the
/// texts concatenated) plus `message.thinking_blocks` (thinking with signature, redacted
/// thinking with data) for the client to send back. Server-tool blocks (web search results and
/// the like) and citations are dropped. `stop_sequence` (which sequence matched) is dropped.
/// The id is `chatcmpl-<anthropic id>`, `created` is now. An Anthropic error body becomes an
/// OpenAI error body.
pub fn anthropic_response_to_openai(resp: &Value, model: &str) -> Value {
    if str_field(resp, "type") == Some("error") {
        return anthropic_error_to_openai(resp);
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in resp
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        match str_field(block, "type") {
            Some("text") => text.push_str(str_field(block, "text").unwrap_or("")),
            Some("thinking") => {
                let thinking = str_field(block, "thinking").unwrap_or("");
                reasoning.push_str(thinking);
                thinking_blocks.push(json!({
                    "type": "thinking",
                    "thinking": thinking,
                    "signature": str_field(block, "signature").unwrap_or(""),
                }));
            }
            Some("redacted_thinking") => thinking_blocks.push(json!({
                "type": "redacted_thinking",
                "data": str_field(block, "data").unwrap_or(""),
            })),
            Some("tool_use") => tool_calls.push(json!({
                "id": str_field(block, "id").unwrap_or(""),
                "type": "function",
                "function": {
                    "name": str_field(block, "name").unwrap_or(""),
                    "arguments": block.get("input").unwrap_or(&json!({})).to_string(),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !thinking_blocks.is_empty() {
        message["thinking_blocks"] = Value::Array(thinking_blocks);
    }
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let finish_reason = str_field(resp, "stop_reason")
        .map(|r| json!(stop_reason_to_finish_reason(r)))
        .unwrap_or(Value::Null);
    let usage = resp
        .get("usage")
        .and_then(Usage::from_anthropic)
        .unwrap_or_default();
    let model = if model.is_empty() {
        str_field(resp, "model").unwrap_or("")
    } else {
        model
    };
    json!({
        "id": format!("chatcmpl-{}", str_field(resp, "id").unwrap_or("")),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": usage.to_openai(),
    })
}
