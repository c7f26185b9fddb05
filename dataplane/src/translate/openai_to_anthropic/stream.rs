//! Streaming translation OpenAI chunks → Anthropic Messages events, one upstream event at a time
//! (nothing is buffered beyond the block being streamed).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::response::{finish_reason_to_stop_reason, new_tool_use_id, openai_error_to_anthropic};
use crate::sse::SseEvent;
use crate::translate::TranslateError;
use crate::translate::common::{parse_data, str_field};
use crate::usage::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    Thinking,
    /// Keyed by the tool-call key ([`OpenAiToAnthropicStream::tool_key`]).
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
/// switch kind (content → text block, each new tool call → `tool_use` block with
/// `input_json_delta`s, signed `thinking_blocks` → thinking blocks) — then `message_delta` with
/// the stop reason and the full usage, and `message_stop`. Because the usage chunk comes after
/// the `finish_reason` chunk, `message_delta` is held until usage or `[DONE]` arrives (or
/// [`Self::finish`] is called). An OpenAI error frame becomes an Anthropic `error` event.
///
/// What OpenAI-compatible servers really send is taken as it comes:
/// - tool-call arguments in pieces, whole in one chunk, or with the id and name only on the
///   first chunk; a chunk with a new id at an index already used (servers that number every
///   call 0) starts a new call;
/// - `finish_reason: "stop"` after tool calls (Ollama, some vLLM tool parsers, gpt-4o at
///   times: ollama/ollama#7963) → `tool_use`, which is what makes Claude Code run the tools;
///   no finish reason before `[DONE]` → `tool_use` after tool calls, else `end_turn`;
/// - usage absent, only in the last chunk, or on every chunk; chunks with empty `choices`.
///
/// Unsigned reasoning (`reasoning_content`, `reasoning`: vLLM, Ollama, DeepSeek) is not
/// forwarded: Claude Code discards a thinking block that ends without a signature and can lose
/// the whole turn with it (nielspeter/claude-code-proxy#17, routatic/proxy#51), and a made-up
/// signature would make Anthropic refuse the history if the conversation later goes to an
/// Anthropic target ("Invalid signature in thinking block"). Signed blocks (`thinking_blocks`)
/// are forwarded.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    model: String,
    started: bool,
    next_index: u64,
    open: Option<OpenBlock>,
    /// Tool-call key (see [`Self::tool_key`]) → whether its block was already closed.
    tools: BTreeMap<u64, bool>,
    /// The upstream's tool-call index → the key of the call last started at it.
    index_keys: BTreeMap<u64, u64>,
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
            index_keys: BTreeMap::new(),
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

    /// The key of the tool call a delta belongs to (a fresh key for a new call). Keys are this
    /// translator's own: a known id names its call; without an id, the call last seen at the
    /// delta's index (or, without an index, the last call); a new id, or an index not seen
    /// yet, starts a call — also at an index already used (servers that number every call 0).
    fn tool_key(&mut self, index: Option<u64>, id: Option<&str>) -> u64 {
        if let Some(k) = id.and_then(|id| self.tool_ids.get(id)) {
            return *k;
        }
        if id.is_none() {
            let known = match index {
                Some(i) => self.index_keys.get(&i).copied(),
                None => self.last_tool_key,
            };
            if let Some(k) = known {
                return k;
            }
        }
        let key = self.tools.keys().next_back().map_or(0, |k| k + 1);
        if let Some(i) = index {
            self.index_keys.insert(i, key);
        }
        key
    }

    fn tool_call(&mut self, out: &mut Vec<SseEvent>, call: &Value) -> Result<(), TranslateError> {
        let id = str_field(call, "id").filter(|s| !s.is_empty());
        let key = self.tool_key(call.get("index").and_then(Value::as_u64), id);
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
        let tools = !self.tool_calls.is_empty();
        let stop_reason = self
            .stop_reason
            .get_or_insert_with(|| if tools { "tool_use" } else { "end_turn" }.to_owned())
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
    /// [`TranslateError::Invalid`] with param [`crate::translate::UPSTREAM_STREAM_PARAM`] when the event data is not JSON, or when a tool call's
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
                } else if reason == "stop" && !self.tool_calls.is_empty() {
                    "tool_use"
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
    use crate::translate::tests::run;

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

    fn o2a(input: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, OpenAiToAnthropicStream) {
        let mut t = OpenAiToAnthropicStream::new("gpt-4.1");
        let out = run(input, cuts, |ev| t.on_event(ev).unwrap());
        (out, t)
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

    fn chunk(delta: Value, finish: Option<&str>) -> SseEvent {
        SseEvent::data(
            json!({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                .to_string(),
        )
    }

    fn feed(t: &mut OpenAiToAnthropicStream, events: &[SseEvent]) -> Vec<Value> {
        let mut out = Vec::new();
        for ev in events {
            out.extend(t.on_event(ev).unwrap());
        }
        out.extend(t.finish());
        out.iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    fn types(events: &[Value]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e["type"].as_str().unwrap() {
                "content_block_start" => {
                    format!("start:{}", e["content_block"]["type"].as_str().unwrap())
                }
                "content_block_delta" => format!("delta:{}", e["delta"]["type"].as_str().unwrap()),
                other => other.to_owned(),
            })
            .collect()
    }

    #[test]
    fn stop_after_tool_calls_is_tool_use() {
        let call = json!({"tool_calls": [{"id": "call_1", "index": 0, "type": "function",
            "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]});
        let mut t = OpenAiToAnthropicStream::new("m");
        feed(
            &mut t,
            &[chunk(call.clone(), None), chunk(json!({}), Some("stop"))],
        );
        assert_eq!(t.finish_reason(), Some("tool_use"));
        // Without tool calls, stop stays end_turn.
        let mut t = OpenAiToAnthropicStream::new("m");
        feed(&mut t, &[chunk(json!({"content": "hi"}), Some("stop"))]);
        assert_eq!(t.finish_reason(), Some("end_turn"));
        // No finish reason at all before [DONE]: tool_use after tool calls.
        let mut t = OpenAiToAnthropicStream::new("m");
        feed(&mut t, &[chunk(call, None), SseEvent::data("[DONE]")]);
        assert_eq!(t.finish_reason(), Some("tool_use"));
        assert!(t.saw_terminal());
    }

    #[test]
    fn tool_calls_in_every_shape_servers_send() {
        // Every call at index 0 with its own id (Ollama), then a continuation without id.
        let mut t = OpenAiToAnthropicStream::new("m");
        let out = feed(
            &mut t,
            &[
                chunk(
                    json!({"tool_calls": [{"id": "call_a", "index": 0,
                    "function": {"name": "A", "arguments": "{}"}}]}),
                    None,
                ),
                chunk(
                    json!({"tool_calls": [{"id": "call_b", "index": 0,
                    "function": {"name": "B", "arguments": "{\"x\""}}]}),
                    None,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                    None,
                ),
                chunk(json!({}), Some("tool_calls")),
            ],
        );
        assert_eq!(
            t.tool_calls(),
            [
                ("call_a".to_owned(), "A".to_owned()),
                ("call_b".to_owned(), "B".to_owned())
            ]
        );
        let b_args: String = out
            .iter()
            .filter(|e| e["index"] == 1 && e["delta"]["type"] == "input_json_delta")
            .map(|e| e["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(b_args, "{\"x\":1}");
        // The id repeated on every chunk (some servers) continues the same call.
        let mut t = OpenAiToAnthropicStream::new("m");
        let out = feed(
            &mut t,
            &[
                chunk(
                    json!({"tool_calls": [{"id": "call_a", "index": 0,
                    "function": {"name": "A", "arguments": "{\"y\":"}}]}),
                    None,
                ),
                chunk(
                    json!({"tool_calls": [{"id": "call_a", "index": 0,
                    "function": {"arguments": "2}"}}]}),
                    None,
                ),
                chunk(json!({}), Some("tool_calls")),
            ],
        );
        assert_eq!(t.tool_calls().len(), 1);
        assert_eq!(
            types(&out),
            [
                "message_start",
                "start:tool_use",
                "delta:input_json_delta",
                "delta:input_json_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        // Two calls told apart by index only (no ids): fresh ids are made.
        let mut t = OpenAiToAnthropicStream::new("m");
        feed(
            &mut t,
            &[
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"name": "A", "arguments": "{}"}},
                                            {"index": 1, "function": {"name": "B", "arguments": "{}"}}]}),
                    None,
                ),
                chunk(json!({}), Some("tool_calls")),
            ],
        );
        let calls = t.tool_calls();
        assert_eq!(calls.len(), 2);
        assert!(calls.iter().all(|(id, _)| id.starts_with("toolu_")));
        assert_ne!(calls[0].0, calls[1].0);
    }

    #[test]
    fn unsigned_reasoning_is_not_forwarded() {
        let mut t = OpenAiToAnthropicStream::new("m");
        let out = feed(
            &mut t,
            &[
                chunk(
                    json!({"role": "assistant", "content": "", "reasoning": "Let me"}),
                    None,
                ),
                chunk(json!({"reasoning_content": " think."}), None),
                chunk(json!({"content": "Answer."}), None),
                chunk(json!({}), Some("stop")),
                SseEvent::data(
                    json!({"id": "c", "choices": [],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}})
                    .to_string(),
                ),
            ],
        );
        assert_eq!(
            types(&out),
            [
                "message_start",
                "start:text",
                "delta:text_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(out[1]["index"], 0);
        assert_eq!(t.usage().output_tokens, 9);
    }
}
