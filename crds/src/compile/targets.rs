//! Resolving a [`TargetRef`] against the usable providers, backends and groups.

use super::groups::Groups;
use super::providers::{Backends, Providers};
use super::{ConditionType, Cx, Kind, ObjectKey, Severity};
use crate::common::TargetRef;
use crate::snapshot::{TargetKind, TargetSnapshot};

/// What routing may target.
pub(crate) struct Usable<'a> {
    pub providers: &'a Providers,
    pub backends: &'a Backends,
    pub groups: &'a Groups,
}

impl Usable<'_> {
    /// Models a target serves, `None` when it accepts any.
    fn served_models(&self, kind: TargetKind, key: &str) -> Option<Vec<&str>> {
        match kind {
            TargetKind::Provider => {
                let p = self.providers.get(key)?;
                (!p.models.is_empty()).then(|| p.models.iter().map(|m| m.name.as_str()).collect())
            }
            TargetKind::Backend => {
                let b = self.backends.get(key)?;
                (!b.models.is_empty()).then(|| b.models.iter().map(|m| m.name.as_str()).collect())
            }
            TargetKind::AffinityGroup => {
                let g = self.groups.get(key)?;
                Some(
                    g.members
                        .iter()
                        .flat_map(|m| m.models.iter().map(String::as_str))
                        .collect(),
                )
            }
        }
    }
}

/// Resolves a target of `owner` (same namespace). Missing objects are ResolvedRefs issues,
/// existing but unusable ones Ready issues, both with the given severity.
pub(crate) fn resolve(
    cx: &mut Cx<'_>,
    usable: &Usable<'_>,
    owner: &ObjectKey,
    severity: Severity,
    field: &str,
    target: &TargetRef,
) -> Option<TargetSnapshot> {
    let refs = [
        (TargetKind::Provider, target.provider_ref.as_deref()),
        (TargetKind::Backend, target.backend_ref.as_deref()),
        (
            TargetKind::AffinityGroup,
            target.affinity_group_ref.as_deref(),
        ),
    ];
    let set: Vec<(TargetKind, &str)> = refs
        .iter()
        .filter_map(|(k, n)| n.map(|n| (*k, n)))
        .collect();
    let [(kind, name)] = set.as_slice() else {
        cx.issue(
            owner,
            severity,
            ConditionType::Ready,
            "InvalidTarget",
            format!("{field} must set exactly one of providerRef, backendRef and affinityGroupRef"),
        );
        return None;
    };
    let (kind, name) = (*kind, *name);
    let key = format!("{}/{}", owner.namespace, name);
    let (object_kind, label) = match kind {
        TargetKind::Provider => (Kind::Provider, "provider"),
        TargetKind::Backend => (Kind::Backend, "backend"),
        TargetKind::AffinityGroup => (Kind::AffinityGroup, "affinity group"),
    };
    let target_key = ObjectKey {
        kind: object_kind,
        namespace: owner.namespace.clone(),
        name: name.to_owned(),
    };
    let Some(target_diag) = cx.diagnostics.get(&target_key) else {
        let reason = match kind {
            TargetKind::Provider => "ProviderNotFound",
            TargetKind::Backend => "BackendNotFound",
            TargetKind::AffinityGroup => "AffinityGroupNotFound",
        };
        cx.issue(
            owner,
            severity,
            ConditionType::ResolvedRefs,
            reason,
            format!("{field}: {label} \"{name}\" not found"),
        );
        return None;
    };
    let usable_now = match kind {
        TargetKind::Provider => usable.providers.contains_key(&key),
        TargetKind::Backend => usable.backends.contains_key(&key),
        TargetKind::AffinityGroup => usable.groups.contains_key(&key),
    };
    if !usable_now {
        let why = target_diag.reason().to_owned();
        cx.issue(
            owner,
            severity,
            ConditionType::Ready,
            "TargetNotReady",
            format!("{field}: {label} \"{name}\" is not ready ({why})"),
        );
        return None;
    }
    if let (Some(model), Some(served)) = (&target.model, usable.served_models(kind, &key))
        && !served.contains(&model.as_str())
    {
        cx.warn(
            owner,
            ConditionType::ResolvedRefs,
            "ModelNotDeclared",
            format!("{field}: model \"{model}\" is not among the models of {label} \"{name}\""),
        );
    }
    Some(TargetSnapshot {
        kind,
        key,
        model: target.model.clone(),
    })
}

/// `a -> b -> c` for status.
pub(crate) fn route_string(route: &[TargetSnapshot]) -> String {
    route
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}
