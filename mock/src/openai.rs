//! The OpenAI dialect: chat completions, legacy completions (and FIM), embeddings, models.

use axum::body::Body;
use axum::http::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::answer::{Ctx, Dialect, openai_error_body, unix_now};
use super::reply::{self, Reply, ReplyRequest, esc};
use super::stream::Frames;

const SSE: &str = "text/event-stream; charset=utf-8";
const DONE: &[u8] = b"data: [DONE]\n\n";

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

fn usage(input: u64, output: u64, cached: u64) -> Value {
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
        "prompt_tokens_details": { "cached_tokens": cached },
        "completion_tokens_details": { "reasoning_tokens": 0 },
    })
}

fn include_usage(body: &Value) -> bool {
    body.pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn max_tokens(body: &Value) -> Option<u64> {
    body.get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
}

fn error_frame(message: Option<&str>) -> Bytes {
    let body = openai_error_body(
        message.unwrap_or("mock upstream: overloaded"),
        "server_error",
        None,
        None,
    );
    Bytes::from(format!("data: {body}\n\n"))
}

/// Frames `data: {<prefix>…}` chunks sharing id, created and model.
struct Chunks {
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`
    prefix: String,
    /// `,"usage":null` when usage was asked for, else empty.
    usage_null: &'static str,
}

impl Chunks {
    fn new(object: &str, id: &str, model: &str, with_usage: bool) -> Self {
        let mut prefix = String::with_capacity(128 + model.len());
        prefix.push_str("data: {\"id\":\"");
        prefix.push_str(id);
        prefix.push_str("\",\"object\":\"");
        prefix.push_str(object);
        prefix.push_str("\",\"created\":");
        prefix.push_str(&unix_now().to_string());
        prefix.push_str(",\"model\":");
        prefix.push_str(&esc(model));
        if object == "chat.completion.chunk" {
            prefix.push_str(",\"system_fingerprint\":\"fp_mock\"");
        }
        prefix.push_str(",\"choices\":[");
        Chunks {
            prefix,
            usage_null: if with_usage { ",\"usage\":null" } else { "" },
        }
    }

    /// A chunk whose single choice is `choice` (a JSON object body without braces).
    fn choice(&self, choice: &str) -> Bytes {
        let mut s = String::with_capacity(self.prefix.len() + choice.len() + 32);
        s.push_str(&self.prefix);
        s.push('{');
        s.push_str(choice);
        s.push_str("}]");
        s.push_str(self.usage_null);
        s.push_str("}\n\n");
        Bytes::from(s)
    }

    /// A chat chunk with `delta` and `finish_reason`.
    fn delta(&self, delta: &str, finish: Option<&str>) -> Bytes {
        let finish = finish.map_or_else(|| "null".to_owned(), |f| format!("\"{f}\""));
        self.choice(&format!(
            "\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}"
        ))
    }

    /// A legacy completion chunk with `text` (a JSON string literal).
    fn text(&self, text: &str, finish: Option<&str>) -> Bytes {
        let finish = finish.map_or_else(|| "null".to_owned(), |f| format!("\"{f}\""));
        self.choice(&format!(
            "\"text\":{text},\"index\":0,\"logprobs\":null,\"finish_reason\":{finish}"
        ))
    }

    /// The final `choices: []` chunk with usage.
    fn usage(&self, usage: &Value) -> Bytes {
        Bytes::from(format!("{}],\"usage\":{usage}}}\n\n", self.prefix))
    }
}

pub(crate) fn chat(ctx: &Ctx, body: &Value) -> Response<Body> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Dialect::OpenAi.invalid(
            ctx.id,
            Some("messages"),
            "'messages' is a required property",
        );
    };
    if ctx.model.is_empty() {
        return Dialect::OpenAi.invalid(ctx.id, Some("model"), "'model' is a required property");
    }
    let input: u64 = messages
        .iter()
        .map(|m| m.get("content").map_or(0, |c| reply::count_words(c, false)))
        .sum();
    // The conversation's last turn, passing over system/developer messages (instructions
    // between turns, as a gateway translates Claude Code's mid-conversation system entries).
    let turns = || {
        messages
            .iter()
            .rev()
            .filter(|m| !matches!(role(m), Some("system" | "developer")))
    };
    let mut user_text = String::new();
    if turns().next().is_some_and(|m| role(m) == Some("tool")) {
        // A tool-result turn is echoed like Anthropic's tool_result blocks: the trailing `tool`
        // messages' content, in order.
        let results: Vec<&Value> = turns().take_while(|m| role(m) == Some("tool")).collect();
        for content in results.iter().rev().filter_map(|m| m.get("content")) {
            reply::push_text(content, &mut user_text, false);
        }
    } else if let Some(content) = messages
        .iter()
        .rev()
        .find(|m| role(m) == Some("user"))
        .and_then(|m| m.get("content"))
    {
        reply::push_text(content, &mut user_text, false);
    }
    let has_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let last_is_user = turns().next().is_some_and(|m| role(m) == Some("user"));
    let trigger = (has_tools && last_is_user)
        .then(|| reply::tool_trigger(&user_text))
        .flatten();
    let reply = reply::build(
        &ReplyRequest {
            user_text: &user_text,
            trigger,
            max_tokens: max_tokens(body),
            stop: reply::stop_list(body.get("stop")),
            fim: false,
        },
        &ctx.behavior,
    );
    let output = reply.tool.as_ref().map_or(reply.words, |t| t.words);
    let usage = usage(input, output, ctx.behavior.cache_read.unwrap_or(0));
    let id = format!("chatcmpl-mock-{}", ctx.id);
    let tool_call_id = format!("call_mock_{}", ctx.id);

    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let message = match &reply.tool {
            Some(tool) => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": tool_call_id,
                    "type": "function",
                    "function": { "name": tool.name, "arguments": tool.arguments },
                }],
                "refusal": null,
            }),
            None => {
                json!({ "role": "assistant", "content": reply.content.text(), "refusal": null })
            }
        };
        return ctx.json(&json!({
            "id": id,
            "object": "chat.completion",
            "created": unix_now(),
            "model": ctx.model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": reply.finish.openai(),
            }],
            "usage": usage,
        }));
    }

    let with_usage = include_usage(body);
    let chunks = Chunks::new("chat.completion.chunk", &id, &ctx.model, with_usage);
    let mut frames = Frames::with_capacity(reply_frames(&reply) + 4);
    match &reply.tool {
        Some(tool) => {
            frames.push(chunks.delta(
                &format!(
                    "{{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{{\"index\":0,\"id\":\"{tool_call_id}\",\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":\"\"}}}}]}}",
                    esc(&tool.name)
                ),
                None,
            ));
            frames.mark_content();
            for fragment in tool.fragments(ctx.behavior.chunks) {
                frames.delta(chunks.delta(
                    &format!(
                        "{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":{}}}}}]}}",
                        esc(fragment)
                    ),
                    None,
                ));
            }
        }
        None => {
            frames.push(chunks.delta(
                "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}",
                None,
            ));
            frames.mark_content();
            frames.content(&reply.content, |piece| {
                chunks.delta(&format!("{{\"content\":{}}}", esc(piece)), None)
            });
        }
    }
    frames.push(chunks.delta("{}", Some(reply.finish.openai())));
    if with_usage {
        frames.push(chunks.usage(&usage));
    }
    frames.push(Bytes::from_static(DONE));
    ctx.stream(SSE, frames, || error_frame(ctx.behavior.message.as_deref()))
}

fn reply_frames(reply: &Reply) -> usize {
    match &reply.content {
        reply::Content::Pieces(p) => p.len(),
        reply::Content::Filler(n) => *n,
    }
}

/// Legacy `/v1/completions`; a request with `suffix` is fill-in-the-middle.
pub(crate) fn completions(ctx: &Ctx, body: &Value) -> Response<Body> {
    if ctx.model.is_empty() {
        return Dialect::OpenAi.invalid(ctx.id, Some("model"), "'model' is a required property");
    }
    let Some(prompt_value) = body.get("prompt") else {
        return Dialect::OpenAi.invalid(ctx.id, Some("prompt"), "'prompt' is a required property");
    };
    let mut prompt = String::new();
    reply::push_text(prompt_value, &mut prompt, false);
    let suffix = body.get("suffix").filter(|s| !s.is_null());
    let suffix_words = suffix.and_then(Value::as_str).map_or(0, reply::words);
    let input = reply::words(&prompt) + suffix_words;
    let reply = reply::build(
        &ReplyRequest {
            user_text: &prompt,
            trigger: None,
            max_tokens: body.get("max_tokens").and_then(Value::as_u64),
            stop: reply::stop_list(body.get("stop")),
            fim: suffix.is_some(),
        },
        &ctx.behavior,
    );
    let usage = usage(input, reply.words, ctx.behavior.cache_read.unwrap_or(0));
    let id = format!("cmpl-mock-{}", ctx.id);
    // A tool call has no meaning here.
    let finish = if reply.tool.is_some() {
        "stop"
    } else {
        reply.finish.openai()
    };

    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return ctx.json(&json!({
            "id": id,
            "object": "text_completion",
            "created": unix_now(),
            "model": ctx.model,
            "choices": [{
                "text": reply.content.text(),
                "index": 0,
                "logprobs": null,
                "finish_reason": finish,
            }],
            "usage": usage,
        }));
    }

    let with_usage = include_usage(body);
    let chunks = Chunks::new("text_completion", &id, &ctx.model, with_usage);
    let mut frames = Frames::with_capacity(reply_frames(&reply) + 3);
    frames.mark_content();
    frames.content(&reply.content, |piece| chunks.text(&esc(piece), None));
    frames.push(chunks.text("\"\"", Some(finish)));
    if with_usage {
        frames.push(chunks.usage(&usage));
    }
    frames.push(Bytes::from_static(DONE));
    ctx.stream(SSE, frames, || error_frame(ctx.behavior.message.as_deref()))
}

pub(crate) fn embeddings(ctx: &Ctx, body: &Value) -> Response<Body> {
    if ctx.model.is_empty() {
        return Dialect::OpenAi.invalid(ctx.id, Some("model"), "'model' is a required property");
    }
    // (text, tokens) per input.
    let inputs: Vec<(String, u64)> = match body.get("input") {
        Some(Value::String(s)) => vec![(s.clone(), reply::words(s))],
        Some(Value::Array(items)) if items.iter().all(Value::is_number) && !items.is_empty() => {
            vec![(token_text(items), items.len() as u64)]
        }
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push((s.clone(), reply::words(s))),
                    Value::Array(tokens) => out.push((token_text(tokens), tokens.len() as u64)),
                    _ => {
                        return Dialect::OpenAi.invalid(
                            ctx.id,
                            Some("input"),
                            "'input' items must be strings or token arrays",
                        );
                    }
                }
            }
            out
        }
        _ => {
            return Dialect::OpenAi.invalid(
                ctx.id,
                Some("input"),
                "'input' must be a non-empty string or array",
            );
        }
    };
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, (text, n))| {
            tokens += n;
            let vector = reply::embedding(text);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(reply::base64(&bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    ctx.json(&json!({
        "object": "list",
        "data": data,
        "model": ctx.model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
}

fn token_text(tokens: &[Value]) -> String {
    tokens
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn model_object(id: &str) -> Value {
    json!({ "id": id, "object": "model", "created": 1_700_000_000, "owned_by": "switchyard-mock" })
}

pub(crate) fn models(ctx: &Ctx) -> Response<Body> {
    let data: Vec<Value> = ctx.models().iter().map(|m| model_object(m)).collect();
    ctx.json(&json!({ "object": "list", "data": data }))
}

/// `GET /v1/models/{id}`.
pub(crate) fn model(ctx: &Ctx, path: &str) -> Response<Body> {
    let id = path.trim_start_matches("/v1/models/");
    if ctx.models().iter().any(|m| m == id) {
        ctx.json(&model_object(id))
    } else {
        Dialect::OpenAi.error(
            ctx.id,
            404,
            &format!("The model '{id}' does not exist or you do not have access to it."),
        )
    }
}
