//! Response and error body translation OpenAI chat → Anthropic Messages (non-streaming).

use serde_json::{Value, json};

use crate::translate::common::str_field;
use crate::usage::Usage;

/// OpenAI `finish_reason` → Anthropic `stop_reason`: `stop` → `end_turn`, `length` →
/// `max_tokens`, `tool_calls` (and legacy `function_call`) → `tool_use`, `content_filter` →
/// `refusal`; anything else → `end_turn`.
pub fn finish_reason_to_stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// An OpenAI error body (`{"error":{...}}`, also `{"error":"text"}` as some OpenAI-compatible
/// servers send) as an Anthropic error body. Types Anthropic knows pass through;
/// `server_error` → `api_error`, rate-limit types and codes → `rate_limit_error`, others →
/// `api_error`.
pub fn openai_error_to_anthropic(err: &Value) -> Value {
    let inner = err.get("error").unwrap_or(err);
    let (message, ty, code) = match inner {
        Value::String(s) => (s.as_str(), "", ""),
        _ => (
            str_field(inner, "message").unwrap_or("upstream error"),
            str_field(inner, "type").unwrap_or(""),
            str_field(inner, "code").unwrap_or(""),
        ),
    };
    let anthropic_type = match ty {
        "invalid_request_error"
        | "authentication_error"
        | "permission_error"
        | "not_found_error"
        | "request_too_large"
        | "rate_limit_error"
        | "api_error"
        | "overloaded_error" => ty,
        _ if ty.contains("rate_limit")
            || code.contains("rate_limit")
            || ty == "tokens"
            || ty == "requests"
            || code == "insufficient_quota" =>
        {
            "rate_limit_error"
        }
        _ => "api_error",
    };
    json!({ "type": "error", "error": { "type": anthropic_type, "message": message } })
}

/// A fresh tool-use id for tool calls an OpenAI-dialect server sent without one.
pub(crate) fn new_tool_use_id() -> String {
    format!("toolu_{}", uuid::Uuid::new_v4().simple())
}

/// Parses tool-call arguments; unparsable (or non-object) arguments are kept as `{"_raw": s}`
/// so nothing the model produced is lost. Empty arguments are `{}`.
pub(crate) fn parse_arguments(args: &Value) -> Value {
    match args {
        Value::String(s) if s.trim().is_empty() => json!({}),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "_raw": s }),
        },
        Value::Object(_) => args.clone(),
        Value::Null => json!({}),
        other => json!({ "_raw": other.to_string() }),
    }
}

