//! Request shape validation: the structural JSON types of the fields the gateway and the
//! providers rely on, per endpoint, following the OpenAI and Anthropic API references. A body of
//! the wrong shape is refused with a 400 naming the field (`messages[0].content`) before
//! anything else reads it. Permissive where the references are: `null` stands for an absent
//! optional field, every documented variant passes (content strings or arrays of parts or
//! blocks, `null` assistant content with tool calls, token-id prompts), unknown part and block
//! types and unknown extra fields pass through unchecked.

mod anthropic;
mod openai;

use serde_json::{Map, Value};
use switchyard_routing::Endpoint;

use crate::errors::ApiError;

/// Checks the body of an `endpoint` request.
pub fn check(endpoint: Endpoint, body: &Map<String, Value>) -> Result<(), ApiError> {
    match endpoint {
        Endpoint::ChatCompletions => openai::chat(body),
        Endpoint::Completions => openai::completions(body),
        Endpoint::Embeddings => openai::embeddings(body),
        Endpoint::Messages => anthropic::messages(body),
        // Checked item by item where it is translated (`translate::responses_to_chat`, with the
        // parameter's path), or by OpenAI itself for a native target.
        Endpoint::Responses => Ok(()),
    }
}

type Checked = Result<(), ApiError>;

/// `param` must be `what`.
fn bad(param: &str, what: &str) -> ApiError {
    ApiError::invalid(format!("`{param}` must be {what}")).param(param)
}

/// A member, `None` when absent or `null`.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `parent.key` (or `key` at the top level).
fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Each listed member, when present, is of the kind its checker accepts.
fn each(
    obj: &Map<String, Value>,
    parent: &str,
    keys: &[&str],
    ok: fn(&Value) -> bool,
    what: &str,
) -> Checked {
    for key in keys {
        if let Some(v) = get(obj, key)
            && !ok(v)
        {
            return Err(bad(&path(parent, key), what));
        }
    }
    Ok(())
}

fn strings(obj: &Map<String, Value>, parent: &str, keys: &[&str]) -> Checked {
    each(obj, parent, keys, Value::is_string, "a string")
}

fn integers(obj: &Map<String, Value>, keys: &[&str]) -> Checked {
    each(obj, "", keys, is_integer, "an integer")
}

fn numbers(obj: &Map<String, Value>, keys: &[&str]) -> Checked {
    each(obj, "", keys, Value::is_number, "a number")
}

fn booleans(obj: &Map<String, Value>, keys: &[&str]) -> Checked {
    each(obj, "", keys, Value::is_boolean, "a boolean")
}

fn objects(obj: &Map<String, Value>, parent: &str, keys: &[&str]) -> Checked {
    each(obj, parent, keys, Value::is_object, "an object")
}

/// A required string member.
fn required_string(obj: &Map<String, Value>, parent: &str, key: &str) -> Checked {
    match obj.get(key) {
        Some(Value::String(_)) => Ok(()),
        None | Some(Value::Null) => {
            let p = path(parent, key);
            Err(ApiError::invalid(format!("`{p}` is required")).param(p))
        }
        Some(_) => Err(bad(&path(parent, key), "a string")),
    }
}

/// An optional array member whose items are objects, each passed to `item` with its path.
fn array_of_objects(
    obj: &Map<String, Value>,
    parent: &str,
    key: &str,
    mut item: impl FnMut(&Map<String, Value>, &str) -> Checked,
) -> Checked {
    let Some(v) = get(obj, key) else {
        return Ok(());
    };
    let p = path(parent, key);
    let Value::Array(items) = v else {
        return Err(bad(&p, "an array of objects"));
    };
    for (i, x) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        match x {
            Value::Object(o) => item(o, &ip)?,
            _ => return Err(bad(&ip, "an object")),
        }
    }
    Ok(())
}

/// `stop`/`stop_sequences`: a string (when `string_ok`) or an array of strings.
fn stop(obj: &Map<String, Value>, key: &str, string_ok: bool) -> Checked {
    match get(obj, key) {
        None => Ok(()),
        Some(Value::String(_)) if string_ok => Ok(()),
        Some(Value::Array(a)) => match a.iter().position(|s| !s.is_string()) {
            Some(i) => Err(bad(&format!("{key}[{i}]"), "a string")),
            None => Ok(()),
        },
        Some(_) if string_ok => Err(bad(key, "a string or an array of strings")),
        Some(_) => Err(bad(key, "an array of strings")),
    }
}

