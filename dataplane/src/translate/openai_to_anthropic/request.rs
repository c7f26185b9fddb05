//! Request translation OpenAI chat → Anthropic Messages.

use serde_json::{Map, Value, json};

use crate::translate::TranslateError;
use crate::translate::common::{
    expect_array, expect_str, number, parse_data_url, positive_int, present, type_name,
};

/// `max_tokens` sent to Anthropic when the OpenAI request sets neither `max_completion_tokens`
/// nor `max_tokens` (Anthropic requires it). With thinking enabled the default is this plus the
/// thinking budget, so the visible answer keeps the same room.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: u64 = 1024;

/// The Anthropic thinking budget for an OpenAI `reasoning_effort`:
///
/// | reasoning_effort | budget_tokens |
/// |---|---|
/// | `none` | thinking not enabled |
/// | `minimal` | 1024 (Anthropic's minimum) |
/// | `low` | 2048 |
/// | `medium` | 8192 |
/// | `high` | 16384 |
/// | `xhigh` | 32768 |
///
/// # Errors
/// [`TranslateError::Invalid`] (param `reasoning_effort`) for any other value.
pub fn reasoning_effort_budget(effort: &str) -> Result<Option<u64>, TranslateError> {
    Ok(Some(match effort {
        "none" => return Ok(None),
        "minimal" => MIN_THINKING_BUDGET,
        "low" => 2048,
        "medium" => 8192,
        "high" => 16384,
        "xhigh" => 32768,
        other => {
            return Err(TranslateError::invalid(
                "reasoning_effort",
                format!(
                    "unknown value {other:?}; expected none, minimal, low, medium, high or xhigh"
                ),
            ));
        }
    }))
}

/// Parameters of an OpenAI chat request that are dropped on the way to Anthropic because Claude
/// has no equivalent and ignoring them does not change what the client gets back in a way it
/// relies on.
const DROPPED_OPENAI_PARAMS: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "logit_bias",
    "service_tier",
    "store",
    "metadata",
    "stream_options",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "verbosity",
    "prediction",
    "response_format",
    "modalities",
    "n",
    "logprobs",
    "top_logprobs",
];

