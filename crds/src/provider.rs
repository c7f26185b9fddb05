//! `Provider`: an API account or endpoint of a hosted or self-hosted LLM service (seed 000
//! ProviderEndpoint, seed 002 ProviderConfig).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    HeaderSpec, ModelCapabilities, ModelPricing, ModelSpec, SecretKeyRef, Timeouts, UsageTotals,
};

/// Spec of a Provider.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "Provider",
    namespaced,
    status = "ProviderStatus",
    shortname = "swp",
    category = "switchyard",
    doc = "An LLM API account or endpoint that requests can be routed to.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// Which API the provider speaks.
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// Base URL. Defaults per hosted type (openai, anthropic, openrouter); required for
    /// self-hosted types. The effective value is reported in `status.endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: Option<String>,
    /// Free text for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// How the data plane authenticates to the provider.
    #[serde(default)]
    pub auth: ProviderAuth,
    /// Models declared for routing and pricing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub models: Vec<ModelSpec>,
    /// Prices by model pattern, for models not priced in `models` (an exact name there wins):
    /// an exact name (which also prices its dated snapshots, and a dated id its alias) or a
    /// prefix glob `claude-opus-4-*`; the longest prefix wins. A call whose model no declaration
    /// prices is recorded with `cost_source: unpriced` and counted in
    /// `switchyard_unpriced_requests_total`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub pricing: Vec<ModelPriceSpec>,
    /// List the provider's models into `status.models`, and route to them.
    #[serde(default)]
    pub discover_models: bool,
    /// Upstream timeouts (RouterPolicies may override them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Extra headers sent with every request to the provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub headers: Vec<HeaderSpec>,
}

/// A price for the models a pattern names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPriceSpec {
    /// An exact model name (`claude-sonnet-4-5`, which also prices
    /// `claude-sonnet-4-5-20250929`; `gpt-4o-2024-08-06`, which also prices `gpt-4o`) or a prefix
    /// glob ending in the only `*` (`claude-opus-4-*`; `*` alone prices every other model).
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[^*\s]*\*?$"))]
    pub model: String,
    /// Prices per 1M tokens.
    #[serde(flatten)]
    pub price: ModelPricing,
}

/// The seven provider types (seed 000 ProviderType).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    /// OpenAI API.
    Openai,
    /// Anthropic Messages API.
    Anthropic,
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// Ollama (its OpenAI-compatible API).
    Ollama,
    /// LM Studio's OpenAI-compatible server.
    LmStudio,
    /// llama.cpp server.
    Llamacpp,
    /// OpenRouter.
    Openrouter,
}

impl ProviderType {
    /// Wire name, as in the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Vllm => "vllm",
            Self::Ollama => "ollama",
            Self::LmStudio => "lm_studio",
            Self::Llamacpp => "llamacpp",
            Self::Openrouter => "openrouter",
        }
    }

    /// Base URL used when `spec.endpoint` is empty; `None` for self-hosted types, which must
    /// name their endpoint.
    pub fn default_endpoint(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com"),
            Self::Openrouter => Some("https://openrouter.ai/api/v1"),
            Self::Vllm | Self::Ollama | Self::LmStudio | Self::Llamacpp => None,
        }
    }

    /// Whether the provider speaks the OpenAI dialect (everything but Anthropic).
    pub fn is_openai_dialect(self) -> bool {
        !matches!(self, Self::Anthropic)
    }
}

/// Provider authentication (seed 000 ProviderAuthType).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderAuth {
    /// none, passthrough (the caller's credential is forwarded) or api_key (from `secretRef`).
    #[serde(rename = "type", default)]
    pub type_: AuthType,
    /// Secret key holding the API key; required for `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// How the data plane authenticates upstream.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// No credential.
    #[default]
    None,
    /// The caller's own credential is forwarded.
    Passthrough,
    /// The API key from the Secret is sent the way the provider expects.
    ApiKey,
}

impl AuthType {
    /// Wire name, as in the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Passthrough => "passthrough",
            Self::ApiKey => "api_key",
        }
    }
}

/// Observed state of a Provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// Generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, SecretResolved, Reachable.
    #[serde(default)]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Effective base URL (spec or the type's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Declared and discovered models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ProviderModelStatus>,
    /// Usage totals through this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageTotals>,
    /// Last error talking to the provider (never contains credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the provider was last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
}

/// A model known for a provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderModelStatus {
    /// Model name.
    pub name: String,
    /// Where the model is known from.
    pub source: ModelSource,
    /// Capabilities.
    #[serde(default)]
    pub capabilities: ModelCapabilities,
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
}

/// Where a model entry comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// Declared in spec.
    Declared,
    /// Listed by the provider (`discoverModels`).
    Discovered,
}
