//! Request translation Anthropic Messages → OpenAI chat.

use serde_json::{Map, Value, json};

use crate::translate::TranslateError;
use crate::translate::common::{expect_array, expect_str, number, positive_int, present};

/// Translates an Anthropic Messages request into an OpenAI chat completions request for `model`.
///
/// - `system` (string or text blocks, joined with a blank line) → one leading `system` message.
/// - User text/image blocks → a user message (a string when it is a single text block);
///   base64 images become `data:` URLs; base64 PDF `document` blocks become `file` parts and
///   plain-text documents text parts.
/// - `tool_result` blocks → `tool` messages in order, before the rest of that user message;
///   block content is flattened to text, `is_error: true` prefixes it with `Error: `, and images
///   inside tool results move to the following user message (OpenAI tool messages take text
///   only).
/// - Assistant text → `content` (concatenated), `tool_use` → `tool_calls` (input serialised).
///   Thinking, redacted thinking and server-tool blocks (web search etc.) in assistant turns are
///   dropped: OpenAI dialects cannot take them.
/// - `tools` → function tools (`input_schema` → `parameters`); `tool_choice` any → `required`,
///   tool → function, none → `none`; `disable_parallel_tool_use` → `parallel_tool_calls: false`.
/// - `stop_sequences` → `stop`, `max_tokens` → `max_tokens`, `metadata.user_id` → `user`,
///   `stream: true` → `stream` plus `stream_options.include_usage: true`.
/// - Dropped: `top_k`, `thinking`, `cache_control` markers, `service_tier`, `container`,
///   `context_management` and any unknown parameter.
///
/// # Errors
/// [`TranslateError::Unsupported`] for server tools (`tools[i].type` other than `custom`),
/// `mcp_servers`, image/document sources other than base64/url/text and unknown user content
/// blocks; [`TranslateError::Invalid`] for malformed input.
pub fn anthropic_to_openai_chat(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let req = req
        .as_object()
        .ok_or_else(|| TranslateError::invalid("", "request body must be a JSON object"))?;
    if present(req, "mcp_servers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(TranslateError::Unsupported("mcp_servers".into()));
    }
    let mut messages: Vec<Value> = Vec::new();

    if let Some(system) = present(req, "system") {
        let text = match system {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => {
                let mut texts = Vec::with_capacity(blocks.len());
                for (i, block) in blocks.iter().enumerate() {
                    let param = format!("system[{i}]");
                    if block.get("type").and_then(Value::as_str) != Some("text") {
                        return Err(TranslateError::invalid(
                            format!("{param}.type"),
                            "system blocks must be text",
                        ));
                    }
                    texts.push(expect_str(block.get("text"), &format!("{param}.text"))?);
                }
                texts.join("\n\n")
            }
            _ => {
                return Err(TranslateError::invalid(
                    "system",
                    "expected a string or an array of text blocks",
                ));
            }
        };
        if !text.is_empty() {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }

    let input = expect_array(
        present(req, "messages").ok_or_else(|| TranslateError::invalid("messages", "required"))?,
        "messages",
    )?;
    for (i, msg) in input.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = expect_str(msg.get("role"), &format!("{param}.role"))?;
        let content = msg.get("content").unwrap_or(&Value::Null);
        let content_param = format!("{param}.content");
        match (role, content) {
            ("user" | "assistant", Value::String(s)) => {
                messages.push(json!({ "role": role, "content": s }));
            }
            ("user", Value::Array(blocks)) => {
                user_blocks_to_openai(blocks, &content_param, &mut messages)?;
            }
            ("assistant", Value::Array(blocks)) => {
                if let Some(m) = assistant_blocks_to_openai(blocks, &content_param)? {
                    messages.push(m);
                }
            }
            ("user" | "assistant", _) => {
                return Err(TranslateError::invalid(
                    content_param,
                    "expected a string or an array of content blocks",
                ));
            }
            (other, _) => {
                return Err(TranslateError::invalid(
                    format!("{param}.role"),
                    format!("unknown role {other:?}; expected user or assistant"),
                ));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    if let Some(max) = present(req, "max_tokens") {
        out.insert("max_tokens".into(), json!(positive_int(max, "max_tokens")?));
    }

    let mut has_tools = false;
    if let Some(tools) = present(req, "tools") {
        let tools = expect_array(tools, "tools")?;
        let mut converted = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            let param = format!("tools[{i}]");
            match tool.get("type").and_then(Value::as_str) {
                None | Some("custom") => {}
                Some(_) => return Err(TranslateError::Unsupported(format!("{param}.type"))),
            }
            let name = expect_str(tool.get("name"), &format!("{param}.name"))?;
            let mut function = json!({ "name": name });
            if let Some(desc) = tool.get("description").and_then(Value::as_str) {
                function["description"] = json!(desc);
            }
            function["parameters"] = match tool.get("input_schema") {
                Some(s @ Value::Object(_)) => s.clone(),
                _ => {
                    return Err(TranslateError::invalid(
                        format!("{param}.input_schema"),
                        "expected a JSON schema object",
                    ));
                }
            };
            converted.push(json!({ "type": "function", "function": function }));
        }
        has_tools = !converted.is_empty();
        if has_tools {
            out.insert("tools".into(), Value::Array(converted));
        }
    }
    if has_tools && let Some(choice) = present(req, "tool_choice") {
        let ty = expect_str(choice.get("type"), "tool_choice.type")?;
        let mapped = match ty {
            "auto" => json!("auto"),
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => {
                let name = expect_str(choice.get("name"), "tool_choice.name")?;
                json!({ "type": "function", "function": { "name": name } })
            }
            other => {
                return Err(TranslateError::invalid(
                    "tool_choice.type",
                    format!("unknown value {other:?}"),
                ));
            }
        };
        if ty != "none"
            && choice
                .get("disable_parallel_tool_use")
                .and_then(Value::as_bool)
                == Some(true)
        {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
        out.insert("tool_choice".into(), mapped);
    }

    if let Some(t) = present(req, "temperature") {
        number(t, "temperature")?;
        out.insert("temperature".into(), t.clone());
    }
    if let Some(p) = present(req, "top_p") {
        number(p, "top_p")?;
        out.insert("top_p".into(), p.clone());
    }
    if let Some(stop) = present(req, "stop_sequences") {
        let seqs = expect_array(stop, "stop_sequences")?;
        for (i, s) in seqs.iter().enumerate() {
            expect_str(Some(s), &format!("stop_sequences[{i}]"))?;
        }
        if !seqs.is_empty() {
            out.insert("stop".into(), stop.clone());
        }
    }
    if let Some(user) = present(req, "metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        out.insert("user".into(), json!(user));
    }
    if let Some(stream) = present(req, "stream") {
        let stream = stream
            .as_bool()
            .ok_or_else(|| TranslateError::invalid("stream", "expected a boolean"))?;
        out.insert("stream".into(), json!(stream));
        if stream {
            out.insert("stream_options".into(), json!({ "include_usage": true }));
        }
    }
    Ok(Value::Object(out))
}

fn anthropic_image_to_openai(block: &Value, param: &str) -> Result<Value, TranslateError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = expect_str(
                source.get("media_type"),
                &format!("{param}.source.media_type"),
            )?;
            let data = expect_str(source.get("data"), &format!("{param}.source.data"))?;
            format!("data:{media};base64,{data}")
        }
        Some("url") => expect_str(source.get("url"), &format!("{param}.source.url"))?.to_owned(),
        _ => return Err(TranslateError::Unsupported(format!("{param}.source.type"))),
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

fn anthropic_document_to_openai(block: &Value, param: &str) -> Result<Value, TranslateError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = expect_str(
                source.get("media_type"),
                &format!("{param}.source.media_type"),
            )?;
            let data = expect_str(source.get("data"), &format!("{param}.source.data"))?;
            let filename = block
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(json!({
                "type": "file",
                "file": { "filename": filename, "file_data": format!("data:{media};base64,{data}") },
            }))
        }
        Some("text") => {
            let data = expect_str(source.get("data"), &format!("{param}.source.data"))?;
            Ok(json!({ "type": "text", "text": data }))
        }
        _ => Err(TranslateError::Unsupported(format!("{param}.source.type"))),
    }
}

