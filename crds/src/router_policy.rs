//! `RouterPolicy`: a cross-workspace routing policy with fallbacks and a circuit breaker
//! (seed 003). Enabled policies are evaluated before any Workspace MuxRule, lowest priority first.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{GoDuration, Tags, TargetRef, Timeouts};

/// Spec of a RouterPolicy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "RouterPolicy",
    namespaced,
    status = "RouterPolicyStatus",
    shortname = "swrp",
    category = "switchyard",
    doc = "A routing policy: requests matching `match` go to `routeTo`, then `fallback`, behind a circuit breaker.",
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Route", type_ = "string", json_path = ".status.route"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Matches", type_ = "integer", json_path = ".status.matchCount"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RouterPolicySpec {
    /// Free text for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Lower is evaluated first; equal priorities are ordered by namespace/name.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000000))]
    pub priority: i32,
    /// Switch the policy off without deleting it.
    #[serde(default = "crate::common::default_true")]
    #[schemars(default = "crate::common::default_true")]
    pub enabled: bool,
    /// Which requests the policy applies to; every field set must match (unset = any).
    #[serde(default, rename = "match")]
    pub match_: PolicyMatch,
    /// Primary target.
    pub route_to: PolicyTarget,
    /// Targets tried in order when the previous one is open, failing or times out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub fallback: Vec<PolicyTarget>,
    /// Per-target circuit breaker.
    #[serde(default)]
    #[schemars(default = "CircuitBreaker::default_value")]
    pub circuit_breaker: CircuitBreaker,
    /// Retries before the first byte reached the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Overrides the targets' own timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

/// Request properties a policy matches (seed 003 PolicyMatch).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyMatch {
    /// Kind of endpoint called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<EndpointType>,
    /// Workspace name (in the policy's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub workspace: Option<String>,
    /// Workspaces by label (the seed's workspace_tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_selector: Option<LabelSelector>,
    /// TaskChain step type (the task's handler) for calls made by a chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub step_type: Option<String>,
    /// AffinityGroup purpose (e.g. chat, embeddings, tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub purpose: Option<String>,
    /// Expected fan-out class given by the caller (`x-switchyard-parallelism`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_parallelism: Option<Parallelism>,
    /// Glob on the requested model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub model: Option<String>,
    /// true: only streaming requests; false: only non-streaming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_streaming: Option<bool>,
    /// true: only requests that carry tools; false: only those without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_function_calling: Option<bool>,
    /// true: only requests with images; false: only those without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_vision: Option<bool>,
    /// Every tag listed must be on the request with the same value.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "crate::common::string_map_schema")]
    pub tags: Tags,
}

/// Endpoint types.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EndpointType {
    /// `/v1/chat/completions`, `/v1/messages` and chain calls.
    Chat,
    /// `/v1/completions` including fill-in-the-middle.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
}

impl EndpointType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }
}

/// Expected parallelism classes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Parallelism {
    /// One call at a time.
    Low,
    /// A handful in parallel.
    Medium,
    /// Wide fan-out.
    High,
}

/// A policy target: a Provider, Backend or AffinityGroup, or the whole route of another
/// RouterPolicy (its routeTo and fallbacks, in order).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTarget {
    /// The concrete target.
    #[serde(flatten)]
    pub target: TargetRef,
    /// Another RouterPolicy (same namespace) whose route is spliced in here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub router_policy_ref: Option<String>,
}

