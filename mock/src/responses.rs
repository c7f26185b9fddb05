//! The OpenAI Responses API: `POST /v1/responses` (stream and non-stream), `GET` and
//! `DELETE /v1/responses/{id}`, and the bounded store behind `previous_response_id`.
//!
//! Wire shapes, from the sources named here (the mock writes the same fields in the same
//! places):
//! - The `response` object and its defaults (`background: false`, `parallel_tool_calls: true`,
//!   `store: true`, `temperature: 1.0`, `text: {"format": {"type": "text"}, "verbosity":
//!   "medium"}`, `tool_choice: "auto"`, `top_logprobs: 0`, `top_p: 1.0`, `truncation:
//!   "disabled"`, `metadata: {}`, `reasoning: {"effort": null, "summary": null}`), the message
//!   item with `output_text` parts carrying `annotations: []` and `logprobs: []`, and `usage`:
//!   the live-API snapshot in openai-python `tests/lib/responses/test_responses.py`
//!   (`test_output_text`) and the types in `src/openai/types/responses/` (`response.py`,
//!   `response_usage.py`, `response_output_message.py`, `response_function_tool_call.py`,
//!   `response_reasoning_item.py`).
//! - The event sequence (`response.created`, `response.in_progress`, per item
//!   `response.output_item.added` … `response.output_item.done`, `response.completed`), each
//!   event as `event: TYPE` plus `data: {"type": TYPE, "sequence_number": N, …}` counting from
//!   0, no `data: [DONE]`, reasoning summaries as `response.reasoning_summary_part.added`,
//!   `response.reasoning_summary_text.delta`/`.done`, `response.reasoning_summary_part.done`:
//!   a recorded o4-mini stream (Microsoft.Extensions.AI's OpenAI Responses tests) and the
//!   event types in openai-python (`response_*_event.py`; `function_call_arguments.done`
//!   carries `name`).
//! - A failure mid-stream: `event: error` with `{"error": {"type", "code", "message",
//!   "param"}}` (the mock also puts `code`, `message` and `param` at the top level, where
//!   openai-python's `ResponseErrorEvent` type has them) followed by `event: response.failed` whose `response` has `status: "failed"`
//!   and `error: {"code", "message"}` (a recorded `insufficient_quota` stream). Codex CLI
//!   (`codex-rs/codex-api/src/sse/responses.rs`) acts on `response.failed`, ignores `error`,
//!   and fails a stream that ends without `response.completed`; the openai SDKs raise on the
//!   `error` event (its data has a top-level `error` key, openai-python `_streaming.py`).
//! - `previous_response_id` unknown: HTTP 400 `{"error": {"message": "Previous response with
//!   id '…' not found.", "type": "invalid_request_error", "param": "previous_response_id",
//!   "code": "previous_response_not_found"}}` (as clients report it, e.g. codex-lb,
//!   CLIProxyAPI, bifrost issues). `DELETE` answers `{"id", "object": "response.deleted",
//!   "deleted": true}`.
//!
//! Deterministic rules (beyond the ones in the crate docs):
//! - **Input words**: the `instructions` (a string, or input items), then every `input` item:
//!   a string `input` is one user message; `message` items (with or without `type`) count the
//!   text of their content (a string, or the `text` of each part); `function_call_output`
//!   items count their `output` the same way; other items count nothing.
//! - **Input tokens** = input words + (with `previous_response_id`) the previous response's
//!   `input_tokens + output_tokens`, as the API bills the whole conversation.
//!   `input_tokens_details.cached_tokens` = the `cache_read` behaviour (included in
//!   `input_tokens`), `cache_write_tokens` = `cache_write`.
//! - **Reply**: `mock reply: ` + the first 8 words of the last user message of the input (or,
//!   when the input has none, of the previous response's conversation).
//! - **Function call**: as chat completions: the request has a `function` tool and the last
//!   input item is a user message containing `call tool NAME`, or the `tool_call` behaviour;
//!   the output is then a single `function_call` item `fc_mock_<id>` with call id
//!   `call_mock_<id>` and no message.
//! - **Reasoning**: with `reasoning.effort` set (other than `none`) or `reasoning.summary`
//!   set, the output starts with a `reasoning` item `rs_mock_<id>` for the thinking text
//!   `mock thinking: ` + the first 8 words of the user message; its summary holds that text
//!   only when `reasoning.summary` is set; `encrypted_content` only when `include` has
//!   `reasoning.encrypted_content`. Its words are `output_tokens_details.reasoning_tokens`
//!   and count in `output_tokens`.
//! - **`max_output_tokens`** truncates the reply words: `status: "incomplete"`,
//!   `incomplete_details: {"reason": "max_output_tokens"}` (stream: `response.incomplete`).
//! - **Store**: unless `store: false`, the response is kept for `GET`, `DELETE` and
//!   `previous_response_id` (the last [`crate::MockConfig::response_capacity`] responses, each
//!   at most 4 MiB of JSON). A stream with `error_event` is stored as failed; a cut
//!   (`cut_after_chunks`) does not change what is stored (the upstream finished; the
//!   connection broke).