/// Translates an OpenAI chat completions request into an Anthropic Messages request for `model`.
///
/// - `system` and `developer` messages, wherever they are, become the top-level `system`: one
///   string (texts joined with a blank line), or text blocks when any part has `cache_control`.
/// - Consecutive messages of the same role are merged (Anthropic requires alternation); `tool`
///   messages become `tool_result` blocks of a user message, placed before any other blocks of
///   that merged user message. Empty text parts are dropped (Anthropic rejects them).
/// - `image_url` parts: `data:` URLs become base64 image sources, http(s) URLs URL sources;
///   `detail` is dropped. `file` parts with a base64 PDF become `document` blocks.
/// - Assistant `tool_calls` become `tool_use` blocks (arguments parsed; an empty string is `{}`).
///   Assistant `thinking_blocks` are sent back first in the message with their signatures;
///   thinking blocks without a signature and a bare `reasoning_content` are dropped, since
///   Anthropic rejects unsigned thinking.
/// - `max_completion_tokens` (or `max_tokens`) → `max_tokens`, default [`DEFAULT_MAX_TOKENS`].
/// - `reasoning_effort` → `thinking` per [`reasoning_effort_budget`]; the budget is lowered to
///   `max_tokens - 1` when the client's limit is smaller, and thinking is left off when that
///   would go below [`MIN_THINKING_BUDGET`]. An explicit Anthropic-style `thinking` object in the
///   request wins over `reasoning_effort` (and is passed as given). Thinking from
///   `reasoning_effort` is left off when `tool_choice` forces a tool, and otherwise drops
///   `temperature` (unless 1), `top_p` below 0.95 and `top_k`, which Anthropic rejects with
///   thinking.
/// - `temperature` is clamped to Anthropic's 0–1 range; `top_p` and an explicit `top_k` pass.
/// - `stop` → `stop_sequences`; `user` (or `safety_identifier`) → `metadata.user_id`;
///   `parallel_tool_calls: false` → `tool_choice.disable_parallel_tool_use`.
/// - Dropped: `frequency_penalty`, `presence_penalty`, `seed`, `logit_bias`, `service_tier`,
///   `store`, `metadata`, `stream_options`, `prompt_cache_key`, `verbosity`, `prediction`,
///   `response_format` of type `text`/`json_object`, message `name`s, and any unknown parameter.
///
/// # Errors
/// [`TranslateError::Unsupported`] for `n` > 1, `logprobs`/`top_logprobs`, `audio` (also audio
/// input parts and `modalities` with audio), `response_format` `json_schema`, legacy
/// `functions`/`function_call`, `web_search_options`, non-function tools and file ids;
/// [`TranslateError::Invalid`] for malformed input, e.g. tool call arguments that are not a JSON
/// object (param `messages[i].tool_calls[j].function.arguments`).
pub fn openai_chat_to_anthropic(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let req = req
        .as_object()
        .ok_or_else(|| TranslateError::invalid("", "request body must be a JSON object"))?;
    check_openai_unsupported(req)?;

    let messages = expect_array(
        present(req, "messages").ok_or_else(|| TranslateError::invalid("messages", "required"))?,
        "messages",
    )?;
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let msg = msg
            .as_object()
            .ok_or_else(|| TranslateError::invalid(&param, "expected an object"))?;
        let role = expect_str(msg.get("role"), &format!("{param}.role"))?;
        let content = msg.get("content").unwrap_or(&Value::Null);
        let content_param = format!("{param}.content");
        match role {
            "system" | "developer" => {
                system.extend(openai_content_to_blocks(
                    content,
                    &content_param,
                    Part::System,
                )?);
            }
            "user" => {
                let blocks = openai_content_to_blocks(content, &content_param, Part::User)?;
                push_turn(&mut turns, "user", blocks);
            }
            "assistant" => {
                if present(msg, "audio").is_some() {
                    return Err(TranslateError::Unsupported(format!("{param}.audio")));
                }
                if present(msg, "function_call").is_some() {
                    return Err(TranslateError::Unsupported(format!(
                        "{param}.function_call"
                    )));
                }
                let mut blocks = Vec::new();
                if let Some(thinking) = present(msg, "thinking_blocks") {
                    blocks.extend(thinking_blocks_to_anthropic(
                        thinking,
                        &format!("{param}.thinking_blocks"),
                    )?);
                }
                blocks.extend(openai_content_to_blocks(
                    content,
                    &content_param,
                    Part::Assistant,
                )?);
                if let Some(calls) = present(msg, "tool_calls") {
                    let calls = expect_array(calls, &format!("{param}.tool_calls"))?;
                    for (j, call) in calls.iter().enumerate() {
                        blocks.push(tool_call_to_tool_use(
                            call,
                            &format!("{param}.tool_calls[{j}]"),
                        )?);
                    }
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let id = expect_str(msg.get("tool_call_id"), &format!("{param}.tool_call_id"))?;
                let mut result = json!({ "type": "tool_result", "tool_use_id": id });
                match content {
                    Value::String(s) if s.is_empty() => {}
                    Value::String(s) => result["content"] = json!(s),
                    Value::Null => {}
                    _ => {
                        let blocks = openai_content_to_blocks(content, &content_param, Part::User)?;
                        if !blocks.is_empty() {
                            result["content"] = Value::Array(blocks);
                        }
                    }
                }
                push_turn(&mut turns, "user", vec![result]);
            }
            "function" => return Err(TranslateError::Unsupported(format!("{param}.role"))),
            other => {
                return Err(TranslateError::invalid(
                    format!("{param}.role"),
                    format!("unknown role {other:?}"),
                ));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));

    let (max_tokens, explicit_max) = match present(req, "max_completion_tokens") {
        Some(v) => (positive_int(v, "max_completion_tokens")?, true),
        None => match present(req, "max_tokens") {
            Some(v) => (positive_int(v, "max_tokens")?, true),
            None => (DEFAULT_MAX_TOKENS, false),
        },
    };
    let mut max_tokens = max_tokens;
    if let Some(thinking) = present(req, "thinking") {
        // An explicit Anthropic-style thinking object: the client knows what it wants.
        if !thinking.is_object() {
            return Err(TranslateError::invalid("thinking", "expected an object"));
        }
        if let (false, Some(budget)) = (
            explicit_max,
            thinking.get("budget_tokens").and_then(Value::as_u64),
        ) {
            max_tokens = budget + DEFAULT_MAX_TOKENS;
        }
        out.insert("thinking".into(), thinking.clone());
    } else if let Some(effort) = present(req, "reasoning_effort") {
        let effort = expect_str(Some(effort), "reasoning_effort")?;
        if let Some(budget) = reasoning_effort_budget(effort)? {
            let budget = if explicit_max {
                budget.min(max_tokens.saturating_sub(1))
            } else {
                max_tokens = budget + DEFAULT_MAX_TOKENS;
                budget
            };
            if budget >= MIN_THINKING_BUDGET {
                out.insert(
                    "thinking".into(),
                    json!({ "type": "enabled", "budget_tokens": budget }),
                );
            } else {
                tracing::debug!(
                    max_tokens,
                    "reasoning_effort ignored: max tokens leave no room for a thinking budget"
                );
            }
        }
    }
    out.insert("max_tokens".into(), json!(max_tokens));

    if !system.is_empty() {
        let cached = system.iter().any(|b| b.get("cache_control").is_some());
        let value = if cached {
            Value::Array(system)
        } else {
            let texts: Vec<&str> = system
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            json!(texts.join("\n\n"))
        };
        out.insert("system".into(), value);
    }

    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == "user" {
                // Anthropic wants tool results first in a user message.
                blocks
                    .sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
            json!({ "role": role, "content": collapse_single_text(blocks) })
        })
        .collect();
    out.insert("messages".into(), Value::Array(messages));

    let mut has_tools = false;
    if let Some(tools) = present(req, "tools") {
        let tools = expect_array(tools, "tools")?;
        let mut converted = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            converted.push(openai_tool_to_anthropic(tool, &format!("tools[{i}]"))?);
        }
        has_tools = !converted.is_empty();
        if has_tools {
            out.insert("tools".into(), Value::Array(converted));
        }
    }
    if has_tools {
        let mut choice = match present(req, "tool_choice") {
            None => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "auto" => json!({ "type": "auto" }),
                "none" => json!({ "type": "none" }),
                "required" => json!({ "type": "any" }),
                other => {
                    return Err(TranslateError::invalid(
                        "tool_choice",
                        format!("unknown value {other:?}"),
                    ));
                }
            }),
            Some(Value::Object(obj)) => {
                match obj.get("type").and_then(Value::as_str) {
                    Some("function") => {}
                    Some(other) => {
                        return Err(TranslateError::Unsupported(format!(
                            "tool_choice.type={other}"
                        )));
                    }
                    None => return Err(TranslateError::invalid("tool_choice.type", "required")),
                }
                let name = expect_str(
                    obj.get("function").and_then(|f| f.get("name")),
                    "tool_choice.function.name",
                )?;
                Some(json!({ "type": "tool", "name": name }))
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    "expected a string or an object",
                ));
            }
        };
        if present(req, "parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
            let c = choice.get_or_insert_with(|| json!({ "type": "auto" }));
            if c["type"] != "none" {
                c["disable_parallel_tool_use"] = json!(true);
            }
        }
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
    }

    if let Some(t) = present(req, "temperature") {
        out.insert(
            "temperature".into(),
            json!(number(t, "temperature")?.clamp(0.0, 1.0)),
        );
    }
    if let Some(p) = present(req, "top_p") {
        number(p, "top_p")?;
        out.insert("top_p".into(), p.clone());
    }
    if let Some(k) = present(req, "top_k") {
        positive_int(k, "top_k")?;
        out.insert("top_k".into(), k.clone());
    }
    if let Some(stop) = present(req, "stop") {
        let seqs: Vec<Value> = match stop {
            Value::String(s) => vec![json!(s)],
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    expect_str(Some(item), &format!("stop[{i}]"))?;
                }
                items.clone()
            }
            _ => {
                return Err(TranslateError::invalid(
                    "stop",
                    "expected a string or an array of strings",
                ));
            }
        };
        if !seqs.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(seqs));
        }
    }
    if let Some(stream) = present(req, "stream") {
        let stream = stream
            .as_bool()
            .ok_or_else(|| TranslateError::invalid("stream", "expected a boolean"))?;
        out.insert("stream".into(), json!(stream));
    }
    let user = match present(req, "user") {
        Some(u) => Some(expect_str(Some(u), "user")?),
        None => present(req, "safety_identifier").and_then(Value::as_str),
    };
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if out.contains_key("thinking") && present(req, "thinking").is_none() {
        reconcile_effort_thinking(&mut out, explicit_max);
    }

    let known = [
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "thinking",
        "reasoning_effort",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "stream",
        "user",
    ];
    let dropped: Vec<&str> = req
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k) && !DROPPED_OPENAI_PARAMS.contains(k))
        .collect();
    if !dropped.is_empty() {
        tracing::debug!(?dropped, "unknown OpenAI parameters dropped for Anthropic");
    }
    Ok(Value::Object(out))
}