/// Circuit breaker settings (seed 003 CircuitBreakerConfig, same defaults).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    /// Open when the failure rate in the window reaches this percent.
    #[serde(default = "d50")]
    #[schemars(range(min = 0, max = 100), default = "d50")]
    pub error_threshold_percent: u32,
    /// A call slower than this counts as a failure.
    #[serde(default = "d5000")]
    #[schemars(range(min = 1, max = 3600000), default = "d5000")]
    pub latency_threshold_ms: u32,
    /// Open after this many failures in a row.
    #[serde(default = "d5")]
    #[schemars(range(min = 1, max = 10000), default = "d5")]
    pub consecutive_failures: u32,
    /// Sliding window for the failure rate.
    #[serde(default = "d60")]
    #[schemars(range(min = 1, max = 86400), default = "d60")]
    pub evaluation_window_seconds: u32,
    /// Calls needed in the window before the rate can open the circuit.
    #[serde(default = "d10")]
    #[schemars(range(min = 1, max = 1000000), default = "d10")]
    pub min_requests_threshold: u32,
    /// Time open before probing (half-open).
    #[serde(default = "d30")]
    #[schemars(range(min = 1, max = 86400), default = "d30")]
    pub cooldown_seconds: u32,
    /// Probes let through while half-open; all must succeed to close.
    #[serde(default = "d3")]
    #[schemars(range(min = 1, max = 1000), default = "d3")]
    pub half_open_requests: u32,
    /// An open target leaves routing (traffic goes to the next target) instead of failing calls.
    #[serde(default = "crate::common::default_true")]
    #[schemars(default = "crate::common::default_true")]
    pub auto_disable: bool,
    /// Emit an Event and a log line when the circuit opens.
    #[serde(default = "crate::common::default_true")]
    #[schemars(default = "crate::common::default_true")]
    pub notify_on_open: bool,
}

fn d50() -> u32 {
    50
}
fn d5000() -> u32 {
    5000
}
fn d5() -> u32 {
    5
}
fn d60() -> u32 {
    60
}
fn d10() -> u32 {
    10
}
fn d30() -> u32 {
    30
}
fn d3() -> u32 {
    3
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            error_threshold_percent: d50(),
            latency_threshold_ms: d5000(),
            consecutive_failures: d5(),
            evaluation_window_seconds: d60(),
            min_requests_threshold: d10(),
            cooldown_seconds: d30(),
            half_open_requests: d3(),
            auto_disable: true,
            notify_on_open: true,
        }
    }
}

impl CircuitBreaker {
    /// Schema default for the whole object, so the API server fills every field even when
    /// `circuitBreaker` is omitted.
    fn default_value() -> serde_json::Value {
        serde_json::json!({})
    }
}

/// Retry settings. Retries happen only before the first byte reached the caller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Extra attempts per target.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub attempts: u32,
    /// First backoff (jittered, doubling); `Retry-After` wins when longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<GoDuration>,
    /// Longest backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<GoDuration>,
    /// Retries may add at most this percent on top of the policy's traffic.
    #[serde(default = "d20")]
    #[schemars(range(min = 0, max = 100), default = "d20")]
    pub budget_percent: u32,
}

fn d20() -> u32 {
    20
}

/// Observed state of a RouterPolicy (seed 003 counters).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterPolicyStatus {
    /// Generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ResolvedRefs.
    #[serde(default)]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Active, Disabled, CircuitOpen or HalfOpen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PolicyState>,
    /// The resolved route, e.g. `provider/openai:gpt-4o -> backend/vllm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Requests that matched.
    #[serde(default)]
    pub match_count: u64,
    /// Matched requests that succeeded.
    #[serde(default)]
    pub success_count: u64,
    /// Matched requests that failed.
    #[serde(default)]
    pub error_count: u64,
    /// errorCount / (successCount + errorCount), percent.
    #[serde(default)]
    pub error_rate_percent: f64,
    /// Time of the last match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_matched_at: Option<Time>,
    /// Circuit state of each target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetCircuit>,
}

/// Policy states.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum PolicyState {
    /// Matching and routing.
    Active,
    /// `enabled: false`, or not Ready.
    Disabled,
    /// The primary target's circuit is open.
    CircuitOpen,
    /// The primary target's circuit is probing.
    HalfOpen,
}

/// Circuit state of one target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetCircuit {
    /// `provider/NAME:model` etc.
    pub target: String,
    /// Closed, Open or HalfOpen.
    pub state: String,
}