use std::collections::{HashMap, VecDeque};

use axum::body::Body;
use axum::http::{Response, StatusCode};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::answer::{Ctx, Dialect, json_response, openai_error_body, unix_now};
use super::reply::{self, Content, Finish, ReplyRequest};
use super::stream::Frames;
use super::{State, lock};

const SSE: &str = "text/event-stream; charset=utf-8";
/// Stored responses bigger than this (serialised) are not kept.
const MAX_STORED_BYTES: usize = 4 << 20;
/// Ids quoted in error messages are cut to this many characters.
const MAX_QUOTED_ID: usize = 128;

/// A response kept for `GET`, `DELETE` and `previous_response_id`.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub response: Value,
    /// Input plus output tokens: what a follow-up request is billed for this conversation.
    pub context_tokens: u64,
    /// The last user text of the conversation (for a follow-up without a user message).
    pub user_text: String,
}

/// The last `capacity` stored responses, oldest evicted first.
#[derive(Debug)]
pub(crate) struct ResponseStore {
    capacity: usize,
    order: VecDeque<String>,
    map: HashMap<String, Stored>,
}

impl ResponseStore {
    pub(crate) fn new(capacity: usize) -> Self {
        ResponseStore {
            capacity,
            order: VecDeque::new(),
            map: HashMap::new(),
        }
    }

