//! Streaming translation Anthropic Messages events → OpenAI chunks, one upstream event at a time
//! (nothing is buffered beyond the block being streamed).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::response::{anthropic_error_to_openai, stop_reason_to_finish_reason};
use crate::sse::SseEvent;
use crate::translate::TranslateError;
use crate::translate::common::{parse_data, str_field, unix_now};
use crate::usage::Usage;

#[derive(Debug)]
enum AnthropicBlock {
    Text,
    /// The thinking text so far, repeated in the `thinking_blocks` delta that carries the
    /// signature so the client gets a complete block to send back.
    Thinking(String),
    Tool(usize),
    Other,
}

/// Translates an Anthropic Messages event stream into OpenAI `chat.completion.chunk` events.
///
/// Output, in order: a role chunk (`delta: {"role":"assistant","content":""}`); per upstream
/// delta a content, `reasoning_content` or `tool_calls` chunk (a tool call starts with its
/// `index`, `id`, `name` and empty `arguments`; `input_json_delta` fragments follow as
/// `arguments`); at a thinking block's `signature_delta` a
/// `delta.thinking_blocks: [{"type":"thinking","thinking":<whole block text>,"signature"}]`
/// chunk, and redacted thinking as `{"type":"redacted_thinking","data"}`; a finish chunk at
/// `message_delta`; at `message_stop` a usage chunk with empty `choices` (only when
/// `include_usage`) and `[DONE]`. An upstream `error` event becomes an OpenAI error frame,
/// the last frame. `ping` and unknown events are ignored, as is everything after the end.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    model: String,
    include_usage: bool,
    id: String,
    created: i64,
    role_sent: bool,
    blocks: BTreeMap<u64, AnthropicBlock>,
    usage: Usage,
    finish_reason: Option<String>,
    tool_calls: Vec<(String, String)>,
    terminal: bool,
}

