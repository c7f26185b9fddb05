//! Token counts of Anthropic Messages requests estimated locally, for `POST
//! /v1/messages/count_tokens` routed to a target that cannot count them itself (every
//! OpenAI-dialect target: OpenAI, vLLM, Ollama, backends, …). Anthropic targets count their own
//! (the request is forwarded, see `proxy::count_tokens`).
//!
//! The estimate is what a tiktoken encoding makes of what the model sees:
//!
//! - the encoding is `o200k_base` for the GPT-4o, GPT-4.1, GPT-4.5, GPT-5, `o`-series, Codex and
//!   gpt-oss families and `cl100k_base` for every other model ([`Encoding::for_model`], after
//!   tiktoken's own model table, `tiktoken/model.py`). For models with a tokenizer of their own
//!   (Llama, Qwen, Mistral, Gemma, DeepSeek, …) it is an estimate, not their tokenizer's count;
//! - counted: the system prompt (a string or text blocks), every message's text, `tool_use`
//!   names and input JSON, `tool_result` content, thinking text, text documents, search results,
//!   and each tool definition's name, description and `input_schema` JSON; an image counts
//!   [`IMAGE_TOKENS`] and a non-text document (a PDF) [`DOCUMENT_TOKENS`]; a block of another
//!   type counts its JSON;
//! - framing as OpenAI's cookbook counts chat messages ("How to count tokens with tiktoken"):
//!   [`TOKENS_PER_MESSAGE`] per message (the system prompt is one) plus its role, and
//!   [`REPLY_PRIMING`] once for the reply's start.
//!
//! The encodings are built once, on first use, and shared (building one parses a vocabulary of
//! 100k–200k entries). Counting is CPU work proportional to the text: callers run it off the
//! async executor (`spawn_blocking`). Texts are encoded in pieces of at most [`PIECE_BYTES`]
//! (cut at whitespace where possible), which bounds the BPE merge of a long run without
//! whitespace and changes nothing for ordinary text.

use std::sync::LazyLock;

use serde_json::Value;
use tiktoken_rs::CoreBPE;

/// Tokens counted per image. Anthropic sizes images at about `width × height / 750` tokens and
/// scales larger ones down to about 1.15 megapixels, about 1,600 tokens: the most one costs.
pub const IMAGE_TOKENS: u64 = 1_600;
/// Tokens counted per document that is not plain text (a PDF: Anthropic counts each page's
/// text plus the page as an image, 1,500–3,000 tokens a page; the page count is not known
/// without parsing the file).
pub const DOCUMENT_TOKENS: u64 = 3_000;
/// Framing tokens per message (`<|start|>{role}<|message|>…<|end|>`), as OpenAI's cookbook
/// counts them for current chat models.
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens priming the reply (`<|start|>assistant<|message|>`), counted once.
pub const REPLY_PRIMING: u64 = 3;
/// Texts are encoded in pieces of at most this many bytes.
pub const PIECE_BYTES: usize = 8 * 1024;

/// A tiktoken encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// GPT-4o and later OpenAI models.
    O200kBase,
    /// GPT-4, GPT-3.5 and, as an estimate, every other model.
    Cl100kBase,
}

impl Encoding {
    /// The encoding for `model` (a provider prefix such as `openai/` is ignored).
    pub fn for_model(model: &str) -> Self {
        let name = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        // After tiktoken's MODEL_PREFIX_TO_ENCODING / MODEL_TO_ENCODING (tiktoken/model.py).
        const O200K_PREFIXES: [&str; 8] = [
            "gpt-4o",
            "chatgpt-4o",
            "gpt-4.1",
            "gpt-4.5",
            "gpt-5",
            "gpt-oss",
            "codex-",
            "computer-use-preview",
        ];
        let o_series = name
            .strip_prefix('o')
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c.is_ascii_digit());
        if o_series || O200K_PREFIXES.iter().any(|p| name.starts_with(p)) {
            Self::O200kBase
        } else {
            Self::Cl100kBase
        }
    }

    /// tiktoken's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::O200kBase => "o200k_base",
            Self::Cl100kBase => "cl100k_base",
        }
    }

    fn bpe(self) -> Option<&'static CoreBPE> {
        static O200K: LazyLock<Option<CoreBPE>> = LazyLock::new(|| tiktoken_rs::o200k_base().ok());
        static CL100K: LazyLock<Option<CoreBPE>> =
            LazyLock::new(|| tiktoken_rs::cl100k_base().ok());
        match self {
            Self::O200kBase => O200K.as_ref(),
            Self::Cl100kBase => CL100K.as_ref(),
        }
    }
}

/// The encoding could not be built (its embedded vocabulary did not load).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {} tokenizer is not available", .0.as_str())]
pub struct TokenizerUnavailable(pub Encoding);

/// A local token count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// Input tokens of the request.
    pub input_tokens: u64,
    /// The encoding counted with.
    pub encoding: Encoding,
}

