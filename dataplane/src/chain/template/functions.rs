//! The functions a template can call (`and or not eq ne lt le gt ge len index print printf
//! println json lower upper trim join default contains`) and the comparisons they use.

use std::borrow::Cow;

use serde_json::{Map, Value as Json};

use super::Val;
use super::value::{field, float_text, json_text, kind, last_message_text, to_text, truthy};

/// A value as JSON for comparison and encoding (a chat history: its last message's text for
/// comparisons).
fn scalar(v: &Val<'_>) -> Result<Json, String> {
    match v {
        Val::Json(j) => Ok(j.as_ref().clone()),
        Val::Chat(m) => Ok(Json::String(last_message_text(m))),
        Val::List(l) => Ok(Json::Array(l.to_vec())),
        Val::Scope(_) => Err("cannot compare the variable set".into()),
    }
}

fn equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Json, b: &Json) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| "numbers that cannot be compared".to_owned()),
        (Json::String(x), Json::String(y)) => Ok(x.cmp(y)),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            kind(a),
            kind(b)
        )),
    }
}

fn arity(name: &str, args: &[Val<'_>], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "{name} takes {n} argument{}, got {}",
            if n == 1 { "" } else { "s" },
            args.len()
        ))
    }
}

fn text_arg(v: &Val<'_>) -> Result<String, String> {
    to_text(v)
}

pub(super) fn call<'d>(name: &str, args: Vec<Val<'d>>) -> Result<Val<'d>, String> {
    let bool_val = |b: bool| Val::owned(Json::Bool(b));
    match name {
        "and" | "or" => {
            if args.is_empty() {
                return Err(format!("{name} needs at least one argument"));
            }
            let want = name == "or";
            let mut last = None;
            for a in args {
                if truthy(&a) == want {
                    return Ok(a);
                }
                last = Some(a);
            }
            last.ok_or_else(|| format!("{name} needs at least one argument"))
        }
        "not" => {
            arity(name, &args, 1)?;
            Ok(bool_val(!truthy(&args[0])))
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                return Err(format!("{name} needs at least two arguments"));
            }
            let first = scalar(&args[0])?;
            let mut any = false;
            for a in &args[1..] {
                if equal(&first, &scalar(a)?) {
                    any = true;
                }
            }
            Ok(bool_val(if name == "eq" { any } else { !any }))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2)?;
            let o = order(&scalar(&args[0])?, &scalar(&args[1])?)?;
            use std::cmp::Ordering::*;
            Ok(bool_val(match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        "len" => {
            arity(name, &args, 1)?;
            let n = match &args[0] {
                Val::Json(j) => match j.as_ref() {
                    Json::String(s) => s.len(),
                    Json::Array(a) => a.len(),
                    Json::Object(o) => o.len(),
                    Json::Null => 0,
                    other => return Err(format!("len of a {}", kind(other))),
                },
                Val::Chat(m) | Val::List(m) => m.len(),
                Val::Scope(s) => s.names().len(),
            };
            Ok(Val::owned(Json::Number((n as u64).into())))
        }
        "index" => {
            let mut it = args.into_iter();
            let mut v = it
                .next()
                .ok_or_else(|| "index needs a value to index".to_owned())?;
            for key in it {
                v = index(v, &key)?;
            }
            Ok(v)
        }
        "print" | "println" => {
            let mut out = String::new();
            let mut prev_string = true;
            for (i, a) in args.iter().enumerate() {
                let is_string = matches!(a, Val::Json(j) if j.is_string());
                if i > 0 && (name == "println" || (!is_string && !prev_string)) {
                    out.push(' ');
                }
                out.push_str(&text_arg(a)?);
                prev_string = is_string;
            }
            if name == "println" {
                out.push('\n');
            }
            Ok(Val::owned(Json::String(out)))
        }
        "printf" => {
            let mut it = args.iter();
            let format = it
                .next()
                .ok_or_else(|| "printf needs a format".to_owned())
                .and_then(text_arg)?;
            printf(&format, it.collect()).map(|s| Val::owned(Json::String(s)))
        }
        "json" => {
            arity(name, &args, 1)?;
            let j = match &args[0] {
                Val::Chat(m) => {
                    let mut o = Map::new();
                    o.insert("messages".into(), Json::Array(m.to_vec()));
                    Json::Object(o)
                }
                other => scalar(other)?,
            };
            Ok(Val::owned(Json::String(j.to_string())))
        }
        "lower" | "upper" | "trim" => {
            arity(name, &args, 1)?;
            let s = text_arg(&args[0])?;
            Ok(Val::owned(Json::String(match name {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                _ => s.trim().to_owned(),
            })))
        }
        "contains" => {
            arity(name, &args, 2)?;
            Ok(bool_val(text_arg(&args[1])?.contains(&text_arg(&args[0])?)))
        }
        "join" => {
            arity(name, &args, 2)?;
            let sep = text_arg(&args[0])?;
            let items: Vec<String> = match &args[1] {
                Val::Json(j) => match j.as_ref() {
                    Json::Array(a) => a.iter().map(json_text).collect(),
                    Json::Null => Vec::new(),
                    other => return Err(format!("join needs a list, got a {}", kind(other))),
                },
                Val::Chat(m) | Val::List(m) => m.iter().map(json_text).collect(),
                Val::Scope(_) => return Err("join needs a list".into()),
            };
            Ok(Val::owned(Json::String(items.join(&sep))))
        }
        "default" => {
            arity(name, &args, 2)?;
            let mut it = args.into_iter();
            match (it.next(), it.next()) {
                (Some(fallback), Some(v)) => Ok(if truthy(&v) { v } else { fallback }),
                _ => Err("default takes 2 arguments".into()),
            }
        }
        "html" | "js" | "urlquery" | "slice" | "call" => {
            Err(format!("function {name} is not supported"))
        }
        other => Err(format!("unknown function {other}")),
    }
}