fn user_blocks_to_openai(
    blocks: &[Value],
    param: &str,
    messages: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let mut parts: Vec<Value> = Vec::new();
    // Images and PDFs inside tool results: OpenAI tool messages take text only.
    let mut moved_images: Vec<Value> = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}[{j}]");
        let ty = expect_str(block.get("type"), &format!("{param}.type"))?;
        match ty {
            "text" => {
                let text = expect_str(block.get("text"), &format!("{param}.text"))?;
                parts.push(json!({ "type": "text", "text": text }));
            }
            "image" => parts.push(anthropic_image_to_openai(block, &param)?),
            "document" => parts.push(anthropic_document_to_openai(block, &param)?),
            "tool_result" => {
                let id = expect_str(block.get("tool_use_id"), &format!("{param}.tool_use_id"))?;
                let content_param = format!("{param}.content");
                let mut text = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(inner)) => {
                        let mut texts = Vec::new();
                        for (k, b) in inner.iter().enumerate() {
                            let p = format!("{content_param}[{k}]");
                            match b.get("type").and_then(Value::as_str) {
                                Some("text") => {
                                    let t = expect_str(b.get("text"), &format!("{p}.text"))?;
                                    texts.push(t.to_owned());
                                }
                                Some("image") => {
                                    moved_images.push(anthropic_image_to_openai(b, &p)?);
                                }
                                Some("document") => {
                                    let doc = anthropic_document_to_openai(b, &p)?;
                                    match doc.get("text").and_then(Value::as_str) {
                                        Some(t) => texts.push(t.to_owned()),
                                        None => moved_images.push(doc),
                                    }
                                }
                                _ => return Err(TranslateError::Unsupported(format!("{p}.type"))),
                            }
                        }
                        texts.join("\n")
                    }
                    Some(_) => {
                        return Err(TranslateError::invalid(
                            content_param,
                            "expected a string or an array of content blocks",
                        ));
                    }
                };
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = if text.is_empty() {
                        "Error".to_owned()
                    } else {
                        format!("Error: {text}")
                    };
                }
                messages.push(json!({ "role": "tool", "tool_call_id": id, "content": text }));
            }
            // Thinking never appears in user turns; tolerate it like in assistant turns.
            "thinking" | "redacted_thinking" => {}
            _ => return Err(TranslateError::Unsupported(format!("{param}.type"))),
        }
    }
    parts.extend(moved_images);
    match parts.as_slice() {
        [] => {}
        [only] if only["type"] == "text" => {
            messages.push(json!({ "role": "user", "content": only["text"] }));
        }
        _ => messages.push(json!({ "role": "user", "content": parts })),
    }
    Ok(())
}

