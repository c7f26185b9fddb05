//! Read views of the seven kinds with their status (list in all namespaces, list in one, get
//! one), the backends' runtime state (seed 002 `GET /state`), workspaces by provider (seed 000)
//! and a workspace's mux rules in evaluation order.
//!
//! Objects are shown as stored, minus `metadata.managedFields` and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (a copy of the spec as last
//! applied), with literal header values of Providers and TaskChain hooks (and header-injected
//! hook arguments) replaced by `<redacted>`: credentials belong in Secrets, and a misplaced one
//! must not leak here. Secret references (`secretRef`, `valueFrom`) name a Secret and key, never
//! a value.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use schemars::JsonSchema;
use serde::Serialize;
use switchyard_crds::backend::ObservedModel;
use switchyard_crds::common::HeaderSpec;
use switchyard_crds::mux_rule::MatcherType;
use switchyard_crds::task_chain::InjectionLocation;
use switchyard_crds::{
    AffinityGroup, Backend, MuxRule, Provider, RouterPolicy, TaskChain, Workspace,
};

use crate::channel::{Action, Identity};

use super::Facade;
use super::error::ApiError;
use super::query::Params;
use super::source::Objects;

/// What literal header values are replaced with.
pub const REDACTED: &str = "<redacted>";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A kind the facade shows.
pub(crate) trait ViewKind:
    kube::Resource<DynamicType = ()> + Clone + Serialize + JsonSchema + Send + Sync + 'static
{
    /// Resource plural (the RBAC resource and the path segment).
    const PLURAL: &'static str;
    /// This kind's objects.
    fn items(objects: Objects) -> Vec<Arc<Self>>;
    /// Hides what must not be shown (beyond the common metadata clean-up).
    fn redact(&mut self) {}
}

fn redact_headers(headers: &mut [HeaderSpec]) {
    for h in headers {
        if h.value.is_some() {
            h.value = Some(REDACTED.to_owned());
        }
    }
}

impl ViewKind for Provider {
    const PLURAL: &'static str = "providers";
    fn items(o: Objects) -> Vec<Arc<Self>> {
        o.providers
    }
    fn redact(&mut self) {
        redact_headers(&mut self.spec.headers);
    }
}

impl ViewKind for Backend {
    const PLURAL: &'static str = "backends";
    fn items(o: Objects) -> Vec<Arc<Self>> {
        o.backends
    }
}

impl ViewKind for AffinityGroup {
    const PLURAL: &'static str = "affinitygroups";
    fn items(o: Objects) -> Vec<Arc<Self>> {
        o.affinity_groups
    }
}

impl ViewKind for Workspace {
    const PLURAL: &'static str = "workspaces";
    fn items(o: Objects) -> Vec<Arc<Self>> {
        o.workspaces
    }
}

impl ViewKind for MuxRule {
    const PLURAL: &'static str = "muxrules";
    fn items(o: Objects) -> Vec<Arc<Self>> {
        o.mux_rules
    }
}

impl ViewKind for RouterPolicy {
    const PLURAL: &'static str = "routerpolicies";
    fn items(o: Objects) -> Vec<Arc<Self>> {
        o.router_policies
    }
}

impl ViewKind for TaskChain {
    const PLURAL: &'static str = "taskchains";
    fn items(o: Objects) -> Vec<Arc<Self>> {
        o.task_chains
    }
    fn redact(&mut self) {
        for hook in &mut self.spec.hooks {
            redact_headers(&mut hook.headers);
            if let Some(arg) = &mut hook.properties
                && arg.in_ == InjectionLocation::Header
            {
                arg.value = REDACTED.to_owned();
            }
        }
    }
}