/// Thinking that came from `reasoning_effort` must not turn a request Anthropic would accept
/// into one it rejects: with a forced tool (`tool_choice` any/tool) thinking is left off, and
/// otherwise sampling parameters thinking does not allow (`temperature` other than 1, `top_k`,
/// `top_p` below 0.95) are dropped.
fn reconcile_effort_thinking(out: &mut Map<String, Value>, explicit_max: bool) {
    let forced = out
        .get("tool_choice")
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "any" || t == "tool");
    if forced {
        out.remove("thinking");
        if !explicit_max {
            out.insert("max_tokens".into(), json!(DEFAULT_MAX_TOKENS));
        }
        return;
    }
    if out
        .get("temperature")
        .and_then(Value::as_f64)
        .is_some_and(|t| t != 1.0)
    {
        out.remove("temperature");
    }
    if out
        .get("top_p")
        .and_then(Value::as_f64)
        .is_some_and(|p| p < 0.95)
    {
        out.remove("top_p");
    }
    out.remove("top_k");
}

fn check_openai_unsupported(req: &Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(n) = present(req, "n")
        && n.as_u64() != Some(1)
    {
        return Err(TranslateError::Unsupported("n".into()));
    }
    if present(req, "logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(TranslateError::Unsupported("logprobs".into()));
    }
    if present(req, "top_logprobs").is_some_and(|v| v.as_u64() != Some(0)) {
        return Err(TranslateError::Unsupported("top_logprobs".into()));
    }
    if present(req, "audio").is_some() {
        return Err(TranslateError::Unsupported("audio".into()));
    }
    if let Some(modalities) = present(req, "modalities").and_then(Value::as_array)
        && modalities.iter().any(|m| m != "text")
    {
        return Err(TranslateError::Unsupported("modalities".into()));
    }
    for key in ["functions", "function_call", "web_search_options"] {
        if present(req, key).is_some() {
            return Err(TranslateError::Unsupported(key.into()));
        }
    }
    if let Some(format) = present(req, "response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("text") | Some("json_object") => {}
            _ => return Err(TranslateError::Unsupported("response_format".into())),
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    System,
    User,
    Assistant,
}

fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// One plain text block becomes a string, as a native client would send it.
fn collapse_single_text(blocks: Vec<Value>) -> Value {
    if let [block] = blocks.as_slice()
        && let Some(obj) = block.as_object()
        && obj.len() == 2
        && obj.get("type").and_then(Value::as_str) == Some("text")
        && let Some(text) = obj.get("text")
    {
        return text.clone();
    }
    Value::Array(blocks)
}

fn with_cache_control(mut block: Value, part: &Map<String, Value>) -> Value {
    if let Some(cc) = present(part, "cache_control") {
        block["cache_control"] = cc.clone();
    }
    block
}

fn openai_content_to_blocks(
    content: &Value,
    param: &str,
    kind: Part,
) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        Value::Null => return Ok(Vec::new()),
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![json!({ "type": "text", "text": s })]),
        Value::Array(parts) => parts,
        other => {
            return Err(TranslateError::invalid(
                param,
                format!("expected a string or an array, got {}", type_name(other)),
            ));
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("{param}[{j}]");
        let obj = part
            .as_object()
            .ok_or_else(|| TranslateError::invalid(&param, "expected an object"))?;
        let ty = expect_str(obj.get("type"), &format!("{param}.type"))?;
        match (ty, kind) {
            ("text", _) => {
                let text = expect_str(obj.get("text"), &format!("{param}.text"))?;
                if !text.is_empty() {
                    blocks.push(with_cache_control(
                        json!({ "type": "text", "text": text }),
                        obj,
                    ));
                }
            }
            ("refusal", Part::Assistant) => {
                let text = expect_str(obj.get("refusal"), &format!("{param}.refusal"))?;
                if !text.is_empty() {
                    blocks.push(json!({ "type": "text", "text": text }));
                }
            }
            ("image_url", Part::User) => {
                let image = obj.get("image_url").unwrap_or(&Value::Null);
                let url = match image {
                    Value::String(s) => s.as_str(),
                    _ => expect_str(image.get("url"), &format!("{param}.image_url.url"))?,
                };
                let url_param = format!("{param}.image_url.url");
                let source = if url.starts_with("data:") {
                    let (media_type, data) = parse_data_url(url).ok_or_else(|| {
                        TranslateError::invalid(&url_param, "expected a base64 data URL")
                    })?;
                    json!({ "type": "base64", "media_type": media_type, "data": data })
                } else if url.starts_with("https://") || url.starts_with("http://") {
                    json!({ "type": "url", "url": url })
                } else {
                    return Err(TranslateError::invalid(
                        url_param,
                        "expected an http(s) or data URL",
                    ));
                };
                blocks.push(with_cache_control(
                    json!({ "type": "image", "source": source }),
                    obj,
                ));
            }
            ("file", Part::User) => {
                let file = obj.get("file").unwrap_or(&Value::Null);
                if file.get("file_id").is_some_and(|v| !v.is_null()) {
                    return Err(TranslateError::Unsupported(format!("{param}.file.file_id")));
                }
                let data_param = format!("{param}.file.file_data");
                let data_url = expect_str(file.get("file_data"), &data_param)?;
                let (media_type, data) = parse_data_url(data_url).ok_or_else(|| {
                    TranslateError::invalid(&data_param, "expected a base64 data URL")
                })?;
                if media_type != "application/pdf" {
                    return Err(TranslateError::Unsupported(data_param));
                }
                let mut doc = json!({
                    "type": "document",
                    "source": { "type": "base64", "media_type": media_type, "data": data },
                });
                if let Some(name) = file.get("filename").and_then(Value::as_str) {
                    doc["title"] = json!(name);
                }
                blocks.push(with_cache_control(doc, obj));
            }
            ("input_audio", _) => return Err(TranslateError::Unsupported(param)),
            (other, _) => {
                return Err(TranslateError::invalid(
                    format!("{param}.type"),
                    format!("content part type {other:?} is not allowed here"),
                ));
            }
        }
    }
    Ok(blocks)
}

