//! Response translation OpenAI chat completion → OpenAI Responses `response` object
//! (non-streaming), and the pieces of a `response` object the stream translator shares.
//!
//! Wire format: openai-python `src/openai/types/responses/response.py`,
//! `response_output_message.py`, `response_function_tool_call.py`,
//! `response_reasoning_item.py` and `response_usage.py`.

use serde_json::{Map, Value, json};

use super::THINKING_BLOCKS_PREFIX;
use crate::translate::common::{str_field, unix_now};
use crate::usage::Usage;

/// A deterministic item id: `<prefix>_<response id without "resp_">_<n>`, unique within a
/// response (each item gets its own `n`) and across responses (the response id is).
pub(super) fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{base}_{n}")
}

/// The Responses usage object for a usage and the reasoning tokens the chat usage reported
/// (`completion_tokens_details.reasoning_tokens`). `input_tokens` includes cached tokens, as
/// OpenAI counts them; `cache_write_tokens` is in the openai-python type since 2026.
pub(super) fn usage_to_responses(usage: Usage, reasoning_tokens: u64) -> Value {
    json!({
        "input_tokens": usage.total_input(),
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_input_tokens,
            "cache_write_tokens": usage.cache_write_input_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": { "reasoning_tokens": reasoning_tokens },
        "total_tokens": usage.total(),
    })
}