/// Content parts or blocks: objects with a string `type`.
fn typed_part<'a>(v: &'a Value, p: &str) -> Result<(&'a Map<String, Value>, &'a str), ApiError> {
    let Value::Object(o) = v else {
        return Err(bad(p, "an object with a `type`"));
    };
    match o.get("type") {
        Some(Value::String(t)) => Ok((o, t)),
        None => {
            let tp = path(p, "type");
            Err(ApiError::invalid(format!("`{tp}` is required")).param(tp))
        }
        Some(_) => Err(bad(&path(p, "type"), "a string")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(endpoint: Endpoint, body: Value) -> Result<(), ApiError> {
        match body {
            Value::Object(o) => check(endpoint, &o),
            _ => panic!("test bodies are objects"),
        }
    }

    #[test]
    fn refuses_wrong_types_naming_the_field() {
        let m = |content: Value| json!({"messages": [{"role": "user", "content": content}]});
        for (endpoint, body, param) in [
            (
                Endpoint::ChatCompletions,
                m(json!({"type": "text", "text": "x"})),
                "messages[0].content",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"messages": [{"role": "user"}]}),
                "messages[0].content",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"messages": [{"role": 1, "content": "x"}]}),
                "messages[0].role",
            ),
            (
                Endpoint::ChatCompletions,
                m(json!([{"type": "image_url"}])),
                "messages[0].content[0].image_url",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"messages": [], "tools": {"a": 1}}),
                "tools",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"messages": [], "tools": [{"type": "function", "function": {"description": "no name"}}]}),
                "tools[0].function.name",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"messages": [], "stream_options": true}),
                "stream_options",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"messages": [], "parallel_tool_calls": "yes"}),
                "parallel_tool_calls",
            ),
            (Endpoint::Completions, json!({"prompt": [1, "a"]}), "prompt"),
            (
                Endpoint::Completions,
                json!({"prompt": "a", "echo": 1}),
                "echo",
            ),
            (Endpoint::Embeddings, json!({"input": []}), "input"),
            (Endpoint::Embeddings, json!({"input": [[1], 2]}), "input[0]"),
            (
                Endpoint::Messages,
                m(json!([{"type": "tool_use", "id": "t", "name": "f", "input": []}])),
                "messages[0].content[0].input",
            ),
            (
                Endpoint::Messages,
                m(
                    json!([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text"}]}]),
                ),
                "messages[0].content[0].content[0].text",
            ),
            (
                Endpoint::Messages,
                m(json!([{"type": "text", "text": "x", "cache_control": "ephemeral"}])),
                "messages[0].content[0].cache_control",
            ),
            (
                Endpoint::Messages,
                m(json!([{"type": "thinking", "signature": "s"}])),
                "messages[0].content[0].thinking",
            ),
            (
                Endpoint::Messages,
                json!({"messages": [], "max_tokens": 1.5}),
                "max_tokens",
            ),
            (
                Endpoint::Messages,
                json!({"messages": [], "top_k": "5"}),
                "top_k",
            ),
            (
                Endpoint::Messages,
                json!({"messages": [], "tool_choice": {"name": "f"}}),
                "tool_choice.type",
            ),
        ] {
            let err = run(endpoint, body.clone()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
            assert!(err.message.contains(param), "{}", err.message);
        }
    }

    #[test]
    fn accepts_every_documented_variant() {
        for (endpoint, body) in [
            (
                Endpoint::ChatCompletions,
                json!({"messages": [
                {"role": "developer", "content": "d"},
                {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "u"}},
                    {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}, {"type": "file", "file": {"file_id": "f"}},
                    {"type": "video_url", "video_url": {"url": "u"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f", "input": "x"}}]},
                {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "r"}]},
                {"role": "function", "name": "f", "content": null},
            ], "max_tokens": 5.0, "temperature": 1, "stop": "x", "n": null, "tool_choice": "required",
               "tools": [{"type": "custom", "custom": {"name": "g"}}], "extra": {"anything": [1]}}),
            ),
            (
                Endpoint::Completions,
                json!({"prompt": [[1, 2], [3]], "suffix": null, "logprobs": 3}),
            ),
            (Endpoint::Embeddings, json!({"input": [1, 2]})),
            (
                Endpoint::Messages,
                json!({"messages": [
                {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}},
                    {"type": "document", "source": {"type": "text", "data": "d"}}, {"type": "search_result", "source": "s"}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "redacted_thinking", "data": "d"},
                    {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}, {"type": "web_search_tool_result", "tool_use_id": "s", "content": []}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}, {"type": "tool_result", "tool_use_id": "u", "content": "x", "is_error": true}]},
            ], "max_tokens": 5, "system": [{"type": "text", "text": "s"}], "tool_choice": {"type": "any"},
               "tools": [{"type": "bash_20250124", "name": "bash"}], "stop_sequences": [], "future_field": 1}),
            ),
        ] {
            if let Err(e) = run(endpoint, body.clone()) {
                panic!("{body}: {}", e.message);
            }
        }
    }
}
