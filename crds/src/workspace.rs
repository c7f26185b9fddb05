//! `Workspace`: a tenant or project scope for callers (seed 000), with custom instructions,
//! guardrails, limits and its ordered MuxRules.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{SecretKeyRef, UsageTotals};
use crate::mux_rule::MatcherType;
use crate::provider::ProviderType;

/// Spec of a Workspace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "Workspace",
    namespaced,
    status = "WorkspaceStatus",
    shortname = "sww",
    category = "switchyard",
    doc = "A tenant scope: which callers land here, what is injected, guarded and limited.",
    printcolumn(name = "Default", type_ = "boolean", json_path = ".spec.default"),
    printcolumn(name = "Rules", type_ = "integer", json_path = ".status.muxRuleCount"),
    printcolumn(
        name = "Guardrails",
        type_ = "string",
        json_path = ".status.guardrailSummary"
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
pub struct WorkspaceSpec {
    /// Free text for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// System prompt added to every chat request routed through this workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub custom_instructions: Option<String>,
    /// Used for requests that name no workspace and whose caller has no binding (the seed's
    /// "active" workspace). At most one per data plane.
    #[serde(default)]
    pub default: bool,
    /// Which callers land in this workspace.
    #[serde(default)]
    pub clients: WorkspaceClients,
    /// Secret and PII detection on prompts.
    #[serde(default)]
    pub guardrails: Guardrails,
    /// Request and token limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<WorkspaceLimits>,
}

/// Caller bindings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceClients {
    /// Gateway API keys (each in a Secret) whose holders land here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub api_keys: Vec<ClientApiKey>,
    /// Kubernetes ServiceAccounts whose tokens land here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub service_accounts: Vec<ServiceAccountRef>,
    /// Every ServiceAccount of these namespaces lands here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub namespaces: Vec<String>,
}

/// A gateway API key held in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientApiKey {
    /// Caller name recorded as the initiator (never the key itself).
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9][-_.@A-Za-z0-9]*$")
    )]
    pub name: String,
    /// Secret key holding the gateway key the caller presents.
    pub secret_ref: SecretKeyRef,
}

/// A ServiceAccount; the namespace defaults to the Workspace's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountRef {
    /// Namespace of the ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// ServiceAccount name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// Guardrail settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Guardrails {
    /// Cloud keys, private keys, tokens and passwords.
    #[serde(default)]
    pub secrets: GuardrailAction,
    /// Emails, phone numbers, credit cards, IBANs.
    #[serde(default)]
    pub pii: GuardrailAction,
}

/// What happens when a guardrail finds something. Read from `off`, `alert`, `redact` or
/// `block`, and from the boolean `false` as `off`: unquoted `off` is `false` to a YAML 1.1
/// parser (kubectl's, and this crate's manifest reader), and a manifest saying `pii: off` means
/// off. `true` (`on`, `yes`) names no action and is refused. Always written as the word.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailAction {
    /// No detection.
    #[default]
    Off,
    /// Record an alert, forward unchanged.
    Alert,
    /// Replace the match before it leaves the cluster, record an alert.
    Redact,
    /// Refuse the request, record an alert.
    Block,
}

impl GuardrailAction {
    /// Every action, in the schema's order.
    pub const ALL: [Self; 4] = [Self::Off, Self::Alert, Self::Redact, Self::Block];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Alert => "alert",
            Self::Redact => "redact",
            Self::Block => "block",
        }
    }
}

impl<'de> Deserialize<'de> for GuardrailAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = GuardrailAction;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("one of off, alert, redact, block (or false for off)")
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::custom(
                        "true (or unquoted on/yes) names no guardrail action: use alert, redact or block",
                    ))
                } else {
                    Ok(GuardrailAction::Off)
                }
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                GuardrailAction::ALL
                    .into_iter()
                    .find(|a| a.as_str() == v)
                    .ok_or_else(|| E::unknown_variant(v, &["off", "alert", "redact", "block"]))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl JsonSchema for GuardrailAction {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GuardrailAction".into()
    }

    /// A string action, or `false` (what a YAML 1.1 parser makes of unquoted `off`). A
    /// structural schema cannot type a node "string or boolean", so the node is untyped
    /// (`x-kubernetes-preserve-unknown-fields`) and the values are fixed by the `anyOf` enums.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let words: Vec<&str> = Self::ALL.iter().map(|a| a.as_str()).collect();
        schemars::json_schema!({
            "x-kubernetes-preserve-unknown-fields": true,
            "anyOf": [{"enum": words}, {"enum": [false]}],
        })
    }
}