/// The object as the facade shows it.
pub(crate) fn shown<K: ViewKind>(o: &K) -> K {
    let mut o = o.clone();
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = &mut meta.annotations {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
    o.redact();
    o
}

/// A list of objects of one kind, sorted by namespace and name.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "{K}List")]
pub struct ObjectList<K> {
    /// The objects.
    pub items: Vec<K>,
}

fn sorted<K: ViewKind>(items: impl IntoIterator<Item = Arc<K>>) -> ObjectList<K> {
    let mut items: Vec<K> = items.into_iter().map(|o| shown(&*o)).collect();
    items.sort_by_key(|a| (a.namespace(), a.name_any()));
    ObjectList { items }
}

fn namespace_of<K: ResourceExt>(o: &K) -> String {
    o.namespace().unwrap_or_default()
}

/// The objects of `K` visible to the caller, in all namespaces or in `namespace`, that `keep`
/// accepts.
async fn visible<K: ViewKind>(
    facade: &Facade,
    who: &Identity,
    namespace: Option<&str>,
    keep: impl Fn(&K, &Objects) -> bool,
) -> Result<Vec<Arc<K>>, ApiError> {
    let objects = facade.source.objects();
    let access = facade.access(who);
    let items: Vec<Arc<K>> = K::items(objects.clone())
        .into_iter()
        .filter(|o| keep(o, &objects))
        .collect();
    match namespace {
        Some(ns) => {
            access
                .require(Action::switchyard("list", K::PLURAL).in_namespace(ns))
                .await?;
            Ok(items
                .into_iter()
                .filter(|o| namespace_of(&**o) == ns)
                .collect())
        }
        None => {
            let scope = access
                .scope("list", K::PLURAL, items.iter().map(|o| namespace_of(&**o)))
                .await?;
            Ok(items
                .into_iter()
                .filter(|o| scope.allows(&namespace_of(&**o)))
                .collect())
        }
    }
}

/// `GET /{plural}`.
pub(crate) async fn list_all<K: ViewKind>(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<ObjectList<K>>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    Ok(Json(sorted(
        visible::<K>(&facade, &who, None, |_, _| true).await?,
    )))
}

/// `GET /namespaces/{namespace}/{plural}`.
pub(crate) async fn list_namespaced<K: ViewKind>(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path(namespace): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ObjectList<K>>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    Ok(Json(sorted(
        visible::<K>(&facade, &who, Some(&namespace), |_, _| true).await?,
    )))
}

/// The object `namespace/name` of kind `K`, if the caller may get it.
pub(crate) async fn find<K: ViewKind>(
    facade: &Facade,
    who: &Identity,
    namespace: &str,
    name: &str,
) -> Result<Arc<K>, ApiError> {
    facade
        .access(who)
        .require(
            Action::switchyard("get", K::PLURAL)
                .in_namespace(namespace)
                .named(name),
        )
        .await?;
    K::items(facade.source.objects())
        .into_iter()
        .find(|o| namespace_of(&**o) == namespace && o.name_any() == name)
        .ok_or_else(|| ApiError::not_found(format!("{} {namespace}/{name} not found", K::PLURAL)))
}

/// `GET /namespaces/{namespace}/{plural}/{name}`.
pub(crate) async fn get_one<K: ViewKind>(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<K>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let o = find::<K>(&facade, &who, &namespace, &name).await?;
    Ok(Json(shown(&*o)))
}

/// Whether a workspace has a MuxRule targeting `provider` (a Provider or Backend, by
/// `namespace/name` or by name in the workspace's namespace).
fn uses_provider(ws: &Workspace, objects: &Objects, provider: &str) -> bool {
    let ns = namespace_of(ws);
    let name = match provider.split_once('/') {
        Some((p_ns, p_name)) if p_ns == ns => p_name,
        Some(_) => return false,
        None => provider,
    };
    objects.mux_rules.iter().any(|r| {
        namespace_of(&**r) == ns
            && r.spec.workspace_ref == ws.name_any()
            && (r.spec.target.provider_ref.as_deref() == Some(name)
                || r.spec.target.backend_ref.as_deref() == Some(name))
    })
}

fn provider_filter(params: &Params) -> impl Fn(&Workspace, &Objects) -> bool + use<> {
    let provider = params.get("provider_name").map(str::to_owned);
    move |ws, objects| {
        provider
            .as_deref()
            .is_none_or(|p| uses_provider(ws, objects, p))
    }
}

/// `GET /workspaces[?provider_name=…]`.
pub(crate) async fn list_workspaces(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<ObjectList<Workspace>>, ApiError> {
    let params = Params::parse(query.as_deref(), &["provider_name"])?;
    Ok(Json(sorted(
        visible::<Workspace>(&facade, &who, None, provider_filter(&params)).await?,
    )))
}

/// `GET /namespaces/{namespace}/workspaces[?provider_name=…]`.
pub(crate) async fn list_namespaced_workspaces(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path(namespace): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ObjectList<Workspace>>, ApiError> {
    let params = Params::parse(query.as_deref(), &["provider_name"])?;
    Ok(Json(sorted(
        visible::<Workspace>(&facade, &who, Some(&namespace), provider_filter(&params)).await?,
    )))
}

/// A backend's runtime state (seed 002 BackendRuntimeState).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BackendRuntimeState {
    /// Object UID (the key when the object has none, as in local mode).
    pub id: String,
    /// `namespace/name`.
    pub key: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// What the backend is.
    pub backend: BackendSummary,
    /// `Ready` condition: compiled into the routing table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// `Reachable` condition: the last probes answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// In the routing snapshot in force and considered healthy there (data planes balance to
    /// it); `false` when it is not in the snapshot.
    pub healthy: bool,
    /// Model ids the server reported, or the declared ones before its first probe.
    pub models: Vec<String>,
    /// What the server reported per model.
    pub pulled_models: Vec<ObservedModel>,
    /// Last error probing or calling it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was last probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// AffinityGroups that list it as a member (names, same namespace).
    pub affinity_groups: Vec<String>,
}

/// The backend itself (seed 002 Backend).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BackendSummary {
    /// Server type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Effective base URL (status), else the spec's `baseUrl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
}

/// Backend runtime states, sorted by key.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RuntimeStateList {
    /// Version of the routing snapshot `healthy` was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_version: Option<String>,
    /// One per Backend.
    pub items: Vec<BackendRuntimeState>,
}