    pub(crate) fn insert(&mut self, id: String, stored: Stored) {
        if self.capacity == 0 {
            return;
        }
        if self.map.insert(id.clone(), stored).is_some() {
            self.order.retain(|k| *k != id);
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Stored> {
        self.map.get(id)
    }

    pub(crate) fn remove(&mut self, id: &str) -> bool {
        if self.map.remove(id).is_some() {
            self.order.retain(|k| k != id);
            true
        } else {
            false
        }
    }

    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.map.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

fn quoted(id: &str) -> String {
    id.chars().take(MAX_QUOTED_ID).collect()
}

fn invalid(ctx: &Ctx, param: &str, message: &str) -> Response<Body> {
    Dialect::OpenAi.invalid(ctx.id, Some(param), message)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What the input of a request amounts to.
#[derive(Debug, Default)]
struct Input {
    words: u64,
    /// Text of the last user message, if any.
    user_text: Option<String>,
    /// The own text of the last item when it is a user message (for `call tool NAME`).
    last_user: Option<String>,
}

impl Input {
    fn user(&mut self, content: &Value) {
        let mut text = String::new();
        reply::push_text(content, &mut text, false);
        self.words += reply::count_words(content, false);
        self.user_text = Some(text.clone());
        self.last_user = Some(text);
    }

    /// Adds `instructions` or `input` (`param` names it in errors).
    fn add(&mut self, value: &Value, param: &str) -> Result<(), (String, String)> {
        match value {
            Value::Null => Ok(()),
            Value::String(s) if param == "input" => {
                self.user(&Value::String(s.clone()));
                Ok(())
            }
            Value::String(s) => {
                self.words += reply::words(s);
                Ok(())
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.item(item, &format!("{param}[{i}]"))?;
                }
                Ok(())
            }
            other => Err((
                param.to_owned(),
                format!(
                    "Invalid type for '{param}': expected one of a string or array of input items, but got {} instead.",
                    type_name(other)
                ),
            )),
        }
    }

    fn item(&mut self, item: &Value, param: &str) -> Result<(), (String, String)> {
        let Value::Object(obj) = item else {
            return Err((
                param.to_owned(),
                format!(
                    "Invalid type for '{param}': expected an input item object, but got {} instead.",
                    type_name(item)
                ),
            ));
        };
        let kind = match obj.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            None if obj.contains_key("role") => "message",
            Some(other) => {
                return Err((
                    format!("{param}.type"),
                    format!(
                        "Invalid type for '{param}.type': expected a string, but got {} instead.",
                        type_name(other)
                    ),
                ));
            }
            None => {
                return Err((
                    format!("{param}.type"),
                    format!("Missing required parameter: '{param}.type'."),
                ));
            }
        };
        self.last_user = None;
        match kind {
            "message" => {
                let Some(role) = obj.get("role").and_then(Value::as_str) else {
                    return Err((
                        format!("{param}.role"),
                        format!("Missing required parameter: '{param}.role'."),
                    ));
                };
                let content = obj.get("content").unwrap_or(&Value::Null);
                if !matches!(content, Value::String(_) | Value::Array(_)) {
                    return Err((
                        format!("{param}.content"),
                        format!(
                            "Invalid type for '{param}.content': expected one of a string or array of content parts, but got {} instead.",
                            type_name(content)
                        ),
                    ));
                }
                if role == "user" {
                    self.user(content);
                } else {
                    self.words += reply::count_words(content, false);
                }
            }
            "function_call_output" => {
                if let Some(output) = obj.get("output") {
                    self.words += reply::count_words(output, false);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The request parameters the response echoes, with the API's defaults.
fn echoed(body: &Value, ctx: &Ctx) -> Map<String, Value> {
    fn or(body: &Value, key: &str, default: Value) -> Value {
        match body.get(key) {
            Some(v) if !v.is_null() => v.clone(),
            _ => default,
        }
    }
    let tools: Vec<Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .map(|tool| {
                    let mut tool = tool.clone();
                    if let Some(obj) = tool.as_object_mut()
                        && obj.get("type").and_then(Value::as_str) == Some("function")
                    {
                        obj.entry("description").or_insert(Value::Null);
                        obj.entry("strict").or_insert(Value::Bool(true));
                    }
                    tool
                })
                .collect()
        })
        .unwrap_or_default();
    let mut text = match body.get("text") {
        Some(Value::Object(t)) => t.clone(),
        _ => Map::new(),
    };
    text.entry("format")
        .or_insert_with(|| json!({ "type": "text" }));
    text.entry("verbosity").or_insert_with(|| json!("medium"));
    let service_tier = match body.get("service_tier").and_then(Value::as_str) {
        None | Some("auto") => "default".to_owned(),
        Some(tier) => tier.to_owned(),
    };
    let mut m = Map::new();
    m.insert("background".into(), or(body, "background", json!(false)));
    m.insert("instructions".into(), or(body, "instructions", Value::Null));
    m.insert(
        "max_output_tokens".into(),
        or(body, "max_output_tokens", Value::Null),
    );
    m.insert(
        "max_tool_calls".into(),
        or(body, "max_tool_calls", Value::Null),
    );
    m.insert("model".into(), json!(ctx.model));
    m.insert(
        "parallel_tool_calls".into(),
        or(body, "parallel_tool_calls", json!(true)),
    );
    m.insert(
        "previous_response_id".into(),
        or(body, "previous_response_id", Value::Null),
    );
    m.insert(
        "prompt_cache_key".into(),
        or(body, "prompt_cache_key", Value::Null),
    );
    m.insert(
        "reasoning".into(),
        json!({
            "effort": body.pointer("/reasoning/effort").cloned().unwrap_or(Value::Null),
            "summary": body.pointer("/reasoning/summary").cloned().unwrap_or(Value::Null),
        }),
    );
    m.insert(
        "safety_identifier".into(),
        or(body, "safety_identifier", Value::Null),
    );
    m.insert("service_tier".into(), json!(service_tier));
    m.insert("store".into(), or(body, "store", json!(true)));
    m.insert("temperature".into(), or(body, "temperature", json!(1.0)));
    m.insert("text".into(), Value::Object(text));
    m.insert("tool_choice".into(), or(body, "tool_choice", json!("auto")));
    m.insert("tools".into(), Value::Array(tools));
    m.insert("top_logprobs".into(), or(body, "top_logprobs", json!(0)));
    m.insert("top_p".into(), or(body, "top_p", json!(1.0)));
    m.insert(
        "truncation".into(),
        or(body, "truncation", json!("disabled")),
    );
    m.insert("user".into(), or(body, "user", Value::Null));
    m.insert("metadata".into(), or(body, "metadata", json!({})));
    m
}

/// The parts of a response object that do not change between its events.
struct Shape {
    id: String,
    created_at: u64,
    echoed: Map<String, Value>,
}

impl Shape {
    fn object(
        &self,
        status: &str,
        output: Vec<Value>,
        usage: Option<&Value>,
        error: Option<Value>,
    ) -> Value {
        let mut m = self.echoed.clone();
        m.insert("id".into(), json!(self.id));
        m.insert("object".into(), json!("response"));
        m.insert("created_at".into(), json!(self.created_at));
        m.insert("status".into(), json!(status));
        m.insert(
            "completed_at".into(),
            if status == "completed" {
                json!(unix_now())
            } else {
                Value::Null
            },
        );
        m.insert("error".into(), error.unwrap_or(Value::Null));
        m.insert(
            "incomplete_details".into(),
            if status == "incomplete" {
                json!({ "reason": "max_output_tokens" })
            } else {
                Value::Null
            },
        );
        m.insert("output".into(), Value::Array(output));
        m.insert("usage".into(), usage.cloned().unwrap_or(Value::Null));
        Value::Object(m)
    }
}

/// Numbers the events of one stream from 0 and frames them as `event:`/`data:` pairs with
/// `type` and `sequence_number` first.
#[derive(Default)]
struct Events {
    seq: u64,
}

impl Events {
    fn next(&mut self, kind: &str, fields: &Value) -> Bytes {
        let frame = event(kind, self.seq, fields);
        self.seq += 1;
        frame
    }
}

fn event(kind: &str, seq: u64, fields: &Value) -> Bytes {
    let body = fields.to_string();
    let rest = body.strip_prefix('{').unwrap_or("}");
    let sep = if rest == "}" { "" } else { "," };
    Bytes::from(format!(
        "event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq}{sep}{rest}\n\n"
    ))
}

fn output_text(text: &str) -> Value {
    json!({ "type": "output_text", "annotations": [], "logprobs": [], "text": text })
}

/// `POST /v1/responses`.
pub(crate) fn create(ctx: &Ctx, body: &Value) -> Response<Body> {
    if ctx.model.is_empty() {
        return invalid(ctx, "model", "Missing required parameter: 'model'.");
    }
    if body.get("conversation").is_some_and(|c| !c.is_null()) {
        return invalid(
            ctx,
            "conversation",
            "mock upstream: conversations are not supported; use previous_response_id or send the whole input.",
        );
    }
    let mut input = Input::default();
    for param in ["instructions", "input"] {
        if let Err((param, message)) = input.add(body.get(param).unwrap_or(&Value::Null), param) {
            return invalid(ctx, &param, &message);
        }
    }
    let tools = match body.get("tools") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(tools)) => tools.as_slice(),
        Some(other) => {
            return invalid(
                ctx,
                "tools",
                &format!(
                    "Invalid type for 'tools': expected an array of tools, but got {} instead.",
                    type_name(other)
                ),
            );
        }
    };
    let max_output_tokens = match body.get("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(n),
            None => {
                return invalid(
                    ctx,
                    "max_output_tokens",
                    "Invalid 'max_output_tokens': expected a non-negative integer.",
                );
            }
        },
    };
    let previous = match body.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => match lock(&ctx.state.responses).get(id) {
            Some(stored) => Some(stored.clone()),
            None => return previous_not_found(ctx, id),
        },
        Some(other) => {
            return invalid(
                ctx,
                "previous_response_id",
                &format!(
                    "Invalid type for 'previous_response_id': expected a string, but got {} instead.",
                    type_name(other)
                ),
            );
        }
    };

    let user_text = input
        .user_text
        .clone()
        .or_else(|| previous.as_ref().map(|p| p.user_text.clone()))
        .unwrap_or_default();
    let has_functions = tools
        .iter()
        .any(|t| t.get("type").and_then(Value::as_str) == Some("function"));
    let trigger = has_functions
        .then(|| input.last_user.as_deref().and_then(reply::tool_trigger))
        .flatten();
    let reply = reply::build(
        &ReplyRequest {
            user_text: &user_text,
            trigger,
            max_tokens: max_output_tokens,
            stop: Vec::new(),
            fim: false,
        },
        &ctx.behavior,
    );
    let effort = body.pointer("/reasoning/effort").and_then(Value::as_str);
    let summary = body
        .pointer("/reasoning/summary")
        .is_some_and(|s| !s.is_null());
    let reasoning = (effort.is_some_and(|e| e != "none") || summary).then(|| {
        let text = format!(
            "mock thinking: {}",
            reply::first_words(&user_text, reply::ECHO_WORDS)
        );
        let encrypted = body
            .get("include")
            .and_then(Value::as_array)
            .is_some_and(|inc| {
                inc.iter()
                    .any(|i| i.as_str() == Some("reasoning.encrypted_content"))
            })
            .then(|| format!("mock-encrypted-{:016x}", reply::fnv1a(text.as_bytes())));
        (text, encrypted)
    });

    let reasoning_tokens = reasoning.as_ref().map_or(0, |(t, _)| reply::words(t));
    let input_tokens = input.words + previous.as_ref().map_or(0, |p| p.context_tokens);
    let output_tokens = reply.tool.as_ref().map_or(reply.words, |t| t.words) + reasoning_tokens;
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": ctx.behavior.cache_read.unwrap_or(0),
            "cache_write_tokens": ctx.behavior.cache_write.unwrap_or(0),
        },
        "output_tokens": output_tokens,
        "output_tokens_details": { "reasoning_tokens": reasoning_tokens },
        "total_tokens": input_tokens + output_tokens,
    });
    let status = if reply.tool.is_none() && reply.finish == Finish::Length {
        "incomplete"
    } else {
        "completed"
    };
    let shape = Shape {
        id: format!("resp_mock_{}", ctx.id),
        created_at: unix_now(),
        echoed: echoed(body, ctx),
    };
    let msg_id = format!("msg_mock_{}", ctx.id);
    let fc_id = format!("fc_mock_{}", ctx.id);
    let call_id = format!("call_mock_{}", ctx.id);
    let rs_id = format!("rs_mock_{}", ctx.id);

    let reasoning_item = reasoning.as_ref().map(|(text, encrypted)| {
        let mut item = json!({
            "id": rs_id,
            "type": "reasoning",
            "summary": if summary { json!([{ "type": "summary_text", "text": text }]) } else { json!([]) },
        });
        if let Some(encrypted) = encrypted {
            item["encrypted_content"] = json!(encrypted);
        }
        item
    });
    let main_item = match &reply.tool {
        Some(tool) => json!({
            "id": fc_id,
            "type": "function_call",
            "status": "completed",
            "arguments": tool.arguments,
            "call_id": call_id,
            "name": tool.name,
        }),
        None => json!({
            "id": msg_id,
            "type": "message",
            "status": status,
            "content": [output_text(&reply.content.text())],
            "role": "assistant",
        }),
    };
    let output: Vec<Value> = reasoning_item
        .iter()
        .cloned()
        .chain(std::iter::once(main_item.clone()))
        .collect();
    let final_response = shape.object(status, output, Some(&usage), None);

    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let failed = stream && ctx.behavior.error_event();
    let message = ctx
        .behavior
        .message
        .clone()
        .unwrap_or_else(|| "mock upstream: overloaded".to_owned());
    let failed_response = failed.then(|| {
        shape.object(
            "failed",
            Vec::new(),
            None,
            Some(json!({ "code": "server_error", "message": message })),
        )
    });
    if body.get("store").and_then(Value::as_bool) != Some(false) {
        let kept = failed_response.as_ref().unwrap_or(&final_response);
        let size = serde_json::to_vec(kept).map_or(usize::MAX, |v| v.len());
        if size <= MAX_STORED_BYTES {
            lock(&ctx.state.responses).insert(
                shape.id.clone(),
                Stored {
                    response: kept.clone(),
                    context_tokens: input_tokens + output_tokens,
                    user_text: user_text.clone(),
                },
            );
        }
    }
    if !stream {
        return ctx.json(&final_response);
    }

    let mut ev = Events::default();
    let mut frames = Frames::with_capacity(16);
    let in_progress = shape.object("in_progress", Vec::new(), None, None);
    frames.push(ev.next("response.created", &json!({ "response": in_progress })));
    frames.push(ev.next("response.in_progress", &json!({ "response": in_progress })));
    let mut output_index = 0u32;
    if let (Some((text, _)), Some(item)) = (&reasoning, &reasoning_item) {
        frames.push(ev.next(
            "response.output_item.added",
            &json!({
                "output_index": output_index,
                "item": { "id": rs_id, "type": "reasoning", "summary": [] },
            }),
        ));
        if summary {
            let at = json!({ "item_id": rs_id, "output_index": output_index, "summary_index": 0 });
            let with = |extra: Value| {
                let mut fields = at.clone();
                if let (Some(f), Value::Object(extra)) = (fields.as_object_mut(), extra) {
                    f.extend(extra);
                }
                fields
            };
            frames.push(ev.next(
                "response.reasoning_summary_part.added",
                &with(json!({ "part": { "type": "summary_text", "text": "" } })),
            ));
            let words: Vec<&str> = text.split_whitespace().collect();
            for piece in reply::group(&words, words.len()) {
                frames.delta(ev.next(
                    "response.reasoning_summary_text.delta",
                    &with(json!({ "delta": piece })),
                ));
            }
            frames.push(ev.next(
                "response.reasoning_summary_text.done",
                &with(json!({ "text": text })),
            ));
            frames.push(ev.next(
                "response.reasoning_summary_part.done",
                &with(json!({ "part": { "type": "summary_text", "text": text } })),
            ));
        }
        frames.push(ev.next(
            "response.output_item.done",
            &json!({ "output_index": output_index, "item": item }),
        ));
        output_index += 1;
    }
    match &reply.tool {
        Some(tool) => {
            frames.push(ev.next(
                "response.output_item.added",
                &json!({
                    "output_index": output_index,
                    "item": {
                        "id": fc_id,
                        "type": "function_call",
                        "status": "in_progress",
                        "arguments": "",
                        "call_id": call_id,
                        "name": tool.name,
                    },
                }),
            ));
            frames.mark_content();
            for fragment in tool.fragments(ctx.behavior.chunks) {
                frames.delta(ev.next(
                    "response.function_call_arguments.delta",
                    &json!({ "item_id": fc_id, "output_index": output_index, "delta": fragment }),
                ));
            }
            frames.push(ev.next(
                "response.function_call_arguments.done",
                &json!({
                    "item_id": fc_id,
                    "output_index": output_index,
                    "name": tool.name,
                    "arguments": tool.arguments,
                }),
            ));
        }
        None => {
            frames.push(ev.next(
                "response.output_item.added",
                &json!({
                    "output_index": output_index,
                    "item": {
                        "id": msg_id,
                        "type": "message",
                        "status": "in_progress",
                        "content": [],
                        "role": "assistant",
                    },
                }),
            ));
            let at = json!({ "item_id": msg_id, "output_index": output_index, "content_index": 0 });
            let with = |extra: Value| {
                let mut fields = at.clone();
                if let (Some(f), Value::Object(extra)) = (fields.as_object_mut(), extra) {
                    f.extend(extra);
                }
                fields
            };
            frames.push(ev.next(
                "response.content_part.added",
                &with(json!({ "part": output_text("") })),
            ));
            frames.mark_content();
            let mut delta = |piece: &str| {
                ev.next(
                    "response.output_text.delta",
                    &with(json!({ "delta": piece, "logprobs": [] })),
                )
            };
            match &reply.content {
                Content::Pieces(pieces) => {
                    for piece in pieces {
                        frames.delta(delta(piece));
                    }
                }
                // Framed one by one: each event has its own sequence number.
                Content::Filler(blocks) => {
                    for _ in 0..*blocks {
                        frames.delta(delta(reply::filler()));
                    }
                }
            }
            let text = reply.content.text();
            frames.push(ev.next(
                "response.output_text.done",
                &with(json!({ "text": text, "logprobs": [] })),
            ));
            frames.push(ev.next(
                "response.content_part.done",
                &with(json!({ "part": output_text(&text) })),
            ));
        }
    }
    frames.push(ev.next(
        "response.output_item.done",
        &json!({ "output_index": output_index, "item": main_item }),
    ));
    let terminal = if status == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    frames.push(ev.next(terminal, &json!({ "response": final_response })));

    // The error event and `response.failed` take the place of the rest of the stream, so
    // their sequence numbers continue from the frames sent before them.
    let at = frames.stop_index(ctx.behavior.cut_after_chunks.unwrap_or(1)) as u64;
    ctx.stream(SSE, frames, move || {
        let mut out = event(
            "error",
            at,
            &json!({
                "error": {
                    "type": "server_error",
                    "code": "server_error",
                    "message": message,
                    "param": null,
                },
                // openai-python's `ResponseErrorEvent` type has them at the top level.
                "code": "server_error",
                "message": message,
                "param": null,
            }),
        )
        .to_vec();
        out.extend_from_slice(&event(
            "response.failed",
            at + 1,
            &json!({ "response": failed_response.unwrap_or(Value::Null) }),
        ));
        Bytes::from(out)
    })
}

