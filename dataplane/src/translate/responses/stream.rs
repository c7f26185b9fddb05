//! Streaming translation OpenAI chat completion chunks → OpenAI Responses events, one upstream
//! event at a time.
//!
//! Event shapes: openai-python `src/openai/types/responses/response_*_event.py` (the stored
//! snapshot of 2026-08): every event carries `type` and `sequence_number`; item events carry
//! `output_index` and `item_id`; content events also `content_index`; reasoning summary events
//! `summary_index`; `response.function_call_arguments.done` carries `name` and `arguments`.
//!
//! What Codex CLI's parser needs (openai/codex `codex-rs/codex-api/src/sse/responses.rs`,
//! `process_sse`): it reads `type` from the data (not the `event:` line) and ignores data that
//! is not JSON; `response.output_item.done` with a whole `item` (message, function_call,
//! reasoning) is how it learns the output — deltas are only for display;
//! `response.output_text.delta` and `response.reasoning_summary_text.delta` (with
//! `summary_index`) drive the live view; `response.completed` must carry `response.id` and
//! `response.usage` with `input_tokens`, `output_tokens`, `total_tokens` and optional
//! `input_tokens_details.cached_tokens` / `output_tokens_details.reasoning_tokens`; a stream
//! that closes without `response.completed` is an error ("stream closed before
//! response.completed"), and `response.failed` is read from `response.error` `{code, message}`,
//! where code `context_length_exceeded`, `insufficient_quota` and `rate_limit_exceeded` (with
//! "try again in Ns" in the message) get special handling — so upstream error codes are kept.
//! Its item types (openai/codex `codex-rs/protocol/src/models.rs`, `ResponseItem`): `message`
//! with `role` and `content` parts `output_text {text}` (no `refusal` variant: a message with a
//! refusal part does not deserialize there and is skipped), `function_call {name, arguments,
//! call_id}` (arguments a JSON string), `reasoning {id, summary[{type: summary_text, text}],
//! encrypted_content?}`; unknown fields are ignored, so `annotations`/`logprobs` are harmless.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::response::{
    ResponseParts, build_response, function_call_item, item_id, message_item, output_text_part,
    reasoning_item, reasoning_tokens, refusal_part, status_for_finish, usage_to_responses,
};
use crate::sse::SseEvent;
use crate::translate::TranslateError;
use crate::translate::common::{parse_data, str_field, unix_now};
use crate::usage::Usage;

/// The most output items one response may have (a bound on upstream tool calls).
pub const MAX_OUTPUT_ITEMS: usize = 4096;

#[derive(Debug)]
struct Part {
    refusal: bool,
    text: String,
}

#[derive(Debug)]
enum Kind {
    Reasoning {
        text: String,
        blocks: Vec<Value>,
        part_open: bool,
    },
    Message {
        parts: Vec<Part>,
        part_open: bool,
    },
    Call {
        call_id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug)]
struct Item {
    id: String,
    kind: Kind,
    /// The status of its `response.output_item.done`, once sent.
    done: Option<&'static str>,
}

impl Item {
    /// The item as the API shows it, with `status` (reasoning items carry none).
    fn value(&self, status: &str) -> Value {
        match &self.kind {
            Kind::Reasoning { text, blocks, .. } => reasoning_item(&self.id, text, blocks),
            Kind::Message { parts, .. } => message_item(
                &self.id,
                status,
                parts
                    .iter()
                    .map(|p| {
                        if p.refusal {
                            refusal_part(&p.text)
                        } else {
                            output_text_part(&p.text)
                        }
                    })
                    .collect(),
            ),
            Kind::Call {
                call_id,
                name,
                arguments,
            } => function_call_item(&self.id, status, call_id, name, arguments),
        }
    }
}

