//! Anthropic content blocks → OpenAI message parts, for user, tool and assistant messages.

use serde_json::{Value, json};

use super::target::ChatTarget;
use crate::translate::TranslateError;
use crate::translate::common::{expect_str, str_field};

/// Blocks of Anthropic's server tools (run by Anthropic, their results encrypted or bound to
/// Anthropic's containers) and of its MCP connector: an OpenAI-dialect target can neither run
/// them nor read their results, and dropping them would hide from the model what it did.
const SERVER_BLOCKS: &[&str] = &[
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
];

/// The error for a block that is not translated: a known Anthropic block an OpenAI dialect
/// cannot carry, or an unknown type.
pub(super) fn unsupported_block(ty: &str, param: &str, role: &str) -> TranslateError {
    if SERVER_BLOCKS.contains(&ty) {
        TranslateError::Unsupported(format!("{param} (a `{ty}` block)"))
    } else {
        TranslateError::invalid(
            format!("{param}.type"),
            format!("unknown or misplaced content block type {ty:?} in a {role} message"),
        )
    }
}

/// A user message's own content, and the tool results before it.
#[derive(Debug, Default)]
pub(super) struct UserTurn {
    /// `tool` messages, in order.
    pub(super) tool_messages: Vec<Value>,
    /// Parts of the user message that follows them (may be empty).
    pub(super) parts: Vec<Value>,
}

/// The blocks of a user message.
pub(super) fn user_blocks(
    blocks: &[Value],
    param: &str,
    target: ChatTarget,
) -> Result<UserTurn, TranslateError> {
    let mut turn = UserTurn::default();
    // Images and PDFs inside tool results: OpenAI tool messages take text only, so they follow
    // the tool messages in the user message.
    let mut moved = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}[{j}]");
        let ty = expect_str(block.get("type"), &format!("{param}.type"))?;
        match ty {
            "text" => turn.parts.push(text_part(block, &param)?),
            "image" => turn.parts.push(image_part(block, &param, target)?),
            "document" => turn.parts.extend(document_parts(block, &param, target)?),
            "search_result" => turn.parts.push(search_result_part(block, &param)?),
            "tool_result" => {
                let (message, media) = tool_result(block, &param, target)?;
                turn.tool_messages.push(message);
                moved.extend(media);
            }
            // Thinking never appears in user turns; tolerated as in assistant turns.
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(other, &param, "user")),
        }
    }
    turn.parts.extend(moved);
    Ok(turn)
}

fn text_part(block: &Value, param: &str) -> Result<Value, TranslateError> {
    // `cache_control` and `citations` have no OpenAI equivalent and do not change the text.
    let text = expect_str(block.get("text"), &format!("{param}.text"))?;
    Ok(json!({ "type": "text", "text": text }))
}

fn image_part(block: &Value, param: &str, target: ChatTarget) -> Result<Value, TranslateError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url = match str_field(source, "type") {
        Some("base64") => {
            let media = expect_str(
                source.get("media_type"),
                &format!("{param}.source.media_type"),
            )?;
            let data = expect_str(source.get("data"), &format!("{param}.source.data"))?;
            format!("data:{media};base64,{data}")
        }
        Some("url") if target.takes_image_links() => {
            expect_str(source.get("url"), &format!("{param}.source.url"))?.to_owned()
        }
        // Ollama's OpenAI API reads base64 images only; `file` sources name Anthropic's Files
        // API.
        _ => return Err(TranslateError::Unsupported(format!("{param}.source.type"))),
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A `document` block: a base64 PDF → a `file` part (where the target has them), plain text →
/// a text part, `content` (text and image blocks) → their parts. URL and Files API sources are
/// refused: OpenAI `file` parts take no URL, and a link in the text would hide the document
/// from the model.
fn document_parts(
    block: &Value,
    param: &str,
    target: ChatTarget,
) -> Result<Vec<Value>, TranslateError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let titled = |text: &str| match str_field(block, "title").filter(|t| !t.is_empty()) {
        Some(title) => format!("{title}\n\n{text}"),
        None => text.to_owned(),
    };
    match str_field(source, "type") {
        Some("base64") if target.takes_file_parts() => {
            let media = expect_str(
                source.get("media_type"),
                &format!("{param}.source.media_type"),
            )?;
            let data = expect_str(source.get("data"), &format!("{param}.source.data"))?;
            let filename = str_field(block, "title").unwrap_or("document.pdf");
            Ok(vec![json!({
                "type": "file",
                "file": { "filename": filename, "file_data": format!("data:{media};base64,{data}") },
            })])
        }
        Some("text") => {
            let data = expect_str(source.get("data"), &format!("{param}.source.data"))?;
            Ok(vec![json!({ "type": "text", "text": titled(data) })])
        }
        Some("content") => {
            let inner_param = format!("{param}.source.content");
            let mut parts = Vec::new();
            match source.get("content") {
                Some(Value::String(s)) => parts.push(json!({ "type": "text", "text": titled(s) })),
                Some(Value::Array(inner)) => {
                    for (k, b) in inner.iter().enumerate() {
                        let p = format!("{inner_param}[{k}]");
                        match str_field(b, "type") {
                            Some("text") => parts.push(text_part(b, &p)?),
                            Some("image") => parts.push(image_part(b, &p, target)?),
                            _ => {
                                return Err(TranslateError::invalid(
                                    format!("{p}.type"),
                                    "document content blocks must be text or image",
                                ));
                            }
                        }
                    }
                }
                _ => {
                    return Err(TranslateError::invalid(
                        inner_param,
                        "expected a string or an array of content blocks",
                    ));
                }
            }
            Ok(parts)
        }
        _ => Err(TranslateError::Unsupported(format!("{param}.source.type"))),
    }
}