fn condition(conditions: &[Condition], type_: &str) -> Option<bool> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status == "True")
}

fn runtime_state(facade: &Facade, backends: Vec<Arc<Backend>>) -> RuntimeStateList {
    let snapshot = facade.hub.current();
    let groups = facade.source.objects().affinity_groups;
    let mut items: Vec<BackendRuntimeState> = backends
        .into_iter()
        .map(|b| {
            let ns = namespace_of(&*b);
            let name = b.name_any();
            let key = format!("{ns}/{name}");
            let status = b.status.clone().unwrap_or_default();
            let pulled = status.models.clone();
            let models = if pulled.is_empty() {
                b.spec.models.iter().map(|m| m.name.clone()).collect()
            } else {
                pulled.iter().map(|m| m.model.clone()).collect()
            };
            let member_of = groups
                .iter()
                .filter(|g| namespace_of(&***g) == ns)
                .filter(|g| {
                    g.status
                        .as_ref()
                        .is_some_and(|s| s.members.iter().any(|m| m.name == name))
                        || g.spec.backends.contains(&name)
                })
                .map(|g| g.name_any())
                .collect::<BTreeSet<_>>();
            BackendRuntimeState {
                id: b.uid().unwrap_or_else(|| key.clone()),
                backend: BackendSummary {
                    type_: b.spec.type_.as_str().to_owned(),
                    base_url: status.url.clone().or_else(|| b.spec.base_url.clone()),
                    description: b.spec.description.clone(),
                    created_at: b.metadata.creation_timestamp.clone(),
                },
                ready: condition(&status.conditions, "Ready"),
                reachable: condition(&status.conditions, "Reachable"),
                healthy: snapshot
                    .as_ref()
                    .and_then(|s| s.backend(&key))
                    .is_some_and(|s| s.healthy),
                models,
                pulled_models: pulled,
                error: status.error.clone(),
                last_probe_time: status.last_probe_time.clone(),
                affinity_groups: member_of.into_iter().collect(),
                namespace: ns,
                name,
                key,
            }
        })
        .collect();
    items.sort_by(|a, b| a.key.cmp(&b.key));
    RuntimeStateList {
        snapshot_version: snapshot.map(|s| s.version.clone()),
        items,
    }
}

/// `GET /state`.
pub(crate) async fn state_all(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<RuntimeStateList>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let backends = visible::<Backend>(&facade, &who, None, |_, _| true).await?;
    Ok(Json(runtime_state(&facade, backends)))
}

