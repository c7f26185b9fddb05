//! Relaying a streamed response event by event: passed through when the caller and the
//! upstream speak the same dialect (observing usage, finish reason and tool calls, and dropping
//! the usage-only chunk the gateway asked for on the caller's behalf), translated otherwise.

use bytes::Bytes;
use serde_json::Value;

use crate::errors::Dialect;
use crate::sse::SseEvent;
use crate::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};
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

    /// Processes one upstream event, returning the bytes to send to the caller.
    pub fn on_event(&mut self, ev: &SseEvent) -> Vec<Bytes> {
        match self {
            Self::OpenAi {
                caller_wants_usage,
                seen,
            } => {
                if ev.data.trim() == "[DONE]" {
                    seen.terminal = true;
                    seen.done_sent = true;
                    return vec![ev.to_bytes()];
                }
                let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                    return vec![ev.to_bytes()];
                };
                observe_openai(&v, seen);
                let usage_only = v
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
                    && v.get("usage").is_some_and(|u| !u.is_null());
                if usage_only && !*caller_wants_usage {
                    return Vec::new();
                }
                vec![ev.to_bytes()]
            }
            Self::Anthropic { seen } => {
                observe_anthropic(ev, seen);
                vec![ev.to_bytes()]
            }
            Self::ToOpenAi(t, seen) => {
                observe_anthropic(ev, seen);
                match t.on_event(ev) {
                    Ok(out) => {
                        seen.done_sent |= out.iter().any(|e| e.data.trim() == "[DONE]");
                        out.iter().map(SseEvent::to_bytes).collect()
                    }
                    Err(e) => {
                        seen.error_event = Some(e.to_string());
                        Vec::new()
                    }
                }
            }
            Self::ToAnthropic(t, seen) => {
                if ev.data.trim() == "[DONE]" {
                    seen.terminal = true;
                } else if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                    observe_openai(&v, seen);
                }
                match t.on_event(ev) {
                    Ok(out) => out.iter().map(SseEvent::to_bytes).collect(),
                    Err(e) => {
                        seen.error_event = Some(e.to_string());
                        Vec::new()
                    }
                }
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
            Self::ToAnthropic(t, _) if complete => {
                t.finish().iter().map(SseEvent::to_bytes).collect()
            }
            // An upstream error event ends an OpenAI-dialect stream: close it with `[DONE]` as
            // the gateway's own error frames do, so client loops end.
            Self::OpenAi { seen, .. } | Self::ToOpenAi(_, seen)
                if seen.error_event.is_some() && !seen.done_sent =>
            {
                seen.done_sent = true;
                vec![SseEvent::data("[DONE]").to_bytes()]
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
            | Self::ToAnthropic(_, seen) => seen,
        }
    }
}

fn observe_openai(v: &Value, seen: &mut Observed) {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        seen.error_event = Some(
            e.get("message")
                .and_then(Value::as_str)
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

fn observe_anthropic(ev: &SseEvent, seen: &mut Observed) {
    let name = ev.event.as_deref().unwrap_or_default();
    let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
        return;
    };
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
                    .unwrap_or("error event")
                    .to_owned(),
            );
            seen.terminal = true;
        }
        _ => {}
    }
}
