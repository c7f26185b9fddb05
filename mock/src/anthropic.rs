//! The Anthropic dialect: messages (stream and non-stream), token counting, models.

use axum::body::Body;
use axum::http::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::answer::{Ctx, Dialect, anthropic_error_body};
use super::reply::{self, ReplyRequest, esc};
use super::stream::Frames;

const SSE: &str = "text/event-stream; charset=utf-8";

fn event(name: &str, data: &str) -> Bytes {
    let mut s = String::with_capacity(name.len() + data.len() + 16);
    s.push_str("event: ");
    s.push_str(name);
    s.push_str("\ndata: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

fn has_cache_control(block: &Value) -> bool {
    block.get("cache_control").is_some_and(|c| !c.is_null())
}

/// Input words and cache accounting of a request.
struct Prompt {
    /// All input words.
    total: u64,
    /// Words up to and including the last block with `cache_control`.
    cached: u64,
    has_cache_control: bool,
    /// The system prompt text (the cache key is its hash).
    system: String,
}

fn prompt(body: &Value, messages: &[Value]) -> Prompt {
    let mut p = Prompt {
        total: 0,
        cached: 0,
        has_cache_control: body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| tools.iter().any(has_cache_control)),
        system: String::new(),
    };
    match body.get("system") {
        Some(Value::String(s)) => {
            p.total += reply::words(s);
            p.system.push_str(s);
        }
        Some(Value::Array(blocks)) => {
            for block in blocks {
                p.total += reply::block_words(block, true);
                if let Some(text) = block.get("text").and_then(Value::as_str) {
                    if !p.system.is_empty() {
                        p.system.push('\n');
                    }
                    p.system.push_str(text);
                }
                if has_cache_control(block) {
                    p.has_cache_control = true;
                    p.cached = p.total;
                }
            }
        }
        _ => {}
    }
    for message in messages {
        match message.get("content") {
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    p.total += reply::block_words(block, true);
                    if has_cache_control(block) {
                        p.has_cache_control = true;
                        p.cached = p.total;
                    }
                }
            }
            Some(content) => p.total += reply::count_words(content, true),
            None => {}
        }
    }
    p
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// Text blocks of a message, tool results excluded (for the `call tool NAME` trigger).
fn own_text(message: &Value) -> String {
    let mut out = String::new();
    if let Some(content) = message.get("content") {
        reply::push_text(content, &mut out, false);
    }
    out
}

