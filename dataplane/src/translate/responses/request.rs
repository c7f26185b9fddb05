//! Request translation OpenAI Responses → OpenAI chat completions.
//!
//! Wire format: openai-python `src/openai/types/responses/response_create_params.py`,
//! `response_input_item_param.py` and `tool_param.py` (the stored snapshot of 2026-08).

use serde_json::{Map, Value, json};

use super::THINKING_BLOCKS_PREFIX;
use crate::translate::TranslateError;
use crate::translate::common::{
    expect_array, expect_str, number, positive_int, present, type_name,
};

/// Tool types of the Responses API that run on OpenAI's side (or need a client-side protocol
/// chat completions cannot express); a chat target cannot run them.
const BUILT_IN_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "web_search_2025_08_26",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "computer_use",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
];

/// Input item types that are outputs or calls of built-in tools: well-formed, but a chat
/// target has no way to express them.
const BUILT_IN_ITEMS: &[&str] = &[
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "image_generation_call",
    "code_interpreter_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call",
    "custom_tool_call_output",
    "compaction",
];

/// Translates an OpenAI Responses request into an OpenAI chat completions request for `model`.
///
/// The Responses API can keep state on the server (`previous_response_id`, `conversation`,
/// `item_reference` items); this function is pure, so **the caller expands stored state into
/// `input` before calling** (the earlier turns' input items followed by their output items) and
/// removes `previous_response_id`/`conversation`. Requests that still carry them are refused.
///
/// - `instructions` → a leading `system` message; `input` as a string → one `user` message.
/// - `message` items (also without `type`): roles `user`, `assistant`, `system`, and
///   `developer` → `system`. Content as a string passes; as parts: `input_text` and
///   `output_text` → text, `input_image` with `image_url` → an `image_url` part (`detail`
///   kept), `input_file` with `file_data` → a chat `file` part (`filename` kept); `refusal`
///   parts of assistant messages → the message's `refusal`. User content stays a part array;
///   system and assistant text parts are joined with a blank line into a string.
/// - `function_call` items → `tool_calls` of an assistant message (consecutive calls, calls
///   right after an assistant message, and assistant text right after calls merge into one
///   message, so tool results follow their calls as chat requires); `function_call_output` →
///   a `tool` message (string output, or `input_text`/`input_image`/`input_file` parts; the
///   Anthropic translation takes images there, some chat servers accept only text).
/// - `reasoning` items are not sent as such. Their summary texts (or their `reasoning_text`
///   content, when present: the full text wins over the summary) become `reasoning_content` of
///   the assistant message right after them, the extension field the Anthropic translation and
///   DeepSeek/vLLM read; an `encrypted_content` this gateway produced for an Anthropic answer
///   (see [`super::chat_response_to_responses`]) is restored as `thinking_blocks`, so signed
///   thinking reaches Anthropic again; any other `encrypted_content` (OpenAI's) is opaque and
///   dropped. A reasoning item not followed by an assistant message or call is dropped.
/// - `tools`: `function` tools → chat function tools (`name`, `description`, `parameters`,
///   `strict`); `tool_choice` `auto`/`none`/`required`/`{type:"function",name}`;
///   `parallel_tool_calls` (sent only with tools: OpenAI rejects it without).
/// - `max_output_tokens` → `max_tokens`; `temperature`, `top_p` and `user` pass;
///   `safety_identifier` → `user` when `user` is absent; `reasoning.effort` →
///   `reasoning_effort`; `text.format` → `response_format` (`text` is the default and sends
///   nothing); `stream: true` → `stream` with `stream_options.include_usage` (the Responses
///   stream always ends with usage).
/// - Dropped: `metadata`, `store` (the caller's response store answers for it; both are echoed
///   in the response), `include` (reasoning summaries are always returned when the target gives
///   reasoning, and `encrypted_content` whenever there is signed Anthropic thinking to carry), `truncation` (`disabled` is what a chat target
///   does; `auto` cannot be honoured and the target answers a context error instead),
///   `service_tier`, `prompt_cache_key`, `prompt_cache_retention`, `text.verbosity`,
///   `reasoning.summary`, `stream_options`, `background: false`, and unknown parameters.
///
/// # Errors
/// [`TranslateError::Invalid`] (with the parameter's path, e.g. `input[3].type`) for a wrong
/// type, a missing field, an unknown item or part type, `previous_response_id`,
/// `conversation` and `item_reference` items; [`TranslateError::Unsupported`] for built-in
/// tools (`tools[i] (web_search)`), built-in tool choices and tool-call items, `file_id`
/// images and files, `file_url` files, audio input, `background: true`, `prompt` templates,
/// `max_tool_calls` and `top_logprobs`.
pub fn responses_to_chat(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let req = req
        .as_object()
        .ok_or_else(|| TranslateError::invalid("", "request body must be a JSON object"))?;
    check_unsupported(req)?;

    let mut messages: Vec<Value> = Vec::new();
    if let Some(instructions) = present(req, "instructions") {
        let text = expect_str(Some(instructions), "instructions")?;
        if !text.is_empty() {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }
    match present(req, "input") {
        None => return Err(TranslateError::invalid("input", "required")),
        Some(Value::String(s)) => messages.push(json!({ "role": "user", "content": s })),
        Some(Value::Array(items)) => input_items(items, &mut messages)?,
        Some(other) => {
            return Err(TranslateError::invalid(
                "input",
                format!("expected a string or an array, got {}", type_name(other)),
            ));
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));

    let mut has_tools = false;
    if let Some(tools) = present(req, "tools") {
        let tools = expect_array(tools, "tools")?;
        let chat_tools = tools
            .iter()
            .enumerate()
            .map(|(i, t)| tool_to_chat(t, &format!("tools[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        has_tools = !chat_tools.is_empty();
        if has_tools {
            out.insert("tools".into(), Value::Array(chat_tools));
        }
    }
    if let Some(choice) = present(req, "tool_choice") {
        out.insert("tool_choice".into(), tool_choice_to_chat(choice)?);
    }
    if let Some(parallel) = present(req, "parallel_tool_calls") {
        let parallel = parallel
            .as_bool()
            .ok_or_else(|| TranslateError::invalid("parallel_tool_calls", "expected a boolean"))?;
        if has_tools {
            out.insert("parallel_tool_calls".into(), json!(parallel));
        }
    }
    if let Some(max) = present(req, "max_output_tokens") {
        out.insert(
            "max_tokens".into(),
            json!(positive_int(max, "max_output_tokens")?),
        );
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = present(req, key) {
            number(v, key)?;
            out.insert(key.into(), v.clone());
        }
    }
    let user = match present(req, "user") {
        Some(u) => Some(expect_str(Some(u), "user")?),
        None => None,
    };
    let safety = match present(req, "safety_identifier") {
        Some(s) => Some(expect_str(Some(s), "safety_identifier")?),
        None => None,
    };
    if let Some(user) = user.or(safety) {
        out.insert("user".into(), json!(user));
    }
    if let Some(reasoning) = present(req, "reasoning") {
        let reasoning = reasoning
            .as_object()
            .ok_or_else(|| TranslateError::invalid("reasoning", "expected an object"))?;
        if let Some(effort) = present(reasoning, "effort") {
            let effort = expect_str(Some(effort), "reasoning.effort")?;
            out.insert("reasoning_effort".into(), json!(effort));
        }
        if let Some(summary) = present(reasoning, "summary") {
            expect_str(Some(summary), "reasoning.summary")?;
        }
    }
    if let Some(text) = present(req, "text") {
        let text = text
            .as_object()
            .ok_or_else(|| TranslateError::invalid("text", "expected an object"))?;
        if let Some(format) = present(text, "format")
            && let Some(format) = text_format_to_chat(format)?
        {
            out.insert("response_format".into(), format);
        }
        if let Some(verbosity) = present(text, "verbosity") {
            expect_str(Some(verbosity), "text.verbosity")?;
        }
    }
    if let Some(stream) = present(req, "stream") {
        let stream = stream
            .as_bool()
            .ok_or_else(|| TranslateError::invalid("stream", "expected a boolean"))?;
        if stream {
            out.insert("stream".into(), json!(true));
            out.insert("stream_options".into(), json!({ "include_usage": true }));
        }
    }
    if let Some(metadata) = present(req, "metadata")
        && !metadata.is_object()
    {
        return Err(TranslateError::invalid("metadata", "expected an object"));
    }
    if let Some(store) = present(req, "store")
        && !store.is_boolean()
    {
        return Err(TranslateError::invalid("store", "expected a boolean"));
    }
    if let Some(include) = present(req, "include") {
        for (i, v) in expect_array(include, "include")?.iter().enumerate() {
            expect_str(Some(v), &format!("include[{i}]"))?;
        }
    }
    if let Some(truncation) = present(req, "truncation") {
        match expect_str(Some(truncation), "truncation")? {
            "auto" | "disabled" => {}
            other => {
                return Err(TranslateError::invalid(
                    "truncation",
                    format!("unknown value {other:?}; expected auto or disabled"),
                ));
            }
        }
    }
    Ok(Value::Object(out))
}

fn check_unsupported(req: &Map<String, Value>) -> Result<(), TranslateError> {
    for key in ["previous_response_id", "conversation"] {
        if present(req, key).is_some() {
            return Err(TranslateError::invalid(
                key,
                "stored conversation state must be expanded into `input` before translation",
            ));
        }
    }
    if let Some(background) = present(req, "background") {
        match background.as_bool() {
            Some(false) => {}
            Some(true) => return Err(TranslateError::Unsupported("background".into())),
            None => return Err(TranslateError::invalid("background", "expected a boolean")),
        }
    }
    if present(req, "prompt").is_some() {
        return Err(TranslateError::Unsupported("prompt".into()));
    }
    if present(req, "max_tool_calls").is_some() {
        return Err(TranslateError::Unsupported("max_tool_calls".into()));
    }
    if let Some(n) = present(req, "top_logprobs")
        && n.as_u64() != Some(0)
    {
        return Err(TranslateError::Unsupported("top_logprobs".into()));
    }
    Ok(())
}

/// Translates the `input` items, appending chat messages.
fn input_items(items: &[Value], messages: &mut Vec<Value>) -> Result<(), TranslateError> {
    // Reasoning waiting for the assistant message it precedes: (text, thinking blocks).
    let mut reasoning: Option<(String, Vec<Value>)> = None;
    for (i, item) in items.iter().enumerate() {
        let param = format!("input[{i}]");
        let obj = item
            .as_object()
            .ok_or_else(|| TranslateError::invalid(&param, "expected an object"))?;
        let ty = match obj.get("type") {
            None | Some(Value::Null) => "message",
            Some(t) => expect_str(Some(t), &format!("{param}.type"))?,
        };
        match ty {
            "message" => {
                let msg = message_item(obj, &param)?;
                if msg["role"] != "assistant" {
                    // Reasoning belongs to the assistant turn right after it.
                    reasoning = None;
                    messages.push(msg);
                    continue;
                }
                let reasoning = reasoning.take();
                match messages.last_mut() {
                    // Text after the calls of the same turn (some clients order it so): one
                    // chat message, so the tool results still follow their calls.
                    Some(last)
                        if reasoning.is_none()
                            && last["role"] == "assistant"
                            && last.get("tool_calls").is_some()
                            && last["content"].is_null()
                            && last.get("refusal").is_none() =>
                    {
                        last["content"] = msg["content"].clone();
                        if let Some(refusal) = msg.get("refusal") {
                            last["refusal"] = refusal.clone();
                        }
                    }
                    _ => push_assistant(messages, msg, reasoning),
                }
            }
            "function_call" => {
                let call_id = expect_str(obj.get("call_id"), &format!("{param}.call_id"))?;
                let name = expect_str(obj.get("name"), &format!("{param}.name"))?;
                let arguments = expect_str(obj.get("arguments"), &format!("{param}.arguments"))?;
                let call = json!({
                    "id": call_id,
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                });
                let reasoning = reasoning.take();
                match messages.last_mut() {
                    // Calls right after an assistant message (its text, or earlier calls) are
                    // one chat assistant turn; reasoning before a call belongs to that turn.
                    Some(last) if last["role"] == "assistant" && reasoning.is_none() => {
                        match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                            Some(calls) => calls.push(call),
                            None => last["tool_calls"] = json!([call]),
                        }
                    }
                    _ => {
                        let msg = json!({
                            "role": "assistant", "content": null, "tool_calls": [call],
                        });
                        push_assistant(messages, msg, reasoning);
                    }
                }
            }
            "function_call_output" => {
                let call_id = expect_str(obj.get("call_id"), &format!("{param}.call_id"))?;
                let output_param = format!("{param}.output");
                let content = match obj.get("output") {
                    Some(Value::String(s)) => json!(s),
                    Some(Value::Array(parts)) => {
                        Value::Array(content_parts(parts, &output_param, Role::User)?.parts)
                    }
                    Some(other) => {
                        return Err(TranslateError::invalid(
                            output_param,
                            format!("expected a string or an array, got {}", type_name(other)),
                        ));
                    }
                    None => return Err(TranslateError::invalid(output_param, "required")),
                };
                reasoning = None;
                messages
                    .push(json!({ "role": "tool", "tool_call_id": call_id, "content": content }));
            }
            "reasoning" => reasoning = Some(reasoning_item(obj, &param)?),
            "item_reference" => {
                return Err(TranslateError::invalid(
                    param,
                    "`item_reference` needs stored state; the items must be expanded into \
                     `input` before translation",
                ));
            }
            t if BUILT_IN_ITEMS.contains(&t) => {
                return Err(TranslateError::Unsupported(format!("{param}.type")));
            }
            other => {
                return Err(TranslateError::invalid(
                    format!("{param}.type"),
                    format!("unknown input item type {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Pushes an assistant message, with the reasoning that preceded it.
fn push_assistant(
    messages: &mut Vec<Value>,
    mut msg: Value,
    reasoning: Option<(String, Vec<Value>)>,
) {
    if let Some((text, blocks)) = reasoning {
        if !text.is_empty() {
            msg["reasoning_content"] = json!(text);
        }
        if !blocks.is_empty() {
            msg["thinking_blocks"] = Value::Array(blocks);
        }
    }
    messages.push(msg);
}

/// A `reasoning` item: its text (content, else summaries) and the thinking blocks this
/// gateway stored in `encrypted_content`.
fn reasoning_item(
    obj: &Map<String, Value>,
    param: &str,
) -> Result<(String, Vec<Value>), TranslateError> {
    let texts = |key: &str, part_types: &[&str]| -> Result<Vec<String>, TranslateError> {
        let Some(parts) = present(obj, key) else {
            return Ok(Vec::new());
        };
        let key_param = format!("{param}.{key}");
        let mut out = Vec::new();
        for (j, part) in expect_array(parts, &key_param)?.iter().enumerate() {
            let part_param = format!("{key_param}[{j}]");
            let ty = expect_str(part.get("type"), &format!("{part_param}.type"))?;
            if !part_types.contains(&ty) {
                return Err(TranslateError::invalid(
                    format!("{part_param}.type"),
                    format!("expected one of {part_types:?}, got {ty:?}"),
                ));
            }
            out.push(expect_str(part.get("text"), &format!("{part_param}.text"))?.to_owned());
        }
        Ok(out)
    };
    let summary = texts("summary", &["summary_text"])?;
    // Codex also sends reasoning content parts of type `text` (codex-rs/protocol
    // `ReasoningItemContent`).
    let content = texts("content", &["reasoning_text", "text"])?;
    let text = if content.is_empty() {
        summary.join("\n\n")
    } else {
        content.concat()
    };
    let mut blocks = Vec::new();
    if let Some(enc) = present(obj, "encrypted_content") {
        let enc = expect_str(Some(enc), &format!("{param}.encrypted_content"))?;
        if let Some(stored) = enc.strip_prefix(THINKING_BLOCKS_PREFIX) {
            match serde_json::from_str::<Value>(stored) {
                Ok(Value::Array(b)) => blocks = b,
                _ => {
                    return Err(TranslateError::invalid(
                        format!("{param}.encrypted_content"),
                        "corrupted reasoning content",
                    ));
                }
            }
        }
    }
    Ok((text, blocks))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    System,
    Assistant,
}

/// Translated content parts: chat parts (user) or texts to join (system, assistant), and an
/// assistant's refusal.
struct Parts {
    parts: Vec<Value>,
    texts: Vec<String>,
    refusal: Option<String>,
}

fn message_item(obj: &Map<String, Value>, param: &str) -> Result<Value, TranslateError> {
    let role_param = format!("{param}.role");
    let role = match expect_str(obj.get("role"), &role_param)? {
        "user" => Role::User,
        "system" | "developer" => Role::System,
        "assistant" => Role::Assistant,
        other => {
            return Err(TranslateError::invalid(
                role_param,
                format!("unknown role {other:?}; expected user, assistant, system or developer"),
            ));
        }
    };
    let role_name = match role {
        Role::User => "user",
        Role::System => "system",
        Role::Assistant => "assistant",
    };
    let content_param = format!("{param}.content");
    match obj.get("content") {
        Some(Value::String(s)) => Ok(json!({ "role": role_name, "content": s })),
        Some(Value::Array(parts)) => {
            let parts = content_parts(parts, &content_param, role)?;
            let mut msg = match role {
                Role::User => json!({ "role": role_name, "content": parts.parts }),
                Role::System => json!({ "role": role_name, "content": parts.texts.join("\n\n") }),
                Role::Assistant => {
                    let text = parts.texts.join("\n\n");
                    let content = if text.is_empty() && parts.refusal.is_some() {
                        Value::Null
                    } else {
                        json!(text)
                    };
                    json!({ "role": role_name, "content": content })
                }
            };
            if let Some(refusal) = parts.refusal {
                msg["refusal"] = json!(refusal);
            }
            Ok(msg)
        }
        Some(other) => Err(TranslateError::invalid(
            content_param,
            format!("expected a string or an array, got {}", type_name(other)),
        )),
        None => Err(TranslateError::invalid(content_param, "required")),
    }
}

/// Translates content parts for a message of `role` (tool outputs use [`Role::User`]).
fn content_parts(parts: &[Value], param: &str, role: Role) -> Result<Parts, TranslateError> {
    let mut out = Parts {
        parts: Vec::with_capacity(parts.len()),
        texts: Vec::new(),
        refusal: None,
    };
    for (j, part) in parts.iter().enumerate() {
        let param = format!("{param}[{j}]");
        let obj = part
            .as_object()
            .ok_or_else(|| TranslateError::invalid(&param, "expected an object"))?;
        let ty_param = format!("{param}.type");
        let ty = expect_str(obj.get("type"), &ty_param)?;
        let wrong_role = || {
            TranslateError::invalid(
                &ty_param,
                format!("a {ty:?} part is not allowed in this message"),
            )
        };
        match ty {
            "input_text" | "output_text" | "text" => {
                let text = expect_str(obj.get("text"), &format!("{param}.text"))?;
                if role == Role::User {
                    out.parts.push(json!({ "type": "text", "text": text }));
                } else {
                    out.texts.push(text.to_owned());
                }
            }
            "refusal" => {
                if role != Role::Assistant {
                    return Err(wrong_role());
                }
                let text = expect_str(obj.get("refusal"), &format!("{param}.refusal"))?;
                out.refusal.get_or_insert_with(String::new).push_str(text);
            }
            "input_image" => {
                if role != Role::User {
                    return Err(wrong_role());
                }
                if present(obj, "file_id").is_some() {
                    return Err(TranslateError::Unsupported(format!("{param}.file_id")));
                }
                let url = expect_str(obj.get("image_url"), &format!("{param}.image_url"))?;
                let mut image = json!({ "url": url });
                if let Some(detail) = present(obj, "detail") {
                    image["detail"] = json!(expect_str(Some(detail), &format!("{param}.detail"))?);
                }
                out.parts
                    .push(json!({ "type": "image_url", "image_url": image }));
            }
            "input_file" => {
                if role != Role::User {
                    return Err(wrong_role());
                }
                for key in ["file_id", "file_url"] {
                    if present(obj, key).is_some() {
                        return Err(TranslateError::Unsupported(format!("{param}.{key}")));
                    }
                }
                let data = expect_str(obj.get("file_data"), &format!("{param}.file_data"))?;
                let mut file = json!({ "file_data": data });
                if let Some(name) = present(obj, "filename") {
                    file["filename"] = json!(expect_str(Some(name), &format!("{param}.filename"))?);
                }
                out.parts.push(json!({ "type": "file", "file": file }));
            }
            "input_audio" => return Err(TranslateError::Unsupported(ty_param)),
            other => {
                return Err(TranslateError::invalid(
                    ty_param,
                    format!("unknown content part type {other:?}"),
                ));
            }
        }
    }
    Ok(out)
}

fn tool_to_chat(tool: &Value, param: &str) -> Result<Value, TranslateError> {
    let obj = tool
        .as_object()
        .ok_or_else(|| TranslateError::invalid(param, "expected an object"))?;
    let ty = expect_str(obj.get("type"), &format!("{param}.type"))?;
    if ty != "function" {
        // The error names the tool type: "tools[0] (web_search)".
        if BUILT_IN_TOOLS.contains(&ty) {
            return Err(TranslateError::Unsupported(format!("{param} ({ty})")));
        }
        return Err(TranslateError::invalid(
            format!("{param}.type"),
            format!("unknown tool type {ty:?}"),
        ));
    }
    let name = expect_str(obj.get("name"), &format!("{param}.name"))?;
    if name.is_empty() {
        return Err(TranslateError::invalid(format!("{param}.name"), "empty"));
    }
    let mut function = json!({ "name": name });
    if let Some(description) = present(obj, "description") {
        function["description"] = json!(expect_str(
            Some(description),
            &format!("{param}.description")
        )?);
    }
    if let Some(parameters) = present(obj, "parameters") {
        if !parameters.is_object() {
            return Err(TranslateError::invalid(
                format!("{param}.parameters"),
                "expected a JSON schema object",
            ));
        }
        function["parameters"] = parameters.clone();
    }
    if let Some(strict) = present(obj, "strict") {
        let strict = strict.as_bool().ok_or_else(|| {
            TranslateError::invalid(format!("{param}.strict"), "expected a boolean")
        })?;
        function["strict"] = json!(strict);
    }
    Ok(json!({ "type": "function", "function": function }))
}

fn tool_choice_to_chat(choice: &Value) -> Result<Value, TranslateError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" | "none" | "required" => Ok(choice.clone()),
            other => Err(TranslateError::invalid(
                "tool_choice",
                format!("unknown value {other:?}; expected auto, none or required"),
            )),
        },
        Value::Object(obj) => {
            let ty = expect_str(obj.get("type"), "tool_choice.type")?;
            match ty {
                "function" => {
                    let name = expect_str(obj.get("name"), "tool_choice.name")?;
                    Ok(json!({ "type": "function", "function": { "name": name } }))
                }
                "allowed_tools" | "mcp" | "custom" | "apply_patch" | "shell" => {
                    Err(TranslateError::Unsupported(format!("tool_choice ({ty})")))
                }
                t if BUILT_IN_TOOLS.contains(&t) => {
                    Err(TranslateError::Unsupported(format!("tool_choice ({ty})")))
                }
                other => Err(TranslateError::invalid(
                    "tool_choice.type",
                    format!("unknown tool choice type {other:?}"),
                )),
            }
        }
        other => Err(TranslateError::invalid(
            "tool_choice",
            format!("expected a string or an object, got {}", type_name(other)),
        )),
    }
}

/// `text.format` → chat `response_format`; `None` for the default `text`.
fn text_format_to_chat(format: &Value) -> Result<Option<Value>, TranslateError> {
    let obj = format
        .as_object()
        .ok_or_else(|| TranslateError::invalid("text.format", "expected an object"))?;
    match expect_str(obj.get("type"), "text.format.type")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({ "type": "json_object" }))),
        "json_schema" => {
            let name = expect_str(obj.get("name"), "text.format.name")?;
            let schema = obj.get("schema").filter(|s| s.is_object()).ok_or_else(|| {
                TranslateError::invalid("text.format.schema", "expected an object")
            })?;
            let mut js = json!({ "name": name, "schema": schema });
            if let Some(description) = present(obj, "description") {
                js["description"] =
                    json!(expect_str(Some(description), "text.format.description")?);
            }
            if let Some(strict) = present(obj, "strict") {
                let strict = strict.as_bool().ok_or_else(|| {
                    TranslateError::invalid("text.format.strict", "expected a boolean")
                })?;
                js["strict"] = json!(strict);
            }
            Ok(Some(json!({ "type": "json_schema", "json_schema": js })))
        }
        other => Err(TranslateError::invalid(
            "text.format.type",
            format!("unknown format {other:?}; expected text, json_object or json_schema"),
        )),
    }
}
