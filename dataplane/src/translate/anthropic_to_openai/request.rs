//! Request translation Anthropic Messages → OpenAI chat.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::content::{assistant_blocks, user_blocks};
use super::system::{Conversation, system_text};
use super::target::ChatTarget;
use crate::translate::TranslateError;
use crate::translate::common::{expect_array, expect_str, number, positive_int, present};

/// The longest `user` sent; longer `metadata.user_id`s (Claude Code's are about 150
/// characters: `user_<hash>_account_<uuid>_session_<uuid>`) are replaced by their SHA-256 in hex,
/// which is stable per id. OpenAI refuses longer values (the limit other gateways enforce, e.g.
/// Bifrost's `MaxUserFieldLength`).
pub(super) const MAX_USER_LEN: usize = 64;

/// Translates an Anthropic Messages request into an OpenAI chat completions request for `model`
/// on `target`. It takes everything Claude Code (2.x) and the Anthropic SDKs send.
///
/// - `system` (a string or text blocks) and the `role: "system"` entries leading `messages` →
///   one leading system message; later system entries stay at their position, as system
///   messages where the target takes them and else folded into the neighbouring user or tool
///   message (see `system.rs` for why and how). Claude Code's `x-anthropic-billing-header`
///   text is removed; `cache_control` markers are dropped everywhere.
/// - User text/image blocks → a user message (a string when it is a single text block);
///   base64 images become `data:` URLs; base64 PDF `document` blocks `file` parts (refused for
///   vLLM and Ollama, which have none), text and `content` documents text (and image) parts,
///   URL documents are refused; `search_result` blocks become text (title, source, text).
/// - `tool_result` blocks → `tool` messages in order, before the rest of that user message;
///   block content is flattened to text, `is_error: true` prefixes it with `Error: `, and images
///   and PDFs inside tool results move to the following user message (OpenAI tool messages take
///   text only).
/// - Assistant text → `content` (concatenated), `tool_use` → `tool_calls` (input JSON-encoded).
///   Thinking and redacted thinking are dropped: their signatures mean nothing to the
///   target, and some servers refuse `reasoning_content` in history (DeepSeek's API answers
///   400).
/// - Anthropic server-tool and MCP blocks (`server_tool_use`, `web_search_tool_result`,
///   `web_fetch_tool_result`, `code_execution_tool_result`, `mcp_tool_use`, `mcp_tool_result`,
///   `container_upload`, …) are refused, naming the block: the target can neither run them nor
///   read their results, and dropping them would hide from the model what happened. Unknown
///   block types are invalid, with their path.
/// - `tools` → function tools (`input_schema` → `parameters`; `cache_control` and other
///   Anthropic-only tool fields dropped); `tool_choice` auto → `auto`, any → `required`, tool →
///   function, none → `none`; `disable_parallel_tool_use` → `parallel_tool_calls: false`.
/// - `stop_sequences` → `stop` (OpenAI takes at most 4: more is refused rather than cut, which
///   would let the model run past a stop the client relies on); `max_tokens`, `temperature`,
///   `top_p` as they are; `top_k` (when positive) for targets other than OpenAI (an extension
///   parameter there); `metadata.user_id` → `user` (over 64 characters, as Claude Code's are, replaced by
///   their SHA-256 in hex); `stream: true` →
///   `stream` plus `stream_options.include_usage: true`.
/// - `thinking` (`enabled` with `budget_tokens`) → `reasoning_effort` for vLLM (`low` up to
///   4096 tokens, `medium` up to 16384, `high` above), dropped elsewhere: OpenAI refuses it for
///   models that do not reason, Ollama refuses it for models without thinking.
/// - Dropped: `service_tier`, `container`, `context_management` (server-side context editing:
///   the target sees the whole context instead), and any unknown parameter.
///
/// # Errors
/// [`TranslateError::Unsupported`] for server tools (`tools[i].type` other than `custom`),
/// `mcp_servers`, server-tool blocks, sources the target cannot take and more stop sequences
/// than it accepts; [`TranslateError::Invalid`] for malformed input and unknown block types.
pub fn anthropic_to_openai_chat(
    req: &Value,
    model: &str,
    target: ChatTarget,
) -> Result<Value, TranslateError> {
    let req = req
        .as_object()
        .ok_or_else(|| TranslateError::invalid("", "request body must be a JSON object"))?;
    if present(req, "mcp_servers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(TranslateError::Unsupported("mcp_servers".into()));
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages(req, target)?));
    if let Some(max) = present(req, "max_tokens") {
        out.insert("max_tokens".into(), json!(positive_int(max, "max_tokens")?));
    }
    tools(req, &mut out)?;
    for key in ["temperature", "top_p"] {
        if let Some(v) = present(req, key) {
            number(v, key)?;
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(k) = present(req, "top_k") {
        let k = k
            .as_u64()
            .ok_or_else(|| TranslateError::invalid("top_k", "expected a non-negative integer"))?;
        // 0 restricts nothing, and some vLLM versions refuse it (their "off" is -1).
        if target.takes_top_k() && k > 0 {
            out.insert("top_k".into(), json!(k));
        }
    }
    if let Some(stop) = present(req, "stop_sequences") {
        let seqs = expect_array(stop, "stop_sequences")?;
        for (i, s) in seqs.iter().enumerate() {
            expect_str(Some(s), &format!("stop_sequences[{i}]"))?;
        }
        if let Some(max) = target.max_stop_sequences()
            && seqs.len() > max
        {
            return Err(TranslateError::Unsupported(format!(
                "stop_sequences (more than {max})"
            )));
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
        out.insert("user".into(), json!(bounded_user(user)));
    }
    if let Some(effort) = thinking_effort(req)?
        && target.takes_reasoning_effort()
    {
        out.insert("reasoning_effort".into(), json!(effort));
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

/// `user_id` as sent: itself when short enough, else its SHA-256 in hex.
fn bounded_user(user: &str) -> String {
    if user.len() <= MAX_USER_LEN {
        user.to_owned()
    } else {
        hex::encode(Sha256::digest(user.as_bytes()))
    }
}

/// The `reasoning_effort` for an enabled `thinking` budget.
fn thinking_effort(req: &Map<String, Value>) -> Result<Option<&'static str>, TranslateError> {
    let Some(thinking) = present(req, "thinking") else {
        return Ok(None);
    };
    let ty = expect_str(thinking.get("type"), "thinking.type")?;
    match ty {
        "enabled" => {
            let budget = thinking.get("budget_tokens").unwrap_or(&Value::Null);
            let budget = positive_int(budget, "thinking.budget_tokens")?;
            Ok(Some(match budget {
                ..=4096 => "low",
                4097..=16384 => "medium",
                _ => "high",
            }))
        }
        // `adaptive` lets the model decide: the target's default.
        "disabled" | "adaptive" => Ok(None),
        other => Err(TranslateError::invalid(
            "thinking.type",
            format!("unknown value {other:?}; expected enabled, disabled or adaptive"),
        )),
    }
}

fn messages(req: &Map<String, Value>, target: ChatTarget) -> Result<Vec<Value>, TranslateError> {
    let input = expect_array(
        present(req, "messages").ok_or_else(|| TranslateError::invalid("messages", "required"))?,
        "messages",
    )?;
    let mut system = match present(req, "system") {
        Some(s) => system_text(s, "system")?,
        None => String::new(),
    };
    let mut leading = 0;
    for (i, msg) in input.iter().enumerate() {
        if role_of(i, msg)? != "system" {
            break;
        }
        let text = entry_system_text(msg, i)?;
        if !text.is_empty() {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(&text);
        }
        leading = i + 1;
    }

    let mut conversation = Conversation::new(&system, target.system_anywhere());
    for (i, msg) in input.iter().enumerate().skip(leading) {
        let param = format!("messages[{i}]");
        let role = role_of(i, msg)?;
        let content = msg.get("content").unwrap_or(&Value::Null);
        let content_param = format!("{param}.content");
        match (role, content) {
            ("system", _) => conversation.system(entry_system_text(msg, i)?),
            ("user", Value::String(s)) => {
                conversation.user(Vec::new(), Some(json!({ "role": "user", "content": s })));
            }
            ("assistant", Value::String(s)) => {
                conversation.assistant(json!({ "role": "assistant", "content": s }));
            }
            ("user", Value::Array(blocks)) => {
                let turn = user_blocks(blocks, &content_param, target)?;
                let own = match turn.parts.as_slice() {
                    [] => None,
                    [only] if only["type"] == "text" => {
                        Some(json!({ "role": "user", "content": only["text"] }))
                    }
                    _ => Some(json!({ "role": "user", "content": turn.parts })),
                };
                conversation.user(turn.tool_messages, own);
            }
            ("assistant", Value::Array(blocks)) => {
                if let Some(m) = assistant_blocks(blocks, &content_param)? {
                    conversation.assistant(m);
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
                    format!("unknown role {other:?}; expected user, assistant or system"),
                ));
            }
        }
    }
    Ok(conversation.finish())
}

fn role_of(i: usize, msg: &Value) -> Result<&str, TranslateError> {
    expect_str(msg.get("role"), &format!("messages[{i}].role"))
}

/// The text of a `role: "system"` entry of `messages`.
fn entry_system_text(msg: &Value, i: usize) -> Result<String, TranslateError> {
    let param = format!("messages[{i}].content");
    match msg.get("content") {
        Some(c @ (Value::String(_) | Value::Array(_))) => system_text(c, &param),
        _ => Err(TranslateError::invalid(
            param,
            "expected a string or an array of text blocks",
        )),
    }
}

/// `tools` and `tool_choice`.
fn tools(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let Some(tools) = present(req, "tools") else {
        return Ok(());
    };
    let tools = expect_array(tools, "tools")?;
    let mut converted = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        match tool.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            // Anthropic's built-in tools (`bash_*`, `text_editor_*`, `web_search_*`,
            // `computer_*`, `code_execution_*`, …) run on Anthropic's side or need its
            // trained-in schema.
            Some(ty) => {
                let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
                return Err(TranslateError::Unsupported(format!(
                    "{param}.type (Anthropic built-in tool `{ty}` named {name:?})"
                )));
            }
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
    if converted.is_empty() {
        return Ok(());
    }
    out.insert("tools".into(), Value::Array(converted));
    let Some(choice) = present(req, "tool_choice") else {
        return Ok(());
    };
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
    Ok(())
}

#[cfg(test)]
mod tests;
