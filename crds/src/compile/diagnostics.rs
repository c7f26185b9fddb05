//! Per-object compile results: what is wrong (issues), the conditions the operator writes, and
//! the kind-specific status fields the compiler derives.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::affinity_group::GroupMember;
use crate::workspace::MuxRuleSummary;

/// The seven kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// Provider.
    Provider,
    /// Backend.
    Backend,
    /// AffinityGroup.
    AffinityGroup,
    /// Workspace.
    Workspace,
    /// MuxRule.
    MuxRule,
    /// RouterPolicy.
    RouterPolicy,
    /// TaskChain.
    TaskChain,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "Provider",
            Self::Backend => "Backend",
            Self::AffinityGroup => "AffinityGroup",
            Self::Workspace => "Workspace",
            Self::MuxRule => "MuxRule",
            Self::RouterPolicy => "RouterPolicy",
            Self::TaskChain => "TaskChain",
        }
    }
}

/// Identity of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    /// Kind.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// Condition types the compiler decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConditionType {
    /// The object is valid and in the routing table.
    Ready,
    /// Every object it references exists.
    ResolvedRefs,
    /// Every Secret key it references exists.
    SecretResolved,
    /// It conflicts with another object (equal priority, second default); True when it does.
    Conflicted,
}

impl ConditionType {
    /// Kubernetes condition type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::ResolvedRefs => "ResolvedRefs",
            Self::SecretResolved => "SecretResolved",
            Self::Conflicted => "Conflicted",
        }
    }
}

/// How bad an issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// The object (or the broken part of it) is left out of the snapshot.
    Error,
    /// Reported, but the object is still routed.
    Warning,
}

/// One problem found in an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Issue {
    /// Severity.
    pub severity: Severity,
    /// The condition it is reported on.
    pub condition: ConditionType,
    /// CamelCase reason (e.g. `ProviderNotFound`).
    pub reason: String,
    /// What is wrong, naming the missing or offending thing (without the object prefix).
    pub message: String,
}

/// A condition as the compiler decides it (the operator adds times and generations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionSpec {
    /// Condition type.
    pub type_: ConditionType,
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason, never empty.
    pub reason: String,
    /// Message, never empty.
    pub message: String,
}

/// Status fields the compiler derives for each kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Details {
    /// Provider.
    Provider {
        /// Effective endpoint.
        endpoint: Option<String>,
    },
    /// Backend.
    Backend {
        /// Effective URL.
        url: Option<String>,
    },
    /// AffinityGroup.
    AffinityGroup {
        /// Members and readiness.
        members: Vec<GroupMember>,
        /// Models a ready member serves.
        available_models: Vec<String>,
    },
    /// Workspace.
    Workspace {
        /// Whether it is the default workspace in effect.
        active: bool,
        /// Its MuxRules in evaluation order.
        mux_rules: Vec<MuxRuleSummary>,
        /// `secrets=…,pii=…`.
        guardrail_summary: String,
    },
    /// MuxRule.
    MuxRule {
        /// `provider/NAME` etc.
        target: Option<String>,
    },
    /// RouterPolicy.
    RouterPolicy {
        /// The resolved route, `a -> b -> c`.
        route: Option<String>,
    },
    /// TaskChain.
    TaskChain {
        /// Number of tasks.
        task_count: u32,
    },
}

/// Compile result for one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The object.
    pub object: ObjectKey,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// Problems, sorted.
    pub issues: Vec<Issue>,
    /// Kind-specific status fields.
    pub details: Details,
}

impl Diagnostic {
    /// Whether the object is in the routing table.
    pub fn ready(&self) -> bool {
        !self.issues.iter().any(|i| i.severity == Severity::Error)
    }

    /// Reason of the Ready condition.
    pub fn reason(&self) -> &str {
        self.first_error().map_or("Ready", |i| i.reason.as_str())
    }

    /// Message of the Ready condition: every error, prefixed with the object.
    pub fn message(&self) -> String {
        let errors: Vec<&str> = self
            .issues
            .iter()
            .filter(|i| i.severity == Severity::Error)
            .map(|i| i.message.as_str())
            .collect();
        if errors.is_empty() {
            let warnings: Vec<&str> = self
                .issues
                .iter()
                .filter(|i| i.severity == Severity::Warning && i.condition == ConditionType::Ready)
                .map(|i| i.message.as_str())
                .collect();
            if warnings.is_empty() {
                format!("{} is ready", self.object)
            } else {
                format!(
                    "{} is ready (warnings: {})",
                    self.object,
                    warnings.join("; ")
                )
            }
        } else {
            format!("{}: {}", self.object, errors.join("; "))
        }
    }

    fn first_error(&self) -> Option<&Issue> {
        self.issues.iter().find(|i| i.severity == Severity::Error)
    }

    /// The issues reported on one condition type.
    pub fn issues_on(&self, condition: ConditionType) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(move |i| i.condition == condition)
    }

    /// The conditions to write: Ready always; ResolvedRefs, SecretResolved and Conflicted when
    /// the kind uses them.
    pub fn conditions(&self) -> Vec<ConditionSpec> {
        let mut out = vec![ConditionSpec {
            type_: ConditionType::Ready,
            status: self.ready(),
            reason: self.reason().to_owned(),
            message: self.message(),
        }];
        let kind = self.object.kind;
        let mut add =
            |type_: ConditionType, ok_reason: &str, ok_message: String, polarity: bool| {
                let found: Vec<&Issue> = self.issues_on(type_).collect();
                match found.first() {
                    None => out.push(ConditionSpec {
                        type_,
                        status: polarity,
                        reason: ok_reason.to_owned(),
                        message: ok_message,
                    }),
                    Some(first) => out.push(ConditionSpec {
                        type_,
                        status: !polarity,
                        reason: first.reason.clone(),
                        message: format!(
                            "{}: {}",
                            self.object,
                            found
                                .iter()
                                .map(|i| i.message.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    }),
                }
            };
        if kind != Kind::Provider {
            add(
                ConditionType::ResolvedRefs,
                "ResolvedRefs",
                "all references resolved".into(),
                true,
            );
        }
        if matches!(
            kind,
            Kind::Provider | Kind::Backend | Kind::Workspace | Kind::TaskChain
        ) {
            add(
                ConditionType::SecretResolved,
                "SecretResolved",
                "all Secret keys resolved".into(),
                true,
            );
        }
        if matches!(kind, Kind::Workspace | Kind::MuxRule)
            || self.issues_on(ConditionType::Conflicted).next().is_some()
        {
            add(
                ConditionType::Conflicted,
                "NoConflicts",
                "no conflicts".into(),
                false,
            );
        }
        out
    }
}