/// Estimates the input tokens of an Anthropic Messages request `body` (already checked to be
/// one) for `model`.
pub fn estimate(body: &Value, model: &str) -> Result<Estimate, TokenizerUnavailable> {
    let encoding = Encoding::for_model(model);
    let bpe = encoding.bpe().ok_or(TokenizerUnavailable(encoding))?;
    let mut c = Counter { bpe, tokens: 0 };
    match body.get("system") {
        Some(Value::String(s)) => c.message("system", |c| c.text(s)),
        Some(Value::Array(blocks)) if !blocks.is_empty() => {
            c.message("system", |c| blocks.iter().for_each(|b| c.block(b)))
        }
        _ => {}
    }
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        c.message(role, |c| c.content(m.get("content")));
    }
    for t in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        c.tool(t);
    }
    c.tokens += REPLY_PRIMING;
    Ok(Estimate {
        input_tokens: c.tokens,
        encoding,
    })
}

/// The tokens of `text` alone in `encoding` (no framing), as [`estimate`] counts each text.
pub fn text_tokens(text: &str, encoding: Encoding) -> Result<u64, TokenizerUnavailable> {
    let bpe = encoding.bpe().ok_or(TokenizerUnavailable(encoding))?;
    let mut c = Counter { bpe, tokens: 0 };
    c.text(text);
    Ok(c.tokens)
}

struct Counter {
    bpe: &'static CoreBPE,
    tokens: u64,
}

impl Counter {
    fn message(&mut self, role: &str, body: impl FnOnce(&mut Self)) {
        self.tokens += TOKENS_PER_MESSAGE;
        self.text(role);
        body(self);
    }

    /// Special-token text in the caller's content is ordinary text (never a control token).
    fn text(&mut self, text: &str) {
        for piece in pieces(text) {
            self.tokens += self.bpe.encode_ordinary(piece).len() as u64;
        }
    }

    fn json(&mut self, v: &Value) {
        self.text(&v.to_string());
    }

    fn content(&mut self, content: Option<&Value>) {
        match content {
            Some(Value::String(s)) => self.text(s),
            Some(Value::Array(blocks)) => blocks.iter().for_each(|b| self.block(b)),
            Some(other) => self.json(other),
            None => {}
        }
    }

    fn block(&mut self, b: &Value) {
        let str_of = |k: &str| b.get(k).and_then(Value::as_str);
        match str_of("type") {
            Some("text") => self.text(str_of("text").unwrap_or_default()),
            Some("image") => self.tokens += IMAGE_TOKENS,
            Some("document") => self.document(b),
            Some("tool_use" | "server_tool_use") => {
                self.text(str_of("name").unwrap_or_default());
                if let Some(input) = b.get("input") {
                    self.json(input);
                }
            }
            Some("tool_result") => self.content(b.get("content")),
            Some("thinking") => self.text(str_of("thinking").unwrap_or_default()),
            // Encrypted: what the model reads of it is not known; its size is a fair measure.
            Some("redacted_thinking") => {
                self.tokens += (str_of("data").unwrap_or_default().len() / 4) as u64
            }
            Some("search_result") => {
                self.text(str_of("title").unwrap_or_default());
                self.text(str_of("source").unwrap_or_default());
                self.content(b.get("content"));
            }
            _ => self.json(b),
        }
    }

    fn document(&mut self, b: &Value) {
        let source = b.get("source");
        let kind = source.and_then(|s| s.get("type")).and_then(Value::as_str);
        if let Some(title) = b.get("title").and_then(Value::as_str) {
            self.text(title);
        }
        match (kind, source) {
            (Some("text"), Some(s)) => {
                self.text(s.get("data").and_then(Value::as_str).unwrap_or_default())
            }
            (Some("content"), Some(s)) => self.content(s.get("content")),
            _ => self.tokens += DOCUMENT_TOKENS,
        }
    }

    /// A tool definition: its name, description and input schema (a server tool, which has
    /// none of them but a type, counts its JSON).
    fn tool(&mut self, t: &Value) {
        match t.get("input_schema") {
            Some(schema) => {
                self.text(t.get("name").and_then(Value::as_str).unwrap_or_default());
                self.text(
                    t.get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
                self.json(schema);
            }
            None => self.json(t),
        }
    }
}

/// `text` in pieces of at most [`PIECE_BYTES`], each cut after the last whitespace of its
/// second half when there is one (else at a char boundary).
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() <= PIECE_BYTES {
            return Some(std::mem::take(&mut rest));
        }
        let (end, half) = (
            floor_boundary(rest, PIECE_BYTES),
            floor_boundary(rest, PIECE_BYTES / 2),
        );
        let cut = rest[half..end]
            .rfind(char::is_whitespace)
            .map_or(end, |i| half + i);
        let cut = if cut == 0 { end } else { cut };
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// The largest char boundary of `s` at or below `at` (`at` < `s.len()`).
fn floor_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bpe_count(text: &str, e: Encoding) -> u64 {
        e.bpe().unwrap().encode_ordinary(text).len() as u64
    }