/// A `search_result` block (a client's own search results, for citations) as text: title,
/// source, then its text blocks.
fn search_result_part(block: &Value, param: &str) -> Result<Value, TranslateError> {
    let source = expect_str(block.get("source"), &format!("{param}.source"))?;
    let title = str_field(block, "title").unwrap_or("");
    let mut text = format!("{title}\n{source}");
    let content = block
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            TranslateError::invalid(
                format!("{param}.content"),
                "expected an array of text blocks",
            )
        })?;
    for (k, b) in content.iter().enumerate() {
        let p = format!("{param}.content[{k}]");
        if str_field(b, "type") != Some("text") {
            return Err(TranslateError::invalid(
                format!("{p}.type"),
                "search result content blocks must be text",
            ));
        }
        text.push_str("\n\n");
        text.push_str(expect_str(b.get("text"), &format!("{p}.text"))?);
    }
    Ok(json!({ "type": "text", "text": text.trim_start() }))
}

/// A `tool_result` block → a `tool` message (text only) and the images and PDFs it held.
///
/// `is_error: true` prefixes the text with `Error: ` (OpenAI tool messages have no error flag;
/// the model must still see that the call failed).
fn tool_result(
    block: &Value,
    param: &str,
    target: ChatTarget,
) -> Result<(Value, Vec<Value>), TranslateError> {
    let id = expect_str(block.get("tool_use_id"), &format!("{param}.tool_use_id"))?;
    let content_param = format!("{param}.content");
    let mut media = Vec::new();
    let mut text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(inner)) => {
            let mut texts: Vec<String> = Vec::new();
            for (k, b) in inner.iter().enumerate() {
                let p = format!("{content_param}[{k}]");
                match str_field(b, "type") {
                    Some("text") => {
                        texts.push(expect_str(b.get("text"), &format!("{p}.text"))?.to_owned())
                    }
                    Some("image") => media.push(image_part(b, &p, target)?),
                    Some("document") => {
                        for part in document_parts(b, &p, target)? {
                            match str_field(&part, "type") {
                                Some("text") => {
                                    texts.push(str_field(&part, "text").unwrap_or("").to_owned())
                                }
                                _ => media.push(part),
                            }
                        }
                    }
                    Some("search_result") => {
                        let part = search_result_part(b, &p)?;
                        texts.push(str_field(&part, "text").unwrap_or("").to_owned());
                    }
                    Some(other) => return Err(unsupported_block(other, &p, "tool_result")),
                    None => {
                        return Err(TranslateError::invalid(format!("{p}.type"), "required"));
                    }
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
    Ok((
        json!({ "role": "tool", "tool_call_id": id, "content": text }),
        media,
    ))
}

/// The blocks of an assistant message → one assistant message (`None` when nothing is left).
///
/// Text blocks are concatenated; `tool_use` → `tool_calls` (input JSON-encoded). `thinking` and
/// `redacted_thinking` are dropped: their signatures mean nothing to an OpenAI-dialect model, and
/// sending the text back as `reasoning_content` is refused by some servers (DeepSeek's API
/// answers 400) while templates such as Qwen3's drop past reasoning anyway.
pub(super) fn assistant_blocks(
    blocks: &[Value],
    param: &str,
) -> Result<Option<Value>, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}[{j}]");
        let ty = expect_str(block.get("type"), &format!("{param}.type"))?;
        match ty {
            "text" => text.push_str(expect_str(block.get("text"), &format!("{param}.text"))?),
            "tool_use" => {
                let id = expect_str(block.get("id"), &format!("{param}.id"))?;
                let name = expect_str(block.get("name"), &format!("{param}.name"))?;
                let input = match block.get("input") {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(v @ Value::Object(_)) => v.to_string(),
                    Some(_) => {
                        return Err(TranslateError::invalid(
                            format!("{param}.input"),
                            "expected an object",
                        ));
                    }
                };
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": input },
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(other, &param, "assistant")),
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