fn previous_not_found(ctx: &Ctx, id: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        ctx.id,
        &openai_error_body(
            &format!("Previous response with id '{}' not found.", quoted(id)),
            "invalid_request_error",
            Some("previous_response_id"),
            Some("previous_response_not_found"),
        ),
    )
}

fn not_found(ctx: &Ctx, id: &str) -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        ctx.id,
        &openai_error_body(
            &format!("Response with id '{}' not found.", quoted(id)),
            "invalid_request_error",
            None,
            None,
        ),
    )
}

/// The id in `/v1/responses/{id}`.
pub(crate) fn path_id(path: &str) -> &str {
    path.strip_prefix("/v1/responses/").unwrap_or_default()
}

/// `GET /v1/responses/{id}`.
pub(crate) fn retrieve(ctx: &Ctx, path: &str) -> Response<Body> {
    let id = path_id(path);
    let stored = lock(&ctx.state.responses)
        .get(id)
        .map(|s| s.response.clone());
    match stored {
        Some(response) => ctx.json(&response),
        None => not_found(ctx, id),
    }
}

/// `DELETE /v1/responses/{id}`.
pub(crate) fn delete(ctx: &Ctx, path: &str) -> Response<Body> {
    let id = path_id(path);
    if lock(&ctx.state.responses).remove(id) {
        ctx.json(&json!({ "id": id, "object": "response.deleted", "deleted": true }))
    } else {
        not_found(ctx, id)
    }
}

