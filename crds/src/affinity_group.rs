//! `AffinityGroup`: backends and models that work together (seed 002). A request for model M
//! may go to backend B only if some group contains both.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Spec of an AffinityGroup.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "AffinityGroup",
    namespaced,
    status = "AffinityGroupStatus",
    shortname = "swag",
    category = "switchyard",
    doc = "A set of Backends and the models they serve together, with a load-balancing strategy.",
    printcolumn(name = "Purpose", type_ = "string", json_path = ".spec.purpose"),
    printcolumn(
        name = "Strategy",
        type_ = "string",
        json_path = ".spec.loadBalancing.strategy"
    ),
    printcolumn(
        name = "Members",
        type_ = "integer",
        json_path = ".status.readyMembers"
    ),
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
pub struct AffinityGroupSpec {
    /// What the group is for: `chat`, `embeddings`, `tasks` or any other word; RouterPolicies
    /// can match on it.
    #[serde(default = "default_purpose")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9][-_ A-Za-z0-9]*$"),
        default = "default_purpose"
    )]
    pub purpose: String,
    /// Free text for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Backends (same namespace) selected by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_selector: Option<LabelSelector>,
    /// Backends (same namespace) by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            length(min = 1, max = 253),
            regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
        )
    )]
    pub backends: Vec<String>,
    /// Models the group serves. Empty: every model a member serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512), inner(length(min = 1, max = 256)))]
    pub models: Vec<String>,
    /// How a member is picked for each request.
    #[serde(default)]
    pub load_balancing: LoadBalancing,
}

fn default_purpose() -> String {
    "chat".to_owned()
}

/// Load balancing among the group's ready members that serve the requested model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancing {
    /// The strategy.
    #[serde(default)]
    pub strategy: LoadBalancingStrategy,
    /// Header that carries the session key for `session_affinity` (default `x-session-id`;
    /// client-specific session headers are also recognized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    )]
    pub session_header: Option<String>,
}

/// Load-balancing strategies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancingStrategy {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// The member with the fewest requests in flight.
    LeastOutstanding,
    /// At random, in proportion to each Backend's `weight`.
    Weighted,
    /// Consistent hash of the session key, so a session keeps hitting the same prompt cache.
    SessionAffinity,
}

impl LoadBalancingStrategy {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastOutstanding => "least_outstanding",
            Self::Weighted => "weighted",
            Self::SessionAffinity => "session_affinity",
        }
    }
}

/// Observed state of an AffinityGroup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AffinityGroupStatus {
    /// Generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ResolvedRefs.
    #[serde(default)]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Member backends and their readiness.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<GroupMember>,
    /// Members that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_members: Option<u32>,
    /// Models at least one ready member serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_models: Vec<String>,
}

/// A member backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    /// Backend name.
    pub name: String,
    /// Whether it takes traffic.
    pub ready: bool,
    /// Group models it serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}
