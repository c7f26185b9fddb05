//! Anthropic Messages → OpenAI chat: requests of Anthropic-dialect clients for an OpenAI-dialect
//! upstream, and the answers (bodies, errors, streams) of an Anthropic upstream for OpenAI-dialect
//! clients.

mod content;
mod request;
mod response;
mod stream;
mod system;
mod target;

pub use request::anthropic_to_openai_chat;
pub use response::{
    anthropic_error_to_openai, anthropic_response_to_openai, stop_reason_to_finish_reason,
};
pub use stream::AnthropicToOpenAiStream;
pub use target::ChatTarget;