/// Translates an OpenAI chat completion chunk stream into the OpenAI Responses event stream.
///
/// Output, each event named by its `type` and numbered by `sequence_number` from 0:
/// `response.created` and `response.in_progress` (status `in_progress`, no output yet); then
/// one output item at a time, each opened by `response.output_item.added` and closed by
/// `response.output_item.done` as soon as the deltas switch kind:
/// - `reasoning_content` (or vLLM's `reasoning`) deltas → a `reasoning` item:
///   `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`s,
///   `response.reasoning_summary_text.done`, `response.reasoning_summary_part.done`
///   (`summary_index` 0); `thinking_blocks` deltas (Anthropic's signed thinking, see
///   [`super::chat_response_to_responses`]) go to the item's `encrypted_content`;
/// - `content` deltas → a `message` item: `response.content_part.added` (`output_text`),
///   `response.output_text.delta`s, `response.output_text.done`,
///   `response.content_part.done`; `refusal` deltas likewise as a `refusal` part with
///   `response.refusal.delta`/`.done`;
/// - each tool call (by chat `index`) → a `function_call` item:
///   `response.function_call_arguments.delta`s and `.done`.
///
/// Text after a tool call opens a new message item; arguments for a tool call whose item was
/// closed are an upstream error. The end: `response.completed` (or `response.incomplete` for
/// `finish_reason` `length`/`content_filter`) with the whole response and usage, sent at
/// `[DONE]`, at the usage chunk after the finish, or at [`Self::finish`]. An upstream error
/// frame, or an upstream that ends (at [`Self::finish`]) before any `finish_reason` or
/// `[DONE]`, gives `response.failed` with `error {code, message}` (the upstream's code kept).
/// Nothing follows the end.
///
/// The stream holds the output so far (for the final event and [`Self::response`]); its size
/// is the upstream answer's, bounded by the caller's limits, and at most [`MAX_OUTPUT_ITEMS`]
/// items.
#[derive(Debug)]
pub struct ChatToResponsesStream {
    response_id: String,
    model: String,
    req: Value,
    created_at: i64,
    seq: u64,
    started: bool,
    items: Vec<Item>,
    open: Option<usize>,
    /// Chat tool-call index → output index.
    calls: BTreeMap<u64, usize>,
    /// Chat tool-call id → chat index, for servers that omit the index.
    call_ids: BTreeMap<String, u64>,
    last_call: Option<u64>,
    finish_reason: Option<String>,
    usage: Usage,
    reasoning_tokens: u64,
    /// `(status, incomplete reason)` once the response ended.
    status: Option<(&'static str, Option<&'static str>)>,
    completed_at: Option<i64>,
    error: Value,
}

impl ChatToResponsesStream {
    /// `response_id` is the id of the response (item ids derive from it), `model` the name
    /// reported to the client (the upstream's when empty), `req` the client's Responses request
    /// (echoed in the response objects).
    pub fn new(response_id: &str, model: &str, req: &Value) -> Self {
        Self {
            response_id: response_id.to_owned(),
            model: model.to_owned(),
            req: req.clone(),
            created_at: unix_now(),
            seq: 0,
            started: false,
            items: Vec::new(),
            open: None,
            calls: BTreeMap::new(),
            call_ids: BTreeMap::new(),
            last_call: None,
            finish_reason: None,
            usage: Usage::default(),
            reasoning_tokens: 0,
            status: None,
            completed_at: None,
            error: Value::Null,
        }
    }

    /// Usage so far (complete once [`Self::saw_terminal`]).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The chat `finish_reason` of the upstream, once known.
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    /// Whether the final event (`response.completed`, `response.incomplete` or
    /// `response.failed`) was sent.
    pub fn saw_terminal(&self) -> bool {
        self.status.is_some()
    }

    /// The response object as it stands: the final one (for a response store) once
    /// [`Self::saw_terminal`], else `in_progress` with the output so far.
    pub fn response(&self) -> Value {
        let (status, incomplete_reason) = self.status.unwrap_or(("in_progress", None));
        let item_status = match status {
            "completed" => "completed",
            "in_progress" => "in_progress",
            _ => "incomplete",
        };
        let output = self
            .items
            .iter()
            .map(|item| item.value(item.done.unwrap_or(item_status)))
            .collect();
        let usage = match status {
            "completed" | "incomplete" => usage_to_responses(self.usage, self.reasoning_tokens),
            _ => Value::Null,
        };
        build_response(
            &self.req,
            ResponseParts {
                id: &self.response_id,
                created_at: self.created_at,
                completed_at: self.completed_at,
                model: &self.model,
                status,
                incomplete_reason,
                error: self.error.clone(),
                output,
                usage,
            },
        )
    }

    fn emit(&mut self, out: &mut Vec<SseEvent>, ty: &str, mut data: Value) {
        data["type"] = json!(ty);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push(SseEvent::named(ty, data.to_string()));
    }

