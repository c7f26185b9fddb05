//! OpenAI Responses ⇄ OpenAI chat completions: requests of Responses-dialect clients (Codex
//! CLI, openai-agents, the Vercel AI SDK) for a chat completions upstream, and the upstream's
//! answers (bodies, streams) back as Responses objects and events. An Anthropic upstream is
//! reached by composition with the chat → Anthropic direction (see the tests in `tests.rs`
//! for what survives the two hops).
//!
//! An Anthropic target, reached through `openai_chat_to_anthropic` / `anthropic_response_to_openai`
//! / `AnthropicToOpenAiStream`, keeps: instructions, images (data and http URLs), PDFs,
//! function tools, tool calls and results, `tool_choice`, `parallel_tool_calls`, sampling
//! options, `reasoning.effort` (as a thinking budget), cache read and write usage
//! (`input_tokens_details.cached_tokens` / `cache_write_tokens`), and signed thinking: an
//! Anthropic answer's `thinking_blocks` travel in the reasoning item's `encrypted_content`
//! ([`THINKING_BLOCKS_PREFIX`]) and are restored when the client sends the item back, so
//! extended thinking with tool use works across turns. What it loses:
//! - `text.format` `json_schema`: the chat → Anthropic step refuses `response_format`
//!   `json_schema` (`TranslateError::Unsupported("response_format")`; the caller should report it
//!   as `text.format`);
//! - `output_tokens_details.reasoning_tokens` is 0 (Anthropic counts thinking in
//!   `output_tokens` without a breakdown);
//! - unsigned reasoning (a summary without our `encrypted_content`, e.g. from another model) is
//!   dropped, as Anthropic rejects unsigned thinking;
//! - Anthropic server-tool blocks and citations (already dropped by the chat step).
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
