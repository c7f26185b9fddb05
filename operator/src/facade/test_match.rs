//! `POST /routerpolicies/test-match` (seed 003): a dry run of routing for a request context,
//! computed by the routing code the data plane runs (`switchyard_routing`) on the snapshot in
//! force — workspace resolution ([`workspace::resolve`]), policy matching
//! ([`route::matching_policies`]) and the route ([`route::route`]), and, for an AffinityGroup,
//! the balancer ([`Balancer::pick`]).
//!
//! For an AffinityGroup primary the member is reported when the pick is deterministic: the
//! `session_affinity` strategy with a session id (rendezvous hashing on it), or a single
//! eligible member. Otherwise (round robin, least outstanding, weighted) it depends on live
//! load, so the eligible members are listed instead; the balancer prefers healthy ones and
//! falls back to any serving member when none is healthy. Circuit-breaker state is per data
//! plane and not considered: the answer is the route as configured.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderValue;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use switchyard_crds::affinity_group::LoadBalancingStrategy;
use switchyard_crds::router_policy::{EndpointType, Parallelism};
use switchyard_crds::snapshot::{Snapshot, TargetKind, TargetSnapshot};
use switchyard_routing::balance::Balancer;
use switchyard_routing::route::{self, RouteSource};
use switchyard_routing::table::{Policy, RoutingTable, name_of, namespace_of};
use switchyard_routing::{RequestInfo, RoutingError, workspace};

use crate::channel::{Action, Identity};

use super::Facade;
use super::error::ApiError;

/// The request: a context described like the data plane classifies a request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestMatchRequest {
    /// The request context.
    pub context: MatchContext,
}

/// What routing looks at (the data plane reads these from the request).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchContext {
    /// `chat` (chat completions, messages; the default), `completions` or `embeddings`.
    #[serde(default)]
    pub endpoint_type: Option<EndpointType>,
    /// Workspace `namespace/name` (or a name unique across namespaces), as in
    /// `x-switchyard-workspace`; absent: the default workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Requested model.
    pub model: String,
    /// `stream: true`.
    #[serde(default)]
    pub streaming: bool,
    /// Tools offered.
    #[serde(default)]
    pub tools: bool,
    /// Image inputs.
    #[serde(default)]
    pub vision: bool,
    /// Tags (`x-switchyard-tags` and the body's `tags`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `x-switchyard-purpose`.
    #[serde(default)]
    pub purpose: Option<String>,
    /// `x-switchyard-step-type`.
    #[serde(default)]
    pub step_type: Option<String>,
    /// `x-switchyard-parallelism`.
    #[serde(default)]
    pub expected_parallelism: Option<Parallelism>,
    /// Filenames mentioned in the prompt (for filename mux matchers).
    #[serde(default)]
    pub filenames: Vec<String>,
    /// A fill-in-the-middle completion.
    #[serde(default)]
    pub fim: bool,
    /// Session id (session-affinity key of AffinityGroups).
    #[serde(default)]
    pub session_id: Option<String>,
}

/// A target of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TargetView {
    /// `provider`, `backend` or `affinitygroup`.
    pub kind: String,
    /// Object key `namespace/name`.
    pub key: String,
    /// Model asked of it; absent: the requested model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl From<&TargetSnapshot> for TargetView {
    fn from(t: &TargetSnapshot) -> Self {
        Self {
            kind: t.kind.as_str().to_owned(),
            key: t.key.clone(),
            model: t.model.clone(),
        }
    }
}

/// A RouterPolicy that matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MatchedPolicy {
    /// `namespace/name`.
    pub key: String,
    /// Priority (lower first).
    pub priority: i32,
    /// Its targets: routeTo, then fallbacks.
    pub route: Vec<TargetView>,
}

impl From<&Policy> for MatchedPolicy {
    fn from(p: &Policy) -> Self {
        Self {
            key: p.snap.key.clone(),
            priority: p.snap.priority,
            route: p.snap.route.iter().map(TargetView::from).collect(),
        }
    }
}

/// A member of an AffinityGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MemberView {
    /// Backend key.
    pub backend: String,
    /// Considered healthy in the snapshot.
    pub healthy: bool,
}