    fn start(&mut self, out: &mut Vec<SseEvent>, chunk: Option<&Value>) {
        if self.started {
            return;
        }
        self.started = true;
        if self.model.is_empty()
            && let Some(model) = chunk.and_then(|c| str_field(c, "model"))
        {
            self.model = model.to_owned();
        }
        let response = self.response();
        self.emit(out, "response.created", json!({ "response": response }));
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    fn push_item(
        &mut self,
        out: &mut Vec<SseEvent>,
        prefix: &str,
        kind: Kind,
    ) -> Result<usize, TranslateError> {
        if self.items.len() >= MAX_OUTPUT_ITEMS {
            return Err(TranslateError::upstream(format!(
                "more than {MAX_OUTPUT_ITEMS} output items"
            )));
        }
        self.close_open(out, "completed");
        let index = self.items.len();
        self.items.push(Item {
            id: item_id(prefix, &self.response_id, index),
            kind,
            done: None,
        });
        self.open = Some(index);
        let item = self.items[index].value("in_progress");
        self.emit(
            out,
            "response.output_item.added",
            json!({ "output_index": index, "item": item }),
        );
        Ok(index)
    }

    /// Closes the open content part of message or reasoning item `index`.
    fn close_part(&mut self, out: &mut Vec<SseEvent>, index: usize) {
        enum Closing {
            Summary(String),
            Content(usize, bool, String),
        }
        let id = self.items[index].id.clone();
        let closing = match &mut self.items[index].kind {
            Kind::Reasoning {
                text, part_open, ..
            } if *part_open => {
                *part_open = false;
                Some(Closing::Summary(text.clone()))
            }
            Kind::Message { parts, part_open } if *part_open => {
                *part_open = false;
                let content_index = parts.len().saturating_sub(1);
                parts
                    .last()
                    .map(|p| Closing::Content(content_index, p.refusal, p.text.clone()))
            }
            _ => None,
        };
        match closing {
            Some(Closing::Summary(text)) => {
                let base = json!({ "item_id": id, "output_index": index, "summary_index": 0 });
                let mut done = base.clone();
                done["text"] = json!(text);
                self.emit(out, "response.reasoning_summary_text.done", done);
                let mut part = base;
                part["part"] = json!({ "type": "summary_text", "text": text });
                self.emit(out, "response.reasoning_summary_part.done", part);
            }
            Some(Closing::Content(content_index, refusal, text)) => {
                let base =
                    json!({ "item_id": id, "output_index": index, "content_index": content_index });
                let mut done = base.clone();
                let part = if refusal {
                    done["refusal"] = json!(text);
                    self.emit(out, "response.refusal.done", done);
                    refusal_part(&text)
                } else {
                    done["text"] = json!(text);
                    done["logprobs"] = json!([]);
                    self.emit(out, "response.output_text.done", done);
                    output_text_part(&text)
                };
                let mut part_done = base;
                part_done["part"] = part;
                self.emit(out, "response.content_part.done", part_done);
            }
            None => {}
        }
    }

    fn close_open(&mut self, out: &mut Vec<SseEvent>, status: &'static str) {
        let Some(index) = self.open.take() else {
            return;
        };
        self.close_part(out, index);
        let id = self.items[index].id.clone();
        if let Kind::Call {
            name, arguments, ..
        } = &self.items[index].kind
        {
            let done = json!({
                "item_id": id, "output_index": index, "name": name, "arguments": arguments,
            });
            self.emit(out, "response.function_call_arguments.done", done);
        }
        // Tool calls that were streamed to their end are complete even when the text was cut.
        let status = match self.items[index].kind {
            Kind::Call { .. } => "completed",
            _ => status,
        };
        self.items[index].done = Some(status);
        let item = self.items[index].value(status);
        self.emit(
            out,
            "response.output_item.done",
            json!({ "output_index": index, "item": item }),
        );
    }

    fn open_kind(&self) -> Option<&Kind> {
        self.open.map(|i| &self.items[i].kind)
    }

    fn ensure_reasoning(&mut self, out: &mut Vec<SseEvent>) -> Result<usize, TranslateError> {
        match (self.open, self.open_kind()) {
            (Some(i), Some(Kind::Reasoning { .. })) => Ok(i),
            _ => self.push_item(
                out,
                "rs",
                Kind::Reasoning {
                    text: String::new(),
                    blocks: Vec::new(),
                    part_open: false,
                },
            ),
        }
    }

    fn reasoning(&mut self, out: &mut Vec<SseEvent>, delta: &str) -> Result<(), TranslateError> {
        let index = self.ensure_reasoning(out)?;
        let id = self.items[index].id.clone();
        let Kind::Reasoning {
            text, part_open, ..
        } = &mut self.items[index].kind
        else {
            return Ok(());
        };
        text.push_str(delta);
        let added = !*part_open;
        *part_open = true;
        let base = json!({ "item_id": id, "output_index": index, "summary_index": 0 });
        if added {
            let mut part = base.clone();
            part["part"] = json!({ "type": "summary_text", "text": "" });
            self.emit(out, "response.reasoning_summary_part.added", part);
        }
        let mut ev = base;
        ev["delta"] = json!(delta);
        self.emit(out, "response.reasoning_summary_text.delta", ev);
        Ok(())
    }

    fn thinking_blocks(
        &mut self,
        out: &mut Vec<SseEvent>,
        blocks: &[Value],
    ) -> Result<(), TranslateError> {
        let index = self.ensure_reasoning(out)?;
        if let Kind::Reasoning { blocks: mine, .. } = &mut self.items[index].kind {
            mine.extend(blocks.iter().cloned());
        }
        Ok(())
    }

    /// A text (`refusal` false) or refusal delta of the message item.
    fn message(
        &mut self,
        out: &mut Vec<SseEvent>,
        delta: &str,
        refusal: bool,
    ) -> Result<(), TranslateError> {
        let index = match (self.open, self.open_kind()) {
            (Some(i), Some(Kind::Message { .. })) => i,
            _ => self.push_item(
                out,
                "msg",
                Kind::Message {
                    parts: Vec::new(),
                    part_open: false,
                },
            )?,
        };
        let same_part = matches!(
            &self.items[index].kind,
            Kind::Message { parts, part_open: true } if parts.last().is_some_and(|p| p.refusal == refusal)
        );
        if !same_part {
            self.close_part(out, index);
        }
        let id = self.items[index].id.clone();
        let Kind::Message { parts, part_open } = &mut self.items[index].kind else {
            return Ok(());
        };
        if !same_part {
            parts.push(Part {
                refusal,
                text: String::new(),
            });
            *part_open = true;
        }
        let content_index = parts.len() - 1;
        if let Some(p) = parts.last_mut() {
            p.text.push_str(delta);
        }
        let base = json!({ "item_id": id, "output_index": index, "content_index": content_index });
        if !same_part {
            let mut added = base.clone();
            added["part"] = if refusal {
                refusal_part("")
            } else {
                output_text_part("")
            };
            self.emit(out, "response.content_part.added", added);
        }
        let mut ev = base;
        ev["delta"] = json!(delta);
        if refusal {
            self.emit(out, "response.refusal.delta", ev);
        } else {
            ev["logprobs"] = json!([]);
            self.emit(out, "response.output_text.delta", ev);
        }
        Ok(())
    }

    fn tool_call(&mut self, out: &mut Vec<SseEvent>, call: &Value) -> Result<(), TranslateError> {
        let id = str_field(call, "id").filter(|s| !s.is_empty());
        let key = match call.get("index").and_then(Value::as_u64) {
            Some(i) => i,
            // Some servers omit the index: tell calls apart by id.
            None => match id {
                Some(id) => match self.call_ids.get(id) {
                    Some(k) => *k,
                    None => self.calls.keys().next_back().map_or(0, |k| k + 1),
                },
                None => self.last_call.unwrap_or(0),
            },
        };
        self.last_call = Some(key);
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = str_field(function, "name").unwrap_or("");
        let arguments = str_field(function, "arguments").unwrap_or("");
        let index = match self.calls.get(&key) {
            Some(&index) => {
                if self.items[index].done.is_some() {
                    return Err(TranslateError::upstream(format!(
                        "tool call {key} continued after its item ended"
                    )));
                }
                if let Kind::Call { name: mine, .. } = &mut self.items[index].kind
                    && mine.is_empty()
                {
                    name.clone_into(mine);
                }
                index
            }
            None => {
                let n = self.items.len();
                let call_id = match id {
                    Some(id) => id.to_owned(),
                    None => item_id("call", &self.response_id, n),
                };
                if let Some(id) = id {
                    self.call_ids.insert(id.to_owned(), key);
                }
                let index = self.push_item(
                    out,
                    "fc",
                    Kind::Call {
                        call_id,
                        name: name.to_owned(),
                        arguments: String::new(),
                    },
                )?;
                self.calls.insert(key, index);
                index
            }
        };
        if !arguments.is_empty() {
            if let Kind::Call {
                arguments: mine, ..
            } = &mut self.items[index].kind
            {
                mine.push_str(arguments);
            }
            let id = self.items[index].id.clone();
            self.emit(
                out,
                "response.function_call_arguments.delta",
                json!({ "item_id": id, "output_index": index, "delta": arguments }),
            );
        }
        Ok(())
    }

    fn complete(&mut self, out: &mut Vec<SseEvent>) {
        let (status, reason) = status_for_finish(self.finish_reason.as_deref());
        self.close_open(
            out,
            if status == "completed" {
                "completed"
            } else {
                "incomplete"
            },
        );
        self.status = Some((status, reason));
        self.completed_at = Some(unix_now());
        let response = self.response();
        let ty = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(out, ty, json!({ "response": response }));
    }

    fn fail(&mut self, out: &mut Vec<SseEvent>, code: &str, message: &str) {
        self.error = json!({ "code": code, "message": message });
        self.status = Some(("failed", None));
        self.completed_at = Some(unix_now());
        let response = self.response();
        self.emit(out, "response.failed", json!({ "response": response }));
    }

    /// Translates one upstream event.
    ///
    /// # Errors
    /// [`TranslateError::Invalid`] with param [`crate::translate::UPSTREAM_STREAM_PARAM`] when
    /// the event data is not JSON, a tool call continues after its item ended, or there are
    /// more than [`MAX_OUTPUT_ITEMS`] items.
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<SseEvent>, TranslateError> {
        let mut out = Vec::new();
        if self.saw_terminal() {
            return Ok(out);
        }
        if ev.is_done() {
            self.start(&mut out, None);
            self.complete(&mut out);
            return Ok(out);
        }
        let Some(chunk) = parse_data(ev)? else {
            return Ok(out);
        };
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            self.start(&mut out, None);
            let (code, message) = upstream_error(err);
            self.fail(&mut out, &code, &message);
            return Ok(out);
        }
        self.start(&mut out, Some(&chunk));
        if let Some(usage) = chunk.get("usage") {
            if let Some(u) = Usage::from_openai(usage) {
                self.usage = u;
            }
            let r = reasoning_tokens(usage);
            if r > 0 {
                self.reasoning_tokens = r;
            }
        }
        let choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // Only choice 0: the translated request never asks for more.
        if let Some(choice) = choices
            .iter()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            let reasoning =
                str_field(delta, "reasoning_content").or_else(|| str_field(delta, "reasoning"));
            if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
                self.reasoning(&mut out, text)?;
            }
            if let Some(blocks) = delta.get("thinking_blocks").and_then(Value::as_array)
                && !blocks.is_empty()
            {
                self.thinking_blocks(&mut out, blocks)?;
            }
            if let Some(text) = str_field(delta, "content").filter(|t| !t.is_empty()) {
                self.message(&mut out, text, false)?;
            }
            if let Some(text) = str_field(delta, "refusal").filter(|t| !t.is_empty()) {
                self.message(&mut out, text, true)?;
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                self.tool_call(&mut out, call)?;
            }
            if let Some(reason) = str_field(choice, "finish_reason") {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        // The usage chunk (empty `choices`) is the last before `[DONE]`.
        if choices.is_empty()
            && self.finish_reason.is_some()
            && chunk.get("usage").is_some_and(Value::is_object)
        {
            self.complete(&mut out);
        }
        Ok(out)
    }

