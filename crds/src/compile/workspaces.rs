//! Workspaces (default selection, client bindings) and their MuxRules (order, globs, targets).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use super::targets::{self, Usable};
use super::{ConditionType, Cx, Details, Kind, ObjectKey, Severity, sorted};
use crate::MuxRule;
use crate::mux_rule::MatcherType;
use crate::snapshot::{ClientKeySnapshot, LimitsSnapshot, MuxRuleSnapshot, WorkspaceSnapshot};
use crate::workspace::MuxRuleSummary;

pub(crate) struct Compiled {
    pub workspaces: BTreeMap<String, WorkspaceSnapshot>,
    pub default_workspace: Option<String>,
    pub client_keys: Vec<ClientKeySnapshot>,
}

pub(crate) fn compile(cx: &mut Cx<'_>, usable: &Usable<'_>) -> Compiled {
    let inv = cx.inv;
    let empty = || Details::Workspace {
        active: false,
        mux_rules: Vec::new(),
        guardrail_summary: String::new(),
    };
    let workspaces = sorted(cx, Kind::Workspace, &inv.workspaces, empty);

    // The default workspace: the oldest of those marked default, then by key. Timestamps are
    // compared as instants (as text, "10:00:00.5Z" would sort before "10:00:00Z").
    let mut defaults: Vec<(Option<&Time>, &ObjectKey)> = workspaces
        .iter()
        .filter(|(_, w)| w.spec.default)
        .map(|(k, w)| (w.metadata.creation_timestamp.as_ref(), k))
        .collect();
    defaults.sort_by(|a, b| (a.0.is_none(), &a.0, a.1).cmp(&(b.0.is_none(), &b.0, b.1)));
    let default_key = defaults.first().map(|(_, k)| (*k).clone());
    if defaults.len() > 1 {
        let all: Vec<String> = defaults.iter().map(|(_, k)| k.key()).collect();
        for (i, (_, k)) in defaults.iter().enumerate() {
            let msg = if i == 0 {
                format!(
                    "several Workspaces are marked default ({}); this one is in effect as the oldest",
                    all.join(", ")
                )
            } else {
                format!(
                    "several Workspaces are marked default ({}); {} is in effect as the oldest, not this one",
                    all.join(", "),
                    defaults[0].1.key()
                )
            };
            cx.warn(k, ConditionType::Conflicted, "ConflictingDefault", msg);
        }
    }

    let mut snaps: BTreeMap<String, WorkspaceSnapshot> = BTreeMap::new();
    let mut key_bindings: BTreeMap<String, Vec<(String, String, ObjectKey)>> = BTreeMap::new();
    for (key, w) in &workspaces {
        let spec = &w.spec;
        for c in &spec.clients.api_keys {
            if let Some(v) = cx.secret(
                key,
                Severity::Warning,
                &format!("client API key \"{}\"", c.name),
                &c.secret_ref,
            ) {
                let digest = hex::encode(Sha256::digest(v.expose().as_bytes()));
                key_bindings.entry(digest).or_default().push((
                    c.name.clone(),
                    key.key(),
                    key.clone(),
                ));
            }
        }
        let limits = spec.limits.clone().unwrap_or_default();
        let caller = limits.per_caller.clone().unwrap_or_default();
        let mut service_accounts: Vec<String> = spec
            .clients
            .service_accounts
            .iter()
            .map(|sa| {
                format!(
                    "{}/{}",
                    sa.namespace.as_deref().unwrap_or(&key.namespace),
                    sa.name
                )
            })
            .collect();
        service_accounts.sort();
        service_accounts.dedup();
        let mut namespaces = spec.clients.namespaces.clone();
        namespaces.sort();
        namespaces.dedup();
        snaps.insert(
            key.key(),
            WorkspaceSnapshot {
                key: key.key(),
                labels: w.metadata.labels.clone().unwrap_or_default(),
                custom_instructions: spec
                    .custom_instructions
                    .clone()
                    .filter(|s| !s.trim().is_empty()),
                guardrail_secrets: spec.guardrails.secrets,
                guardrail_pii: spec.guardrails.pii,
                limits: LimitsSnapshot {
                    requests_per_minute: limits.requests_per_minute,
                    tokens_per_minute: limits.tokens_per_minute,
                    tokens_per_day: limits.tokens_per_day,
                    caller_requests_per_minute: caller.requests_per_minute,
                    caller_tokens_per_minute: caller.tokens_per_minute,
                    caller_tokens_per_day: caller.tokens_per_day,
                },
                service_accounts,
                namespaces,
                mux_rules: Vec::new(),
            },
        );
    }

    // A gateway key bound twice is ambiguous: it is dropped everywhere.
    let mut client_keys = Vec::new();
    for (digest, bindings) in key_bindings {
        if let [(name, workspace, _)] = bindings.as_slice() {
            client_keys.push(ClientKeySnapshot {
                sha256: digest,
                name: name.clone(),
                workspace: workspace.clone(),
            });
        } else {
            let names: Vec<String> = bindings
                .iter()
                .map(|(n, w, _)| format!("{w} ({n})"))
                .collect();
            for (name, _, key) in &bindings {
                cx.warn(
                    key,
                    ConditionType::Conflicted,
                    "DuplicateClientKey",
                    format!(
                        "client API key \"{name}\" holds the same key as another binding ({}); it is not accepted anywhere",
                        names.join(", ")
                    ),
                );
            }
        }
    }

    let rules = compile_mux_rules(cx, usable, &mut snaps);

    for (key, w) in &workspaces {
        let summaries: Vec<MuxRuleSummary> = mux_summaries(cx, &rules, key);
        let g = &w.spec.guardrails;
        cx.set_details(
            key,
            Details::Workspace {
                active: default_key.as_ref() == Some(key),
                mux_rules: summaries,
                guardrail_summary: format!("secrets={},pii={}", g.secrets.as_str(), g.pii.as_str()),
            },
        );
    }

    Compiled {
        workspaces: snaps,
        default_workspace: default_key.map(|k| k.key()),
        client_keys,
    }
}