/// Translates an OpenAI chat completion into an Anthropic Messages response.
///
/// `model` is the name reported to the client (the upstream's `model` when empty). Only
/// `choices[0]` is used. Signed reasoning (`thinking_blocks`, as this gateway and LiteLLM send
/// them) becomes leading thinking blocks; unsigned reasoning (`reasoning_content`,
/// `reasoning`) is not forwarded, for the reasons given on [`super::OpenAiToAnthropicStream`].
/// `content` becomes a text block; a `refusal` a text block with stop reason `refusal`;
/// `tool_calls` `tool_use` blocks (arguments parsed, unparsable ones kept as
/// `{"_raw": "…"}`). Tool calls make the stop reason `tool_use` also when the server said
/// `stop` (Ollama does). `stop_sequence` is always `null` (OpenAI does not say which stop
/// sequence matched). The id is `msg_<openai id>`. An OpenAI error body becomes an Anthropic
/// error body.
pub fn openai_response_to_anthropic(resp: &Value, model: &str) -> Value {
    if resp.get("error").is_some_and(|e| !e.is_null()) {
        return openai_error_to_anthropic(resp);
    }
    let choice = resp
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();

    for b in message
        .get("thinking_blocks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        match str_field(b, "type") {
            Some("thinking") => content.push(json!({
                "type": "thinking",
                "thinking": str_field(b, "thinking").unwrap_or(""),
                "signature": str_field(b, "signature").unwrap_or(""),
            })),
            Some("redacted_thinking") => content.push(json!({
                "type": "redacted_thinking",
                "data": str_field(b, "data").unwrap_or(""),
            })),
            _ => {}
        }
    }
    match message.get("content") {
        Some(Value::String(s)) if !s.is_empty() => {
            content.push(json!({ "type": "text", "text": s }));
        }
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(t) = str_field(part, "text").filter(|t| !t.is_empty()) {
                    content.push(json!({ "type": "text", "text": t }));
                }
            }
        }
        _ => {}
    }
    let refusal = str_field(message, "refusal").filter(|r| !r.is_empty());
    if let Some(r) = refusal {
        content.push(json!({ "type": "text", "text": r }));
    }
    let mut has_tool_calls = false;
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let function = call.get("function").unwrap_or(&Value::Null);
        let id = str_field(call, "id")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(new_tool_use_id);
        content.push(json!({
            "type": "tool_use",
            "id": id,
            "name": str_field(function, "name").unwrap_or(""),
            "input": parse_arguments(function.get("arguments").unwrap_or(&Value::Null)),
        }));
        has_tool_calls = true;
    }
    let stop_reason = match str_field(choice, "finish_reason") {
        _ if refusal.is_some() => json!("refusal"),
        Some("stop") if has_tool_calls => json!("tool_use"),
        Some(r) => json!(finish_reason_to_stop_reason(r)),
        None if has_tool_calls => json!("tool_use"),
        None => Value::Null,
    };
    let usage = resp
        .get("usage")
        .and_then(Usage::from_openai)
        .unwrap_or_default();
    let model = if model.is_empty() {
        str_field(resp, "model").unwrap_or("")
    } else {
        model
    };
    json!({
        "id": format!("msg_{}", str_field(resp, "id").unwrap_or("")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage.to_anthropic(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparsable_arguments_are_kept_raw() {
        assert_eq!(
            parse_arguments(&json!("{\"a\":")),
            json!({"_raw": "{\"a\":"})
        );
        assert_eq!(parse_arguments(&json!("[1]")), json!({"_raw": "[1]"}));
        assert_eq!(parse_arguments(&json!("")), json!({}));
        assert_eq!(parse_arguments(&json!("{\"a\":1}")), json!({"a": 1}));
    }

    #[test]
    fn missing_tool_call_ids_are_generated() {
        let resp = json!({"id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]});
        let out = openai_response_to_anthropic(&resp, "m");
        let id = out["content"][0]["id"].as_str().unwrap();
        assert!(id.starts_with("toolu_"), "{id}");
        assert_eq!(out["stop_reason"], "tool_use");
    }

    #[test]
    fn tool_calls_with_stop_are_tool_use_and_unsigned_reasoning_is_dropped() {
        // Ollama's non-streamed answer to a tool call.
        let resp = json!({"id": "chatcmpl-1", "model": "qwen3:8b", "choices": [{"index": 0,
            "finish_reason": "stop", "message": {"role": "assistant", "content": "",
            "reasoning": "Run it.", "tool_calls": [{"id": "call_1", "index": 0, "type": "function",
            "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]}}]});
        let out = openai_response_to_anthropic(&resp, "");
        assert_eq!(out["stop_reason"], "tool_use");
        assert_eq!(
            out["content"],
            json!([{"type": "tool_use", "id": "call_1", "name": "Bash",
                    "input": {"command": "ls"}}])
        );
        assert_eq!(out["model"], "qwen3:8b");
        // Signed thinking blocks are kept.
        let resp = json!({"id": "x", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "ok", "reasoning_content": "r",
            "thinking_blocks": [{"type": "thinking", "thinking": "r", "signature": "sig"}]}}]});
        let out = openai_response_to_anthropic(&resp, "m");
        assert_eq!(out["stop_reason"], "end_turn");
        assert_eq!(
            out["content"],
            json!([{"type": "thinking", "thinking": "r", "signature": "sig"},
                   {"type": "text", "text": "ok"}])
        );
    }
}