fn thinking_blocks_to_anthropic(v: &Value, param: &str) -> Result<Vec<Value>, TranslateError> {
    let items = expect_array(v, param)?;
    let mut blocks = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let param = format!("{param}[{k}]");
        match item.get("type").and_then(Value::as_str) {
            Some("thinking") => {
                let thinking = expect_str(item.get("thinking"), &format!("{param}.thinking"))?;
                let signature = item.get("signature").and_then(Value::as_str).unwrap_or("");
                if signature.is_empty() {
                    // Unsigned thinking (e.g. from an OpenAI-dialect model) would be rejected.
                    continue;
                }
                blocks.push(json!({
                    "type": "thinking",
                    "thinking": thinking,
                    "signature": signature,
                }));
            }
            Some("redacted_thinking") => {
                let data = expect_str(item.get("data"), &format!("{param}.data"))?;
                blocks.push(json!({ "type": "redacted_thinking", "data": data }));
            }
            _ => {
                return Err(TranslateError::invalid(
                    format!("{param}.type"),
                    "expected \"thinking\" or \"redacted_thinking\"",
                ));
            }
        }
    }
    Ok(blocks)
}

fn tool_call_to_tool_use(call: &Value, param: &str) -> Result<Value, TranslateError> {
    if let Some(ty) = call.get("type").and_then(Value::as_str)
        && ty != "function"
    {
        return Err(TranslateError::Unsupported(format!("{param}.type")));
    }
    let id = expect_str(call.get("id"), &format!("{param}.id"))?;
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = expect_str(function.get("name"), &format!("{param}.function.name"))?;
    let args_param = format!("{param}.function.arguments");
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            TranslateError::invalid(&args_param, format!("arguments are not valid JSON: {e}"))
        })?,
        Some(obj @ Value::Object(_)) => obj.clone(),
        Some(other) => {
            return Err(TranslateError::invalid(
                &args_param,
                format!("expected a JSON string, got {}", type_name(other)),
            ));
        }
    };
    if !input.is_object() {
        return Err(TranslateError::invalid(
            args_param,
            "arguments must be a JSON object",
        ));
    }
    Ok(json!({ "type": "tool_use", "id": id, "name": name, "input": input }))
}

