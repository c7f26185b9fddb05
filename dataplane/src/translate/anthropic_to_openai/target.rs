//! What the OpenAI-dialect server behind a translated Anthropic request accepts beyond the
//! common chat completions API.

/// The kind of OpenAI-dialect server an Anthropic Messages request is translated for
/// ([`super::anthropic_to_openai_chat`]). The differences that matter:
///
/// | | OpenAI | vLLM | Ollama | other |
/// |---|---|---|---|---|
/// | `system` messages after the first | kept in place | folded | folded | folded |
/// | `top_k` | dropped | sent | sent | sent |
/// | `thinking` → `reasoning_effort` | dropped | sent | dropped | dropped |
/// | `stop` entries | at most 4 | any | any | any |
/// | PDF `file` parts | sent | refused | refused | sent |
/// | image URLs (not `data:`) | sent | sent | refused | sent |
///
/// Sources: OpenAI takes system messages anywhere and refuses more than 4 stop sequences and
/// unknown parameters; vLLM's chat request takes `top_k` and `reasoning_effort` for every model
/// (`vllm/entrypoints/openai/protocol.py`); many chat templates render a system message only
/// first (Gemma, older Mistral), which is why vLLM's own Anthropic endpoint folds inline system
/// messages into a neighbour (`vllm/entrypoints/anthropic/inline_system.py`); Ollama refuses
/// `think` (which its `reasoning_effort` sets) for models without thinking, takes images only as
/// base64, and neither vLLM nor Ollama has a `file` content part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChatTarget {
    /// OpenAI itself (Provider type `openai`): strict about parameters.
    OpenAi,
    /// vLLM (Provider or Backend type `vllm`).
    Vllm,
    /// Ollama's OpenAI-compatible API.
    Ollama,
    /// Any other OpenAI-compatible server (llama.cpp, LM Studio, OpenRouter, …).
    #[default]
    Other,
}

impl ChatTarget {
    /// The target for a Provider or Backend type as the CRDs spell it (`openai`, `vllm`,
    /// `ollama`, …; anything else is [`ChatTarget::Other`]).
    pub fn from_kind(kind: &str) -> Self {
        match kind {
            "openai" => Self::OpenAi,
            "vllm" => Self::Vllm,
            "ollama" => Self::Ollama,
            _ => Self::Other,
        }
    }

    /// Whether `system` messages may follow other messages (else they are folded into a
    /// neighbouring user or tool message).
    pub(super) fn system_anywhere(self) -> bool {
        self == Self::OpenAi
    }

    /// Whether `top_k` is accepted (as an extension parameter).
    pub(super) fn takes_top_k(self) -> bool {
        self != Self::OpenAi
    }

    /// Whether `reasoning_effort` is accepted for any model.
    pub(super) fn takes_reasoning_effort(self) -> bool {
        self == Self::Vllm
    }

    /// The most `stop` sequences accepted.
    pub(super) fn max_stop_sequences(self) -> Option<usize> {
        (self == Self::OpenAi).then_some(4)
    }

    /// Whether `file` content parts (PDFs) are accepted.
    pub(super) fn takes_file_parts(self) -> bool {
        !matches!(self, Self::Vllm | Self::Ollama)
    }

    /// Whether `image_url` parts may name a URL other than a `data:` URL.
    pub(super) fn takes_image_links(self) -> bool {
        self != Self::Ollama
    }
}
