//! Routing: the first matching enabled RouterPolicy (priority order), else the workspace's
//! MuxRules (priority order), else the Providers and AffinityGroups that declare the requested
//! model. The result is an ordered list of targets: the primary and its fallbacks.

use std::fmt;

use switchyard_crds::mux_rule::MatcherType;
use switchyard_crds::router_policy::EndpointType;
use switchyard_crds::snapshot::{TargetSnapshot, WorkspaceSnapshot};

use crate::error::RoutingError;
use crate::request::RequestInfo;
use crate::table::{Policy, RoutingTable, Rule, name_of, namespace_of};

/// What decided the route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteSource {
    /// A RouterPolicy (key).
    Policy(String),
    /// A MuxRule (key).
    MuxRule(String),
    /// Targets that declare the model (no rule matched).
    DeclaredModel,
    /// A TaskChain task's explicit `execute.target` (chain key).
    Chain(String),
}

impl RouteSource {
    /// `policy`, `muxrule`, `model` or `chain`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Policy(_) => "policy",
            Self::MuxRule(_) => "muxrule",
            Self::DeclaredModel => "model",
            Self::Chain(_) => "chain",
        }
    }

    /// Key of the deciding object, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Policy(k) | Self::MuxRule(k) | Self::Chain(k) => Some(k),
            Self::DeclaredModel => None,
        }
    }
}

impl fmt::Display for RouteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Policy(k) => write!(f, "policy={k}"),
            Self::MuxRule(k) => write!(f, "muxrule={k}"),
            Self::DeclaredModel => f.write_str("model"),
            Self::Chain(k) => write!(f, "chain={k}"),
        }
    }
}

/// A routing decision: every target has its model filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// What decided it.
    pub source: RouteSource,
    /// Targets in order (primary first).
    pub targets: Vec<TargetSnapshot>,
}

/// Whether a policy's scope (its namespace, and its workspaces if it names them) takes in a
/// workspace.
pub fn policy_in_scope(policy: &Policy, workspace: &WorkspaceSnapshot) -> bool {
    namespace_of(&workspace.key) == policy.snap.match_.namespace
        && policy
            .workspaces
            .as_ref()
            .is_none_or(|w| w.contains(&workspace.key))
}

/// Whether a policy applies to a request in a workspace.
pub fn policy_matches(policy: &Policy, workspace: &WorkspaceSnapshot, info: &RequestInfo) -> bool {
    let m = &policy.snap.match_;
    if !policy_in_scope(policy, workspace) {
        return false;
    }
    if m.endpoint_type.is_some() && m.endpoint_type != info.endpoint_type {
        return false;
    }
    if m.step_type.is_some() && m.step_type != info.step_type {
        return false;
    }
    if m.purpose.is_some() && m.purpose != info.purpose {
        return false;
    }
    if m.expected_parallelism.is_some() && m.expected_parallelism != info.parallelism {
        return false;
    }
    if policy
        .model_glob
        .as_ref()
        .is_some_and(|g| !g.is_match(&info.model))
    {
        return false;
    }
    let flag = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
    if !flag(m.requires_streaming, info.stream)
        || !flag(m.requires_function_calling, info.tools)
        || !flag(m.requires_vision, info.images)
    {
        return false;
    }
    m.tags.iter().all(|(k, v)| info.tags.get(k) == Some(v))
}

/// Whether a MuxRule matches a request.
pub fn rule_matches(rule: &Rule, info: &RequestInfo) -> bool {
    let any_file = || match &rule.glob {
        None => true,
        Some(g) => info
            .filenames
            .iter()
            .any(|f| g.is_match(f) || g.is_match(name_of(f))),
    };
    match rule.snap.matcher {
        MatcherType::CatchAll => true,
        MatcherType::FilenameMatch => any_file(),
        MatcherType::FimFilename => info.fim && any_file(),
        // Only chat requests (chat completions, messages): not legacy completions without a
        // suffix, nor embeddings, which are not FIM either.
        MatcherType::ChatFilename => info.endpoint_type == Some(EndpointType::Chat) && any_file(),
        MatcherType::Model => rule.glob.as_ref().is_none_or(|g| g.is_match(&info.model)),
    }
}

/// Policies that match, in evaluation order (for test-match and for routing).
pub fn matching_policies<'t>(
    table: &'t RoutingTable,
    workspace: &'t WorkspaceSnapshot,
    info: &'t RequestInfo,
) -> impl Iterator<Item = &'t Policy> + 't {
    table
        .policies
        .iter()
        .filter(move |p| policy_matches(p, workspace, info))
}

/// Routes a request: the first of [`candidates`].
pub fn route(
    table: &RoutingTable,
    workspace: &WorkspaceSnapshot,
    info: &RequestInfo,
) -> Result<Route, RoutingError> {
    candidates(table, workspace, info)?
        .into_iter()
        .next()
        .ok_or_else(|| no_route(workspace, info))
}

/// Every route that applies, in order: each matching RouterPolicy (priority order), then the
/// first matching MuxRule, then the targets that declare the model. The first one is the route;
/// a later one takes over only when every target of those before it is out of routing (open
/// circuits with `autoDisable`: the policy "stops matching"). Errors when none applies.
pub fn candidates(
    table: &RoutingTable,
    workspace: &WorkspaceSnapshot,
    info: &RequestInfo,
) -> Result<Vec<Route>, RoutingError> {
    let with_model = |t: &TargetSnapshot| TargetSnapshot {
        kind: t.kind,
        key: t.key.clone(),
        model: Some(t.model.clone().unwrap_or_else(|| info.model.clone())),
    };
    let mut out: Vec<Route> = matching_policies(table, workspace, info)
        .map(|p| Route {
            source: RouteSource::Policy(p.snap.key.clone()),
            targets: p.snap.route.iter().map(with_model).collect(),
        })
        .collect();
    if let Some(r) = table
        .rules(&workspace.key)
        .iter()
        .find(|r| rule_matches(r, info))
    {
        out.push(Route {
            source: RouteSource::MuxRule(r.snap.key.clone()),
            targets: vec![with_model(&r.snap.target)],
        });
    }
    let declared = table.model_targets(namespace_of(&workspace.key), &info.model);
    if !declared.is_empty() {
        out.push(Route {
            source: RouteSource::DeclaredModel,
            targets: declared.iter().map(with_model).collect(),
        });
    }
    if out.is_empty() {
        return Err(no_route(workspace, info));
    }
    Ok(out)
}

fn no_route(workspace: &WorkspaceSnapshot, info: &RequestInfo) -> RoutingError {
    RoutingError::NoRoute {
        model: info.model.clone(),
        workspace: workspace.key.clone(),
    }
}
