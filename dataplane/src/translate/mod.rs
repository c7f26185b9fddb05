//! OpenAI ⇄ Anthropic translation of requests, responses and streams.
//!
//! One module per direction of translation, each with a request, a response and a stream
//! translator; a client and its upstream use one direction for the request and the other for
//! the answer:
//!
//! | client speaks | upstream speaks | request | response | stream |
//! |---|---|---|---|---|
//! | OpenAI chat | Anthropic Messages | [`openai_chat_to_anthropic`] | [`anthropic_response_to_openai`] | [`AnthropicToOpenAiStream`] |
//! | Anthropic Messages | OpenAI chat | [`anthropic_to_openai_chat`] | [`openai_response_to_anthropic`] | [`OpenAiToAnthropicStream`] |
//! | OpenAI Responses | OpenAI chat (Anthropic: then the first row) | [`responses_to_chat`] | [`chat_response_to_responses`] | [`ChatToResponsesStream`] |
//!
//! - `openai_to_anthropic/`: OpenAI chat → Anthropic Messages (`request.rs`: requests,
//!   `response.rs`: response and error bodies, `stream.rs`: streams);
//! - `anthropic_to_openai/`: Anthropic Messages → OpenAI chat (the same three files, and for
//!   requests `content.rs`: content blocks, `system.rs`: where system text goes, `target.rs`:
//!   [`ChatTarget`], what the OpenAI-dialect server accepts);
//! - `common.rs`: the helpers the directions share;
//! - this file: [`TranslateError`] and the entry points of every direction (the module's API).
//!
//! A new dialect adds a folder per direction it translates, and re-exports its entry points
//! here.
//!
//! Everything works on [`serde_json::Value`]s. Translation is explicit: a target never receives a
//! field it does not know (both APIs reject unknown parameters), so parameters without an
//! equivalent are either dropped (when dropping cannot change the meaning of the answer in a way
//! the client relies on) or rejected with [`TranslateError::Unsupported`]. The decisions a user
//! can notice are listed on each function.
//!
//! Thinking round-trips through OpenAI-dialect clients with two extension fields on assistant
//! messages: `reasoning_content` (the text, as DeepSeek and vLLM name it) and `thinking_blocks`
//! (`[{"type":"thinking","thinking":…,"signature":…}]` and
//! `[{"type":"redacted_thinking","data":…}]`), which a client sends back unchanged so the signed
//! blocks reach Anthropic intact.

mod anthropic_to_openai;
mod common;
mod openai_to_anthropic;
mod responses;
#[cfg(test)]
mod tests;

pub use anthropic_to_openai::{
    AnthropicToOpenAiStream, ChatTarget, anthropic_error_to_openai, anthropic_response_to_openai,
    anthropic_to_openai_chat, stop_reason_to_finish_reason,
};
pub use openai_to_anthropic::{
    DEFAULT_MAX_TOKENS, MIN_THINKING_BUDGET, OpenAiToAnthropicStream, finish_reason_to_stop_reason,
    openai_chat_to_anthropic, openai_error_to_anthropic, openai_response_to_anthropic,
    reasoning_effort_budget,
};
pub use responses::{
    ChatToResponsesStream, MAX_OUTPUT_ITEMS, chat_response_to_responses, responses_to_chat,
};

/// The `param` of [`TranslateError::Invalid`] errors about upstream stream data (a stream
/// event whose data is not JSON, tool-call arguments continuing after their block closed).
pub const UPSTREAM_STREAM_PARAM: &str = "upstream_stream";

/// Why a request, response or stream event could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's request is malformed; map to HTTP 400 with `param` in the error body.
    #[error("invalid `{param}`: {message}")]
    Invalid {
        /// Path of the offending parameter, e.g. `messages[2].tool_calls[0].function.arguments`.
        param: String,
        /// What is wrong with it.
        message: String,
    },
    /// The request uses a feature the target dialect cannot express; the string names the
    /// parameter (e.g. `n`, `logprobs`, `audio`, `tools[1].type`), possibly followed by what it
    /// holds in parentheses. Map to HTTP 400, or try a target that speaks the client's dialect.
    #[error("`{0}` is not supported by the target provider's API")]
    Unsupported(String),
}

impl TranslateError {
    /// The parameter to report in the error body, if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            TranslateError::Invalid { param, .. } => Some(param),
            TranslateError::Unsupported(param) => Some(param),
        }
    }

    /// Upstream stream data that cannot be translated; reported as [`TranslateError::Invalid`]
    /// with param [`UPSTREAM_STREAM_PARAM`] (the client is not at fault: map to 502).
    pub(crate) fn upstream(message: impl Into<String>) -> Self {
        Self::invalid(UPSTREAM_STREAM_PARAM, message)
    }

    /// Whether this error describes bad upstream data rather than a bad request.
    pub fn is_upstream(&self) -> bool {
        matches!(self, TranslateError::Invalid { param, .. } if param == UPSTREAM_STREAM_PARAM)
    }

    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        TranslateError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}
