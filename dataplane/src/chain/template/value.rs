//! What a template value is as text, truth and fields: shared by the evaluator and the
//! functions.

use std::borrow::Cow;

use serde_json::{Number, Value as Json};

use super::Val;

pub(super) fn field<'d>(v: Val<'d>, name: &str) -> Result<Val<'d>, String> {
    match v {
        Val::Scope(s) => s.lookup(name).ok_or_else(|| {
            let names = s.names();
            format!(
                "no variable \"{name}\" is set (set: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        }),
        Val::Json(Cow::Borrowed(j)) => match j {
            Json::Object(o) => Ok(o.get(name).map_or(Val::owned(Json::Null), Val::borrowed)),
            Json::Null => Ok(Val::owned(Json::Null)),
            other => Err(format!("can't read field {name} of a {}", kind(other))),
        },
        Val::Json(Cow::Owned(j)) => match j {
            Json::Object(mut o) => Ok(Val::owned(o.remove(name).unwrap_or(Json::Null))),
            Json::Null => Ok(Val::owned(Json::Null)),
            other => Err(format!("can't read field {name} of a {}", kind(&other))),
        },
        Val::Chat(m) if name == "messages" => Ok(Val::List(m)),
        Val::Chat(_) => Err(format!(
            "a chat history has no field {name} (only .messages)"
        )),
        Val::List(_) => Err(format!("can't read field {name} of a list")),
    }
}

pub(super) fn kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// Text of a number as Go's `%v` prints it (integers without a decimal point).
pub fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    float_text(f)
}

/// Shortest text of a float; whole numbers without a decimal point.
pub fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The text of the last message of a chat history.
pub fn last_message_text(messages: &[Json]) -> String {
    messages
        .last()
        .map(crate::classify::message_text)
        .unwrap_or_default()
}

/// How a value prints.
pub(super) fn to_text(v: &Val<'_>) -> Result<String, String> {
    Ok(match v {
        Val::Json(j) => json_text(j),
        Val::Chat(m) => last_message_text(m),
        Val::List(l) => Json::Array(l.to_vec()).to_string(),
        Val::Scope(_) => {
            return Err("cannot print the whole variable set; name a variable (.input)".into());
        }
    })
}

pub(super) fn json_text(j: &Json) -> String {
    match j {
        Json::Null => String::new(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => number_text(n),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn truthy(v: &Val<'_>) -> bool {
    match v {
        Val::Json(j) => match j.as_ref() {
            Json::Null => false,
            Json::Bool(b) => *b,
            Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Json::String(s) => !s.is_empty(),
            Json::Array(a) => !a.is_empty(),
            Json::Object(o) => !o.is_empty(),
        },
        Val::Chat(m) | Val::List(m) => !m.is_empty(),
        Val::Scope(_) => true,
    }
}
