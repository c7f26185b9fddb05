//! What a non-streamed upstream answer must look like before it is relayed as a success: a
//! JSON object of the upstream's dialect for the endpoint called (a chat completion with
//! `choices[].message`, a completion with `choices[].text`, embeddings with `data[].embedding`,
//! an Anthropic message with `content[]` blocks). An error body is an upstream error whatever
//! the status it came with (some providers and proxies answer `200 {"error": …}`).
//!
//! The check reads the body once with typed shapes that keep nothing of the large parts (texts,
//! embedding vectors), so a 60 MiB embeddings answer is validated without a parsed copy.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use switchyard_routing::{Dialect, Endpoint};

use crate::record::ToolUsage;
use crate::usage::Usage;

/// What a valid answer told about the call.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Summary {
    pub(crate) usage: Option<Usage>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) tools: Vec<ToolUsage>,
}

/// Why an answer is not relayed as a success.
#[derive(Debug, PartialEq)]
pub(crate) enum Fault {
    /// The body is an error (its message, not yet scrubbed).
    ErrorBody(String),
    /// The body is not an answer of the dialect (what is wrong).
    Invalid(String),
}

/// Checks a non-streamed answer of an upstream of `dialect` to a call of `endpoint` (the
/// caller's endpoint: an Anthropic upstream is always called on its messages API, an OpenAI one
/// on chat completions for both chat endpoints; `(OpenAi, Responses)` is a native Responses
/// object).
pub(crate) fn check(endpoint: Endpoint, dialect: Dialect, body: &[u8]) -> Result<Summary, Fault> {
    // (A struct would also be read from an array.)
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(Fault::Invalid("the answer is not a JSON object".into()));
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| Fault::Invalid(format!("the answer is not a JSON object ({e})")))?;
    if let Some(message) = answer.error_message() {
        return Err(Fault::ErrorBody(message));
    }
    let usage = answer.usage.as_ref().filter(|u| !u.is_null());
    match (dialect, endpoint) {
        (Dialect::Anthropic, _) => {
            let content = answer
                .content
                .ok_or_else(|| missing("content", "an array of content blocks"))?;
            Ok(Summary {
                usage: usage.and_then(Usage::from_anthropic),
                finish_reason: answer.stop_reason,
                tools: content
                    .into_iter()
                    .filter(|b| b.kind == "tool_use")
                    .filter_map(|b| {
                        Some(ToolUsage {
                            id: b.id?,
                            name: b.name?,
                        })
                    })
                    .collect(),
            })
        }
        (Dialect::OpenAi, Endpoint::Embeddings) => {
            answer
                .data
                .ok_or_else(|| missing("data", "an array of embeddings"))?;
            Ok(Summary {
                usage: usage.and_then(Usage::from_openai),
                ..Summary::default()
            })
        }
        (Dialect::OpenAi, Endpoint::Completions) => {
            let choices = answer
                .choices
                .ok_or_else(|| missing("choices", "an array of choices"))?;
            let mut finish_reason = None;
            for (i, c) in choices.into_iter().enumerate() {
                if c.text.is_none() {
                    return Err(missing(&format!("choices[{i}].text"), "a string"));
                }
                if i == 0 {
                    finish_reason = c.finish_reason;
                }
            }
            Ok(Summary {
                usage: usage.and_then(Usage::from_openai),
                finish_reason,
                tools: Vec::new(),
            })
        }
        (Dialect::OpenAi, Endpoint::Responses) => {
            // A native Responses object (OpenAI proper); a translated call is checked as the
            // chat completion it is (see `proxy::responses`).
            let output = answer
                .output
                .ok_or_else(|| missing("output", "an array of output items"))?;
            Ok(Summary {
                usage: usage.and_then(Usage::from_openai),
                finish_reason: answer.status,
                tools: output
                    .into_iter()
                    .filter(|i| i.kind.as_deref() == Some("function_call"))
                    .filter_map(|i| {
                        Some(ToolUsage {
                            id: i.call_id?,
                            name: i.name?,
                        })
                    })
                    .collect(),
            })
        }
        (Dialect::OpenAi, Endpoint::ChatCompletions | Endpoint::Messages) => {
            let choices = answer
                .choices
                .ok_or_else(|| missing("choices", "an array of choices"))?;
            if choices.is_empty() {
                return Err(Fault::Invalid("the answer has no choices".into()));
            }
            let mut summary = Summary {
                usage: usage.and_then(Usage::from_openai),
                ..Summary::default()
            };
            for (i, c) in choices.into_iter().enumerate() {
                let message = c
                    .message
                    .ok_or_else(|| missing(&format!("choices[{i}].message"), "an object"))?;
                if i == 0 {
                    summary.finish_reason = c.finish_reason;
                    summary.tools = message
                        .tool_calls
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|t| {
                            Some(ToolUsage {
                                id: t.id?,
                                name: t.function?.name?,
                            })
                        })
                        .collect();
                }
            }
            Ok(summary)
        }
    }
}

fn missing(field: &str, what: &str) -> Fault {
    Fault::Invalid(format!("the answer has no `{field}` ({what})"))
}

/// Every shape the check reads; other fields are skipped.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    usage: Option<Value>,
    // OpenAI chat and completions.
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    // OpenAI embeddings.
    #[serde(default)]
    data: Option<Vec<Embedding>>,
    // Anthropic.
    #[serde(default)]
    content: Option<Vec<Block>>,
    #[serde(default)]
    stop_reason: Option<String>,
    // OpenAI Responses.
    #[serde(default)]
    output: Option<Vec<OutputItem>>,
    #[serde(default)]
    status: Option<String>,
}

