//! `MuxRule`: one routing rule of a Workspace (seed 000 MuxRule), evaluated in priority order.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::TargetRef;

/// Spec of a MuxRule.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "MuxRule",
    namespaced,
    status = "MuxRuleStatus",
    shortname = "swmr",
    category = "switchyard",
    doc = "A Workspace routing rule: the first matching rule (lowest priority first) decides the target.",
    printcolumn(name = "Workspace", type_ = "string", json_path = ".spec.workspaceRef"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Matcher", type_ = "string", json_path = ".spec.matcher.type"),
    printcolumn(name = "Target", type_ = "string", json_path = ".status.target"),
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
pub struct MuxRuleSpec {
    /// Workspace (same namespace) the rule belongs to.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub workspace_ref: String,
    /// Lower is evaluated first; equal priorities are ordered by name (and reported).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000000))]
    pub priority: i32,
    /// What requests the rule matches.
    pub matcher: Matcher,
    /// Where matching requests go.
    pub target: TargetRef,
}

/// A matcher (seed 000 MuxMatcherType, plus `model`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// Matcher type.
    #[serde(rename = "type")]
    pub type_: MatcherType,
    /// Glob (`*.py`, `src/**/main.rs`, `gpt-4*`). Ignored by `catch_all`; empty matches
    /// every filename (or every FIM / chat request for the `fim_`/`chat_` variants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub pattern: Option<String>,
}

/// Matcher types.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MatcherType {
    /// Every request.
    CatchAll,
    /// A filename mentioned in the request matches the glob.
    FilenameMatch,
    /// A fill-in-the-middle request whose filename matches.
    FimFilename,
    /// A chat request whose filename matches.
    ChatFilename,
    /// The requested model matches the glob.
    Model,
}

impl MatcherType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CatchAll => "catch_all",
            Self::FilenameMatch => "filename_match",
            Self::FimFilename => "fim_filename",
            Self::ChatFilename => "chat_filename",
            Self::Model => "model",
        }
    }
}

/// Observed state of a MuxRule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuxRuleStatus {
    /// Generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ResolvedRefs.
    #[serde(default)]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Target as `provider/NAME`, `backend/NAME` or `affinitygroup/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Requests that matched.
    #[serde(default)]
    pub match_count: u64,
    /// Time of the last match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_matched_at: Option<Time>,
}
