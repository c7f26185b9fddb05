//! OpenAI Responses ⇄ OpenAI chat completions: requests of Responses-dialect clients (Codex
//! CLI, openai-agents, the Vercel AI SDK) for a chat completions upstream, and the upstream's
//! answers (bodies, streams) back as Responses objects and events. An Anthropic upstream is
//! reached by composition with the chat → Anthropic direction (see the tests in `tests.rs`
//! for what survives the two hops).
//!
//! - `request.rs`: [`responses_to_chat`];
//! - `response.rs`: [`chat_response_to_responses`], and the pieces of a `response` object;
//! - `stream.rs`: [`ChatToResponsesStream`].

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use request::responses_to_chat;
pub use response::chat_response_to_responses;
pub use stream::{ChatToResponsesStream, MAX_OUTPUT_ITEMS};

/// Marks a reasoning item's `encrypted_content` that carries Anthropic thinking blocks
/// (`thinking_blocks` JSON after the prefix), so signed thinking survives a Responses client.
/// Content without the prefix (OpenAI's own encrypted reasoning) is opaque and dropped.
pub(crate) const THINKING_BLOCKS_PREFIX: &str = "switchyard.thinking_blocks.v1:";
