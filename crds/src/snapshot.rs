//! The routing snapshot: everything a data plane needs to route, protect and account for
//! requests, compiled from the CRs by [`crate::compile`]. Serialized as JSON on the wire.
//!
//! Objects are identified by their key `namespace/name`. Lists are sorted so the same input
//! always yields byte-identical JSON and the same [`Snapshot::version`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::affinity_group::LoadBalancingStrategy;
use crate::backend::BackendType;
use crate::common::{ModelCapabilities, ModelPricing, Tags};
use crate::mux_rule::MatcherType;
use crate::pricing::PriceRule;
use crate::provider::{AuthType, ProviderType};
use crate::router_policy::{CircuitBreaker, EndpointType, Parallelism};
use crate::task_chain::TaskSpec;
use crate::workspace::GuardrailAction;

/// Snapshot wire format version; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A credential or other sensitive value. Serialized in clear (the snapshot channel is TLS
/// and authenticated) but never printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for building the upstream request. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The compiled routing table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Hex SHA-256 of the snapshot's content (with this field empty).
    pub version: String,
    /// Wire format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Usable providers, by key.
    pub providers: Vec<ProviderSnapshot>,
    /// Usable backends, by key.
    pub backends: Vec<BackendSnapshot>,
    /// Usable affinity groups, by key.
    pub affinity_groups: Vec<AffinityGroupSnapshot>,
    /// Workspaces, by key, each with its usable MuxRules in evaluation order.
    pub workspaces: Vec<WorkspaceSnapshot>,
    /// Key of the default workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_workspace: Option<String>,
    /// Gateway API keys, by SHA-256 digest of the key (the keys themselves are not shipped).
    pub client_keys: Vec<ClientKeySnapshot>,
    /// Usable RouterPolicies in evaluation order (priority, then key).
    pub router_policies: Vec<RouterPolicySnapshot>,
    /// Usable TaskChains, by key.
    pub task_chains: Vec<TaskChainSnapshot>,
}

impl Snapshot {
    /// Computes the content hash, with `version` blanked.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut unversioned = self.clone();
        unversioned.version = String::new();
        // Serializing plain data structures to JSON cannot fail.
        let bytes = serde_json::to_vec(&unversioned).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// Sets `version` from the content.
    pub fn seal(mut self) -> Self {
        self.version = self.content_hash();
        self
    }

    /// Whether `version` matches the content (a snapshot corrupted or edited in transit fails).
    pub fn verify(&self) -> bool {
        self.version == self.content_hash()
    }

    /// A copy with every [`SecretValue`] replaced by `<redacted>`, for printing and the facade.
    /// The version is kept, so a redacted copy still names the snapshot it came from.
    pub fn redacted(&self) -> Snapshot {
        let hide = |v: &mut SecretValue| *v = SecretValue::new("<redacted>");
        let mut s = self.clone();
        for p in &mut s.providers {
            p.api_key.iter_mut().for_each(hide);
            p.headers.iter_mut().for_each(|h| hide(&mut h.value));
        }
        for b in &mut s.backends {
            b.api_key.iter_mut().for_each(hide);
        }
        for c in &mut s.task_chains {
            c.hooks
                .iter_mut()
                .flat_map(|h| &mut h.headers)
                .for_each(|h| hide(&mut h.value));
        }
        s
    }

    /// A provider by key.
    pub fn provider(&self, key: &str) -> Option<&ProviderSnapshot> {
        self.providers
            .binary_search_by(|p| p.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.providers[i])
    }

    /// A backend by key.
    pub fn backend(&self, key: &str) -> Option<&BackendSnapshot> {
        self.backends
            .binary_search_by(|b| b.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.backends[i])
    }

    /// An affinity group by key.
    pub fn affinity_group(&self, key: &str) -> Option<&AffinityGroupSnapshot> {
        self.affinity_groups
            .binary_search_by(|g| g.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.affinity_groups[i])
    }

    /// Whether the target `kind`/`key` declares `model`: among the models (declared or
    /// discovered) of the Provider or Backend, or served by a member of the AffinityGroup.
    pub fn declares_model(&self, kind: TargetKind, key: &str, model: &str) -> bool {
        let among = |models: &[ModelSnapshot]| models.iter().any(|m| m.name == model);
        match kind {
            TargetKind::Provider => self.provider(key).is_some_and(|p| among(&p.models)),
            TargetKind::Backend => self.backend(key).is_some_and(|b| among(&b.models)),
            TargetKind::AffinityGroup => self.affinity_group(key).is_some_and(|g| {
                g.members
                    .iter()
                    .any(|m| m.models.iter().any(|x| x == model))
            }),
        }
    }

