//! RouterPolicies: workspace scope, match globs, routes with other policies spliced in, cycles.

use std::collections::{BTreeMap, BTreeSet};

use super::targets::{self, Usable};
use super::{
    ConditionType, Cx, Details, Kind, ObjectKey, Severity, selector_matches, sorted, timeouts_ms,
};
use crate::RouterPolicy;
use crate::snapshot::{
    PolicyMatchSnapshot, RetriesSnapshot, RouterPolicySnapshot, TargetSnapshot, WorkspaceSnapshot,
};

enum State {
    InProgress,
    Done(Option<Vec<TargetSnapshot>>),
}

struct Expander<'p, 'u> {
    policies: BTreeMap<String, (ObjectKey, &'p RouterPolicy)>,
    usable: &'p Usable<'u>,
    state: BTreeMap<String, State>,
    stack: Vec<String>,
    in_cycle: BTreeSet<String>,
}

impl Expander<'_, '_> {
    /// The full route of a policy (by key), resolving its targets once and splicing referenced
    /// policies. `None` when it has no usable target or is part of a cycle.
    fn expand(&mut self, cx: &mut Cx<'_>, pkey: &str) -> Option<Vec<TargetSnapshot>> {
        match self.state.get(pkey) {
            Some(State::Done(r)) => return r.clone(),
            Some(State::InProgress) => {
                let start = self.stack.iter().position(|k| k == pkey).unwrap_or(0);
                let mut cycle: Vec<String> = self.stack[start..].to_vec();
                cycle.push(pkey.to_owned());
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|k| k.rsplit('/').next().unwrap_or(k))
                    .collect();
                let text = names.join(" -> ");
                for k in &cycle[..cycle.len() - 1] {
                    if self.in_cycle.insert(k.clone())
                        && let Some((okey, _)) = self.policies.get(k)
                    {
                        cx.error(
                            okey,
                            ConditionType::Ready,
                            "RouteCycle",
                            format!("routeTo/fallback cycle: {text}"),
                        );
                    }
                }
                return None;
            }
            None => {}
        }
        let (okey, policy) = self.policies.get(pkey).map(|(k, p)| (k.clone(), *p))?;
        self.state.insert(pkey.to_owned(), State::InProgress);
        self.stack.push(pkey.to_owned());
        let entries = std::iter::once(("spec.routeTo".to_owned(), &policy.spec.route_to)).chain(
            policy
                .spec
                .fallback
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("spec.fallback[{i}]"), t)),
        );
        let mut route: Vec<TargetSnapshot> = Vec::new();
        for (field, entry) in entries {
            let concrete = [
                &entry.target.provider_ref,
                &entry.target.backend_ref,
                &entry.target.affinity_group_ref,
            ]
            .iter()
            .filter(|r| r.is_some())
            .count();
            match (&entry.router_policy_ref, concrete) {
                (Some(other), 0) => {
                    let other_key = format!("{}/{}", okey.namespace, other);
                    if !self.policies.contains_key(&other_key) {
                        cx.warn(
                            &okey,
                            ConditionType::ResolvedRefs,
                            "RouterPolicyNotFound",
                            format!("{field}: RouterPolicy \"{other}\" not found"),
                        );
                        continue;
                    }
                    match self.expand(cx, &other_key) {
                        Some(spliced) => route.extend(spliced),
                        None if self.in_cycle.contains(pkey) => {}
                        None => cx.warn(
                            &okey,
                            ConditionType::Ready,
                            "TargetNotReady",
                            format!("{field}: RouterPolicy \"{other}\" is not ready"),
                        ),
                    }
                }
                (Some(_), _) => cx.error(
                    &okey,
                    ConditionType::Ready,
                    "InvalidTarget",
                    format!(
                        "{field} must set either routerPolicyRef or one concrete target, not both"
                    ),
                ),
                (None, _) => {
                    if let Some(t) = targets::resolve(
                        cx,
                        self.usable,
                        &okey,
                        Severity::Warning,
                        &field,
                        &entry.target,
                    ) {
                        route.push(t);
                    }
                }
            }
        }
        self.stack.pop();
        let mut seen = BTreeSet::new();
        route.retain(|t| seen.insert(t.clone()));
        let result = if self.in_cycle.contains(pkey) {
            None
        } else if route.is_empty() {
            cx.error(
                &okey,
                ConditionType::Ready,
                "NoUsableTarget",
                "neither routeTo nor any fallback is usable".into(),
            );
            None
        } else {
            Some(route)
        };
        self.state
            .insert(pkey.to_owned(), State::Done(result.clone()));
        result
    }
}