    #[test]
    fn encodings_follow_the_model_family() {
        for m in [
            "gpt-4o",
            "gpt-4o-mini",
            "openai/gpt-4.1",
            "gpt-5-codex",
            "o1",
            "o3-mini",
            "o4-mini",
            "gpt-oss-120b",
            "GPT-4O",
        ] {
            assert_eq!(Encoding::for_model(m), Encoding::O200kBase, "{m}");
        }
        for m in [
            "gpt-4",
            "gpt-3.5-turbo",
            "llama-3.1-8b",
            "Qwen/Qwen2.5-7B",
            "mistral-large",
            "ollama-model",
            "claude-sonnet-4",
        ] {
            assert_eq!(Encoding::for_model(m), Encoding::Cl100kBase, "{m}");
        }
    }

    #[test]
    fn a_text_message_counts_its_text_role_and_framing() {
        let text = "The quick brown fox jumps over the lazy dog.";
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]});
        let e = estimate(&body, "gpt-4o").unwrap();
        assert_eq!(e.encoding, Encoding::O200kBase);
        let expected = TOKENS_PER_MESSAGE
            + bpe_count("user", Encoding::O200kBase)
            + bpe_count(text, Encoding::O200kBase)
            + REPLY_PRIMING;
        assert_eq!(e.input_tokens, expected);
        // The cookbook's own example: "hello world" is 2 tokens in both encodings.
        assert_eq!(text_tokens("hello world", Encoding::O200kBase).unwrap(), 2);
        assert_eq!(text_tokens("hello world", Encoding::Cl100kBase).unwrap(), 2);
    }

    #[test]
    fn system_tools_tool_use_results_and_images_count() {
        let e = Encoding::Cl100kBase;
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let input = json!({"city": "Paris"});
        let body = json!({
            "system": [{"type": "text", "text": "Be brief."}],
            "tools": [{"name": "weather", "description": "Get the weather", "input_schema": schema}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "weather", "input": input}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "Sunny"}]}]}
            ]
        });
        let got = estimate(&body, "llama-3").unwrap();
        let t = |s: &str| bpe_count(s, e);
        let expected = (TOKENS_PER_MESSAGE + t("system") + t("Be brief."))
            + (TOKENS_PER_MESSAGE + t("user") + t("Weather?") + IMAGE_TOKENS)
            + (TOKENS_PER_MESSAGE + t("assistant") + t("weather") + t(&input.to_string()))
            + (TOKENS_PER_MESSAGE + t("user") + t("Sunny"))
            + (t("weather") + t("Get the weather") + t(&schema.to_string()))
            + REPLY_PRIMING;
        assert_eq!(got.input_tokens, expected);
        assert_eq!(got.encoding, Encoding::Cl100kBase);
    }

    #[test]
    fn documents_count_their_text_or_a_fixed_estimate() {
        let text = json!({"messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "alpha beta"}}
        ]}]});
        let pdf = json!({"messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}
        ]}]});
        let base = TOKENS_PER_MESSAGE + bpe_count("user", Encoding::Cl100kBase) + REPLY_PRIMING;
        assert_eq!(
            estimate(&text, "m").unwrap().input_tokens,
            base + bpe_count("alpha beta", Encoding::Cl100kBase)
        );
        assert_eq!(
            estimate(&pdf, "m").unwrap().input_tokens,
            base + DOCUMENT_TOKENS
        );
    }

    #[test]
    fn special_token_text_is_ordinary_text() {
        // `<|endoftext|>` typed by a caller is text, not the control token (and no panic).
        assert!(text_tokens("<|endoftext|>", Encoding::Cl100kBase).unwrap() > 1);
    }

    #[test]
    fn long_texts_are_cut_into_bounded_pieces_losing_nothing() {
        let words = "lorem ipsum dolor sit amet ".repeat(2_000);
        let ps: Vec<&str> = pieces(&words).collect();
        assert!(ps.len() > 1);
        assert!(ps.iter().all(|p| p.len() <= PIECE_BYTES));
        assert_eq!(ps.concat(), words);
        // Cut at whitespace: the count equals the uncut count.
        assert_eq!(
            text_tokens(&words, Encoding::Cl100kBase).unwrap(),
            bpe_count(&words, Encoding::Cl100kBase)
        );
        // A run without whitespace (and multi-byte chars) is cut at char boundaries.
        let run = "é".repeat(3 * PIECE_BYTES);
        let ps: Vec<&str> = pieces(&run).collect();
        assert!(ps.iter().all(|p| p.len() <= PIECE_BYTES && !p.is_empty()));
        assert_eq!(ps.concat(), run);
        assert!(text_tokens(&run, Encoding::O200kBase).unwrap() > 0);
    }
}