    /// Ends the stream when the upstream closed: completes the response if the upstream
    /// finished (a `finish_reason` came, `[DONE]` or usage did not), else fails it (the
    /// upstream was cut off). Nothing after the end.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if self.saw_terminal() {
            return out;
        }
        self.start(&mut out, None);
        if self.finish_reason.is_some() {
            self.complete(&mut out);
        } else {
            self.fail(
                &mut out,
                "server_error",
                "the upstream stream ended before the response was finished",
            );
        }
        out
    }
}

/// The Responses `error {code, message}` for an OpenAI error frame's `error`. The upstream
/// `code` is kept (Codex reacts to `context_length_exceeded`, `insufficient_quota` and
/// `rate_limit_exceeded`); Anthropic error types, as the Anthropic translation passes them in
/// `code`, become their OpenAI counterparts.
fn upstream_error(err: &Value) -> (String, String) {
    let message = match err {
        Value::String(s) => s.as_str(),
        _ => str_field(err, "message").unwrap_or("upstream error"),
    };
    let code = str_field(err, "code").or_else(|| str_field(err, "type"));
    let code = match code {
        Some("rate_limit_error") => "rate_limit_exceeded",
        Some("overloaded_error" | "api_error") | None => "server_error",
        Some("invalid_request_error") if message.contains("prompt is too long") => {
            "context_length_exceeded"
        }
        Some(other) => other,
    };
    (code.to_owned(), message.to_owned())
}
