//! Relaying a streamed response event by event: passed through when the caller and the
//! upstream speak the same dialect (observing usage, finish reason and tool calls, and dropping
//! the usage-only chunk the gateway asked for on the caller's behalf), translated otherwise.
//! A Responses API caller gets its native stream relayed ([`Relay::Responses`]) or a chat
//! (or Anthropic) stream translated ([`Relay::ToResponses`]).

use bytes::Bytes;
use serde_json::Value;
use switchyard_routing::Dialect;

use crate::sse::SseEvent;
use crate::translate::{AnthropicToOpenAiStream, ChatToResponsesStream, OpenAiToAnthropicStream};
use crate::usage::Usage;

/// What a relay saw of the stream.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Usage reported by the upstream.
    pub usage: Option<Usage>,
    /// Finish / stop reason.
    pub finish_reason: Option<String>,
    /// Tool calls (id, name).
    pub tool_calls: Vec<(String, String)>,
    /// The stream reached its proper end (`[DONE]`, `message_stop`) or an error event.
    pub terminal: bool,
    /// An error event arrived inside the stream.
    pub error_event: Option<String>,
    /// Bytes of generated text seen (for estimating usage when the caller leaves early).
    pub content_bytes: usize,
    /// `data: [DONE]` was sent to an OpenAI-dialect caller.
    pub done_sent: bool,
}

/// A relay for one stream.
#[derive(Debug)]
pub enum Relay {
    /// OpenAI → OpenAI.
    OpenAi {
        /// Whether the caller asked for the usage chunk itself.
        caller_wants_usage: bool,
        /// Observations.
        seen: Observed,
    },
    /// Anthropic → Anthropic.
    Anthropic {
        /// Observations.
        seen: Observed,
    },
    /// Anthropic upstream, OpenAI caller.
    ToOpenAi(Box<AnthropicToOpenAiStream>, Observed),
    /// OpenAI upstream, Anthropic caller.
    ToAnthropic(Box<OpenAiToAnthropicStream>, Observed),
    /// OpenAI Responses upstream (OpenAI proper), Responses caller: relayed as it comes.
    Responses {
        /// Observations.
        seen: Observed,
        /// The final response object (`response.completed` / `response.incomplete`).
        response: Option<Value>,
    },
    /// Chat completions upstream (or Anthropic, through its chat translation first),
    /// Responses caller.
    ToResponses {
        /// Anthropic → chat, for an Anthropic upstream.
        anthropic: Option<Box<AnthropicToOpenAiStream>>,
        /// Chat → Responses.
        responses: Box<ChatToResponsesStream>,
        /// Observations.
        seen: Observed,
    },
}

impl Relay {
    /// A relay between `caller` and `upstream` dialects.
    pub fn new(caller: Dialect, upstream: Dialect, model: &str, caller_wants_usage: bool) -> Self {
        match (caller, upstream) {
            (Dialect::OpenAi, Dialect::OpenAi) => Self::OpenAi {
                caller_wants_usage,
                seen: Observed::default(),
            },
            (Dialect::Anthropic, Dialect::Anthropic) => Self::Anthropic {
                seen: Observed::default(),
            },
            (Dialect::OpenAi, Dialect::Anthropic) => Self::ToOpenAi(
                Box::new(AnthropicToOpenAiStream::new(model, caller_wants_usage)),
                Observed::default(),
            ),
            (Dialect::Anthropic, Dialect::OpenAi) => Self::ToAnthropic(
                Box::new(OpenAiToAnthropicStream::new(model)),
                Observed::default(),
            ),
        }
    }

    /// A relay for a Responses API caller: `native` relays an OpenAI Responses stream; else the
    /// `upstream` dialect's chat (or Anthropic) stream becomes the Responses events of
    /// `response_id`, echoing the caller's request `req`.
    pub fn responses(
        upstream: Dialect,
        native: bool,
        model: &str,
        response_id: &str,
        req: &Value,
    ) -> Self {
        if native {
            return Self::Responses {
                seen: Observed::default(),
                response: None,
            };
        }
        Self::ToResponses {
            // The usage chunk is asked for: the Responses stream ends with usage.
            anthropic: (upstream == Dialect::Anthropic)
                .then(|| Box::new(AnthropicToOpenAiStream::new(model, true))),
            responses: Box::new(ChatToResponsesStream::new(response_id, model, req)),
            seen: Observed::default(),
        }
    }