/// Workspace limits. Token limits are charged on actual usage after each response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceLimits {
    /// Requests per minute for the whole workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: Option<u64>,
    /// Tokens (input + output) per minute for the whole workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_minute: Option<u64>,
    /// Tokens per day for the whole workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_day: Option<u64>,
    /// The same limits for each caller of the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_caller: Option<CallerLimits>,
}

/// Limits per caller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallerLimits {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_minute: Option<u64>,
    /// Tokens per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_day: Option<u64>,
}

/// Observed state of a Workspace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ResolvedRefs.
    #[serde(default)]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Whether this is the workspace used for requests that name none.
    #[serde(default)]
    pub active: bool,
    /// The workspace's MuxRules in evaluation order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mux_rules: Vec<MuxRuleSummary>,
    /// Number of MuxRules (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mux_rule_count: Option<u32>,
    /// `secrets=<action>,pii=<action>` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail_summary: Option<String>,
    /// Token usage by model (the top models by tokens) and totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<WorkspaceUsage>,
    /// Guardrail alert counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertCounts>,
    /// Time of the last request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_at: Option<Time>,
}

/// A MuxRule as listed in its Workspace's status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuxRuleSummary {
    /// MuxRule name.
    pub name: String,
    /// Its priority.
    #[schemars(range(min = 0))]
    pub priority: i32,
    /// Matcher type.
    pub matcher: MatcherType,
    /// Matcher pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `provider/NAME`, `backend/NAME` or `affinitygroup/NAME`.
    pub target: String,
    /// Model asked of the target, if overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Whether the rule is in the routing table.
    pub ready: bool,
}

/// Usage of a workspace (seed 000 TokenUsageAggregate).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceUsage {
    /// Usage per model, keyed by model name (bounded to the top models by tokens).
    #[serde(default)]
    pub tokens_by_model: BTreeMap<String, ModelUsage>,
    /// Totals over all models.
    #[serde(default)]
    pub totals: UsageTotals,
}

/// Usage of one model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    /// Provider type that served it (absent for backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<ProviderType>,
    /// Totals for the model.
    #[serde(flatten)]
    pub usage: UsageTotals,
}

/// Alert counts (seed 000 AlertSummary).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertCounts {
    /// Secret findings.
    #[serde(default)]
    pub secrets: u64,
    /// PII findings.
    #[serde(default)]
    pub pii: u64,
    /// All findings.
    #[serde(default)]
    pub total: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn what_kubectl_sends_for_off_deserializes_as_off() {
        // A YAML 1.1 parser (kubectl's) turns unquoted `off` into `false`.
        let g: Guardrails =
            serde_json::from_value(json!({"secrets": false, "pii": "block"})).unwrap();
        assert_eq!(
            (g.secrets, g.pii),
            (GuardrailAction::Off, GuardrailAction::Block)
        );
        // `on`/`yes`/`true` name no action: refused, as is any other word.
        assert!(serde_json::from_value::<Guardrails>(json!({"pii": true})).is_err());
        assert!(serde_json::from_value::<Guardrails>(json!({"pii": "maybe"})).is_err());
        // Written back as the word.
        assert_eq!(
            serde_json::to_value(GuardrailAction::Off).unwrap(),
            json!("off")
        );
    }

    /// Whether `value` passes the enum constraints of a CRD schema node (its own `enum`, or one
    /// of its `anyOf` branches), with its `type` (when it has one) matching.
    fn schema_accepts(node: &Value, value: &Value) -> bool {
        let type_ok = match node.get("type").and_then(Value::as_str) {
            None => true,
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some(_) => false,
        };
        let in_enum = |n: &Value| {
            n.get("enum")
                .and_then(Value::as_array)
                .is_none_or(|e| e.contains(value))
        };
        let any_of = match node.get("anyOf").and_then(Value::as_array) {
            Some(branches) => branches.iter().any(in_enum),
            None => true,
        };
        type_ok && in_enum(node) && any_of
    }

    #[test]
    fn the_crd_schema_accepts_off_false_and_the_actions_only() {
        let crd = crate::crdgen::all()
            .into_iter()
            .find(|c| c.spec.names.kind == "Workspace")
            .unwrap();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let guardrails =
            &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["guardrails"];
        for field in ["secrets", "pii"] {
            let node = &guardrails["properties"][field];
            for ok in [
                json!("off"),
                json!(false),
                json!("alert"),
                json!("redact"),
                json!("block"),
            ] {
                assert!(schema_accepts(node, &ok), "{field}: {ok} refused by {node}");
            }
            for bad in [json!(true), json!("on"), json!("maybe")] {
                assert!(
                    !schema_accepts(node, &bad),
                    "{field}: {bad} accepted by {node}"
                );
            }
        }
    }
}
