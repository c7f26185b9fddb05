//! What routing knows about a request: the API called ([`Endpoint`]), its [`Dialect`], and the
//! [`RequestInfo`] the data plane classifies from headers and body (and the facade's test-match
//! builds from a described context).

use std::collections::BTreeMap;

use serde_json::Value;
use switchyard_crds::router_policy::{EndpointType, Parallelism};

/// The API dialect a client speaks (from the endpoint it called).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI chat/completions/embeddings/models.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl Dialect {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// Which API was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/messages` (Anthropic).
    Messages,
    /// `POST /v1/completions` (legacy and FIM).
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses` (OpenAI Responses API; errors in OpenAI's shape).
    Responses,
}

impl Endpoint {
    /// The dialect of the endpoint.
    pub fn dialect(self) -> Dialect {
        match self {
            Self::Messages => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        }
    }

    /// RouterPolicy endpoint type.
    pub fn endpoint_type(self) -> EndpointType {
        match self {
            Self::ChatCompletions | Self::Messages | Self::Responses => EndpointType::Chat,
            Self::Completions => EndpointType::Completions,
            Self::Embeddings => EndpointType::Embeddings,
        }
    }

    /// Path, for records and metrics.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Messages => "/v1/messages",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Responses => "/v1/responses",
        }
    }
}

/// What routing and recording know about a request.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    /// Endpoint type for policies.
    pub endpoint_type: Option<EndpointType>,
    /// A fill-in-the-middle completion.
    pub fim: bool,
    /// Filenames mentioned in the prompt.
    pub filenames: Vec<String>,
    /// Streaming requested.
    pub stream: bool,
    /// Tools offered to the model.
    pub tools: bool,
    /// Image inputs.
    pub images: bool,
    /// Requested model.
    pub model: String,
    /// Tags from `x-switchyard-tags` and the body's `tags`.
    pub tags: BTreeMap<String, String>,
    /// Body `metadata`.
    pub metadata: Option<Value>,
    /// Session id.
    pub session_id: Option<String>,
    /// Client name from User-Agent.
    pub client: String,
    /// Body `user` (or Anthropic metadata.user_id).
    pub user: Option<String>,
    /// `x-switchyard-purpose`.
    pub purpose: Option<String>,
    /// `x-switchyard-step-type` (set for task-chain calls).
    pub step_type: Option<String>,
    /// `x-switchyard-parallelism`.
    pub parallelism: Option<Parallelism>,
    /// The last user message text (truncated).
    pub user_prompt: Option<String>,
}