    /// The final response object of a Responses stream that completed (or ended incomplete),
    /// for the response store; `None` for other streams and failed responses.
    pub fn final_response(&self) -> Option<Value> {
        match self {
            Self::Responses { response, .. } => response.clone(),
            Self::ToResponses { responses, .. } if responses.saw_terminal() => {
                let r = responses.response();
                (r.get("status").and_then(Value::as_str) != Some("failed")).then_some(r)
            }
            _ => None,
        }
    }

    /// The caller's last event when the gateway ends a broken stream with `error` (nothing
    /// follows it): a Responses caller gets `response.failed` (translated streams) or an
    /// `error` event (native streams), other callers the error frame of `dialect`.
    pub fn error_frame(&mut self, error: &crate::errors::ApiError, dialect: Dialect) -> Vec<Bytes> {
        match self {
            Self::ToResponses { responses, .. } if !responses.saw_terminal() => {
                let chunk = serde_json::json!({
                    "error": {"code": "server_error", "message": error.message}
                });
                responses
                    .on_event(&SseEvent::data(chunk.to_string()))
                    .unwrap_or_default()
                    .iter()
                    .map(SseEvent::to_bytes)
                    .collect()
            }
            Self::ToResponses { .. } => Vec::new(),
            // https://platform.openai.com/docs/api-reference/responses-streaming/error
            Self::Responses { .. } => vec![
                SseEvent::named(
                    "error",
                    serde_json::json!({
                        "type": "error",
                        "code": "server_error",
                        "message": error.message,
                        "param": null,
                    })
                    .to_string(),
                )
                .to_bytes(),
            ],
            _ => vec![error.sse_frame(dialect)],
        }
    }

    /// Processes one upstream event (credentials already scrubbed), returning the bytes to send
    /// to the caller. An upstream error event is relayed as one well-formed error event of the
    /// caller's dialect and ends the stream ([`Observed::terminal`]): nothing follows it.
    ///
    /// # Errors
    /// The event is not one of the upstream's dialect (data that is not JSON, a chunk without
    /// `choices`, an Anthropic event without `type`, a translation that cannot go on): the
    /// stream is broken and must end with the gateway's own error event.
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<Bytes>, String> {
        if self.observed().terminal {
            return Ok(Vec::new());
        }
        if ev.data.trim().is_empty() {
            // A keep-alive or an event without data: nothing to relay.
            return Ok(Vec::new());
        }
        match self {
            Self::OpenAi {
                caller_wants_usage,
                seen,
            } => {
                if ev.is_done() {
                    seen.terminal = true;
                    seen.done_sent = true;
                    return Ok(vec![ev.to_bytes()]);
                }
                let v = openai_chunk(ev)?;
                observe_openai(&v, seen);
                if seen.error_event.is_some() {
                    return Ok(vec![openai_error_frame(&v, seen)]);
                }
                let usage_only = v
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
                    && v.get("usage").is_some_and(|u| !u.is_null());
                if usage_only && !*caller_wants_usage {
                    return Ok(Vec::new());
                }
                Ok(vec![ev.to_bytes()])
            }
            Self::Anthropic { seen } => {
                let v = anthropic_event(ev)?;
                observe_anthropic(ev, &v, seen);
                if seen.error_event.is_some() {
                    return Ok(vec![anthropic_error_frame(&v, seen)]);
                }
                Ok(vec![ev.to_bytes()])
            }
            Self::ToOpenAi(t, seen) => {
                let v = anthropic_event(ev)?;
                observe_anthropic(ev, &v, seen);
                let out = t.on_event(ev).map_err(|e| e.to_string())?;
                seen.done_sent |= out.iter().any(SseEvent::is_done);
                Ok(out.iter().map(SseEvent::to_bytes).collect())
            }
            Self::ToAnthropic(t, seen) => {
                if ev.is_done() {
                    seen.terminal = true;
                } else {
                    observe_openai(&openai_chunk(ev)?, seen);
                }
                let out = t.on_event(ev).map_err(|e| e.to_string())?;
                Ok(out.iter().map(SseEvent::to_bytes).collect())
            }
            Self::Responses { seen, response } => {
                let v: Value = serde_json::from_str(&ev.data)
                    .map_err(|e| format!("a stream event is not JSON ({e})"))?;
                if !v.get("type").is_some_and(Value::is_string) {
                    return Err("a stream event has no `type`".to_owned());
                }
                if let Some(r) = observe_responses(&v, seen) {
                    *response = Some(r);
                }
                Ok(vec![ev.to_bytes()])
            }
            Self::ToResponses {
                anthropic,
                responses,
                seen,
            } => {
                let chat_events = match anthropic {
                    Some(a) => {
                        let v = anthropic_event(ev)?;
                        observe_anthropic(ev, &v, seen);
                        a.on_event(ev).map_err(|e| e.to_string())?
                    }
                    None => {
                        if ev.is_done() {
                            seen.terminal = true;
                        } else {
                            observe_openai(&openai_chunk(ev)?, seen);
                        }
                        vec![ev.clone()]
                    }
                };
                let mut out = Vec::new();
                for c in &chat_events {
                    out.extend(responses.on_event(c).map_err(|e| e.to_string())?);
                }
                seen.terminal |= responses.saw_terminal();
                Ok(out.iter().map(SseEvent::to_bytes).collect())
            }
        }
    }