    /// The model as breaker labels, circuit metrics and circuit reports name it for the target
    /// `kind`/`key`: `model` when the target declares it ([`Self::declares_model`]), else
    /// [`crate::circuits::OTHER_MODEL`], shared by every undeclared model of the target. Label
    /// values so come from the snapshot, never from what a caller asked for.
    pub fn label_model<'a>(&self, kind: TargetKind, key: &str, model: &'a str) -> &'a str {
        if self.declares_model(kind, key, model) {
            model
        } else {
            crate::circuits::OTHER_MODEL
        }
    }

    /// A workspace by key.
    pub fn workspace(&self, key: &str) -> Option<&WorkspaceSnapshot> {
        self.workspaces
            .binary_search_by(|w| w.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.workspaces[i])
    }

    /// A task chain by key.
    pub fn task_chain(&self, key: &str) -> Option<&TaskChainSnapshot> {
        self.task_chains
            .binary_search_by(|c| c.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.task_chains[i])
    }
}

/// Timeouts in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutsMs {
    /// Connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<u64>,
    /// Time to first byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte: Option<u64>,
    /// Idle gap within a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<u64>,
    /// Whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// An extra header for upstream calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSnapshot {
    /// Header name.
    pub name: String,
    /// Value (literal or from a Secret; redacted when printed either way).
    pub value: SecretValue,
}

/// A model a provider or backend serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSnapshot {
    /// Model name.
    pub name: String,
    /// Capabilities.
    pub capabilities: ModelCapabilities,
    /// Context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// Prices per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<ModelPricing>,
}

/// A usable Provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSnapshot {
    /// `namespace/name`.
    pub key: String,
    /// Provider type.
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// Effective base URL.
    pub endpoint: String,
    /// Auth type.
    pub auth: AuthType,
    /// API key for `api_key` auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretValue>,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderSnapshot>,
    /// Declared and discovered models, by name.
    pub models: Vec<ModelSnapshot>,
    /// Every declared price (`spec.models[].pricing` as exact rules first, then
    /// `spec.pricing`), looked up with [`crate::pricing::price_for`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prices: Vec<PriceRule>,
    /// Timeouts.
    pub timeouts: TimeoutsMs,
}

/// A usable Backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendSnapshot {
    /// `namespace/name`.
    pub key: String,
    /// Server type.
    #[serde(rename = "type")]
    pub type_: BackendType,
    /// Base URL of its OpenAI-compatible API.
    pub url: String,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretValue>,
    /// Declared and observed models, by name.
    pub models: Vec<ModelSnapshot>,
    /// Weight for `weighted`.
    pub weight: u32,
    /// Concurrency cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// False when the operator's probes see it down.
    pub healthy: bool,
    /// Timeouts.
    pub timeouts: TimeoutsMs,
}

/// A usable AffinityGroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AffinityGroupSnapshot {
    /// `namespace/name`.
    pub key: String,
    /// Purpose.
    pub purpose: String,
    /// Strategy.
    pub strategy: LoadBalancingStrategy,
    /// Session header for `session_affinity`.
    pub session_header: String,
    /// Member backends that serve at least one group model, by key.
    pub members: Vec<GroupMemberSnapshot>,
}

/// A member of a group with the group models it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMemberSnapshot {
    /// Backend key.
    pub backend: String,
    /// Models (of the group) this member serves, sorted.
    pub models: Vec<String>,
}

/// Where a route sends a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetSnapshot {
    /// Kind of target.
    pub kind: TargetKind,
    /// Key of the target object.
    pub key: String,
    /// Model to ask for; `None`: the requested model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl fmt::Display for TargetSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.key.rsplit('/').next().unwrap_or(&self.key);
        write!(f, "{}/{}", self.kind.as_str(), name)?;
        if let Some(model) = &self.model {
            write!(f, ":{model}")?;
        }
        Ok(())
    }
}

/// Kinds of route targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A Provider.
    Provider,
    /// A Backend.
    Backend,
    /// An AffinityGroup.
    AffinityGroup,
}

impl TargetKind {
    /// Short name used in route strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Backend => "backend",
            Self::AffinityGroup => "affinitygroup",
        }
    }
}

/// A Workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSnapshot {
    /// `namespace/name`.
    pub key: String,
    /// Labels (for RouterPolicy workspace selectors).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// System prompt injected into chat requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_instructions: Option<String>,
    /// Secret guardrail action.
    pub guardrail_secrets: GuardrailAction,
    /// PII guardrail action.
    pub guardrail_pii: GuardrailAction,
    /// Limits.
    pub limits: LimitsSnapshot,
    /// ServiceAccounts (`namespace/name`) bound here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Namespaces whose ServiceAccounts are bound here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Usable MuxRules in evaluation order.
    pub mux_rules: Vec<MuxRuleSnapshot>,
}

/// Limits of a workspace (all optional).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSnapshot {
    /// Workspace requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Workspace tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Workspace tokens per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// Per-caller requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_requests_per_minute: Option<u64>,
    /// Per-caller tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_tokens_per_minute: Option<u64>,
    /// Per-caller tokens per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_tokens_per_day: Option<u64>,
}