/// What an AffinityGroup target resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct GroupChoice {
    /// Load-balancing strategy.
    pub strategy: String,
    /// The member the balancer picks, when the pick is deterministic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_member: Option<String>,
    /// Members serving the model, healthy ones first (those the balancer chooses among).
    pub eligible_members: Vec<MemberView>,
    /// Why `selected_member` is or is not given.
    pub note: String,
}

/// The concrete target the data plane would call first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ConcreteTarget {
    /// `provider`, `backend` or `affinitygroup`.
    pub kind: String,
    /// Object key.
    pub key: String,
    /// Model asked of it.
    pub model: String,
    /// Provider or backend type (for a group: the selected member's, if any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// Base URL called (for a group: the selected member's, if any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For an AffinityGroup: the member choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupChoice>,
}

/// The dry-run answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TestMatchResponse {
    /// Version of the routing snapshot used.
    pub snapshot_version: String,
    /// The workspace the request lands in.
    pub workspace: String,
    /// Enabled RouterPolicies that match, in evaluation order.
    pub matched_policies: Vec<MatchedPolicy>,
    /// The first of them: it decides the route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_policy: Option<MatchedPolicy>,
    /// What decided the route: `policy`, `muxrule` or `model` (a target declaring the model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Key of the deciding RouterPolicy or MuxRule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The model the route resolves to: what the primary target is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_model_id: Option<String>,
    /// Every target in order (primary, then fallbacks), each with its model.
    pub route: Vec<TargetView>,
    /// The primary target, resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<ConcreteTarget>,
    /// The `x-switchyard-route` header the data plane sends when the primary answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_header: Option<String>,
    /// Why there is no route (the data plane answers 404 `model_not_found`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_route: Option<String>,
}

/// The request info the data plane would classify.
fn request_info(c: &MatchContext) -> RequestInfo {
    RequestInfo {
        endpoint_type: Some(c.endpoint_type.unwrap_or(EndpointType::Chat)),
        fim: c.fim,
        filenames: c.filenames.clone(),
        stream: c.streaming,
        tools: c.tools,
        images: c.vision,
        model: c.model.clone(),
        tags: c.tags.clone(),
        session_id: c.session_id.clone(),
        purpose: c.purpose.clone(),
        step_type: c.step_type.clone(),
        parallelism: c.expected_parallelism,
        ..Default::default()
    }
}

fn group_choice(
    snapshot: &Snapshot,
    key: &str,
    model: &str,
    session: Option<&str>,
) -> Option<GroupChoice> {
    let group = snapshot.affinity_group(key)?;
    let mut eligible: Vec<MemberView> = group
        .members
        .iter()
        .filter(|m| m.models.iter().any(|x| x == model))
        .map(|m| MemberView {
            backend: m.backend.clone(),
            healthy: snapshot.backend(&m.backend).is_some_and(|b| b.healthy),
        })
        .collect();
    eligible.sort_by_key(|m| !m.healthy);
    let candidates = match eligible.iter().filter(|m| m.healthy).count() {
        0 => eligible.len(),
        n => n,
    };
    let sticky = group.strategy == LoadBalancingStrategy::SessionAffinity && session.is_some();
    let (selected, note) = if candidates == 0 {
        (
            None,
            "no member serves the model: the data plane tries the next target".to_owned(),
        )
    } else if sticky || candidates == 1 {
        // The data plane's own balancer; a fresh one has no load or cursor state, which these
        // two cases do not depend on.
        let picked = Balancer::default().pick(snapshot, group, model, session, &[]);
        let why = if sticky {
            "session_affinity: rendezvous hash of the session id"
        } else {
            "the only eligible member"
        };
        (picked, why.to_owned())
    } else {
        (
            None,
            format!(
                "{}: the member depends on live load, one of the eligible members",
                group.strategy.as_str()
            ),
        )
    };
    Some(GroupChoice {
        strategy: group.strategy.as_str().to_owned(),
        selected_member: selected,
        eligible_members: eligible,
        note,
    })
}