/// `GET /namespaces/{namespace}/state`.
pub(crate) async fn state_namespaced(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path(namespace): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<RuntimeStateList>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let backends = visible::<Backend>(&facade, &who, Some(&namespace), |_, _| true).await?;
    Ok(Json(runtime_state(&facade, backends)))
}

/// Where a mux rule sends requests.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MuxTarget {
    /// `provider`, `backend` or `affinitygroup`.
    pub kind: String,
    /// Object name (same namespace).
    pub name: String,
    /// Model asked of it; absent: the requested model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// One mux rule of a workspace (seed 000 MuxRule, with our fields).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MuxView {
    /// MuxRule name.
    pub name: String,
    /// Priority (lower first; ties by name).
    pub priority: i32,
    /// Matcher type.
    pub matcher_type: MatcherType,
    /// Glob, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<String>,
    /// Target.
    pub target: MuxTarget,
    /// Provider or backend key (`namespace/name`) for those targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// Provider type (or backend type) of the target, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// In the routing snapshot in force: data planes evaluate it (not-Ready rules are skipped).
    pub usable: bool,
    /// Requests it routed.
    pub match_count: u64,
    /// Latest of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_matched_at: Option<Time>,
}

/// A workspace's mux rules in evaluation order.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MuxList {
    /// Workspace key.
    pub workspace: String,
    /// Rules by priority, then name.
    pub items: Vec<MuxView>,
}

/// `GET /namespaces/{namespace}/workspaces/{name}/muxes`: authorized as `list muxrules` in the
/// namespace.
pub(crate) async fn muxes(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<MuxList>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    facade
        .access(&who)
        .require(Action::switchyard("list", "muxrules").in_namespace(&namespace))
        .await?;
    let objects = facade.source.objects();
    if !objects
        .workspaces
        .iter()
        .any(|w| namespace_of(&**w) == namespace && w.name_any() == name)
    {
        return Err(ApiError::not_found(format!(
            "workspaces {namespace}/{name} not found"
        )));
    }
    let key = format!("{namespace}/{name}");
    let snapshot = facade.hub.current();
    let usable: BTreeSet<String> = snapshot
        .as_ref()
        .and_then(|s| s.workspace(&key))
        .map(|w| w.mux_rules.iter().map(|r| r.key.clone()).collect())
        .unwrap_or_default();
    let mut rules: Vec<&Arc<MuxRule>> = objects
        .mux_rules
        .iter()
        .filter(|r| namespace_of(&***r) == namespace && r.spec.workspace_ref == name)
        .collect();
    rules.sort_by_key(|a| (a.spec.priority, a.name_any()));
    let items = rules
        .into_iter()
        .map(|r| {
            let t = &r.spec.target;
            let (kind, target) = match (&t.provider_ref, &t.backend_ref, &t.affinity_group_ref) {
                (Some(p), _, _) => ("provider", p.clone()),
                (_, Some(b), _) => ("backend", b.clone()),
                (_, _, Some(g)) => ("affinitygroup", g.clone()),
                _ => ("", String::new()),
            };
            let provider_type = match kind {
                "provider" => objects
                    .providers
                    .iter()
                    .find(|p| namespace_of(&***p) == namespace && p.name_any() == target)
                    .map(|p| p.spec.type_.as_str().to_owned()),
                "backend" => objects
                    .backends
                    .iter()
                    .find(|b| namespace_of(&***b) == namespace && b.name_any() == target)
                    .map(|b| b.spec.type_.as_str().to_owned()),
                _ => None,
            };
            let status = r.status.clone().unwrap_or_default();
            MuxView {
                usable: usable.contains(&format!("{namespace}/{}", r.name_any())),
                name: r.name_any(),
                priority: r.spec.priority,
                matcher_type: r.spec.matcher.type_,
                matcher: r.spec.matcher.pattern.clone(),
                provider_name: matches!(kind, "provider" | "backend")
                    .then(|| format!("{namespace}/{target}")),
                provider_type,
                target: MuxTarget {
                    kind: kind.to_owned(),
                    name: target,
                    model: t.model.clone(),
                },
                match_count: status.match_count,
                last_matched_at: status.last_matched_at,
            }
        })
        .collect();
    Ok(Json(MuxList {
        workspace: key,
        items,
    }))
}