/// An item of a Responses object's `output` (only what the summary needs).
#[derive(Deserialize)]
struct OutputItem {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl Answer {
    fn error_message(&self) -> Option<String> {
        let anthropic_error = self.kind.as_ref().and_then(Value::as_str) == Some("error");
        let error = self.error.as_ref().filter(|e| !e.is_null());
        if error.is_none() && !anthropic_error {
            return None;
        }
        let message = error.and_then(|e| {
            e.get("message")
                .and_then(Value::as_str)
                .or_else(|| e.as_str())
                .map(str::to_owned)
                .or_else(|| Some(e.to_string()))
        });
        Some(message.unwrap_or_else(|| "error".to_owned()))
    }
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    // Checked for its type (a string, parts or null), not kept.
    #[serde(default)]
    #[allow(dead_code)]
    content: Option<TextOrParts>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<Function>,
}

#[derive(Deserialize)]
struct Function {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Embedding {
    #[allow(dead_code)]
    embedding: Vector,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// A JSON string, checked and not kept.
struct Text;

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Shape::Text)
    }
}

/// A string, an array of parts, or null (a message's `content`).
struct TextOrParts;

impl<'de> Deserialize<'de> for TextOrParts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Shape::TextOrParts).map(|_| TextOrParts)
    }
}

/// An embedding: an array of numbers, or a base64 string (`encoding_format: "base64"`).
struct Vector;

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Shape::Vector).map(|_| Vector)
    }
}

/// The visitor behind the shapes above: it accepts what the shape allows and keeps nothing.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    TextOrParts,
    Vector,
}

impl<'de> Visitor<'de> for Shape {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Text => "a string",
            Shape::TextOrParts => "a string, an array of parts or null",
            Shape::Vector => "an array of numbers or a base64 string",
        })
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Text, E> {
        Ok(Text)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
        match self {
            Shape::TextOrParts => Ok(Text),
            _ => Err(E::invalid_type(de::Unexpected::Unit, &self)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        match self {
            Shape::Text => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
            Shape::TextOrParts => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text)
            }
            Shape::Vector => {
                while seq.next_element::<f64>()?.is_some() {}
                Ok(Text)
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Text, A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Map, &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<Summary, Fault> {
        check(Endpoint::ChatCompletions, Dialect::OpenAi, body.as_bytes())
    }

    #[test]
    fn a_chat_completion_is_summarized() {
        let s = chat(
            r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,
                "tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
                "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        )
        .unwrap();
        assert_eq!(s.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            s.tools,
            vec![ToolUsage {
                id: "c1".into(),
                name: "f".into()
            }]
        );
        assert_eq!(s.usage.map(|u| u.input_tokens), Some(3));
    }

    #[test]
    fn error_bodies_are_faults_whatever_their_shape() {
        for body in [
            r#"{"error":{"message":"Incorrect API key provided: sk-x","type":"invalid_request_error"}}"#,
            r#"{"error":"Incorrect API key provided: sk-x"}"#,
            r#"{"type":"error","error":{"type":"authentication_error","message":"Incorrect API key provided: sk-x"}}"#,
        ] {
            for (endpoint, dialect) in [
                (Endpoint::ChatCompletions, Dialect::OpenAi),
                (Endpoint::Embeddings, Dialect::OpenAi),
                (Endpoint::Messages, Dialect::Anthropic),
            ] {
                assert_eq!(
                    check(endpoint, dialect, body.as_bytes()),
                    Err(Fault::ErrorBody("Incorrect API key provided: sk-x".into())),
                    "{body}"
                );
            }
        }
    }

    #[test]
    fn invalid_shapes_are_faults() {
        for body in [
            r#"{"choices":"nope"}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":[{"index":0}]}"#,
            r#"{"choices":[{"message":{"content":{"text":"x"}}}]}"#,
            r#"{"id":"x"}"#,
            r#"[1,2]"#,
            r#"not json"#,
            r#"{"choices":[{"message":{"content":"x"}}]"#,
        ] {
            assert!(matches!(chat(body), Err(Fault::Invalid(_))), "{body}");
        }
        let emb = |b: &str| check(Endpoint::Embeddings, Dialect::OpenAi, b.as_bytes());
        assert!(emb(r#"{"data":[{"embedding":[0.1,-2e-3]}],"usage":null}"#).is_ok());
        assert!(emb(r#"{"data":[{"embedding":"AAAA"}]}"#).is_ok());
        assert!(matches!(
            emb(r#"{"data":[{"embedding":{"x":1}}]}"#),
            Err(Fault::Invalid(_))
        ));
        assert!(matches!(
            emb(r#"{"data":[{"embedding":["a"]}]}"#),
            Err(Fault::Invalid(_))
        ));
        assert!(matches!(
            emb(r#"{"object":"list"}"#),
            Err(Fault::Invalid(_))
        ));
        let cmpl = |b: &str| check(Endpoint::Completions, Dialect::OpenAi, b.as_bytes());
        assert!(cmpl(r#"{"choices":[{"text":"x","finish_reason":"stop"}]}"#).is_ok());
        assert!(matches!(
            cmpl(r#"{"choices":[{"text":7}]}"#),
            Err(Fault::Invalid(_))
        ));
        let msg = |b: &str| check(Endpoint::Messages, Dialect::Anthropic, b.as_bytes());
        assert!(msg(r#"{"type":"message","content":[{"type":"text","text":"x"}],"stop_reason":"end_turn"}"#).is_ok());
        assert!(matches!(
            msg(r#"{"type":"message","content":"x"}"#),
            Err(Fault::Invalid(_))
        ));
        assert!(matches!(
            msg(r#"{"type":"message"}"#),
            Err(Fault::Invalid(_))
        ));
    }
}
