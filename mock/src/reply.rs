//! The deterministic rules shared by the dialects: word counting, the reply text, tool calls,
//! stop reasons, hashes for embeddings and cache keys.

use std::sync::LazyLock;

use serde_json::Value;

use super::behavior::Behavior;

/// Words taken from the last user message into the reply.
pub(crate) const ECHO_WORDS: usize = 8;
/// The reply to a fill-in-the-middle completion.
pub(crate) const FIM_REPLY: &str = "<fim>";
/// The word used to pad replies to `chunks` deltas and to fill `bytes`.
pub(crate) const PAD_WORD: &str = "lorem";
/// Words per `bytes` filler delta (`lorem ` × 2048 = 12 KiB).
pub(crate) const FILLER_WORDS: usize = 2048;

pub(crate) fn filler() -> &'static str {
    static FILLER: LazyLock<String> = LazyLock::new(|| format!("{PAD_WORD} ").repeat(FILLER_WORDS));
    &FILLER
}

/// Whitespace-separated words.
pub(crate) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Appends the text of a message `content` to `out`: a string, or the `text` of each part/block
/// in an array; `tool_result` blocks contribute their own content when `tool_results` is set.
pub(crate) fn push_text(content: &Value, out: &mut String, tool_results: bool) {
    match content {
        Value::String(s) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        Value::Array(parts) => {
            for part in parts {
                match part {
                    Value::String(_) => push_text(part, out, tool_results),
                    Value::Object(obj) => {
                        if let Some(text @ Value::String(_)) = obj.get("text") {
                            push_text(text, out, tool_results);
                        } else if tool_results
                            && obj.get("type").and_then(Value::as_str) == Some("tool_result")
                            && let Some(inner) = obj.get("content")
                        {
                            push_text(inner, out, tool_results);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The words [`push_text`] would append, without building the string.
pub(crate) fn count_words(content: &Value, tool_results: bool) -> u64 {
    match content {
        Value::String(s) => words(s),
        Value::Array(parts) => parts.iter().map(|p| block_words(p, tool_results)).sum(),
        _ => 0,
    }
}

/// The words of one part/block of an array `content`.
pub(crate) fn block_words(block: &Value, tool_results: bool) -> u64 {
    match block {
        Value::String(s) => words(s),
        Value::Object(obj) => match obj.get("text") {
            Some(Value::String(s)) => words(s),
            _ if tool_results && obj.get("type").and_then(Value::as_str) == Some("tool_result") => {
                obj.get("content")
                    .map_or(0, |c| count_words(c, tool_results))
            }
            _ => 0,
        },
        _ => 0,
    }
}

/// The first `n` words of `text`, joined by single spaces.
pub(crate) fn first_words(text: &str, n: usize) -> String {
    let mut out = String::new();
    for word in text.split_whitespace().take(n) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The tool call a prompt asks for with `call tool NAME` (trailing punctuation trimmed from
/// `NAME`), optionally followed by ` with {JSON object}`: the call's arguments (so a test can
/// drive a real agent's built-in tool, e.g. `call tool Bash with {"command":"echo hi"}`). Text
/// after the object is ignored; anything that is not a JSON object after ` with ` leaves the
/// default arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trigger {
    pub name: String,
    /// Compact JSON of the object after ` with `, if any.
    pub arguments: Option<String>,
}

pub(crate) fn tool_trigger(text: &str) -> Option<Trigger> {
    const TRIGGER: &str = "call tool ";
    const WITH: &str = " with ";
    let at = text.find(TRIGGER)?;
    let rest = &text[at + TRIGGER.len()..];
    let raw = rest.split_whitespace().next()?;
    let name = raw.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'));
    if name.is_empty() {
        return None;
    }
    // `raw` starts `rest` once leading whitespace is skipped.
    let after = &rest[rest.find(raw).unwrap_or(0) + raw.len()..];
    let arguments = after
        .strip_prefix(WITH)
        .map(str::trim_start)
        .filter(|s| s.starts_with('{'))
        .and_then(|s| {
            serde_json::Deserializer::from_str(s)
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok)
        })
        .filter(Value::is_object)
        .map(|v| v.to_string());
    Some(Trigger {
        name: name.to_owned(),
        arguments,
    })
}

/// Stop sequences from a string or an array of strings.
pub(crate) fn stop_list(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// How a reply ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    Length,
    StopSequence(String),
    ToolCalls,
}

impl Finish {
    pub(crate) fn openai(&self) -> &'static str {
        match self {
            Finish::Stop | Finish::StopSequence(_) => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
        }
    }

    pub(crate) fn anthropic(&self) -> &'static str {
        match self {
            Finish::Stop => "end_turn",
            Finish::Length => "max_tokens",
            Finish::StopSequence(_) => "stop_sequence",
            Finish::ToolCalls => "tool_use",
        }
    }

    pub(crate) fn stop_sequence(&self) -> Option<&str> {
        match self {
            Finish::StopSequence(s) => Some(s),
            _ => None,
        }
    }
}

/// The reply text as streamed deltas.
#[derive(Debug)]
pub(crate) enum Content {
    /// Pieces whose concatenation is the reply text.
    Pieces(Vec<String>),
    /// This many copies of [`filler`].
    Filler(usize),
}

impl Content {
    pub(crate) fn text(&self) -> String {
        match self {
            Content::Pieces(pieces) => pieces.concat(),
            Content::Filler(blocks) => filler().repeat(*blocks),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Content::Pieces(pieces) => pieces.is_empty(),
            Content::Filler(blocks) => *blocks == 0,
        }
    }
}

/// A tool call the reply makes.
#[derive(Debug)]
pub(crate) struct ToolCall {
    pub name: String,
    /// `{"q":"<first 8 words of the last user message>"}`, or the trigger's ` with {…}` object.
    pub arguments: String,
    /// Output tokens of the call: words of `arguments`, at least 1.
    pub words: u64,
}

impl ToolCall {
    /// `arguments` in `n` fragments (by default about 8 bytes each).
    pub(crate) fn fragments(&self, n: Option<u32>) -> Vec<&str> {
        let len = self.arguments.len();
        let n = n
            .map_or(len.div_ceil(8), |n| n as usize)
            .clamp(1, len.max(1));
        let size = len.div_ceil(n);
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        while start < len {
            let mut end = (start + size).min(len);
            while !self.arguments.is_char_boundary(end) {
                end += 1;
            }
            out.push(&self.arguments[start..end]);
            start = end;
        }
        out
    }
}

/// What the request asks for, as far as the reply is concerned.
#[derive(Debug, Default)]
pub(crate) struct ReplyRequest<'a> {
    /// Text of the last user message.
    pub user_text: &'a str,
    /// Tool named by `call tool NAME` (only when the request has tools).
    pub trigger: Option<Trigger>,
    pub max_tokens: Option<u64>,
    pub stop: Vec<&'a str>,
    pub fim: bool,
}

/// The deterministic reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub content: Content,
    /// Words of the content.
    pub words: u64,
    pub finish: Finish,
    pub tool: Option<ToolCall>,
}

pub(crate) fn build(req: &ReplyRequest<'_>, behavior: &Behavior) -> Reply {
    let default_arguments =
        || serde_json::json!({ "q": first_words(req.user_text, ECHO_WORDS) }).to_string();
    let tool = match (&behavior.tool_call, &req.trigger) {
        (Some(name), _) => Some((name.clone(), default_arguments())),
        (None, Some(t)) => Some((
            t.name.clone(),
            t.arguments.clone().unwrap_or_else(default_arguments),
        )),
        (None, None) => None,
    }
    .map(|(name, arguments)| {
        let words = words(&arguments).max(1);
        ToolCall {
            name,
            arguments,
            words,
        }
    });
    let tool_finish = |finish: Finish| {
        if tool.is_some() {
            Finish::ToolCalls
        } else {
            finish
        }
    };

    if let Some(bytes) = behavior.bytes {
        let block = filler().len() as u64;
        let blocks = usize::try_from(bytes.div_ceil(block).max(1)).unwrap_or(usize::MAX);
        return Reply {
            content: Content::Filler(blocks),
            words: (blocks as u64).saturating_mul(FILLER_WORDS as u64),
            finish: tool_finish(Finish::Stop),
            tool,
        };
    }

    let base = match (&behavior.reply, req.fim) {
        (Some(reply), _) => reply.clone(),
        (None, true) => FIM_REPLY.to_owned(),
        (None, false) => {
            let echo = first_words(req.user_text, ECHO_WORDS);
            if echo.is_empty() {
                "mock reply:".to_owned()
            } else {
                format!("mock reply: {echo}")
            }
        }
    };
    let mut list: Vec<&str> = base.split_whitespace().collect();
    let wanted = behavior.chunks.map_or(0, |n| n as usize);
    while list.len() < wanted {
        list.push(PAD_WORD);
    }
    let mut finish = Finish::Stop;
    if let Some(max) = req.max_tokens
        && (max as usize) < list.len()
    {
        list.truncate(max as usize);
        finish = Finish::Length;
    }
    let mut text = list.join(" ");
    let first_stop = req
        .stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s).map(|at| (at, *s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, seq)) = first_stop {
        text.truncate(at);
        finish = Finish::StopSequence(seq.to_owned());
    }
    let list: Vec<&str> = text.split_whitespace().collect();
    let pieces = group(&list, behavior.chunks.map_or(list.len(), |n| n as usize));
    Reply {
        words: list.len() as u64,
        content: Content::Pieces(pieces),
        finish: tool_finish(finish),
        tool,
    }
}

/// `words` in `n` pieces (as even as possible) whose concatenation is `words.join(" ")`.
pub(crate) fn group(words: &[&str], n: usize) -> Vec<String> {
    if words.is_empty() {
        return Vec::new();
    }
    let n = n.clamp(1, words.len());
    let (base, extra) = (words.len() / n, words.len() % n);
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for k in 0..n {
        let size = base + usize::from(k < extra);
        let mut piece = String::new();
        for (j, word) in words[at..at + size].iter().enumerate() {
            if at + j > 0 {
                piece.push(' ');
            }
            piece.push_str(word);
        }
        at += size;
        out.push(piece);
    }
    out
}

/// FNV-1a, 64 bits: stable across runs, platforms and Rust versions.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Dimensions of the mock embeddings.
pub(crate) const EMBEDDING_DIMS: usize = 8;

/// A unit vector derived from the FNV-1a hash of `text`.
pub(crate) fn embedding(text: &str) -> [f32; EMBEDDING_DIMS] {
    let h = fnv1a(text.as_bytes());
    let mut v = [0f64; EMBEDDING_DIMS];
    for (i, x) in v.iter_mut().enumerate() {
        let r = splitmix64(h ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        *x = (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    }
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    v.map(|x| (x / norm) as f32)
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A JSON string literal for `s`.
pub(crate) fn esc(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_echoes_first_words() {
        let req = ReplyRequest {
            user_text: "one two three four five six seven eight nine ten",
            ..Default::default()
        };
        let r = build(&req, &Behavior::default());
        assert_eq!(
            r.content.text(),
            "mock reply: one two three four five six seven eight"
        );
        assert_eq!(r.words, 10);
        assert_eq!(r.finish, Finish::Stop);
    }

    #[test]
    fn chunks_pad_and_group() {
        let req = ReplyRequest {
            user_text: "hi",
            ..Default::default()
        };
        let b = Behavior {
            chunks: Some(5),
            ..Default::default()
        };
        let r = build(&req, &b);
        let Content::Pieces(p) = &r.content else {
            panic!("pieces")
        };
        assert_eq!(p, &["mock", " reply:", " hi", " lorem", " lorem"]);
        let b = Behavior {
            chunks: Some(1),
            ..Default::default()
        };
        let Content::Pieces(p) = build(&req, &b).content else {
            panic!("pieces")
        };
        assert_eq!(p, vec!["mock reply: hi".to_owned()]);
    }

    #[test]
    fn max_tokens_and_stop() {
        let req = ReplyRequest {
            user_text: "alpha beta gamma",
            max_tokens: Some(3),
            ..Default::default()
        };
        let r = build(&req, &Behavior::default());
        assert_eq!(r.content.text(), "mock reply: alpha");
        assert_eq!(r.finish, Finish::Length);
        let req = ReplyRequest {
            user_text: "alpha beta gamma",
            stop: vec!["gamma"],
            ..Default::default()
        };
        let r = build(&req, &Behavior::default());
        assert_eq!(r.content.text(), "mock reply: alpha beta");
        assert_eq!(r.finish, Finish::StopSequence("gamma".into()));
    }

    #[test]
    fn base64_matches_reference() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn trigger_and_fragments() {
        let named = |name: &str, arguments: Option<&str>| {
            Some(Trigger {
                name: name.into(),
                arguments: arguments.map(Into::into),
            })
        };
        assert_eq!(
            tool_trigger("please call tool lookup."),
            named("lookup", None)
        );
        assert_eq!(tool_trigger("nothing"), None);
        assert_eq!(
            tool_trigger(r#"now call tool Bash with { "command": "echo hi" } and report"#),
            named("Bash", Some(r#"{"command":"echo hi"}"#))
        );
        // Not an object, or not valid JSON: the default arguments.
        assert_eq!(tool_trigger("call tool Bash with [1]"), named("Bash", None));
        assert_eq!(
            tool_trigger(r#"call tool Bash with {"command": "#),
            named("Bash", None)
        );
        assert_eq!(
            tool_trigger(r#"call tool Bash. with {"a":1}"#),
            named("Bash", Some(r#"{"a":1}"#))
        );
        let t = ToolCall {
            name: "x".into(),
            arguments: r#"{"q":"héllo wörld"}"#.into(),
            words: 2,
        };
        assert_eq!(t.fragments(None).concat(), t.arguments);
        assert_eq!(t.fragments(Some(3)).concat(), t.arguments);
    }

    #[test]
    fn embeddings_are_unit_and_stable() {
        let a = embedding("hello");
        assert_eq!(a, embedding("hello"));
        assert_ne!(a, embedding("world"));
        let n: f32 = a.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
    }
}