/// A stored response by id (for [`crate::MockUpstream::stored_response`]).
pub(crate) fn stored(state: &State, id: &str) -> Option<Value> {
    lock(&state.responses).get(id).map(|s| s.response.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: u64) -> Stored {
        Stored {
            response: json!({ "n": n }),
            context_tokens: n,
            user_text: String::new(),
        }
    }

    #[test]
    fn store_is_bounded_and_evicts_the_oldest() {
        let mut s = ResponseStore::new(2);
        s.insert("a".into(), stored(1));
        s.insert("b".into(), stored(2));
        s.insert("c".into(), stored(3));
        assert_eq!(s.len(), 2);
        assert!(s.get("a").is_none());
        assert_eq!(s.get("c").map(|x| x.context_tokens), Some(3));
        assert!(s.remove("b"));
        assert!(!s.remove("b"));
        s.insert("d".into(), stored(4));
        s.insert("e".into(), stored(5));
        assert!(s.get("c").is_none());
        assert_eq!(s.len(), 2);
        let mut none = ResponseStore::new(0);
        none.insert("a".into(), stored(1));
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn events_put_type_and_sequence_first() {
        let e = event("response.x", 7, &json!({ "b": 1, "a": "z" }));
        assert_eq!(
            e,
            "event: response.x\ndata: {\"type\":\"response.x\",\"sequence_number\":7,\"a\":\"z\",\"b\":1}\n\n"
        );
        let e = event("response.y", 0, &json!({}));
        assert_eq!(
            e,
            "event: response.y\ndata: {\"type\":\"response.y\",\"sequence_number\":0}\n\n"
        );
    }

    #[test]
    fn input_words_and_user_text() {
        let mut input = Input::default();
        input.add(&json!("be brief"), "instructions").unwrap();
        input
            .add(
                &json!([
                    { "role": "user", "content": "one two three" },
                    { "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": "four five" }] },
                    { "type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"q\":\"x y\"}" },
                    { "type": "function_call_output", "call_id": "c", "output": "six seven eight" },
                ]),
                "input",
            )
            .unwrap();
        assert_eq!(input.words, 2 + 3 + 2 + 3);
        assert_eq!(input.user_text.as_deref(), Some("one two three"));
        assert_eq!(input.last_user, None);
        let err = Input::default()
            .add(&json!([{ "role": "user", "content": "x" }, 5]), "input")
            .unwrap_err();
        assert_eq!(err.0, "input[1]");
        let err = Input::default().add(&json!(5), "input").unwrap_err();
        assert_eq!(err.0, "input");
        let err = Input::default()
            .add(&json!([{ "content": "x" }]), "input")
            .unwrap_err();
        assert_eq!(err.0, "input[0].type");
        let err = Input::default()
            .add(&json!([{ "type": "message", "content": "x" }]), "input")
            .unwrap_err();
        assert_eq!(err.0, "input[0].role");
    }
}
