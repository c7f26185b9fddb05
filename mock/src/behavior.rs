//! Scripted behaviour: what a request asks the mock to do besides answering (fail, wait, cut,
//! reset, …), from programmed rules, model-name directives and `x-mock-*` headers.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

/// What the mock does with a request besides answering it normally. Every field is optional;
/// unset fields keep the default behaviour. See the crate docs ([`crate`]) for the
/// exact semantics of each field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    /// Answer with this HTTP status (>= 400: the dialect's error body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Retry-After` seconds on the error response (default 1 on 429 and 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Message of the scripted error (status or error event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Sleep this long before the response headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Sleep this long before each streamed delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_delay_ms: Option<u64>,
    /// Number of content deltas (the reply is padded with `lorem` words when short).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
    /// Abort the connection after this many deltas (non-stream: after half the body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_after_chunks: Option<u32>,
    /// Close the connection before any response byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_before: Option<bool>,
    /// Send the dialect's in-stream error event (after `cut_after_chunks` deltas, default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_event: Option<bool>,
    /// Reply with roughly this many bytes of `lorem ` filler instead of the normal text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Report exactly this many cache-read input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<u64>,
    /// Report exactly this many cache-write (creation) input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<u64>,
    /// Answer with a call to this tool, whether or not the request declared tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<String>,
    /// Reply with this text instead of `mock reply: …`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Quote the credential the request carried in the scripted error message, as OpenAI's
    /// "Incorrect API key provided: sk-…" does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_key: Option<bool>,
    /// Answer HTTP 200 with the dialect's error body (as some providers and proxies do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_body: Option<bool>,
    /// Answer HTTP 200 with exactly this body (stream requests: as `text/event-stream`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// Stream: send this raw text after the first delta, then go on with the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inject: Option<String>,
    /// Send the 200 head (non-stream: with the answer's `Content-Length`) and then nothing,
    /// until the client goes away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall: Option<bool>,
}

macro_rules! overlay_fields {
    ($dst:ident, $src:ident, $($field:ident),*) => {
        $(if $src.$field.is_some() { $dst.$field.clone_from(&$src.$field); })*
    };
}

impl Behavior {
    /// Fields set in `other` replace the ones in `self`.
    pub fn overlay(&mut self, other: &Behavior) {
        overlay_fields!(
            self,
            other,
            status,
            retry_after,
            message,
            latency_ms,
            chunk_delay_ms,
            chunks,
            cut_after_chunks,
            reset_before,
            error_event,
            bytes,
            cache_read,
            cache_write,
            tool_call,
            reply,
            echo_key,
            error_body,
            raw_body,
            inject,
            stall
        );
    }

    /// True when nothing is set.
    pub fn is_default(&self) -> bool {
        *self == Behavior::default()
    }

    pub(crate) fn resets(&self) -> bool {
        self.reset_before == Some(true)
    }

    pub(crate) fn error_event(&self) -> bool {
        self.error_event == Some(true)
    }

    pub(crate) fn echo_key(&self) -> bool {
        self.echo_key == Some(true)
    }

    pub(crate) fn error_body(&self) -> bool {
        self.error_body == Some(true)
    }

    pub(crate) fn stall(&self) -> bool {
        self.stall == Some(true)
    }

    /// Sets one field from a header (`x-mock-KEY`) or model directive (`+KEY=VALUE`). Returns
    /// false when the key is unknown or the value does not parse.
    fn apply(&mut self, key: &str, value: Option<&str>) -> bool {
        fn num<T: std::str::FromStr>(v: Option<&str>) -> Option<T> {
            v?.trim().parse().ok()
        }
        fn flag(v: Option<&str>) -> Option<bool> {
            match v.map(str::trim) {
                None | Some("" | "1" | "true" | "yes" | "on") => Some(true),
                Some("0" | "false" | "no" | "off") => Some(false),
                Some(_) => None,
            }
        }
        fn text(v: Option<&str>) -> Option<String> {
            v.map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        }
        macro_rules! set {
            ($field:ident, $parsed:expr) => {{
                match $parsed {
                    Some(v) => {
                        self.$field = Some(v);
                        true
                    }
                    None => false,
                }
            }};
        }
        match key {
            "status" => set!(
                status,
                num::<u16>(value).filter(|s| (100..1000).contains(s))
            ),
            "retry-after" | "retry_after" => set!(retry_after, num(value)),
            "message" => set!(message, text(value)),
            "latency-ms" | "latency_ms" | "latency" => set!(latency_ms, num(value)),
            "chunk-delay-ms" | "chunk_delay_ms" | "chunk-delay" | "chunk_delay" => {
                set!(chunk_delay_ms, num(value))
            }
            "chunks" => set!(chunks, num(value)),
            "cut-after" | "cut_after" | "cut" | "cut_after_chunks" => {
                set!(cut_after_chunks, num(value))
            }
            "reset" | "reset-before" | "reset_before" => set!(reset_before, flag(value)),
            "error-event" | "error_event" => set!(error_event, flag(value)),
            "bytes" => set!(bytes, value.and_then(parse_size)),
            "cache-read" | "cache_read" => set!(cache_read, num(value)),
            "cache-write" | "cache_write" => set!(cache_write, num(value)),
            "tool-call" | "tool_call" | "tool" => set!(tool_call, text(value)),
            "reply" => set!(reply, text(value)),
            "echo-key" | "echo_key" => set!(echo_key, flag(value)),
            "error-body" | "error_body" => set!(error_body, flag(value)),
            "raw-body" | "raw_body" => set!(raw_body, text(value)),
            "inject" => set!(inject, value.filter(|v| !v.is_empty()).map(str::to_owned)),
            "stall" => set!(stall, flag(value)),
            _ => false,
        }
    }

