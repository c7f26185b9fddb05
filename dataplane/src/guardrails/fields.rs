//! Which fields of a request carry caller text, one description per endpoint. The walker
//! ([`super::walk`]) follows these descriptions for alert, redact and block alike, so adding an
//! endpoint is one more entry in [`of`].
//!
//! Rules shared by every description:
//! - a string in a described field is always scanned, whatever the field;
//! - a described field of an unexpected shape (an object where a string or an array was
//!   expected, say) has every string inside it scanned, object keys included: fail closed;
//! - fields not described are not caller text (model, ids, enums, numbers, media payloads,
//!   signed thinking blocks, encrypted search results, credentials addressed to the provider
//!   such as Anthropic `mcp_servers[].authorization_token`), and are not scanned.

use switchyard_routing::Endpoint;

/// Members of an object that carry caller text, each with its description.
pub type Members = &'static [(&'static str, Text)];

/// How one JSON value is scanned.
#[derive(Debug, Clone, Copy)]
pub enum Text {
    /// Not caller text: never scanned.
    Skip,
    /// Every string inside, object keys included (tool inputs, schemas, metadata).
    All,
    /// An object: the listed members only.
    Object(Members),
    /// An array: each item as described.
    Each(&'static Text),
    /// An object chosen by its `type`: the members listed for that type; other types (and
    /// objects without a `type`) use the fallback.
    Kinds(&'static [(&'static str, Members)], Members),
}

/// The description of an endpoint's request body.
pub fn of(endpoint: Endpoint) -> &'static Text {
    match endpoint {
        Endpoint::ChatCompletions => &CHAT_COMPLETIONS,
        Endpoint::Messages => &MESSAGES,
        Endpoint::Completions => &COMPLETIONS,
        Endpoint::Embeddings => &EMBEDDINGS,
        Endpoint::Responses => &RESPONSES,
    }
}

// ---------------------------------------------------------------- OpenAI chat completions

/// `POST /v1/chat/completions`.
pub static CHAT_COMPLETIONS: Text = Text::Object(&[
    ("messages", Text::Each(&OPENAI_MESSAGE)),
    ("tools", Text::All),
    ("functions", Text::All),
    ("tool_choice", Text::All),
    ("function_call", Text::All),
    ("response_format", Text::All),
    ("prediction", Text::Object(&[("content", OPENAI_CONTENT)])),
    ("stop", Text::All),
    ("user", Text::All),
    ("safety_identifier", Text::All),
    ("prompt_cache_key", Text::All),
    ("metadata", Text::All),
    ("web_search_options", Text::All),
]);

static OPENAI_MESSAGE: Text = Text::Object(&[
    ("content", OPENAI_CONTENT),
    ("name", Text::All),
    ("refusal", Text::All),
    (
        "tool_calls",
        Text::Each(&Text::Object(&[
            (
                "function",
                Text::Object(&[("name", Text::All), ("arguments", Text::All)]),
            ),
            (
                "custom",
                Text::Object(&[("name", Text::All), ("input", Text::All)]),
            ),
        ])),
    ),
    (
        "function_call",
        Text::Object(&[("name", Text::All), ("arguments", Text::All)]),
    ),
]);

/// Message content: a string, or an array of parts.
const OPENAI_CONTENT: Text = Text::Each(&OPENAI_PART);

static OPENAI_PART: Text = Text::Kinds(
    &[
        ("text", &[("text", Text::All)]),
        ("refusal", &[("refusal", Text::All)]),
        ("image_url", &[]),
        ("input_audio", &[]),
        (
            "file",
            &[("file", Text::Object(&[("filename", Text::All)]))],
        ),
    ],
    &[
        ("text", Text::All),
        ("content", Text::All),
        ("input", Text::All),
    ],
);

// ---------------------------------------------------------------- OpenAI completions, embeddings

/// `POST /v1/completions` (legacy and fill-in-the-middle).
pub static COMPLETIONS: Text = Text::Object(&[
    ("prompt", Text::All),
    ("suffix", Text::All),
    ("stop", Text::All),
    ("user", Text::All),
]);

/// `POST /v1/embeddings`.
pub static EMBEDDINGS: Text = Text::Object(&[("input", Text::All), ("user", Text::All)]);

// ---------------------------------------------------------------- Anthropic messages