    /// Called when the upstream body ended. A stream whose generation finished (a finish or
    /// stop reason arrived) but that lacks its closing frame is completed (held Anthropic events
    /// flushed); true is returned when the stream counts as complete.
    pub fn finish(&mut self) -> (Vec<Bytes>, bool) {
        let complete = {
            let seen = self.observed();
            seen.terminal || seen.finish_reason.is_some()
        };
        let out = match self {
            Self::ToAnthropic(t, seen) if complete && seen.error_event.is_none() => {
                t.finish().iter().map(SseEvent::to_bytes).collect()
            }
            Self::ToResponses {
                responses, seen, ..
            } if complete && seen.error_event.is_none() => {
                responses.finish().iter().map(SseEvent::to_bytes).collect()
            }
            _ => Vec::new(),
        };
        (out, complete)
    }

    /// What was observed.
    pub fn observed(&self) -> &Observed {
        match self {
            Self::OpenAi { seen, .. }
            | Self::Anthropic { seen }
            | Self::ToOpenAi(_, seen)
            | Self::ToAnthropic(_, seen)
            | Self::Responses { seen, .. }
            | Self::ToResponses { seen, .. } => seen,
        }
    }
}

fn observe_openai(v: &Value, seen: &mut Observed) {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        seen.error_event = Some(
            e.get("message")
                .and_then(Value::as_str)
                .or_else(|| e.as_str())
                .unwrap_or("error event")
                .to_owned(),
        );
        seen.terminal = true;
        return;
    }
    if let Some(u) = v
        .get("usage")
        .filter(|u| !u.is_null())
        .and_then(Usage::from_openai)
    {
        seen.usage = Some(u);
    }
    let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
        return;
    };
    if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
        seen.finish_reason = Some(r.to_owned());
    }
    let delta = choice.get("delta");
    if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str) {
        seen.content_bytes += text.len();
    }
    if let Some(text) = choice.get("text").and_then(Value::as_str) {
        seen.content_bytes += text.len();
    }
    for call in delta
        .and_then(|d| d.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(name)) = (
            call.get("id").and_then(Value::as_str),
            call.pointer("/function/name").and_then(Value::as_str),
        ) {
            seen.tool_calls.push((id.to_owned(), name.to_owned()));
        }
        if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
            seen.content_bytes += args.len();
        }
    }
}

/// Observes a Responses stream event; the final response object when the event ends the
/// response well (`response.completed`, `response.incomplete`). Event shapes: openai-python
/// `src/openai/types/responses/response_stream_event.py`.
fn observe_responses(v: &Value, seen: &mut Observed) -> Option<Value> {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "response.output_text.delta"
        | "response.refusal.delta"
        | "response.function_call_arguments.delta"
        | "response.reasoning_summary_text.delta"
        | "response.reasoning_text.delta" => {
            if let Some(d) = v.get("delta").and_then(Value::as_str) {
                seen.content_bytes += d.len();
            }
            None
        }
        "response.output_item.done" => {
            let item = v.get("item");
            if item.and_then(|i| i.get("type")).and_then(Value::as_str) == Some("function_call")
                && let (Some(id), Some(name)) = (
                    item.and_then(|i| i.get("call_id")).and_then(Value::as_str),
                    item.and_then(|i| i.get("name")).and_then(Value::as_str),
                )
            {
                seen.tool_calls.push((id.to_owned(), name.to_owned()));
            }
            None
        }
        "response.completed" | "response.incomplete" => {
            let response = v.get("response").cloned().unwrap_or(Value::Null);
            if let Some(u) = response.get("usage").and_then(Usage::from_openai) {
                seen.usage = Some(u);
            }
            seen.finish_reason = Some(
                response
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or(if kind == "response.completed" {
                        "completed"
                    } else {
                        "incomplete"
                    })
                    .to_owned(),
            );
            seen.terminal = true;
            response.is_object().then_some(response)
        }
        "response.failed" => {
            seen.error_event = Some(
                v.pointer("/response/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the response failed")
                    .to_owned(),
            );
            seen.terminal = true;
            None
        }
        "error" => {
            seen.error_event = Some(
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error event")
                    .to_owned(),
            );
            seen.terminal = true;
            None
        }
        _ => None,
    }
}

