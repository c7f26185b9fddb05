//! OpenAI chat → Anthropic Messages: requests of OpenAI-dialect clients for an Anthropic
//! upstream, and the answers (bodies, errors, streams) of an OpenAI-dialect upstream for
//! Anthropic-dialect clients.

mod request;
mod response;
mod stream;

pub use request::{
    DEFAULT_MAX_TOKENS, MIN_THINKING_BUDGET, openai_chat_to_anthropic, reasoning_effort_budget,
};
pub use response::{
    finish_reason_to_stop_reason, openai_error_to_anthropic, openai_response_to_anthropic,
};
pub use stream::OpenAiToAnthropicStream;
