//! AffinityGroups: members (by name and selector), models each member serves.

use std::collections::{BTreeMap, BTreeSet};

use super::providers::Backends;
use super::{ConditionType, Cx, Details, Kind, ObjectKey, selector_matches, sorted};
use crate::affinity_group::{GroupMember, LoadBalancingStrategy};
use crate::snapshot::{AffinityGroupSnapshot, GroupMemberSnapshot};

/// Usable groups by key.
pub(crate) type Groups = BTreeMap<String, AffinityGroupSnapshot>;

/// Session header used when a group names none.
pub const DEFAULT_SESSION_HEADER: &str = "x-session-id";

pub(crate) fn compile(cx: &mut Cx<'_>, backends: &Backends) -> Groups {
    let inv = cx.inv;
    let empty = || Details::AffinityGroup {
        members: Vec::new(),
        available_models: Vec::new(),
    };
    let mut out = Groups::new();
    for (key, g) in sorted(cx, Kind::AffinityGroup, &inv.affinity_groups, empty) {
        let spec = &g.spec;
        // Member names: listed ones plus those the selector picks, in this namespace.
        let mut names: BTreeSet<String> = BTreeSet::new();
        for name in &spec.backends {
            let exists = cx.diagnostics.contains_key(&ObjectKey {
                kind: Kind::Backend,
                namespace: key.namespace.clone(),
                name: name.clone(),
            });
            if exists {
                names.insert(name.clone());
            } else {
                cx.warn(
                    &key,
                    ConditionType::ResolvedRefs,
                    "BackendNotFound",
                    format!("backend \"{name}\" not found"),
                );
            }
        }
        if let Some(sel) = &spec.backend_selector {
            for b in &inv.backends {
                if super::object_key(Kind::Backend, b).namespace != key.namespace {
                    continue;
                }
                match selector_matches(sel, b.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
                {
                    Ok(true) => {
                        names.insert(kube::ResourceExt::name_any(b));
                    }
                    Ok(false) => {}
                    Err(e) => {
                        cx.error(
                            &key,
                            ConditionType::Ready,
                            "InvalidSelector",
                            format!("spec.backendSelector: {e}"),
                        );
                        break;
                    }
                }
            }
        }
        if names.is_empty() && !cx.has_error(&key) {
            cx.error(
                &key,
                ConditionType::ResolvedRefs,
                "NoMembers",
                "no backends: spec.backends names none that exist and spec.backendSelector matches none".into(),
            );
        }

        let wanted: Option<BTreeSet<&str>> =
            (!spec.models.is_empty()).then(|| spec.models.iter().map(String::as_str).collect());
        let mut members = Vec::new();
        let mut snap_members = Vec::new();
        let mut served_by_ready: BTreeSet<String> = BTreeSet::new();
        for name in &names {
            let bkey = format!("{}/{}", key.namespace, name);
            let backend = backends.get(&bkey);
            let models: Vec<String> = backend
                .map(|b| {
                    b.models
                        .iter()
                        .map(|m| m.name.clone())
                        .filter(|m| wanted.as_ref().is_none_or(|w| w.contains(m.as_str())))
                        .collect()
                })
                .unwrap_or_default();
            let ready = backend.is_some_and(|b| b.healthy) && !models.is_empty();
            if ready {
                served_by_ready.extend(models.iter().cloned());
            }
            if backend.is_some() && !models.is_empty() {
                snap_members.push(GroupMemberSnapshot {
                    backend: bkey,
                    models: models.clone(),
                });
            }
            members.push(GroupMember {
                name: name.clone(),
                ready,
                models,
            });
        }
        let served_by_any: BTreeSet<&str> = snap_members
            .iter()
            .flat_map(|m| m.models.iter().map(String::as_str))
            .collect();
        if let Some(w) = &wanted {
            for model in w {
                if !served_by_any.contains(model) {
                    let list = names.iter().cloned().collect::<Vec<_>>().join(", ");
                    cx.warn(
                        &key,
                        ConditionType::ResolvedRefs,
                        "ModelNotServed",
                        format!("model \"{model}\" is not served by any member backend ({list})"),
                    );
                }
            }
        }
        if !names.is_empty() && snap_members.is_empty() {
            cx.error(
                &key,
                ConditionType::Ready,
                "NoServableModels",
                "no ready member backend serves any of the group's models".into(),
            );
        }
        if spec.load_balancing.strategy == LoadBalancingStrategy::Weighted
            && !snap_members.is_empty()
            && snap_members
                .iter()
                .all(|m| backends.get(&m.backend).is_some_and(|b| b.weight == 0))
        {
            cx.error(
                &key,
                ConditionType::Ready,
                "ZeroWeights",
                "strategy weighted but every member has weight 0".into(),
            );
        }
        cx.set_details(
            &key,
            Details::AffinityGroup {
                members,
                available_models: served_by_ready.into_iter().collect(),
            },
        );
        if cx.has_error(&key) {
            continue;
        }
        out.insert(
            key.key(),
            AffinityGroupSnapshot {
                key: key.key(),
                purpose: spec.purpose.clone(),
                strategy: spec.load_balancing.strategy,
                session_header: spec
                    .load_balancing
                    .session_header
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SESSION_HEADER.to_owned())
                    .to_ascii_lowercase(),
                members: snap_members,
            },
        );
    }
    out
}