/// Compiles the MuxRules into their workspaces; returns the rules kept (one per key).
fn compile_mux_rules<'a>(
    cx: &mut Cx<'a>,
    usable: &Usable<'_>,
    snaps: &mut BTreeMap<String, WorkspaceSnapshot>,
) -> Vec<(ObjectKey, &'a MuxRule)> {
    let inv = cx.inv;
    let rules = sorted(cx, Kind::MuxRule, &inv.mux_rules, || Details::MuxRule {
        target: None,
    });
    // Equal priorities within a workspace: reported on every rule involved.
    let mut by_priority: BTreeMap<(String, i32), Vec<ObjectKey>> = BTreeMap::new();
    for (key, r) in &rules {
        let ws = format!("{}/{}", key.namespace, r.spec.workspace_ref);
        by_priority
            .entry((ws, r.spec.priority))
            .or_default()
            .push(key.clone());
    }
    for ((_, priority), keys) in &by_priority {
        if keys.len() > 1 {
            for k in keys {
                let others: Vec<String> = keys
                    .iter()
                    .filter(|o| *o != k)
                    .map(|o| o.name.clone())
                    .collect();
                cx.warn(
                    k,
                    ConditionType::Conflicted,
                    "PriorityTie",
                    format!(
                        "priority {priority} is shared with MuxRule {}; ties are evaluated in name order",
                        others.join(", ")
                    ),
                );
            }
        }
    }

    for (key, r) in &rules {
        let spec = &r.spec;
        let ws_key = format!("{}/{}", key.namespace, spec.workspace_ref);
        if !snaps.contains_key(&ws_key) {
            cx.error(
                key,
                ConditionType::ResolvedRefs,
                "WorkspaceNotFound",
                format!("workspace \"{}\" not found", spec.workspace_ref),
            );
        }
        let pattern = spec.matcher.pattern.clone().filter(|p| !p.is_empty());
        if let Some(p) = &pattern
            && spec.matcher.type_ != MatcherType::CatchAll
            && let Err(e) = crate::glob::ModelGlob::new(p)
        {
            cx.error(
                key,
                ConditionType::Ready,
                "InvalidGlob",
                format!(
                    "spec.matcher.pattern {p:?} is not a valid glob: {}",
                    e.kind()
                ),
            );
        }
        let target = targets::resolve(
            cx,
            usable,
            key,
            Severity::Error,
            "spec.target",
            &spec.target,
        );
        cx.set_details(
            key,
            Details::MuxRule {
                target: target_label(&spec.target),
            },
        );
        if cx.has_error(key) {
            continue;
        }
        let (Some(target), Some(ws)) = (target, snaps.get_mut(&ws_key)) else {
            continue;
        };
        ws.mux_rules.push(MuxRuleSnapshot {
            key: key.key(),
            priority: spec.priority,
            matcher: spec.matcher.type_,
            pattern: if spec.matcher.type_ == MatcherType::CatchAll {
                None
            } else {
                pattern
            },
            target,
        });
    }
    for ws in snaps.values_mut() {
        ws.mux_rules
            .sort_by(|a, b| (a.priority, &a.key).cmp(&(b.priority, &b.key)));
    }
    rules
}

/// Status summaries of a workspace's rules, from the rules kept by [`sorted`] (so a rule
/// defined twice is listed once, as the definition that was compiled).
fn mux_summaries(
    cx: &Cx<'_>,
    rules: &[(ObjectKey, &MuxRule)],
    workspace: &ObjectKey,
) -> Vec<MuxRuleSummary> {
    let mut out: Vec<MuxRuleSummary> = rules
        .iter()
        .filter(|(k, r)| {
            k.namespace == workspace.namespace && r.spec.workspace_ref == workspace.name
        })
        .map(|(k, r)| MuxRuleSummary {
            name: k.name.clone(),
            priority: r.spec.priority,
            matcher: r.spec.matcher.type_,
            pattern: r.spec.matcher.pattern.clone(),
            target: target_label(&r.spec.target).unwrap_or_else(|| "invalid".into()),
            model: r.spec.target.model.clone(),
            ready: !cx.has_error(k),
        })
        .collect();
    out.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    out
}

/// `provider/NAME`, `backend/NAME` or `affinitygroup/NAME`, when exactly one is set.
pub(crate) fn target_label(t: &crate::common::TargetRef) -> Option<String> {
    let set: BTreeSet<String> = [
        t.provider_ref.as_ref().map(|n| format!("provider/{n}")),
        t.backend_ref.as_ref().map(|n| format!("backend/{n}")),
        t.affinity_group_ref
            .as_ref()
            .map(|n| format!("affinitygroup/{n}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (set.len() == 1).then(|| set.into_iter().next().unwrap_or_default())
}