    /// The behaviour asked for by `x-mock-*` request headers.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Behavior {
        let mut behavior = Behavior::default();
        for (name, value) in headers {
            let Some(key) = name.as_str().strip_prefix("x-mock-") else {
                continue;
            };
            if let Ok(value) = value.to_str() {
                behavior.apply(key, Some(value));
            }
        }
        behavior
    }
}

/// Splits `demo-fast+status=503+latency=200` into the model name (`demo-fast`) and the
/// behaviour its directives ask for. Segments that are not known directives stay in the name.
pub(crate) fn split_model(raw: &str) -> (Cow<'_, str>, Behavior) {
    let mut behavior = Behavior::default();
    let Some((first, rest)) = raw.split_once('+') else {
        return (Cow::Borrowed(raw), behavior);
    };
    let mut name = String::from(first);
    for segment in rest.split('+') {
        let (key, value) = match segment.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (segment, None),
        };
        if !behavior.apply(key, value) {
            name.push('+');
            name.push_str(segment);
        }
    }
    (Cow::Owned(name), behavior)
}

/// `1048576`, `512k`, `50M`, `1g`, `50MB` (binary multiples).
fn parse_size(value: &str) -> Option<u64> {
    let v = value.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').unwrap_or(&v);
    let (digits, mult) = match v.as_bytes().last()? {
        b'k' => (&v[..v.len() - 1], 1u64 << 10),
        b'm' => (&v[..v.len() - 1], 1 << 20),
        b'g' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Which requests a [`ScriptRule`] applies to. Unset fields match everything. Values are exact
/// strings or globs with `*` (any run of characters) and `?` (one byte).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleMatch {
    /// The requested model, directives stripped (the raw name also matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The request path, e.g. `/v1/chat/completions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A programmed behaviour: `{"match": {"model": "...", "path": "..."}, "times": N,
/// "behavior": {...}}`. Rules are tried in the order they were added; the first one that
/// matches and is not used up applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptRule {
    /// Which requests the rule applies to.
    #[serde(rename = "match", default)]
    pub matcher: RuleMatch,
    /// Apply to this many matching requests, then never again (unset: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// What to do.
    #[serde(alias = "behaviour")]
    pub behavior: Behavior,
}

impl ScriptRule {
    /// A rule applying `behavior` to every request.
    pub fn new(behavior: Behavior) -> Self {
        ScriptRule {
            matcher: RuleMatch::default(),
            times: None,
            behavior,
        }
    }

    /// Only for this model (exact or glob).
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.matcher.model = Some(model.into());
        self
    }

    /// Only for this path (exact or glob).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.matcher.path = Some(path.into());
        self
    }

    /// Only for the next `n` matching requests.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// A rule installed in a running mock.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) id: u64,
    pub(crate) spec: ScriptRule,
    remaining: Option<AtomicU32>,
}

impl Rule {
    pub(crate) fn new(id: u64, spec: ScriptRule) -> Self {
        let remaining = spec.times.map(AtomicU32::new);
        Rule {
            id,
            spec,
            remaining,
        }
    }

    pub(crate) fn remaining(&self) -> Option<u32> {
        self.remaining.as_ref().map(|r| r.load(Ordering::Relaxed))
    }

    pub(crate) fn matches(&self, model: Option<(&str, &str)>, path: &str) -> bool {
        let m = &self.spec.matcher;
        if let Some(pattern) = &m.path
            && !glob(pattern, path)
        {
            return false;
        }
        if let Some(pattern) = &m.model {
            match model {
                Some((clean, raw)) if glob(pattern, clean) || glob(pattern, raw) => {}
                _ => return false,
            }
        }
        true
    }

    /// Uses one of the rule's `times`; false when it is used up.
    pub(crate) fn take(&self) -> bool {
        match &self.remaining {
            None => true,
            Some(r) => r
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// Glob match with `*` and `?` over bytes.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("demo-*", "demo-fast"));
        assert!(glob("*", ""));
        assert!(glob("d?mo", "demo"));
        assert!(glob("/v1/*/completions", "/v1/chat/completions"));
        assert!(!glob("demo-*", "mock-model"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }

    #[test]
    fn directives() {
        let (name, b) = split_model("demo-fast+status=503+latency=20+cut=3+reset+bytes=2k");
        assert_eq!(name, "demo-fast");
        assert_eq!(b.status, Some(503));
        assert_eq!(b.latency_ms, Some(20));
        assert_eq!(b.cut_after_chunks, Some(3));
        assert_eq!(b.reset_before, Some(true));
        assert_eq!(b.bytes, Some(2048));
        let (name, b) = split_model("odd+name+chunks=4");
        assert_eq!(name, "odd+name");
        assert_eq!(b.chunks, Some(4));
        assert_eq!(split_model("plain").0, "plain");
        let (name, b) =
            split_model("gpt-mock+echo_key+error_body+stall=off+raw_body={\"x\":1}+inject=data: x");
        assert_eq!(name, "gpt-mock");
        assert!(b.echo_key() && b.error_body() && !b.stall());
        assert_eq!(b.raw_body.as_deref(), Some("{\"x\":1}"));
        assert_eq!(b.inject.as_deref(), Some("data: x"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50MB"), Some(50 << 20));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("x"), None);
    }
}
