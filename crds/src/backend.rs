//! `Backend`: a self-hosted serving endpoint (vLLM, Ollama, llama.cpp, LM Studio or any
//! OpenAI-compatible server) with the runtime state the operator observes (seed 002).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ModelSpec, SecretKeyRef, Timeouts, UsageTotals};

/// Spec of a Backend.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "Backend",
    namespaced,
    status = "BackendStatus",
    shortname = "swb",
    category = "switchyard",
    doc = "A self-hosted model server that AffinityGroups, MuxRules and RouterPolicies route to.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Models", type_ = "integer", json_path = ".status.modelCount"),
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
pub struct BackendSpec {
    /// Server software; decides the probe (`/v1/models` or Ollama's `/api/tags`).
    #[serde(rename = "type")]
    pub type_: BackendType,
    /// Base URL of the server's OpenAI-compatible API (e.g. `http://vllm:8000/v1`).
    /// Exactly one of `baseUrl` and `serviceRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub base_url: Option<String>,
    /// An in-cluster Service in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ref: Option<ServiceRef>,
    /// Free text for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Models the server is expected to serve (the probe adds what it actually serves).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub models: Vec<ModelSpec>,
    /// Optional bearer token for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<BackendAuth>,
    /// Relative weight for the `weighted` load-balancing strategy; 0 takes it out of rotation.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0, max = 1000), default = "default_weight")]
    pub weight: u32,
    /// Most requests in flight at once; more wait in a bounded queue, then get 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_concurrency: Option<u32>,
    /// Health probing.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Upstream timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

fn default_weight() -> u32 {
    1
}

/// Self-hosted server types.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendType {
    /// vLLM.
    Vllm,
    /// Ollama.
    Ollama,
    /// llama.cpp server.
    Llamacpp,
    /// LM Studio.
    LmStudio,
    /// Any server with an OpenAI-compatible API.
    OpenaiCompatible,
}

impl BackendType {
    /// Wire name, as in the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vllm => "vllm",
            Self::Ollama => "ollama",
            Self::Llamacpp => "llamacpp",
            Self::LmStudio => "lm_studio",
            Self::OpenaiCompatible => "openai_compatible",
        }
    }
}

/// A Service in the Backend's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// Service name.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Port number or name.
    pub port: IntOrString,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Scheme,
    /// Path prefix of the OpenAI-compatible API.
    #[serde(default = "default_api_path")]
    #[schemars(
        length(max = 256),
        regex(pattern = r"^(/[^\s]*)?$"),
        default = "default_api_path"
    )]
    pub path: String,
}

fn default_api_path() -> String {
    "/v1".to_owned()
}

/// URL scheme.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTPS.
    Https,
}

/// Backend credential.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendAuth {
    /// Secret key holding a bearer token.
    pub secret_ref: SecretKeyRef,
}

/// How the operator probes the server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Probe the server at all.
    #[serde(default = "crate::common::default_true")]
    #[schemars(default = "crate::common::default_true")]
    pub enabled: bool,
    /// Seconds between probes.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 1, max = 3600), default = "default_interval")]
    pub interval_seconds: u32,
    /// Seconds before a probe counts as failed.
    #[serde(default = "default_probe_timeout")]
    #[schemars(range(min = 1, max = 300), default = "default_probe_timeout")]
    pub timeout_seconds: u32,
    /// Failed probes in a row before the backend leaves routing.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 100), default = "default_failure_threshold")]
    pub failure_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_seconds: default_interval(),
            timeout_seconds: default_probe_timeout(),
            failure_threshold: default_failure_threshold(),
        }
    }
}

fn default_interval() -> u32 {
    30
}
fn default_probe_timeout() -> u32 {
    5
}
fn default_failure_threshold() -> u32 {
    3
}

/// Observed state of a Backend (seed 002 BackendRuntimeState).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    /// Generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ResolvedRefs, SecretResolved, Reachable.
    #[serde(default)]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Effective base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Models the server reported on the last probe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub models: Vec<ObservedModel>,
    /// Number of entries in `models` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_count: Option<u32>,
    /// Last error probing or calling the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the server was last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// Usage totals through this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageTotals>,
}

/// A model observed on a server (seed 002 ModelPullStatus).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedModel {
    /// Model identifier used in requests.
    pub model: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Serves chat.
    #[serde(default)]
    pub can_chat: bool,
    /// Serves embeddings.
    #[serde(default)]
    pub can_embed: bool,
    /// Serves plain prompts (completions).
    #[serde(default)]
    pub can_prompt: bool,
    /// Streams.
    #[serde(default)]
    pub can_stream: bool,
    /// Context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// Content digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Last modification on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<Time>,
    /// Ollama model details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ModelDetails>,
}

/// Ollama's model details (seed 002 ModelDetails).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDetails {
    /// Family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Families.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<String>,
    /// File format (gguf, safetensors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Parameter size (e.g. 7B).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_size: Option<String>,
    /// Parent model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_model: Option<String>,
    /// Quantization level (e.g. Q4_K_M).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_level: Option<String>,
}
