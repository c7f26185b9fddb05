//! Chat histories inside a chain run: OpenAI-format messages (`role`, `content`, `tool_calls`,
//! `tool_call_id` kept as sent), bounded in length, with a token estimate for `tokenLimit`.

use serde_json::{Value as Json, json};

use super::TaskError;

/// Most messages a chat history may hold inside a run.
pub const MAX_MESSAGES: usize = 1024;

/// A chat history.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatHistory {
    /// Messages, oldest first, in OpenAI's format.
    pub messages: Vec<Json>,
}

impl ChatHistory {
    /// A history from messages, refusing one longer than [`MAX_MESSAGES`].
    pub fn new(messages: Vec<Json>) -> Result<Self, TaskError> {
        let h = ChatHistory { messages };
        h.check()?;
        Ok(h)
    }

    /// One user message.
    pub fn user(text: &str) -> Self {
        ChatHistory {
            messages: vec![json!({"role": "user", "content": text})],
        }
    }

    /// Errors when the history grew past [`MAX_MESSAGES`].
    pub fn check(&self) -> Result<(), TaskError> {
        if self.messages.len() > MAX_MESSAGES {
            return Err(TaskError::Input(format!(
                "the chat history has {} messages, more than the {MAX_MESSAGES} a run allows",
                self.messages.len()
            )));
        }
        Ok(())
    }

    /// Appends a message with a role and text.
    pub fn push(&mut self, role: &str, text: &str) -> Result<(), TaskError> {
        self.messages.push(json!({"role": role, "content": text}));
        self.check()
    }

    /// Text of the last message (empty when there is none).
    pub fn last_text(&self) -> String {
        super::template::last_message_text(&self.messages)
    }

    /// Adds `instruction` as the first system message unless a system message with that exact
    /// text is already there.
    pub fn ensure_system(&mut self, instruction: &str) {
        let present = self.messages.iter().any(|m| {
            m.get("role").and_then(Json::as_str) == Some("system")
                && crate::classify::message_text(m) == instruction
        });
        if !present {
            self.messages
                .insert(0, json!({"role": "system", "content": instruction}));
        }
    }

    /// Estimated tokens of the history (about four bytes a token, plus a little per message).
    pub fn estimate_tokens(&self) -> u64 {
        self.messages.iter().map(message_tokens).sum()
    }

    /// Drops the oldest messages (never system messages nor the last message) until the
    /// estimate fits `limit` (0: no limit). A tool result whose call was dropped goes too.
    /// Errors when even the kept messages do not fit.
    pub fn trim_to(&mut self, limit: u32) -> Result<usize, TaskError> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = u64::from(limit);
        let mut dropped = 0;
        while self.estimate_tokens() > limit {
            let last = self.messages.len().saturating_sub(1);
            let Some(i) = self
                .messages
                .iter()
                .take(last)
                .position(|m| m.get("role").and_then(Json::as_str) != Some("system"))
            else {
                break;
            };
            self.messages.remove(i);
            dropped += 1;
            // Orphaned tool results right after the dropped call.
            while i < self.messages.len().saturating_sub(1)
                && self.messages[i].get("role").and_then(Json::as_str) == Some("tool")
            {
                self.messages.remove(i);
                dropped += 1;
            }
        }
        let needed = self.estimate_tokens();
        if needed > limit {
            return Err(TaskError::Input(format!(
                "the chat history needs about {needed} tokens even after trimming, more than tokenLimit {limit}"
            )));
        }
        Ok(dropped)
    }
}

fn message_tokens(m: &Json) -> u64 {
    let text = crate::classify::message_text(m).len();
    let calls = m.get("tool_calls").map_or(0, |c| c.to_string().len());
    4 + (text + calls).div_ceil(4) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> String {
        "word ".repeat(n)
    }

    #[test]
    fn trims_oldest_keeping_system_and_last() {
        let mut h = ChatHistory::new(vec![
            json!({"role": "system", "content": "sys"}),
            json!({"role": "user", "content": words(100)}),
            json!({"role": "assistant", "content": words(100)}),
            json!({"role": "user", "content": "last question"}),
        ])
        .unwrap();
        let before = h.estimate_tokens();
        assert!(before > 200);
        let dropped = h.trim_to(150).unwrap();
        assert_eq!(dropped, 1);
        assert_eq!(h.messages.len(), 3);
        assert_eq!(h.messages[0]["role"], "system");
        assert_eq!(h.last_text(), "last question");
        assert!(h.trim_to(0).is_ok(), "0 is no limit");
        h.trim_to(20).unwrap();
        assert_eq!(h.messages.len(), 2);
        let e = h.trim_to(5).unwrap_err();
        assert!(e.to_string().contains("tokenLimit 5"), "{e}");
    }

    #[test]
    fn trimming_a_tool_call_drops_its_results() {
        let mut h = ChatHistory::new(vec![
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": words(50)}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "result"}),
            json!({"role": "user", "content": "next"}),
        ])
        .unwrap();
        h.trim_to(20).unwrap();
        assert_eq!(h.messages.len(), 1);
        assert_eq!(h.last_text(), "next");
    }

    #[test]
    fn bounded_length_and_system_instruction() {
        let too_many = vec![json!({"role": "user", "content": "x"}); MAX_MESSAGES + 1];
        assert!(ChatHistory::new(too_many).is_err());
        let mut h = ChatHistory::user("hi");
        h.ensure_system("be brief");
        h.ensure_system("be brief");
        assert_eq!(h.messages.len(), 2);
        assert_eq!(
            h.messages[0],
            json!({"role": "system", "content": "be brief"})
        );
    }
}