fn observe_anthropic(ev: &SseEvent, v: &Value, seen: &mut Observed) {
    let name = ev.event.as_deref().unwrap_or_default();
    let kind = if name.is_empty() {
        v.get("type").and_then(Value::as_str).unwrap_or_default()
    } else {
        name
    };
    match kind {
        "message_start" => {
            if let Some(u) = v.pointer("/message/usage").and_then(Usage::from_anthropic) {
                let mut total = seen.usage.unwrap_or_default();
                total.merge(u);
                seen.usage = Some(total);
            }
        }
        "content_block_start" => {
            let block = v.get("content_block");
            if block.and_then(|b| b.get("type")).and_then(Value::as_str) == Some("tool_use")
                && let (Some(id), Some(n)) = (
                    block.and_then(|b| b.get("id")).and_then(Value::as_str),
                    block.and_then(|b| b.get("name")).and_then(Value::as_str),
                )
            {
                seen.tool_calls.push((id.to_owned(), n.to_owned()));
            }
        }
        "content_block_delta" => {
            let d = v.get("delta");
            for field in ["text", "partial_json", "thinking"] {
                if let Some(t) = d.and_then(|d| d.get(field)).and_then(Value::as_str) {
                    seen.content_bytes += t.len();
                }
            }
        }
        "message_delta" => {
            if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                seen.finish_reason = Some(r.to_owned());
            }
            if let Some(u) = v.get("usage").and_then(Usage::from_anthropic) {
                let mut total = seen.usage.unwrap_or_default();
                total.merge(u);
                seen.usage = Some(total);
            }
        }
        "message_stop" => seen.terminal = true,
        "error" => {
            seen.error_event = Some(
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .or_else(|| v.get("error").and_then(Value::as_str))
                    .unwrap_or("error event")
                    .to_owned(),
            );
            seen.terminal = true;
        }
        _ => {}
    }
}

/// An OpenAI-dialect chunk: a JSON object with a `choices` array, or an error.
fn openai_chunk(ev: &SseEvent) -> Result<Value, String> {
    let v: Value =
        serde_json::from_str(&ev.data).map_err(|e| format!("a stream event is not JSON ({e})"))?;
    let valid = v.get("error").is_some_and(|e| !e.is_null())
        || v.get("choices").is_some_and(Value::is_array);
    if valid {
        Ok(v)
    } else {
        Err("a stream chunk has no `choices` array".to_owned())
    }
}

/// An Anthropic event: a JSON object with a `type`.
fn anthropic_event(ev: &SseEvent) -> Result<Value, String> {
    let v: Value =
        serde_json::from_str(&ev.data).map_err(|e| format!("a stream event is not JSON ({e})"))?;
    if v.get("type").is_some_and(Value::is_string) {
        Ok(v)
    } else {
        Err("a stream event has no `type`".to_owned())
    }
}

/// The upstream's error event as relayed: as it came when it has the dialect's shape, else the
/// gateway's own error event with its message.
fn openai_error_frame(v: &Value, seen: &Observed) -> Bytes {
    if v.pointer("/error/message").is_some_and(Value::is_string) {
        return SseEvent::data(v.to_string()).to_bytes();
    }
    upstream_error(seen).sse_frame(Dialect::OpenAi)
}

fn anthropic_error_frame(v: &Value, seen: &Observed) -> Bytes {
    if v.pointer("/error/message").is_some_and(Value::is_string)
        && v.pointer("/error/type").is_some_and(Value::is_string)
    {
        return SseEvent::named("error", v.to_string()).to_bytes();
    }
    upstream_error(seen).sse_frame(Dialect::Anthropic)
}

fn upstream_error(seen: &Observed) -> crate::errors::ApiError {
    crate::errors::ApiError::new(
        crate::errors::ErrorKind::Upstream,
        seen.error_event.clone().unwrap_or_default(),
    )
}
