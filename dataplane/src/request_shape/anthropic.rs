//! Anthropic Messages request shapes.

use serde_json::{Map, Value};

use super::{
    Checked, array_of_objects, bad, booleans, get, integers, numbers, objects, path,
    required_string, stop, strings, typed_part,
};

/// `POST /v1/messages`.
pub(super) fn messages(body: &Map<String, Value>) -> Checked {
    match body.get("messages") {
        Some(Value::Array(_)) => array_of_objects(body, "", "messages", |m, p| {
            required_string(m, p, "role")?;
            let cp = path(p, "content");
            match m.get("content") {
                Some(Value::String(_)) => Ok(()),
                Some(Value::Array(blocks)) => blocks_at(blocks, &cp),
                None => {
                    Err(crate::errors::ApiError::invalid(format!("`{cp}` is required")).param(cp))
                }
                Some(_) => Err(bad(&cp, "a string or an array of content blocks")),
            }
        })?,
        _ => return Err(bad("messages", "an array")),
    }
    if let Some(v) = body.get("max_tokens")
        && !super::is_integer(v)
    {
        return Err(bad("max_tokens", "an integer"));
    }
    match get(body, "system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => blocks_at(blocks, "system")?,
        Some(_) => return Err(bad("system", "a string or an array of content blocks")),
    }
    array_of_objects(body, "", "tools", |t, p| {
        required_string(t, p, "name")?;
        strings(t, p, &["description", "type"])?;
        objects(t, p, &["input_schema"])
    })?;
    if let Some(v) = get(body, "tool_choice") {
        let Value::Object(c) = v else {
            return Err(bad("tool_choice", "an object with a `type`"));
        };
        required_string(c, "tool_choice", "type")?;
    }
    integers(body, &["top_k"])?;
    numbers(body, &["temperature", "top_p"])?;
    booleans(body, &["stream"])?;
    stop(body, "stop_sequences", false)?;
    objects(body, "", &["metadata", "thinking"])?;
    strings(body, "", &["service_tier"])?;
    array_of_objects(body, "", "mcp_servers", |_, _| Ok(()))
}

fn blocks_at(blocks: &[Value], p: &str) -> Checked {
    for (i, b) in blocks.iter().enumerate() {
        block(b, &format!("{p}[{i}]"))?;
    }
    Ok(())
}

fn block(v: &Value, p: &str) -> Checked {
    let (o, ty) = typed_part(v, p)?;
    objects(o, p, &["cache_control"])?;
    match ty {
        "text" => required_string(o, p, "text"),
        "image" | "document" => match o.get("source") {
            Some(Value::Object(_)) => Ok(()),
            _ => Err(bad(&path(p, "source"), "an object")),
        },
        "tool_use" | "server_tool_use" => {
            required_string(o, p, "id")?;
            required_string(o, p, "name")?;
            match o.get("input") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err(bad(&path(p, "input"), "an object")),
            }
        }
        "tool_result" => {
            required_string(o, p, "tool_use_id")?;
            booleans(o, &["is_error"]).map_err(|_| bad(&path(p, "is_error"), "a boolean"))?;
            let cp = path(p, "content");
            match get(o, "content") {
                None | Some(Value::String(_)) => Ok(()),
                Some(Value::Array(inner)) => blocks_at(inner, &cp),
                Some(_) => Err(bad(&cp, "a string or an array of content blocks")),
            }
        }
        "thinking" => {
            required_string(o, p, "thinking")?;
            strings(o, p, &["signature"])
        }
        "redacted_thinking" => required_string(o, p, "data"),
        _ => Ok(()),
    }
}