/// A gateway API key binding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientKeySnapshot {
    /// Hex SHA-256 of the key the caller presents.
    pub sha256: String,
    /// Caller name (recorded as initiator).
    pub name: String,
    /// Workspace key.
    pub workspace: String,
}

/// A usable MuxRule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MuxRuleSnapshot {
    /// `namespace/name`.
    pub key: String,
    /// Priority.
    pub priority: i32,
    /// Matcher type.
    pub matcher: MatcherType,
    /// Glob (validated); `None` matches everything of the matcher's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Target.
    pub target: TargetSnapshot,
}

/// A usable RouterPolicy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterPolicySnapshot {
    /// `namespace/name`.
    pub key: String,
    /// Priority.
    pub priority: i32,
    /// What it matches.
    #[serde(rename = "match")]
    pub match_: PolicyMatchSnapshot,
    /// Targets in order: routeTo, then fallbacks (RouterPolicy references spliced in).
    pub route: Vec<TargetSnapshot>,
    /// Breaker settings for each target.
    pub circuit_breaker: CircuitBreaker,
    /// Retries.
    pub retries: RetriesSnapshot,
    /// Timeout overrides.
    pub timeouts: TimeoutsMs,
}

/// Resolved match criteria.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyMatchSnapshot {
    /// The policy's namespace: it only applies to workspaces there.
    pub namespace: String,
    /// Workspace keys it applies to; `None`: every workspace of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<Vec<String>>,
    /// Endpoint type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<EndpointType>,
    /// Step type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_type: Option<String>,
    /// Purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Expected parallelism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_parallelism: Option<Parallelism>,
    /// Model glob (validated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Streaming requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_streaming: Option<bool>,
    /// Tools requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_function_calling: Option<bool>,
    /// Vision requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_vision: Option<bool>,
    /// Tags that must be present.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// Retry settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetriesSnapshot {
    /// Extra attempts per target.
    pub attempts: u32,
    /// First backoff, ms.
    pub backoff_ms: u64,
    /// Longest backoff, ms.
    pub max_backoff_ms: u64,
    /// Retry budget as percent of traffic.
    pub budget_percent: u32,
}

impl Default for RetriesSnapshot {
    fn default() -> Self {
        Self {
            attempts: 0,
            backoff_ms: 100,
            max_backoff_ms: 2000,
            budget_percent: 20,
        }
    }
}

/// A remote hook of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookSnapshot {
    /// Name.
    pub name: String,
    /// URL.
    pub url: String,
    /// Per-call timeout, ms.
    pub timeout_ms: u64,
    /// Headers (values from Secrets resolved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderSnapshot>,
    /// Injected argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<crate::task_chain::InjectionArg>,
}

/// A usable TaskChain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskChainSnapshot {
    /// `namespace/name`.
    pub key: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Capture inputs and outputs.
    pub debug: bool,
    /// Token limit (0: none).
    pub token_limit: u32,
    /// Step limit.
    pub max_steps: u32,
    /// Hooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookSnapshot>,
    /// Tasks as declared (validated).
    pub tasks: Vec<TaskSpec>,
    /// Resolved explicit targets of tasks, by task id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub task_targets: BTreeMap<String, TargetSnapshot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_never_print() {
        let v = SecretValue::new("sk-live-123");
        assert_eq!(format!("{v:?} {v}"), "<redacted> <redacted>");
        let h = HeaderSnapshot {
            name: "x".into(),
            value: v,
        };
        assert!(!format!("{h:?}").contains("sk-live"));
    }

    #[test]
    fn redacted_copy_hides_every_secret() {
        let s = Snapshot {
            providers: vec![ProviderSnapshot {
                key: "ns/p".into(),
                type_: ProviderType::Openai,
                endpoint: "https://x".into(),
                auth: AuthType::ApiKey,
                api_key: Some(SecretValue::new("sk-provider")),
                headers: vec![HeaderSnapshot {
                    name: "h".into(),
                    value: SecretValue::new("sk-header"),
                }],
                models: vec![],
                prices: vec![],
                timeouts: TimeoutsMs::default(),
            }],
            ..Default::default()
        }
        .seal();
        let json = serde_json::to_string(&s.redacted()).unwrap();
        assert!(
            !json.contains("sk-provider") && !json.contains("sk-header"),
            "{json}"
        );
        assert_eq!(s.redacted().version, s.version);
        assert!(
            serde_json::to_string(&s).unwrap().contains("sk-provider"),
            "the wire form keeps the key"
        );
    }

    #[test]
    fn seal_and_verify() {
        let s = Snapshot {
            schema_version: SCHEMA_VERSION,
            ..Default::default()
        }
        .seal();
        assert_eq!(s.version.len(), 64);
        assert!(s.verify());
        let mut tampered = s.clone();
        tampered.default_workspace = Some("x/y".into());
        assert!(!tampered.verify());
    }
}
