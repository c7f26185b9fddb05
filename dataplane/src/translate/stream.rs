//! Streaming translation, one upstream event at a time (nothing is buffered beyond the block
//! being streamed).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::response::{
    anthropic_error_to_openai, finish_reason_to_stop_reason, new_tool_use_id,
    openai_error_to_anthropic, stop_reason_to_finish_reason,
};
use super::{TranslateError, unix_now};
use crate::sse::SseEvent;
use crate::usage::Usage;

fn parse_data(ev: &SseEvent) -> Result<Option<Value>, TranslateError> {
    let data = ev.data.trim();
    if data.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(data).map(Some).map_err(|e| {
        TranslateError::upstream(format!("`{}` event data is not JSON: {e}", ev.event_name()))
    })
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

// ---------------------------------------------------------------------------------------------
// Anthropic stream → OpenAI chunks
// ---------------------------------------------------------------------------------------------

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
    /// [`TranslateError::Invalid`] with param [`super::UPSTREAM_STREAM_PARAM`] when the event data is not JSON.
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

// ---------------------------------------------------------------------------------------------
// OpenAI chunks → Anthropic stream
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    Thinking,
    /// Keyed by the OpenAI tool-call index.
    Tool(u64),
}

#[derive(Debug)]
struct OpenBlock {
    index: u64,
    kind: OpenKind,
}

/// Translates an OpenAI chat completion chunk stream into Anthropic Messages events.
///
/// Output, in the order Anthropic clients expect: `message_start` (with zero usage: OpenAI
/// reports usage only at the end), then per block `content_block_start`,
/// `content_block_delta`s and `content_block_stop` — a block is closed as soon as the deltas
/// switch kind (reasoning → thinking block with an empty signature, content → text block, each
/// new tool call → `tool_use` block with `input_json_delta`s) — then `message_delta` with the
/// stop reason and the full usage, and `message_stop`. Because the usage chunk comes after the
/// `finish_reason` chunk, `message_delta` is held until usage or `[DONE]` arrives (or
/// [`Self::finish`] is called). An OpenAI error frame becomes an Anthropic `error` event.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    model: String,
    started: bool,
    next_index: u64,
    open: Option<OpenBlock>,
    /// OpenAI tool-call index → whether its block was already closed.
    tools: BTreeMap<u64, bool>,
    last_tool_key: Option<u64>,
    tool_calls: Vec<(String, String)>,
    tool_ids: BTreeMap<String, u64>,
    stop_reason: Option<String>,
    refusal: bool,
    usage: Usage,
    usage_seen: bool,
    terminal: bool,
}

