//! Where Anthropic system text goes in an OpenAI conversation: the top-level `system` and the
//! `role: "system"` entries Claude Code (2.x, "mid-conversation system") puts inside `messages`.
//!
//! The rules, after vLLM's own Anthropic endpoint (`vllm/entrypoints/anthropic/inline_system.py`,
//! which explains them):
//!
//! - `system` and the system entries that lead `messages` become one leading system message
//!   (every chat template accepts a first system message).
//! - A later system entry is never hoisted to the front: Claude Code adds one on almost every
//!   turn, and changing the head of the prompt would defeat the target's prefix cache. Targets
//!   that take system messages anywhere (OpenAI) get a system message in place; for the others
//!   (many templates — Gemma, older Mistral — reject a system message after the first) its text
//!   is folded into a neighbour: appended to the user or tool message just before it, else held
//!   and put before the next user message's own text, else given a user message of its own
//!   before the next assistant message or at the end.
//! - Nothing is ever placed between an assistant's tool calls and the tool messages answering
//!   them (OpenAI refuses that): a system entry there waits until the tool messages are out.
//! - Claude Code's `x-anthropic-billing-header` text (a per-request attribution hash, not an
//!   instruction) is removed, as vLLM does: it would change the prompt head on every request.

use serde_json::{Value, json};

use crate::translate::TranslateError;
use crate::translate::common::{expect_str, str_field};

/// The prefix of Claude Code's per-request attribution text block.
const BILLING_HEADER: &str = "x-anthropic-billing-header";

/// The text of a `system` value (a string or text blocks, joined with a blank line), without
/// Claude Code's billing header; `cache_control` markers are dropped.
pub(super) fn system_text(v: &Value, param: &str) -> Result<String, TranslateError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) if s.starts_with(BILLING_HEADER) => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.iter().enumerate() {
                let param = format!("{param}[{i}]");
                if str_field(block, "type") != Some("text") {
                    return Err(TranslateError::invalid(
                        format!("{param}.type"),
                        "system content must be text blocks",
                    ));
                }
                let text = expect_str(block.get("text"), &format!("{param}.text"))?;
                if !text.is_empty() && !text.starts_with(BILLING_HEADER) {
                    texts.push(text);
                }
            }
            Ok(texts.join("\n\n"))
        }
        _ => Err(TranslateError::invalid(
            param,
            "expected a string or an array of text blocks",
        )),
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}\n\n{b}"),
    }
}

/// Adds `text` at one end of an OpenAI message's content (a string or parts), merged into the
/// text part at that end (some templates join parts without a separator).
fn add_text(message: &mut Value, text: &str, at_end: bool) {
    let content = message.get_mut("content");
    match content {
        Some(Value::Array(parts)) => {
            let end = if at_end {
                parts.len().checked_sub(1)
            } else {
                (!parts.is_empty()).then_some(0)
            };
            match end.and_then(|i| parts.get_mut(i)) {
                Some(part) if str_field(part, "type") == Some("text") => {
                    let old = str_field(part, "text").unwrap_or("").to_owned();
                    part["text"] = json!(if at_end {
                        join(&old, text)
                    } else {
                        join(text, &old)
                    });
                }
                _ => {
                    let part = json!({ "type": "text", "text": text });
                    if at_end {
                        parts.push(part);
                    } else {
                        parts.insert(0, part);
                    }
                }
            }
        }
        Some(c) => {
            let old = c.as_str().unwrap_or("").to_owned();
            *c = json!(if at_end {
                join(&old, text)
            } else {
                join(text, &old)
            });
        }
        None => message["content"] = json!(text),
    }
}

/// Builds the OpenAI messages of a conversation, placing system text by the rules above.
#[derive(Debug)]
pub(super) struct Conversation {
    messages: Vec<Value>,
    /// Fold system text into neighbours instead of sending system messages after the first.
    fold: bool,
    /// System text waiting for the next user message (fold) or for the tool messages answering
    /// the last assistant's tool calls.
    held: Vec<String>,
    /// The last message is an assistant's with tool calls whose answers are still to come.
    awaiting_results: bool,
}

impl Conversation {
    /// Starts with the leading system message (when `system` is not empty).
    pub(super) fn new(system: &str, system_anywhere: bool) -> Self {
        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(json!({ "role": "system", "content": system }));
        }
        Self {
            messages,
            fold: !system_anywhere,
            held: Vec::new(),
            awaiting_results: false,
        }
    }

    fn last_is_user_or_tool(&self) -> bool {
        self.messages
            .last()
            .and_then(|m| str_field(m, "role"))
            .is_some_and(|r| r == "user" || r == "tool")
    }

    /// A system entry after the first non-system message.
    pub(super) fn system(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        if self.awaiting_results {
            self.held.push(text);
        } else if !self.fold {
            self.messages
                .push(json!({ "role": "system", "content": text }));
        } else if self.held.is_empty()
            && self.last_is_user_or_tool()
            && let Some(last) = self.messages.last_mut()
        {
            add_text(last, &text, true);
        } else {
            self.held.push(text);
        }
    }

    /// Places held system text after the last message (the tool messages of a user turn, or
    /// its own message).
    fn release_after(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let texts = std::mem::take(&mut self.held);
        if !self.fold {
            for t in texts {
                self.messages
                    .push(json!({ "role": "system", "content": t }));
            }
        } else if self.last_is_user_or_tool()
            && let Some(last) = self.messages.last_mut()
        {
            add_text(last, &texts.join("\n\n"), true);
        } else {
            self.messages
                .push(json!({ "role": "user", "content": texts.join("\n\n") }));
        }
    }

    /// A user turn: its tool messages, then its own message (when it has parts or text).
    pub(super) fn user(&mut self, tool_messages: Vec<Value>, own: Option<Value>) {
        let tool_run = self.awaiting_results;
        self.awaiting_results = false;
        self.messages.extend(tool_messages);
        if let Some(mut message) = own {
            if self.fold && !tool_run && !self.held.is_empty() {
                // Text held since the last assistant message goes before the user's own.
                let held = std::mem::take(&mut self.held).join("\n\n");
                add_text(&mut message, &held, false);
            }
            self.messages.push(message);
        }
        self.release_after();
    }

    /// An assistant message.
    pub(super) fn assistant(&mut self, message: Value) {
        // Held text (after a previous assistant message) gets its own message first.
        self.awaiting_results = false;
        self.release_after();
        self.awaiting_results = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        self.messages.push(message);
    }

    /// The messages, with any system text still held at the end.
    pub(super) fn finish(mut self) -> Vec<Value> {
        self.awaiting_results = false;
        self.release_after();
        self.messages
    }
}