/// `completion_tokens_details.reasoning_tokens` of a chat usage object (0 when absent).
pub(super) fn reasoning_tokens(chat_usage: &Value) -> u64 {
    chat_usage
        .get("completion_tokens_details")
        .and_then(|d| d.get("reasoning_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// How a response ended, from the chat `finish_reason`: `(status, incomplete reason)`.
/// `length` → `incomplete` (`max_output_tokens`), `content_filter` → `incomplete`
/// (`content_filter`), anything else (`stop`, `tool_calls`, none) → `completed`.
pub(super) fn status_for_finish(
    finish_reason: Option<&str>,
) -> (&'static str, Option<&'static str>) {
    match finish_reason {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// A reasoning output item. Anthropic's signed thinking (the `thinking_blocks` extension) is
/// carried in `encrypted_content` — opaque to the client, which sends it back with the item
/// (Codex does, with `include: ["reasoning.encrypted_content"]`), so
/// [`super::responses_to_chat`] can restore the signed blocks.
pub(super) fn reasoning_item(id: &str, text: &str, thinking_blocks: &[Value]) -> Value {
    let summary = if text.is_empty() {
        json!([])
    } else {
        json!([{ "type": "summary_text", "text": text }])
    };
    let mut item = json!({ "id": id, "type": "reasoning", "summary": summary });
    if !thinking_blocks.is_empty() {
        item["encrypted_content"] = json!(format!(
            "{THINKING_BLOCKS_PREFIX}{}",
            Value::Array(thinking_blocks.to_vec())
        ));
    }
    item
}

/// A message output item; `content` holds `output_text` and `refusal` parts.
pub(super) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

/// An `output_text` part; `logprobs` is always there in OpenAI's answers (empty unless asked
/// for, which the chat translation refuses).
pub(super) fn output_text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

pub(super) fn refusal_part(text: &str) -> Value {
    json!({ "type": "refusal", "refusal": text })
}

pub(super) fn function_call_item(
    id: &str,
    status: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    })
}

/// The fields of a `response` object that echo the request, with OpenAI's defaults for the
/// ones the request left out (as the API echoes them: `tool_choice` `auto`,
/// `parallel_tool_calls` true, `temperature`/`top_p` 1, `text.format` `text`, `store` true,
/// `truncation` `disabled`, `metadata` `{}`, `service_tier` `default`, `top_logprobs` 0).
/// The field set follows recorded OpenAI answers (vercel/ai
/// `packages/openai/src/responses/__fixtures__/*.chunks.txt`).
fn echo(req: &Value) -> Map<String, Value> {
    let get = |key: &str, default: Value| {
        req.get(key)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(default)
    };
    let mut reasoning = json!({ "effort": null, "summary": null });
    if let Some(r) = req.get("reasoning").and_then(Value::as_object) {
        for (k, v) in r {
            reasoning[k] = v.clone();
        }
    }
    let mut text = json!({ "format": { "type": "text" } });
    if let Some(t) = req.get("text").and_then(Value::as_object) {
        for (k, v) in t {
            text[k] = v.clone();
        }
    }
    let mut m = Map::new();
    m.insert("instructions".into(), get("instructions", Value::Null));
    m.insert(
        "max_output_tokens".into(),
        get("max_output_tokens", Value::Null),
    );
    m.insert("max_tool_calls".into(), Value::Null);
    m.insert("metadata".into(), get("metadata", json!({})));
    m.insert(
        "parallel_tool_calls".into(),
        get("parallel_tool_calls", json!(true)),
    );
    m.insert(
        "previous_response_id".into(),
        get("previous_response_id", Value::Null),
    );
    m.insert(
        "prompt_cache_key".into(),
        get("prompt_cache_key", Value::Null),
    );
    m.insert("reasoning".into(), reasoning);
    m.insert(
        "safety_identifier".into(),
        get("safety_identifier", Value::Null),
    );
    m.insert("service_tier".into(), json!("default"));
    m.insert("store".into(), get("store", json!(true)));
    m.insert("temperature".into(), get("temperature", json!(1.0)));
    m.insert("text".into(), text);
    m.insert("tool_choice".into(), get("tool_choice", json!("auto")));
    m.insert("tools".into(), get("tools", json!([])));
    m.insert("top_logprobs".into(), json!(0));
    m.insert("top_p".into(), get("top_p", json!(1.0)));
    m.insert("truncation".into(), get("truncation", json!("disabled")));
    m.insert("user".into(), get("user", Value::Null));
    m
}

/// The parts of a `response` object that are not the request's echo.
pub(super) struct ResponseParts<'a> {
    pub id: &'a str,
    pub created_at: i64,
    /// Set once the response ended (completed, incomplete or failed).
    pub completed_at: Option<i64>,
    pub model: &'a str,
    pub status: &'a str,
    pub incomplete_reason: Option<&'a str>,
    pub error: Value,
    pub output: Vec<Value>,
    pub usage: Value,
}

/// A whole `response` object. There is no `output_text` field: that is an SDK convenience
/// property (openai-python `Response.output_text`), not part of the wire format.
pub(super) fn build_response(req: &Value, parts: ResponseParts<'_>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(parts.id));
    m.insert("object".into(), json!("response"));
    m.insert("created_at".into(), json!(parts.created_at));
    m.insert("status".into(), json!(parts.status));
    m.insert("background".into(), json!(false));
    m.insert("completed_at".into(), json!(parts.completed_at));
    m.insert("error".into(), parts.error);
    m.insert(
        "incomplete_details".into(),
        match parts.incomplete_reason {
            Some(reason) => json!({ "reason": reason }),
            None => Value::Null,
        },
    );
    m.insert("model".into(), json!(parts.model));
    m.insert("output".into(), Value::Array(parts.output));
    m.extend(echo(req));
    m.insert("usage".into(), parts.usage);
    Value::Object(m)
}

/// Translates a chat completion answer into a Responses `response` object with id
/// `response_id`.
///
/// - Output items in order: a `reasoning` item when the message has `reasoning_content` (as
///   one summary text) or `thinking_blocks` (kept in `encrypted_content`, see
///   [`super::responses_to_chat`]); a `message` item with an `output_text` part (and a
///   `refusal` part for `refusal`) when there is text or a refusal; one `function_call` item
///   per tool call (`call_id` is the chat tool call id). Item ids are `rs_`/`msg_`/`fc_` +
///   the response id without `resp_` + the item's position, so they are unique and
///   deterministic.
/// - `status`: `completed`, or `incomplete` with `incomplete_details.reason`
///   `max_output_tokens` for `finish_reason` `length` and `content_filter` for
///   `content_filter` (the message item is then `incomplete` too).
/// - `usage` per openai-python `ResponseUsage`; `created_at` is the chat `created` (now when
///   absent); `model` is the chat answer's (the request's when absent).
/// - The request's parameters are echoed with OpenAI's defaults (`instructions`, `tools`,
///   `tool_choice`, `parallel_tool_calls`, `temperature`, `top_p`, `max_output_tokens`, `text`,
///   `metadata`, `previous_response_id`, `store`, `reasoning`, `truncation`, `user`).
///
/// An OpenAI error body (`{"error": …}`) is returned unchanged: the Responses API uses the
/// same error body.
pub fn chat_response_to_responses(chat: &Value, req: &Value, response_id: &str) -> Value {
    if chat.get("error").is_some_and(|e| !e.is_null()) {
        return chat.clone();
    }
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let (status, incomplete_reason) = status_for_finish(str_field(choice, "finish_reason"));
    let item_status = if status == "completed" {
        "completed"
    } else {
        "incomplete"
    };

    let mut output = Vec::new();
    let reasoning = str_field(message, "reasoning_content")
        .or_else(|| str_field(message, "reasoning"))
        .unwrap_or("");
    let thinking_blocks = message
        .get("thinking_blocks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !reasoning.is_empty() || !thinking_blocks.is_empty() {
        let id = item_id("rs", response_id, output.len());
        output.push(reasoning_item(&id, reasoning, thinking_blocks));
    }
    let mut content = Vec::new();
    if let Some(text) = str_field(message, "content").filter(|t| !t.is_empty()) {
        content.push(output_text_part(text));
    } else if let Some(parts) = message.get("content").and_then(Value::as_array) {
        // Some servers answer with text parts.
        let text: String = parts.iter().filter_map(|p| str_field(p, "text")).collect();
        if !text.is_empty() {
            content.push(output_text_part(&text));
        }
    }
    if let Some(refusal) = str_field(message, "refusal").filter(|t| !t.is_empty()) {
        content.push(refusal_part(refusal));
    }
    if !content.is_empty() {
        let id = item_id("msg", response_id, output.len());
        output.push(message_item(&id, item_status, content));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let function = call.get("function").unwrap_or(&Value::Null);
        let id = item_id("fc", response_id, output.len());
        let call_id = match str_field(call, "id").filter(|s| !s.is_empty()) {
            Some(call_id) => call_id.to_owned(),
            None => item_id("call", response_id, output.len()),
        };
        output.push(function_call_item(
            &id,
            "completed",
            &call_id,
            str_field(function, "name").unwrap_or(""),
            str_field(function, "arguments").unwrap_or(""),
        ));
    }

    let chat_usage = chat.get("usage").unwrap_or(&Value::Null);
    let usage = Usage::from_openai(chat_usage).unwrap_or_default();
    let model = str_field(chat, "model")
        .filter(|m| !m.is_empty())
        .or_else(|| str_field(req, "model"))
        .unwrap_or("");
    build_response(
        req,
        ResponseParts {
            id: response_id,
            created_at: chat
                .get("created")
                .and_then(Value::as_i64)
                .unwrap_or_else(unix_now),
            completed_at: Some(unix_now()),
            model,
            status,
            incomplete_reason,
            error: Value::Null,
            output,
            usage: usage_to_responses(usage, reasoning_tokens(chat_usage)),
        },
    )
}