pub(crate) fn compile(
    cx: &mut Cx<'_>,
    usable: &Usable<'_>,
    workspaces: &BTreeMap<String, WorkspaceSnapshot>,
) -> Vec<RouterPolicySnapshot> {
    let inv = cx.inv;
    let policies = sorted(cx, Kind::RouterPolicy, &inv.router_policies, || {
        Details::RouterPolicy { route: None }
    });
    let mut expander = Expander {
        policies: policies
            .iter()
            .map(|(k, p)| (k.key(), (k.clone(), *p)))
            .collect(),
        usable,
        state: BTreeMap::new(),
        stack: Vec::new(),
        in_cycle: BTreeSet::new(),
    };
    let mut routes = BTreeMap::new();
    for (key, _) in &policies {
        let route = expander.expand(cx, &key.key());
        routes.insert(key.key(), route);
    }

    let mut out = Vec::new();
    for (key, p) in &policies {
        let spec = &p.spec;
        let m = &spec.match_;
        // Workspaces in scope: the named one and/or those the selector picks, this namespace only.
        let mut scope: Option<BTreeSet<String>> = None;
        if let Some(name) = &m.workspace {
            let wkey = format!("{}/{}", key.namespace, name);
            if !workspaces.contains_key(&wkey) {
                cx.error(
                    key,
                    ConditionType::ResolvedRefs,
                    "WorkspaceNotFound",
                    format!("spec.match.workspace: workspace \"{name}\" not found"),
                );
            }
            scope = Some(BTreeSet::from([wkey]));
        }
        if let Some(sel) = &m.workspace_selector {
            let mut picked = BTreeSet::new();
            for w in workspaces
                .values()
                .filter(|w| w.key.starts_with(&format!("{}/", key.namespace)))
            {
                match selector_matches(sel, &w.labels) {
                    Ok(true) => {
                        picked.insert(w.key.clone());
                    }
                    Ok(false) => {}
                    Err(e) => {
                        cx.error(
                            key,
                            ConditionType::Ready,
                            "InvalidSelector",
                            format!("spec.match.workspaceSelector: {e}"),
                        );
                        break;
                    }
                }
            }
            scope = Some(match scope {
                Some(named) => named.intersection(&picked).cloned().collect(),
                None => picked,
            });
        }
        if let Some(g) = &m.model
            && let Err(e) = crate::glob::ModelGlob::new(g)
        {
            cx.error(
                key,
                ConditionType::Ready,
                "InvalidGlob",
                format!("spec.match.model {g:?} is not a valid glob: {}", e.kind()),
            );
        }
        let route = routes.get(&key.key()).cloned().flatten();
        cx.set_details(
            key,
            Details::RouterPolicy {
                route: route.as_deref().map(targets::route_string),
            },
        );
        if cx.has_error(key) || !spec.enabled {
            continue;
        }
        let Some(route) = route else { continue };
        let retries = spec
            .retries
            .as_ref()
            .map_or_else(RetriesSnapshot::default, |r| {
                let d = RetriesSnapshot::default();
                RetriesSnapshot {
                    attempts: r.attempts,
                    backoff_ms: r
                        .backoff
                        .map_or(d.backoff_ms, |b| b.get().as_millis() as u64),
                    max_backoff_ms: r
                        .max_backoff
                        .map_or(d.max_backoff_ms, |b| b.get().as_millis() as u64),
                    budget_percent: r.budget_percent,
                }
            });
        out.push(RouterPolicySnapshot {
            key: key.key(),
            priority: spec.priority,
            match_: PolicyMatchSnapshot {
                namespace: key.namespace.clone(),
                workspaces: scope.map(|s| s.into_iter().collect()),
                endpoint_type: m.endpoint_type,
                step_type: m.step_type.clone(),
                purpose: m.purpose.clone(),
                expected_parallelism: m.expected_parallelism,
                model: m.model.clone(),
                requires_streaming: m.requires_streaming,
                requires_function_calling: m.requires_function_calling,
                requires_vision: m.requires_vision,
                tags: m.tags.clone(),
            },
            route,
            circuit_breaker: spec.circuit_breaker.clone(),
            retries,
            timeouts: timeouts_ms(spec.timeouts.as_ref()),
        });
    }
    out.sort_by(|a, b| (a.priority, &a.key).cmp(&(b.priority, &b.key)));
    out
}