impl AnthropicToOpenAiStream {
    /// `model` is the name reported to the client (the upstream's when empty); `include_usage`
    /// mirrors the client's `stream_options.include_usage`.
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            model: model.to_owned(),
            include_usage,
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created: unix_now(),
            role_sent: false,
            blocks: BTreeMap::new(),
            usage: Usage::default(),
            finish_reason: None,
            tool_calls: Vec::new(),
            terminal: false,
        }
    }

    /// Usage so far (complete once [`Self::saw_terminal`]).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The OpenAI `finish_reason` sent to the client, once known.
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    /// `(id, name)` of every tool call the model started, in order.
    pub fn tool_calls(&self) -> Vec<(String, String)> {
        self.tool_calls.clone()
    }

    /// Whether `message_stop` or an `error` event was seen; when the upstream ends without
    /// either, the response was truncated.
    pub fn saw_terminal(&self) -> bool {
        self.terminal
    }

    fn chunk(&self, delta: Value, finish_reason: Value) -> SseEvent {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        SseEvent::data(chunk.to_string())
    }

    fn delta(&mut self, out: &mut Vec<SseEvent>, delta: Value) {
        self.ensure_role(out);
        out.push(self.chunk(delta, Value::Null));
    }

    fn ensure_role(&mut self, out: &mut Vec<SseEvent>) {
        if !self.role_sent {
            self.role_sent = true;
            out.push(self.chunk(json!({ "role": "assistant", "content": "" }), Value::Null));
        }
    }

    /// Translates one upstream event.
    ///
    /// # Errors
    /// [`TranslateError::Invalid`] with param [`crate::translate::UPSTREAM_STREAM_PARAM`] when the event data is not JSON.
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<SseEvent>, TranslateError> {
        let mut out = Vec::new();
        if self.terminal {
            return Ok(out);
        }
        let Some(v) = parse_data(ev)? else {
            return Ok(out);
        };
        let ty = str_field(&v, "type").unwrap_or_else(|| ev.event_name());
        match ty {
            "message_start" => {
                let message = v.get("message").unwrap_or(&Value::Null);
                if let Some(id) = str_field(message, "id") {
                    self.id = format!("chatcmpl-{id}");
                }
                if self.model.is_empty() {
                    self.model = str_field(message, "model").unwrap_or("").to_owned();
                }
                if let Some(u) = message.get("usage").and_then(Usage::from_anthropic) {
                    self.usage.merge(u);
                }
                self.ensure_role(&mut out);
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match str_field(block, "type") {
                    Some("text") => {
                        self.blocks.insert(index, AnthropicBlock::Text);
                        let text = str_field(block, "text").unwrap_or("");
                        if text.is_empty() {
                            self.ensure_role(&mut out);
                        } else {
                            self.delta(&mut out, json!({ "content": text }));
                        }
                    }
                    Some("thinking") => {
                        let text = str_field(block, "thinking").unwrap_or("").to_owned();
                        if text.is_empty() {
                            self.ensure_role(&mut out);
                        } else {
                            self.delta(&mut out, json!({ "reasoning_content": text }));
                        }
                        self.blocks.insert(index, AnthropicBlock::Thinking(text));
                    }
                    Some("redacted_thinking") => {
                        self.blocks.insert(index, AnthropicBlock::Other);
                        let data = str_field(block, "data").unwrap_or("");
                        self.delta(
                            &mut out,
                            json!({ "thinking_blocks": [
                                { "type": "redacted_thinking", "data": data }
                            ]}),
                        );
                    }
                    Some("tool_use") => {
                        let id = str_field(block, "id").unwrap_or("").to_owned();
                        let name = str_field(block, "name").unwrap_or("").to_owned();
                        let tool_index = self.tool_calls.len();
                        self.blocks.insert(index, AnthropicBlock::Tool(tool_index));
                        self.delta(
                            &mut out,
                            json!({ "tool_calls": [{
                                "index": tool_index,
                                "id": id,
                                "type": "function",
                                "function": { "name": name, "arguments": "" },
                            }]}),
                        );
                        self.tool_calls.push((id, name));
                    }
                    _ => {
                        self.blocks.insert(index, AnthropicBlock::Other);
                    }
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match str_field(delta, "type") {
                    Some("text_delta") => {
                        let text = str_field(delta, "text").unwrap_or("");
                        if !text.is_empty() {
                            self.delta(&mut out, json!({ "content": text }));
                        }
                    }
                    Some("input_json_delta") => {
                        let partial = str_field(delta, "partial_json").unwrap_or("");
                        if let Some(AnthropicBlock::Tool(tool_index)) = self.blocks.get(&index) {
                            let tool_index = *tool_index;
                            if !partial.is_empty() {
                                self.delta(
                                    &mut out,
                                    json!({ "tool_calls": [{
                                        "index": tool_index,
                                        "function": { "arguments": partial },
                                    }]}),
                                );
                            }
                        }
                    }
                    Some("thinking_delta") => {
                        let text = str_field(delta, "thinking").unwrap_or("");
                        if let Some(AnthropicBlock::Thinking(acc)) = self.blocks.get_mut(&index) {
                            acc.push_str(text);
                        }
                        if !text.is_empty() {
                            self.delta(&mut out, json!({ "reasoning_content": text }));
                        }
                    }
                    Some("signature_delta") => {
                        let signature = str_field(delta, "signature").unwrap_or("");
                        let thinking = match self.blocks.get(&index) {
                            Some(AnthropicBlock::Thinking(acc)) => acc.clone(),
                            _ => String::new(),
                        };
                        self.delta(
                            &mut out,
                            json!({ "thinking_blocks": [{
                                "type": "thinking",
                                "thinking": thinking,
                                "signature": signature,
                            }]}),
                        );
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                // Free the accumulated thinking text; OpenAI has no block boundaries.
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(block) = self.blocks.get_mut(&index)
                    && matches!(block, AnthropicBlock::Thinking(_))
                {
                    *block = AnthropicBlock::Other;
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage").and_then(Usage::from_anthropic) {
                    self.usage.merge(u);
                }
                if let Some(reason) = v.get("delta").and_then(|d| str_field(d, "stop_reason")) {
                    let finish = stop_reason_to_finish_reason(reason);
                    self.finish_reason = Some(finish.to_owned());
                    self.ensure_role(&mut out);
                    out.push(self.chunk(json!({}), json!(finish)));
                }
            }
            "message_stop" => {
                self.terminal = true;
                if self.include_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": self.usage.to_openai(),
                    });
                    out.push(SseEvent::data(chunk.to_string()));
                }
                out.push(SseEvent::data("[DONE]"));
            }
            "error" => {
                // The error ends the stream: nothing follows it (a `[DONE]` would let clients
                // read the stream as a success).
                self.terminal = true;
                out.push(SseEvent::data(anthropic_error_to_openai(&v).to_string()));
            }
            _ => {}
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tests::run;

    const ANTHROPIC_STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":2048,\"output_tokens\":2}}}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\
\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Caf\u{e9} \u{1f680} check.\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me look.\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"Paris\\\"}\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":2}\n\
\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\
\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\
\n";

    fn a2o(input: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, AnthropicToOpenAiStream) {
        let mut t = AnthropicToOpenAiStream::new("claude-sonnet-4-5", true);
        t.created = 0;
        let out = run(input, cuts, |ev| t.on_event(ev).unwrap());
        (out, t)
    }

    #[test]
    fn anthropic_to_openai_is_independent_of_chunk_boundaries() {
        let input = ANTHROPIC_STREAM.as_bytes();
        let (whole, t) = a2o(input, &[]);
        for cut in 1..input.len() {
            assert_eq!(a2o(input, &[cut]).0, whole, "split at byte {cut}");
        }
        // Every byte its own chunk.
        let all: Vec<usize> = (1..input.len()).collect();
        assert_eq!(a2o(input, &all).0, whole);

        assert!(t.saw_terminal());
        assert_eq!(t.finish_reason(), Some("tool_calls"));
        assert_eq!(
            t.tool_calls(),
            vec![(
                "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
                "get_weather".to_owned()
            )]
        );
        assert_eq!(
            t.usage(),
            Usage {
                input_tokens: 472,
                output_tokens: 89,
                cache_read_input_tokens: 2048,
                cache_write_input_tokens: 0
            }
        );
        let last_json: Value = serde_json::from_str(&whole[whole.len() - 2].data).unwrap();
        assert_eq!(last_json["usage"]["prompt_tokens"], json!(2520));
        assert!(whole.last().unwrap().is_done());
        let sig: Value = serde_json::from_str(&whole[2].data).unwrap();
        assert_eq!(
            sig["choices"][0]["delta"]["thinking_blocks"][0]["thinking"],
            json!("Café 🚀 check.")
        );
    }

    #[test]
    fn missing_message_start_still_sends_role_first() {
        let mut t = AnthropicToOpenAiStream::new("m", false);
        let ev = SseEvent::named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "x"}})
            .to_string(),
        );
        let out = t.on_event(&ev).unwrap();
        assert_eq!(out.len(), 2);
        let first: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert!(first.get("usage").is_none());
    }
}