impl OpenAiToAnthropicStream {
    /// `model` is the name reported to the client (the upstream's when empty).
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            next_index: 0,
            open: None,
            tools: BTreeMap::new(),
            last_tool_key: None,
            tool_calls: Vec::new(),
            tool_ids: BTreeMap::new(),
            stop_reason: None,
            refusal: false,
            usage: Usage::default(),
            usage_seen: false,
            terminal: false,
        }
    }

    /// Usage so far (complete once [`Self::saw_terminal`]).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The Anthropic `stop_reason` sent (or about to be sent) to the client, once known.
    pub fn finish_reason(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }

    /// `(id, name)` of every tool call the model started, in order.
    pub fn tool_calls(&self) -> Vec<(String, String)> {
        self.tool_calls.clone()
    }

    /// Whether `message_stop` or an `error` event was sent; when the upstream ends without
    /// either, the response was truncated.
    pub fn saw_terminal(&self) -> bool {
        self.terminal
    }

    fn emit(out: &mut Vec<SseEvent>, event: Value) {
        let name = str_field(&event, "type").unwrap_or("message").to_owned();
        out.push(SseEvent::named(name, event.to_string()));
    }

    fn start(&mut self, out: &mut Vec<SseEvent>, chunk: &Value) {
        if self.started {
            return;
        }
        self.started = true;
        if self.model.is_empty() {
            self.model = str_field(chunk, "model").unwrap_or("").to_owned();
        }
        let id = match str_field(chunk, "id") {
            Some(id) if !id.is_empty() => format!("msg_{id}"),
            _ => format!("msg_{}", uuid::Uuid::new_v4().simple()),
        };
        Self::emit(
            out,
            json!({
                "type": "message_start",
                "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": self.usage.to_anthropic(),
                },
            }),
        );
    }

    fn close(&mut self, out: &mut Vec<SseEvent>) {
        if let Some(block) = self.open.take() {
            if let OpenKind::Tool(key) = block.kind {
                self.tools.insert(key, true);
            }
            Self::emit(
                out,
                json!({ "type": "content_block_stop", "index": block.index }),
            );
        }
    }

    /// Opens a block of `kind` unless it is the open one; returns its index.
    fn ensure(&mut self, out: &mut Vec<SseEvent>, kind: OpenKind, content_block: Value) -> u64 {
        if let Some(open) = &self.open
            && open.kind == kind
        {
            return open.index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(OpenBlock { index, kind });
        Self::emit(
            out,
            json!({ "type": "content_block_start", "index": index, "content_block": content_block }),
        );
        index
    }

    fn block_delta(out: &mut Vec<SseEvent>, index: u64, delta: Value) {
        Self::emit(
            out,
            json!({ "type": "content_block_delta", "index": index, "delta": delta }),
        );
    }

    fn thinking(&mut self, out: &mut Vec<SseEvent>, text: &str) {
        let index = self.ensure(
            out,
            OpenKind::Thinking,
            json!({ "type": "thinking", "thinking": "", "signature": "" }),
        );
        if !text.is_empty() {
            Self::block_delta(
                out,
                index,
                json!({ "type": "thinking_delta", "thinking": text }),
            );
        }
    }

    fn text(&mut self, out: &mut Vec<SseEvent>, text: &str) {
        let index = self.ensure(out, OpenKind::Text, json!({ "type": "text", "text": "" }));
        Self::block_delta(out, index, json!({ "type": "text_delta", "text": text }));
    }

    /// `thinking_blocks` deltas (this gateway's extension, also sent by LiteLLM) carry
    /// signatures and redacted thinking; they let a signed block survive an OpenAI hop.
    fn thinking_blocks(&mut self, out: &mut Vec<SseEvent>, blocks: &[Value]) {
        for b in blocks {
            match str_field(b, "type") {
                Some("thinking") => {
                    let signature = str_field(b, "signature").unwrap_or("");
                    let open_thinking = matches!(
                        self.open,
                        Some(OpenBlock {
                            kind: OpenKind::Thinking,
                            ..
                        })
                    );
                    if !open_thinking {
                        self.thinking(out, str_field(b, "thinking").unwrap_or(""));
                    }
                    if !signature.is_empty() {
                        if let Some(open) = &self.open {
                            Self::block_delta(
                                out,
                                open.index,
                                json!({ "type": "signature_delta", "signature": signature }),
                            );
                        }
                        // A signature ends its block.
                        self.close(out);
                    }
                }
                Some("redacted_thinking") => {
                    self.close(out);
                    let index = self.next_index;
                    self.next_index += 1;
                    let data = str_field(b, "data").unwrap_or("");
                    Self::emit(
                        out,
                        json!({
                            "type": "content_block_start",
                            "index": index,
                            "content_block": { "type": "redacted_thinking", "data": data },
                        }),
                    );
                    Self::emit(out, json!({ "type": "content_block_stop", "index": index }));
                }
                _ => {}
            }
        }
    }

    fn tool_call(&mut self, out: &mut Vec<SseEvent>, call: &Value) -> Result<(), TranslateError> {
        let id = str_field(call, "id").filter(|s| !s.is_empty());
        let key = match call.get("index").and_then(Value::as_u64) {
            Some(i) => i,
            // Some servers omit the index: tell calls apart by id.
            None => match id {
                Some(id) => match self.tool_ids.get(id) {
                    Some(k) => *k,
                    None => self.tools.keys().next_back().map_or(0, |k| k + 1),
                },
                None => self.last_tool_key.unwrap_or(0),
            },
        };
        self.last_tool_key = Some(key);
        let function = call.get("function").unwrap_or(&Value::Null);
        let args = str_field(function, "arguments").unwrap_or("");
        match self.tools.get(&key) {
            None => {
                let id = id.map(str::to_owned).unwrap_or_else(new_tool_use_id);
                let name = str_field(function, "name").unwrap_or("").to_owned();
                self.tools.insert(key, false);
                self.tool_ids.insert(id.clone(), key);
                self.close(out);
                self.ensure(
                    out,
                    OpenKind::Tool(key),
                    json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
                );
                self.tool_calls.push((id, name));
            }
            Some(true) if !args.is_empty() => {
                return Err(TranslateError::upstream(format!(
                    "arguments for tool call {key} arrived after its block was closed"
                )));
            }
            Some(_) => {}
        }
        if !args.is_empty()
            && let Some(open) = &self.open
            && open.kind == OpenKind::Tool(key)
        {
            Self::block_delta(
                out,
                open.index,
                json!({ "type": "input_json_delta", "partial_json": args }),
            );
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<SseEvent>) {
        self.close(out);
        let stop_reason = self
            .stop_reason
            .get_or_insert_with(|| "end_turn".to_owned())
            .clone();
        Self::emit(
            out,
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason, "stop_sequence": null },
                "usage": self.usage.to_anthropic(),
            }),
        );
        Self::emit(out, json!({ "type": "message_stop" }));
        self.terminal = true;
    }

    /// Translates one upstream event.
    ///
    /// # Errors
    /// [`TranslateError::Invalid`] with param [`super::UPSTREAM_STREAM_PARAM`] when the event data is not JSON, or when a tool call's
    /// arguments continue after another block started (Anthropic blocks cannot be reopened).
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<SseEvent>, TranslateError> {
        let mut out = Vec::new();
        if self.terminal {
            return Ok(out);
        }
        if ev.is_done() {
            let start = json!({});
            self.start(&mut out, &start);
            self.end(&mut out);
            return Ok(out);
        }
        let Some(chunk) = parse_data(ev)? else {
            return Ok(out);
        };
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            self.terminal = true;
            Self::emit(&mut out, openai_error_to_anthropic(&chunk));
            return Ok(out);
        }
        let usage = chunk.get("usage").and_then(Usage::from_openai);
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|ch| ch.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        if choice.is_none() && usage.is_none() {
            // E.g. Azure's leading `prompt_filter_results` chunk (empty id and choices).
            return Ok(out);
        }
        // Some servers report usage on every chunk; take it before message_start.
        if let Some(u) = usage {
            self.usage.merge(u);
            self.usage_seen = true;
        }
        self.start(&mut out, &chunk);
        if let Some(choice) = choice {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            let reasoning = str_field(delta, "reasoning_content")
                .or_else(|| str_field(delta, "reasoning"))
                .unwrap_or("");
            if !reasoning.is_empty() {
                self.thinking(&mut out, reasoning);
            }
            if let Some(blocks) = delta.get("thinking_blocks").and_then(Value::as_array) {
                self.thinking_blocks(&mut out, blocks);
            }
            if let Some(text) = str_field(delta, "content").filter(|t| !t.is_empty()) {
                self.text(&mut out, text);
            }
            if let Some(text) = str_field(delta, "refusal").filter(|t| !t.is_empty()) {
                self.refusal = true;
                self.text(&mut out, text);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.tool_call(&mut out, call)?;
                }
            }
            if let Some(reason) = str_field(choice, "finish_reason") {
                self.close(&mut out);
                let stop = if self.refusal {
                    "refusal"
                } else {
                    finish_reason_to_stop_reason(reason)
                };
                self.stop_reason = Some(stop.to_owned());
            }
        }
        if self.stop_reason.is_some() && self.usage_seen {
            self.end(&mut out);
        }
        Ok(out)
    }

    /// Call when the upstream body ended: sends the held `message_delta` and `message_stop` if
    /// the finish reason arrived but neither usage nor `[DONE]` did. Returns nothing when the
    /// stream was truncated before a finish reason ([`Self::saw_terminal`] stays false).
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.terminal && self.stop_reason.is_some() {
            self.end(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;

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

    const OPENAI_STREAM: &str = "data: {\"id\":\"chatcmpl-BvHqH3ZbTdEf2g1h\",\"object\":\"chat.completion.chunk\",\"created\":1753000000,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\
\n\
data: {\"id\":\"chatcmpl-BvHqH3ZbTdEf2g1h\",\"object\":\"chat.completion.chunk\",\"created\":1753000000,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Caf\u{e9} \u{1f680}\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\
\n\
data: {\"id\":\"chatcmpl-BvHqH3ZbTdEf2g1h\",\"object\":\"chat.completion.chunk\",\"created\":1753000000,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_Fg7aMbVbFQ0cQpR1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\
\n\
data: {\"id\":\"chatcmpl-BvHqH3ZbTdEf2g1h\",\"object\":\"chat.completion.chunk\",\"created\":1753000000,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"location\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\
\n\
data: {\"id\":\"chatcmpl-BvHqH3ZbTdEf2g1h\",\"object\":\"chat.completion.chunk\",\"created\":1753000000,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\
\n\
data: {\"id\":\"chatcmpl-BvHqH3ZbTdEf2g1h\",\"object\":\"chat.completion.chunk\",\"created\":1753000000,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":40,\"total_tokens\":1240,\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0}}}\n\
\n\
data: [DONE]\n\
\n";

    /// Runs `input` through a parser and a translator, split into the given chunks.
    fn run<F>(input: &[u8], cuts: &[usize], mut translate: F) -> Vec<SseEvent>
    where
        F: FnMut(&SseEvent) -> Vec<SseEvent>,
    {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            for ev in parser.push(&input[start..cut]).unwrap() {
                out.extend(translate(&ev));
            }
            start = cut;
        }
        if let Some(ev) = parser.finish() {
            out.extend(translate(&ev));
        }
        out
    }

    fn a2o(input: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, AnthropicToOpenAiStream) {
        let mut t = AnthropicToOpenAiStream::new("claude-sonnet-4-5", true);
        t.created = 0;
        let out = run(input, cuts, |ev| t.on_event(ev).unwrap());
        (out, t)
    }

    fn o2a(input: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, OpenAiToAnthropicStream) {
        let mut t = OpenAiToAnthropicStream::new("gpt-4.1");
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
    fn openai_to_anthropic_is_independent_of_chunk_boundaries() {
        let input = OPENAI_STREAM.as_bytes();
        let (whole, t) = o2a(input, &[]);
        for cut in 1..input.len() {
            assert_eq!(o2a(input, &[cut]).0, whole, "split at byte {cut}");
        }
        let all: Vec<usize> = (1..input.len()).collect();
        assert_eq!(o2a(input, &all).0, whole);

        let names: Vec<&str> = whole.iter().map(|e| e.event_name()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert!(t.saw_terminal());
        assert_eq!(t.finish_reason(), Some("tool_use"));
        assert_eq!(t.usage().input_tokens, 176);
        assert_eq!(t.usage().cache_read_input_tokens, 1024);
    }

    #[test]
    fn message_delta_waits_for_usage_or_done() {
        let mut t = OpenAiToAnthropicStream::new("m");
        let first = json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "hi"},
                           "finish_reason": null}]});
        t.on_event(&SseEvent::data(first.to_string())).unwrap();
        let fin = json!({"id": "c1", "choices": [{"index": 0, "delta": {},
                         "finish_reason": "length"}]});
        let out = t.on_event(&SseEvent::data(fin.to_string())).unwrap();
        assert_eq!(out.len(), 1, "only content_block_stop: {out:?}");
        assert!(!t.saw_terminal());
        let out = t.on_event(&SseEvent::data("[DONE]")).unwrap();
        let names: Vec<&str> = out.iter().map(|e| e.event_name()).collect();
        assert_eq!(names, ["message_delta", "message_stop"]);
        assert_eq!(t.finish_reason(), Some("max_tokens"));
        assert!(t.saw_terminal());
        // After the end, nothing.
        assert!(t.on_event(&SseEvent::data("[DONE]")).unwrap().is_empty());

        // Upstream closes after the finish reason without usage or [DONE].
        let mut t = OpenAiToAnthropicStream::new("m");
        t.on_event(&SseEvent::data(fin.to_string())).unwrap();
        let out = t.finish();
        assert_eq!(out.len(), 2);
        assert!(t.saw_terminal());
        // Truncated before a finish reason: nothing, and no terminal.
        let mut t = OpenAiToAnthropicStream::new("m");
        t.on_event(&SseEvent::data(first.to_string())).unwrap();
        assert!(t.finish().is_empty());
        assert!(!t.saw_terminal());
    }

    #[test]
    fn malformed_data_and_late_tool_arguments_are_errors() {
        let mut t = AnthropicToOpenAiStream::new("m", false);
        assert!(matches!(
            t.on_event(&SseEvent::named("content_block_delta", "{not json")),
            Err(ref e) if e.is_upstream()
        ));
        let mut t = OpenAiToAnthropicStream::new("m");
        let call = |i: u64, id: Option<&str>, args: &str| {
            let mut c = json!({"index": i, "function": {"arguments": args}});
            if let Some(id) = id {
                c["id"] = json!(id);
                c["function"]["name"] = json!("f");
            }
            SseEvent::data(
                json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [c]}}]})
                    .to_string(),
            )
        };
        t.on_event(&call(0, Some("call_a"), "{}")).unwrap();
        t.on_event(&call(1, Some("call_b"), "{}")).unwrap();
        assert!(matches!(
            t.on_event(&call(0, None, "{\"x\":1}")),
            Err(ref e) if e.is_upstream()
        ));
    }

    #[test]
    fn chunks_without_choices_or_usage_do_not_start_the_message() {
        let mut t = OpenAiToAnthropicStream::new("gpt-4o");
        let azure = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]});
        assert!(
            t.on_event(&SseEvent::data(azure.to_string()))
                .unwrap()
                .is_empty()
        );
        let first = json!({"id": "chatcmpl-A1", "choices": [{"index": 0,
            "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
        let out = t.on_event(&SseEvent::data(first.to_string())).unwrap();
        let start: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(start["message"]["id"], "msg_chatcmpl-A1");
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