fn openai_tool_to_anthropic(tool: &Value, param: &str) -> Result<Value, TranslateError> {
    match tool.get("type").and_then(Value::as_str) {
        Some("function") | None => {}
        Some(_) => return Err(TranslateError::Unsupported(format!("{param}.type"))),
    }
    let function = tool
        .get("function")
        .filter(|f| f.is_object())
        .ok_or_else(|| TranslateError::invalid(format!("{param}.function"), "required"))?;
    let name = expect_str(function.get("name"), &format!("{param}.function.name"))?;
    let schema = match function.get("parameters") {
        None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
        Some(s @ Value::Object(_)) => s.clone(),
        Some(_) => {
            return Err(TranslateError::invalid(
                format!("{param}.function.parameters"),
                "expected a JSON schema object",
            ));
        }
    };
    let mut out = json!({ "name": name, "input_schema": schema });
    if let Some(desc) = function.get("description").and_then(Value::as_str) {
        out["description"] = json!(desc);
    }
    if let Some(cc) = tool
        .get("cache_control")
        .or_else(|| function.get("cache_control"))
        .filter(|v| !v.is_null())
    {
        out["cache_control"] = cc.clone();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tests::err_param;

    #[test]
    fn invalid_tool_arguments_name_the_param() {
        let req = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "f", "arguments": "{\"a\": 1}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "f", "arguments": "{\"a\": "}}
                ]}
            ]
        });
        let (param, message) = err_param(openai_chat_to_anthropic(&req, "claude"));
        assert_eq!(param, "messages[1].tool_calls[1].function.arguments");
        assert!(message.contains("not valid JSON"), "{message}");

        let mut req = req;
        req["messages"][1]["tool_calls"][1]["function"]["arguments"] = json!("[1,2]");
        let (param, _) = err_param(openai_chat_to_anthropic(&req, "claude"));
        assert_eq!(param, "messages[1].tool_calls[1].function.arguments");

        // Empty arguments mean no arguments.
        req["messages"][1]["tool_calls"][1]["function"]["arguments"] = json!("");
        let out = openai_chat_to_anthropic(&req, "claude").unwrap();
        assert_eq!(out["messages"][1]["content"][1]["input"], json!({}));
    }

    #[test]
    fn unsupported_params_are_named() {
        let base = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        let cases = [
            ("n", json!(2), "n"),
            ("logprobs", json!(true), "logprobs"),
            ("top_logprobs", json!(3), "top_logprobs"),
            ("audio", json!({"voice": "alloy", "format": "wav"}), "audio"),
            ("modalities", json!(["text", "audio"]), "modalities"),
            ("functions", json!([{"name": "f"}]), "functions"),
            (
                "response_format",
                json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
                "response_format",
            ),
        ];
        for (key, value, expected) in cases {
            let mut req = base.clone();
            req[key] = value;
            assert_eq!(
                openai_chat_to_anthropic(&req, "claude"),
                Err(TranslateError::Unsupported(expected.into())),
                "{key}"
            );
        }
        // n = 1, logprobs false and json_object are fine.
        let mut req = base.clone();
        req["n"] = json!(1);
        req["logprobs"] = json!(false);
        req["response_format"] = json!({"type": "json_object"});
        assert!(openai_chat_to_anthropic(&req, "claude").is_ok());
        // Audio input parts.
        let mut req = base;
        req["messages"][0]["content"] = json!([
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]);
        assert_eq!(
            openai_chat_to_anthropic(&req, "claude"),
            Err(TranslateError::Unsupported("messages[0].content[0]".into()))
        );
    }

    #[test]
    fn invalid_shapes_are_reported() {
        let cases = [
            (json!({"model": "x"}), "messages"),
            (
                json!({"messages": [{"role": "wizard", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
                "messages[0].content[0].image_url.url",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}),
                "reasoning_effort",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}],
                       "tools": [{"type": "function", "function": {"name": "f"}}],
                       "tool_choice": "sometimes"}),
                "tool_choice",
            ),
        ];
        for (req, expected) in cases {
            let (param, _) = err_param(openai_chat_to_anthropic(&req, "claude"));
            assert_eq!(param, expected);
        }
    }

    #[test]
    fn reasoning_effort_budget_and_max_tokens() {
        let mut req = json!({"messages": [{"role": "user", "content": "x"}],
                             "reasoning_effort": "high"});
        let out = openai_chat_to_anthropic(&req, "claude").unwrap();
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert_eq!(out["max_tokens"], json!(16384 + DEFAULT_MAX_TOKENS));
        // A smaller explicit limit lowers the budget.
        req["max_completion_tokens"] = json!(3000);
        let out = openai_chat_to_anthropic(&req, "claude").unwrap();
        assert_eq!(out["thinking"]["budget_tokens"], json!(2999));
        assert_eq!(out["max_tokens"], json!(3000));
        // Too small for any budget: thinking off.
        req["max_completion_tokens"] = json!(800);
        let out = openai_chat_to_anthropic(&req, "claude").unwrap();
        assert!(out.get("thinking").is_none());
        // Sampling parameters thinking rejects are dropped; a forced tool turns thinking off.
        req["max_completion_tokens"] = Value::Null;
        req["reasoning_effort"] = json!("low");
        req["temperature"] = json!(0.2);
        req["top_p"] = json!(0.9);
        let out = openai_chat_to_anthropic(&req, "claude").unwrap();
        assert_eq!(out["thinking"]["budget_tokens"], json!(2048));
        assert!(out.get("temperature").is_none() && out.get("top_p").is_none());
        req["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        req["tool_choice"] = json!("required");
        let out = openai_chat_to_anthropic(&req, "claude").unwrap();
        assert!(out.get("thinking").is_none());
        assert_eq!(out["temperature"], json!(0.2));
        assert_eq!(out["max_tokens"], json!(DEFAULT_MAX_TOKENS));
        req["reasoning_effort"] = json!("none");
        req["max_completion_tokens"] = Value::Null;
        let out = openai_chat_to_anthropic(&req, "claude").unwrap();
        assert!(out.get("thinking").is_none());
        assert_eq!(out["max_tokens"], json!(DEFAULT_MAX_TOKENS));
    }

    #[test]
    fn tool_results_merge_and_come_first() {
        let req = json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"id": "call_b", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "thanks"},
            {"role": "user", "content": "and tomorrow?"}
        ]});
        let out = openai_chat_to_anthropic(&req, "claude").unwrap();
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            msgs[2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "call_a", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "call_b",
                 "content": [{"type": "text", "text": "rain"}]},
                {"type": "text", "text": "thanks"},
                {"type": "text", "text": "and tomorrow?"}
            ])
        );
    }
}