fn index<'d>(v: Val<'d>, key: &Val<'_>) -> Result<Val<'d>, String> {
    let key = scalar(key)?;
    let position = |len: usize| -> Result<usize, String> {
        let i = key
            .as_i64()
            .ok_or_else(|| format!("index of a list must be an integer, got {key}"))?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < len)
            .ok_or_else(|| format!("index {i} out of range (length {len})"))
    };
    match v {
        Val::Chat(m) | Val::List(m) => {
            let i = position(m.len())?;
            Ok(Val::borrowed(&m[i]))
        }
        Val::Json(Cow::Borrowed(j)) => match j {
            Json::Array(a) => {
                let i = position(a.len())?;
                Ok(Val::borrowed(&a[i]))
            }
            Json::Object(o) => {
                let k = key.as_str().ok_or("index of an object must be a string")?;
                Ok(o.get(k).map_or(Val::owned(Json::Null), Val::borrowed))
            }
            Json::Null => Ok(Val::owned(Json::Null)),
            other => Err(format!("cannot index a {}", kind(other))),
        },
        Val::Json(Cow::Owned(j)) => match j {
            Json::Array(mut a) => {
                let i = position(a.len())?;
                Ok(Val::owned(a.swap_remove(i)))
            }
            Json::Object(mut o) => {
                let k = key.as_str().ok_or("index of an object must be a string")?;
                Ok(Val::owned(o.remove(k).unwrap_or(Json::Null)))
            }
            Json::Null => Ok(Val::owned(Json::Null)),
            other => Err(format!("cannot index a {}", kind(&other))),
        },
        Val::Scope(s) => {
            let k = key
                .as_str()
                .ok_or("index of the variable set must be a string")?;
            field(Val::Scope(s), k)
        }
    }
}

/// `printf` with the verbs `%v %s %d %f %.Nf %q %t %%`.
fn printf(format: &str, args: Vec<&Val<'_>>) -> Result<String, String> {
    let mut out = String::new();
    let mut args = args.into_iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            precision = Some(digits.parse().unwrap_or(0).min(20));
        }
        let verb = chars
            .next()
            .ok_or_else(|| "printf format ends with %".to_owned())?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args
            .next()
            .ok_or_else(|| format!("printf: missing argument for %{verb}"))?;
        let j = scalar(arg)?;
        match verb {
            'v' | 's' => out.push_str(&text_arg(arg)?),
            'd' => {
                let n = j
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .ok_or_else(|| format!("printf %d needs an integer, got {}", json_text(&j)))?;
                out.push_str(&float_text(n));
            }
            'f' => {
                let n = j
                    .as_f64()
                    .ok_or_else(|| format!("printf %f needs a number, got {}", json_text(&j)))?;
                out.push_str(&format!("{:.*}", precision.unwrap_or(6), n));
            }
            'q' => out.push_str(&Json::String(text_arg(arg)?).to_string()),
            't' => {
                let b = j
                    .as_bool()
                    .ok_or_else(|| format!("printf %t needs a boolean, got {}", json_text(&j)))?;
                out.push_str(&b.to_string());
            }
            other => return Err(format!("printf verb %{other} is not supported")),
        }
    }
    if args.next().is_some() {
        return Err("printf: more arguments than verbs".into());
    }
    Ok(out)
}