fn concrete(snapshot: &Snapshot, t: &TargetSnapshot, info: &RequestInfo) -> ConcreteTarget {
    let model = t.model.clone().unwrap_or_else(|| info.model.clone());
    let backend = |key: &str| {
        snapshot
            .backend(key)
            .map(|b| (b.type_.as_str().to_owned(), b.url.clone()))
    };
    let (provider_type, url, group) = match t.kind {
        TargetKind::Provider => match snapshot.provider(&t.key) {
            Some(p) => (
                Some(p.type_.as_str().to_owned()),
                Some(p.endpoint.clone()),
                None,
            ),
            None => (None, None, None),
        },
        TargetKind::Backend => {
            let (ty, url) = backend(&t.key).unzip();
            (ty, url, None)
        }
        TargetKind::AffinityGroup => {
            let choice = group_choice(snapshot, &t.key, &model, info.session_id.as_deref());
            let (ty, url) = choice
                .as_ref()
                .and_then(|c| c.selected_member.as_deref())
                .and_then(backend)
                .unzip();
            (ty, url, choice)
        }
    };
    ConcreteTarget {
        kind: t.kind.as_str().to_owned(),
        key: t.key.clone(),
        model,
        provider_type,
        url,
        group,
    }
}

/// The dry run on a routing table (no authorization).
pub fn test_match(table: &RoutingTable, c: &MatchContext) -> Result<TestMatchResponse, ApiError> {
    if c.model.trim().is_empty() {
        return Err(ApiError::invalid(
            "context.model",
            "context.model is required",
        ));
    }
    let info = request_info(c);
    // As the data plane reads `x-switchyard-workspace`: a valid header value, trimmed.
    if c.workspace
        .as_deref()
        .is_some_and(|w| HeaderValue::from_str(w).is_err())
    {
        return Err(ApiError::invalid(
            "context.workspace",
            "context.workspace is not a valid name",
        ));
    }
    let asked = c
        .workspace
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty());
    let workspace = workspace::resolve(table, None, asked, false)
        .map_err(|e| {
            let param = "context.workspace";
            match e {
                RoutingError::WorkspaceNotFound(_) | RoutingError::NoDefaultWorkspace => {
                    ApiError::not_found(e.to_string()).param(param)
                }
                _ => ApiError::invalid(param, e.to_string()),
            }
        })?
        .workspace;
    let matched: Vec<MatchedPolicy> = route::matching_policies(table, workspace, &info)
        .map(MatchedPolicy::from)
        .collect();
    let mut answer = TestMatchResponse {
        snapshot_version: table.version().to_owned(),
        workspace: workspace.key.clone(),
        selected_policy: matched.first().cloned(),
        matched_policies: matched,
        source: None,
        rule: None,
        logical_model_id: None,
        route: Vec::new(),
        target: None,
        route_header: None,
        no_route: None,
    };
    match route::route(table, workspace, &info) {
        Ok(r) => {
            answer.source = Some(r.source.kind().to_owned());
            answer.rule = r.source.key().map(str::to_owned);
            answer.route = r.targets.iter().map(TargetView::from).collect();
            if let Some(primary) = r.targets.first() {
                let target = concrete(&table.snapshot, primary, &info);
                answer.logical_model_id = Some(target.model.clone());
                answer.route_header = Some(route_header(&r.source, primary, &target.model));
                answer.target = Some(target);
            }
        }
        Err(e) => answer.no_route = Some(e.to_string()),
    }
    Ok(answer)
}

/// The data plane's `x-switchyard-route` value for a target (`SOURCE; target=KIND/NAME;
/// model=MODEL`).
fn route_header(source: &RouteSource, t: &TargetSnapshot, model: &str) -> String {
    format!(
        "{source}; target={}/{}; model={model}",
        t.kind.as_str(),
        name_of(&t.key)
    )
}

/// `POST /routerpolicies/test-match`: authorized as `list routerpolicies` in the namespace of
/// the workspace the request lands in.
pub(crate) async fn handler(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<TestMatchRequest>, JsonRejection>,
) -> Result<Json<TestMatchResponse>, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::invalid_body(e.body_text()))?;
    let access = facade.access(&who);
    let action = |ns: &str| Action::switchyard("list", "routerpolicies").in_namespace(ns);
    // A workspace named by key is authorized before anything about it is revealed.
    if let Some((ns, _)) = request
        .context
        .workspace
        .as_deref()
        .and_then(|w| w.split_once('/'))
    {
        access.require(action(ns)).await?;
    }
    let table = facade.table()?;
    let answer = test_match(&table, &request.context)?;
    access
        .require(action(namespace_of(&answer.workspace)))
        .await?;
    Ok(Json(answer))
}