/// `POST /v1/messages`.
pub static MESSAGES: Text = Text::Object(&[
    ("system", ANTHROPIC_CONTENT),
    (
        "messages",
        Text::Each(&Text::Object(&[("content", ANTHROPIC_CONTENT)])),
    ),
    ("tools", Text::All),
    ("tool_choice", Text::All),
    ("metadata", Text::All),
    ("stop_sequences", Text::All),
]);

/// `system`, message and tool result content: a string, or an array of blocks.
const ANTHROPIC_CONTENT: Text = Text::Each(&ANTHROPIC_BLOCK);

static ANTHROPIC_BLOCK: Text = Text::Kinds(
    &[
        (
            "text",
            &[
                ("text", Text::All),
                (
                    "citations",
                    Text::Each(&Text::Object(&[
                        ("cited_text", Text::All),
                        ("document_title", Text::All),
                        ("title", Text::All),
                    ])),
                ),
            ],
        ),
        ("image", &[]),
        ("thinking", &[]),
        ("redacted_thinking", &[]),
        ("container_upload", &[]),
        (
            "document",
            &[
                ("title", Text::All),
                ("context", Text::All),
                (
                    "source",
                    Text::Kinds(
                        &[
                            ("text", &[("data", Text::All)]),
                            ("content", &[("content", Text::Each(&ANTHROPIC_BLOCK))]),
                        ],
                        &[],
                    ),
                ),
            ],
        ),
        (
            "search_result",
            &[
                ("source", Text::All),
                ("title", Text::All),
                ("content", Text::Each(&ANTHROPIC_BLOCK)),
            ],
        ),
        ("tool_use", &[("name", Text::All), ("input", Text::All)]),
        (
            "server_tool_use",
            &[("name", Text::All), ("input", Text::All)],
        ),
        ("mcp_tool_use", &[("name", Text::All), ("input", Text::All)]),
        ("tool_result", &[("content", Text::Each(&ANTHROPIC_BLOCK))]),
        (
            "mcp_tool_result",
            &[("content", Text::Each(&ANTHROPIC_BLOCK))],
        ),
    ],
    // Other blocks (server tool results, future types): their text, content and input.
    &[
        ("text", Text::All),
        ("content", Text::Each(&ANTHROPIC_BLOCK)),
        ("input", Text::All),
        ("title", Text::All),
    ],
);

// ---------------------------------------------------------------- OpenAI Responses

/// `POST /v1/responses`.
pub static RESPONSES: Text = Text::Object(&[
    ("instructions", Text::All),
    ("input", Text::Each(&RESPONSES_ITEM)),
    (
        "tools",
        // MCP tools carry the caller's credentials for the MCP server (`headers`,
        // `authorization`): addressed to the provider, not scanned.
        Text::Each(&Text::Kinds(
            &[("mcp", &[("server_description", Text::All)])],
            &[
                ("name", Text::All),
                ("description", Text::All),
                ("parameters", Text::All),
                ("format", Text::All),
            ],
        )),
    ),
    ("tool_choice", Text::All),
    ("text", Text::Object(&[("format", Text::All)])),
    ("prompt", Text::Object(&[("variables", Text::All)])),
    ("metadata", Text::All),
    ("user", Text::All),
    ("safety_identifier", Text::All),
    ("prompt_cache_key", Text::All),
]);

static RESPONSES_ITEM: Text = Text::Kinds(
    &[
        (
            "function_call",
            &[("name", Text::All), ("arguments", Text::All)],
        ),
        ("function_call_output", &[("output", RESPONSES_CONTENT)]),
        (
            "custom_tool_call",
            &[("name", Text::All), ("input", Text::All)],
        ),
        ("custom_tool_call_output", &[("output", RESPONSES_CONTENT)]),
        ("reasoning", &[]),
        ("item_reference", &[]),
    ],
    // Messages (`{"role", "content"}`, with or without `"type": "message"`) and other items.
    &[
        ("content", RESPONSES_CONTENT),
        ("output", RESPONSES_CONTENT),
    ],
);

const RESPONSES_CONTENT: Text = Text::Each(&RESPONSES_PART);

static RESPONSES_PART: Text = Text::Kinds(
    &[
        ("input_text", &[("text", Text::All)]),
        ("output_text", &[("text", Text::All)]),
        ("refusal", &[("refusal", Text::All)]),
        ("input_image", &[]),
        ("input_audio", &[]),
        ("input_file", &[("filename", Text::All)]),
    ],
    &[("text", Text::All)],
);