pub(crate) fn messages(ctx: &Ctx, body: &Value) -> Response<Body> {
    if ctx.model.is_empty() {
        return Dialect::Anthropic.invalid(ctx.id, None, "model: Field required");
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Dialect::Anthropic.invalid(ctx.id, None, "messages: Field required");
    };
    let Some(max_tokens) = body.get("max_tokens").and_then(Value::as_u64) else {
        return Dialect::Anthropic.invalid(ctx.id, None, "max_tokens: Field required");
    };
    let prompt = prompt(body, messages);
    let b = &ctx.behavior;
    let (cache_read, cache_write) = if b.cache_read.is_some() || b.cache_write.is_some() {
        (b.cache_read.unwrap_or(0), b.cache_write.unwrap_or(0))
    } else if prompt.has_cache_control {
        if ctx.cache_first_seen(reply::fnv1a(prompt.system.as_bytes())) {
            (0, prompt.cached)
        } else {
            (prompt.cached, 0)
        }
    } else {
        (0, 0)
    };
    let input = prompt.total.saturating_sub(cache_read + cache_write);

    let last_user = messages.iter().rev().find(|m| role(m) == Some("user"));
    let mut user_text = String::new();
    if let Some(content) = last_user.and_then(|m| m.get("content")) {
        reply::push_text(content, &mut user_text, true);
    }
    let has_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    // The last turn, passing over `role: "system"` entries: Claude Code (2.1.x) appends its
    // environment and reminders as a mid-conversation system message after the user's prompt.
    let trigger = match messages.iter().rev().find(|m| role(m) != Some("system")) {
        Some(last) if has_tools && role(last) == Some("user") => {
            reply::tool_trigger(&own_text(last))
        }
        _ => None,
    };
    let reply = reply::build(
        &ReplyRequest {
            user_text: &user_text,
            trigger,
            max_tokens: Some(max_tokens),
            stop: reply::stop_list(body.get("stop_sequences")),
            fim: false,
        },
        b,
    );
    let thinking = (body.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled"))
        .then(|| {
            let text = format!(
                "mock thinking: {}",
                reply::first_words(&user_text, reply::ECHO_WORDS)
            );
            let signature = format!("mock-signature-{:016x}", reply::fnv1a(text.as_bytes()));
            (text, signature)
        });
    let output = reply.words
        + reply.tool.as_ref().map_or(0, |t| t.words)
        + thinking.as_ref().map_or(0, |(t, _)| reply::words(t));
    let id = format!("msg_mock_{}", ctx.id);
    let tool_id = format!("toolu_mock_{}", ctx.id);
    let stop_reason = reply.finish.anthropic();
    let stop_sequence = reply.finish.stop_sequence();
    let with_text = reply.tool.is_none() || !reply.content.is_empty();

    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let mut content = Vec::with_capacity(3);
        if let Some((text, signature)) = &thinking {
            content.push(json!({ "type": "thinking", "thinking": text, "signature": signature }));
        }
        if with_text {
            content.push(json!({ "type": "text", "text": reply.content.text() }));
        }
        if let Some(tool) = &reply.tool {
            let input: Value =
                serde_json::from_str(&tool.arguments).unwrap_or_else(|_| Value::Object(Map::new()));
            content.push(
                json!({ "type": "tool_use", "id": tool_id, "name": tool.name, "input": input }),
            );
        }
        return ctx.json(&json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": ctx.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": input,
                "output_tokens": output,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
            },
        }));
    }

    let mut frames = Frames::with_capacity(16);
    let start = json!({
        "type": "message_start",
        "message": {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": ctx.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {
                "input_tokens": input,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
                "output_tokens": 1,
            },
        },
    });
    frames.push(event("message_start", &start.to_string()));
    let mut index = 0u32;
    let mut pinged = false;
    let mut block_start = |frames: &mut Frames, index: u32, block: &Value| {
        frames.push(event(
            "content_block_start",
            &json!({ "type": "content_block_start", "index": index, "content_block": block })
                .to_string(),
        ));
        if !pinged {
            frames.push(event("ping", "{\"type\":\"ping\"}"));
            pinged = true;
        }
    };
    let block_delta = |index: u32, delta: &str| {
        event(
            "content_block_delta",
            &format!("{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{delta}}}"),
        )
    };
    let block_stop = |index: u32| {
        event(
            "content_block_stop",
            &format!("{{\"type\":\"content_block_stop\",\"index\":{index}}}"),
        )
    };
    if let Some((text, signature)) = &thinking {
        block_start(
            &mut frames,
            index,
            &json!({ "type": "thinking", "thinking": "", "signature": "" }),
        );
        let words: Vec<&str> = text.split_whitespace().collect();
        for piece in reply::group(&words, words.len()) {
            frames.delta(block_delta(
                index,
                &format!(
                    "{{\"type\":\"thinking_delta\",\"thinking\":{}}}",
                    esc(&piece)
                ),
            ));
        }
        frames.push(block_delta(
            index,
            &format!(
                "{{\"type\":\"signature_delta\",\"signature\":{}}}",
                esc(signature)
            ),
        ));
        frames.push(block_stop(index));
        index += 1;
    }
    if with_text {
        block_start(&mut frames, index, &json!({ "type": "text", "text": "" }));
        frames.mark_content();
        frames.content(&reply.content, |piece| {
            block_delta(
                index,
                &format!("{{\"type\":\"text_delta\",\"text\":{}}}", esc(piece)),
            )
        });
        frames.push(block_stop(index));
        index += 1;
    }
    if let Some(tool) = &reply.tool {
        block_start(
            &mut frames,
            index,
            &json!({ "type": "tool_use", "id": tool_id, "name": tool.name, "input": {} }),
        );
        frames.mark_content();
        for fragment in tool.fragments(b.chunks) {
            frames.delta(block_delta(
                index,
                &format!(
                    "{{\"type\":\"input_json_delta\",\"partial_json\":{}}}",
                    esc(fragment)
                ),
            ));
        }
        frames.push(block_stop(index));
    }
    let delta = json!({
        "type": "message_delta",
        "delta": { "stop_reason": stop_reason, "stop_sequence": stop_sequence },
        "usage": { "output_tokens": output },
    });
    frames.push(event("message_delta", &delta.to_string()));
    frames.push(event("message_stop", "{\"type\":\"message_stop\"}"));
    let message = b.message.clone().unwrap_or_else(|| "Overloaded".to_owned());
    ctx.stream(SSE, frames, move || {
        event(
            "error",
            &anthropic_error_body("overloaded_error", &message).to_string(),
        )
    })
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}` where N is what `/v1/messages`
/// reports for the same body as `input_tokens + cache_creation_input_tokens +
/// cache_read_input_tokens`: the words of the system prompt and of every message's text
/// (tool results included; images, `tool_use` blocks and tool definitions count nothing), so
/// a test predicts it from the text alone and it agrees with the messages endpoint. Needs
/// `model` and `messages` (`max_tokens` is not needed, as at Anthropic).
pub(crate) fn count_tokens(ctx: &Ctx, body: &Value) -> Response<Body> {
    if ctx.model.is_empty() {
        return Dialect::Anthropic.invalid(ctx.id, None, "model: Field required");
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Dialect::Anthropic.invalid(ctx.id, None, "messages: Field required");
    };
    ctx.json(&json!({ "input_tokens": prompt(body, messages).total }))
}

/// `GET /v1/models` with `anthropic-version`.
pub(crate) fn models(ctx: &Ctx) -> Response<Body> {
    let data: Vec<Value> = ctx
        .models()
        .iter()
        .map(|m| {
            json!({ "type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z" })
        })
        .collect();
    ctx.json(&json!({
        "data": data,
        "has_more": false,
        "first_id": ctx.models().first(),
        "last_id": ctx.models().last(),
    }))
}
