//! Helpers every direction shares: typed reads of JSON fields (with the errors they report),
//! the data of a stream event, `data:` URLs and timestamps.

use serde_json::{Map, Value};

use super::TranslateError;
use crate::sse::SseEvent;

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn expect_str<'a>(v: Option<&'a Value>, param: &str) -> Result<&'a str, TranslateError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(TranslateError::invalid(
            param,
            format!("expected a string, got {}", type_name(other)),
        )),
        None => Err(TranslateError::invalid(param, "required")),
    }
}

pub(super) fn expect_array<'a>(
    v: &'a Value,
    param: &str,
) -> Result<&'a Vec<Value>, TranslateError> {
    v.as_array().ok_or_else(|| {
        TranslateError::invalid(param, format!("expected an array, got {}", type_name(v)))
    })
}

/// A present, non-null value.
pub(super) fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(super) fn positive_int(v: &Value, param: &str) -> Result<u64, TranslateError> {
    match v.as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(TranslateError::invalid(
            param,
            "expected a positive integer",
        )),
    }
}

pub(super) fn number(v: &Value, param: &str) -> Result<f64, TranslateError> {
    v.as_f64()
        .ok_or_else(|| TranslateError::invalid(param, "expected a number"))
}

pub(super) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(super) fn parse_data(ev: &SseEvent) -> Result<Option<Value>, TranslateError> {
    let data = ev.data.trim();
    if data.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(data).map(Some).map_err(|e| {
        TranslateError::upstream(format!("`{}` event data is not JSON: {e}", ev.event_name()))
    })
}

/// Splits a `data:` URL into media type and base64 payload; `None` unless it is base64.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    // Parameters such as `;charset=utf-8` before `;base64` are not part of the media type.
    let media_type = media_type.split(';').next().unwrap_or(media_type);
    Some((media_type, data))
}

/// Seconds since the Unix epoch, for OpenAI's `created`.
pub(crate) fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}
