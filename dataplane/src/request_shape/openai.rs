//! OpenAI chat completions, completions and embeddings request shapes.

use serde_json::{Map, Value};

use crate::errors::ApiError;

use super::{
    Checked, array_of_objects, bad, booleans, get, integers, is_integer, numbers, objects, path,
    required_string, stop, strings, typed_part,
};

const SAMPLING: [&str; 4] = [
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
];

/// `POST /v1/chat/completions`.
pub(super) fn chat(body: &Map<String, Value>) -> Checked {
    match body.get("messages") {
        Some(Value::Array(_)) => array_of_objects(body, "", "messages", message)?,
        _ => return Err(bad("messages", "an array")),
    }
    array_of_objects(body, "", "tools", tool)?;
    array_of_objects(body, "", "functions", |f, p| {
        required_string(f, p, "name")?;
        objects(f, p, &["parameters"])
    })?;
    for key in ["tool_choice", "function_call"] {
        if let Some(v) = get(body, key)
            && !(v.is_string() || v.is_object())
        {
            return Err(bad(key, "a string or an object"));
        }
    }
    integers(
        body,
        &[
            "max_tokens",
            "max_completion_tokens",
            "n",
            "seed",
            "top_logprobs",
        ],
    )?;
    numbers(body, &SAMPLING)?;
    booleans(body, &["logprobs", "parallel_tool_calls", "store"])?;
    stop(body, "stop", true)?;
    objects(
        body,
        "",
        &[
            "response_format",
            "stream_options",
            "metadata",
            "logit_bias",
            "prediction",
            "audio",
            "web_search_options",
        ],
    )?;
    strings(
        body,
        "",
        &[
            "user",
            "service_tier",
            "reasoning_effort",
            "safety_identifier",
            "prompt_cache_key",
        ],
    )
}

fn message(m: &Map<String, Value>, p: &str) -> Checked {
    required_string(m, p, "role")?;
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    let cp = path(p, "content");
    match get(m, "content") {
        // Assistant messages carrying tool calls (and legacy function messages) may have none.
        None if matches!(role, "assistant" | "function") => {}
        None => return Err(ApiError::invalid(format!("`{cp}` is required")).param(cp)),
        Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for (i, part) in parts.iter().enumerate() {
                content_part(part, &format!("{cp}[{i}]"))?;
            }
        }
        Some(_) => return Err(bad(&cp, "a string or an array of content parts")),
    }
    strings(m, p, &["name", "tool_call_id", "refusal"])?;
    array_of_objects(m, p, "tool_calls", |c, cp| {
        strings(c, cp, &["id", "type"])?;
        match c.get("type").and_then(Value::as_str) {
            None | Some("function") => {
                let Some(Value::Object(f)) = c.get("function") else {
                    return Err(bad(&path(cp, "function"), "an object"));
                };
                let fp = path(cp, "function");
                required_string(f, &fp, "name")?;
                required_string(f, &fp, "arguments")
            }
            Some(_) => Ok(()),
        }
    })?;
    if let Some(v) = get(m, "function_call") {
        let Value::Object(f) = v else {
            return Err(bad(&path(p, "function_call"), "an object"));
        };
        strings(f, &path(p, "function_call"), &["name", "arguments"])?;
    }
    Ok(())
}

fn content_part(v: &Value, p: &str) -> Checked {
    let (o, ty) = typed_part(v, p)?;
    match ty {
        "text" => required_string(o, p, "text"),
        "refusal" => required_string(o, p, "refusal"),
        "image_url" => match o.get("image_url") {
            Some(Value::Object(_) | Value::String(_)) => Ok(()),
            _ => Err(bad(&path(p, "image_url"), "an object")),
        },
        "input_audio" | "file" => objects(o, p, &[ty]),
        _ => Ok(()),
    }
}

fn tool(t: &Map<String, Value>, p: &str) -> Checked {
    strings(t, p, &["type"])?;
    match t.get("type").and_then(Value::as_str) {
        None | Some("function") => {
            let fp = path(p, "function");
            let Some(Value::Object(f)) = t.get("function") else {
                return Err(bad(&fp, "an object"));
            };
            required_string(f, &fp, "name")?;
            strings(f, &fp, &["description"])?;
            objects(f, &fp, &["parameters"])
        }
        Some(_) => Ok(()),
    }
}

/// `POST /v1/completions`.
pub(super) fn completions(body: &Map<String, Value>) -> Checked {
    let prompt_ok = match body.get("prompt") {
        Some(Value::String(_)) => true,
        Some(Value::Array(a)) => strings_or_tokens(a),
        _ => false,
    };
    if !prompt_ok {
        return Err(bad(
            "prompt",
            "a string, an array of strings, or an array of token ids or token-id arrays",
        ));
    }
    strings(body, "", &["suffix", "user"])?;
    integers(body, &["max_tokens", "n", "best_of", "logprobs", "seed"])?;
    numbers(body, &SAMPLING)?;
    booleans(body, &["echo"])?;
    stop(body, "stop", true)?;
    objects(body, "", &["logit_bias", "stream_options"])
}

/// All strings, all token ids, or all arrays of token ids.
fn strings_or_tokens(a: &[Value]) -> bool {
    a.iter().all(Value::is_string)
        || a.iter().all(is_integer)
        || a.iter()
            .all(|x| x.as_array().is_some_and(|t| t.iter().all(is_integer)))
}

/// `POST /v1/embeddings`.
pub(super) fn embeddings(body: &Map<String, Value>) -> Checked {
    match body.get("input") {
        Some(Value::String(_)) => {}
        Some(Value::Array(a)) if !a.is_empty() => {
            if !strings_or_tokens(a) {
                // Name the first item that differs from the first one's kind.
                let first_is_string = a.first().is_some_and(Value::is_string);
                let i = a
                    .iter()
                    .position(|x| x.is_string() != first_is_string)
                    .unwrap_or(0);
                return Err(bad(
                    &format!("input[{i}]"),
                    "of the same kind as the other items (strings, token ids or token-id arrays)",
                ));
            }
        }
        _ => return Err(bad("input", "a string or a non-empty array")),
    }
    strings(body, "", &["encoding_format", "user"])?;
    integers(body, &["dimensions"])
}