fn assistant_blocks_to_openai(
    blocks: &[Value],
    param: &str,
) -> Result<Option<Value>, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(expect_str(block.get("text"), &format!("{param}.text"))?),
            Some("tool_use") => {
                let id = expect_str(block.get("id"), &format!("{param}.id"))?;
                let name = expect_str(block.get("name"), &format!("{param}.name"))?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": input.to_string() },
                }));
            }
            // Thinking and server-side tool blocks cannot be expressed in OpenAI dialects.
            _ => {}
        }
    }
    if text.is_empty() && calls.is_empty() {
        return Ok(None);
    }
    let mut msg = json!({
        "role": "assistant",
        "content": if text.is_empty() { Value::Null } else { json!(text) },
    });
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tests::err_param;

    #[test]
    fn anthropic_request_errors() {
        let base = json!({"model": "claude", "max_tokens": 10,
                          "messages": [{"role": "user", "content": "hi"}]});
        let mut req = base.clone();
        req["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
        assert_eq!(
            anthropic_to_openai_chat(&req, "gpt-4o"),
            Err(TranslateError::Unsupported("tools[0].type".into()))
        );
        let mut req = base.clone();
        req["messages"][0]["content"] = json!([{"type": "search_result", "source": "x"}]);
        assert_eq!(
            anthropic_to_openai_chat(&req, "gpt-4o"),
            Err(TranslateError::Unsupported(
                "messages[0].content[0].type".into()
            ))
        );
        let mut req = base;
        req["messages"][0]["role"] = json!("system");
        let (param, _) = err_param(anthropic_to_openai_chat(&req, "gpt-4o"));
        assert_eq!(param, "messages[0].role");
    }

    #[test]
    fn thinking_in_anthropic_request_is_dropped_without_error() {
        let req = json!({"model": "claude", "max_tokens": 10,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "abc"}
            ]},
            {"role": "user", "content": "again"}
        ]});
        let out = anthropic_to_openai_chat(&req, "gpt-4o").unwrap();
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}])
        );
        assert!(out.get("thinking").is_none());
        assert!(out.get("reasoning_effort").is_none());
    }
}
