//! Where the CR views come from: the reflector caches in a cluster ([`Stores`]), the manifest
//! folder in local mode ([`SharedObjects`], refreshed by the local loop with the status the
//! operator computes there), or fixed objects in tests.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use jiff::Timestamp;
use kube::ResourceExt;
use switchyard_crds::compile::{Compiled, Diagnostic, Inventory, Kind};
use switchyard_crds::{
    AffinityGroup, Backend, MuxRule, Provider, RouterPolicy, TaskChain, Workspace,
};

use crate::controller::Stores;
use crate::status::{self, Counters, Probes};

/// The seven kinds, with whatever status they carry.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Providers.
    pub providers: Vec<Arc<Provider>>,
    /// Backends.
    pub backends: Vec<Arc<Backend>>,
    /// AffinityGroups.
    pub affinity_groups: Vec<Arc<AffinityGroup>>,
    /// Workspaces.
    pub workspaces: Vec<Arc<Workspace>>,
    /// MuxRules.
    pub mux_rules: Vec<Arc<MuxRule>>,
    /// RouterPolicies.
    pub router_policies: Vec<Arc<RouterPolicy>>,
    /// TaskChains.
    pub task_chains: Vec<Arc<TaskChain>>,
}

impl Objects {
    /// The objects of an inventory (its Secrets are not kept).
    pub fn from_inventory(inv: &Inventory) -> Self {
        fn arcs<K: Clone>(v: &[K]) -> Vec<Arc<K>> {
            v.iter().cloned().map(Arc::new).collect()
        }
        Self {
            providers: arcs(&inv.providers),
            backends: arcs(&inv.backends),
            affinity_groups: arcs(&inv.affinity_groups),
            workspaces: arcs(&inv.workspaces),
            mux_rules: arcs(&inv.mux_rules),
            router_policies: arcs(&inv.router_policies),
            task_chains: arcs(&inv.task_chains),
        }
    }

    /// The same objects with the status the operator computes for them from a compile, the
    /// usage counters and probe results (what it would write in a cluster; local mode has no API
    /// server to write it to). `lastTransitionTime` is kept from the status they carry.
    pub fn with_status(
        &self,
        compiled: &Compiled,
        counters: &Counters,
        probes: &Probes,
        now: Timestamp,
    ) -> Self {
        let by_key: HashMap<(Kind, &str, &str), &Diagnostic> = compiled
            .diagnostics
            .iter()
            .map(|d| {
                (
                    (
                        d.object.kind,
                        d.object.namespace.as_str(),
                        d.object.name.as_str(),
                    ),
                    d,
                )
            })
            .collect();
        let diagnostic = |kind: Kind, ns: &str, name: &str| by_key.get(&(kind, ns, name)).copied();
        fn each<'c, K: Clone + ResourceExt>(
            items: &[Arc<K>],
            find: impl Fn(&str, &str) -> Option<&'c Diagnostic>,
            set: impl Fn(&mut K, &Diagnostic),
        ) -> Vec<Arc<K>> {
            items
                .iter()
                .map(|o| {
                    let ns = o.namespace().unwrap_or_default();
                    match find(&ns, &o.name_any()) {
                        Some(d) => {
                            let mut o = (**o).clone();
                            set(&mut o, d);
                            Arc::new(o)
                        }
                        None => o.clone(),
                    }
                })
                .collect()
        }
        Self {
            providers: each(
                &self.providers,
                |ns, n| diagnostic(Kind::Provider, ns, n),
                |o, d| {
                    o.status = Some(status::provider(
                        d,
                        o.status.as_ref(),
                        &o.spec.models,
                        counters,
                        probes,
                        now,
                    ));
                },
            ),
            backends: each(
                &self.backends,
                |ns, n| diagnostic(Kind::Backend, ns, n),
                |o, d| {
                    o.status = Some(status::backend(d, o.status.as_ref(), counters, probes, now));
                },
            ),
            affinity_groups: each(
                &self.affinity_groups,
                |ns, n| diagnostic(Kind::AffinityGroup, ns, n),
                |o, d| o.status = Some(status::affinity_group(d, o.status.as_ref(), now)),
            ),
            workspaces: each(
                &self.workspaces,
                |ns, n| diagnostic(Kind::Workspace, ns, n),
                |o, d| o.status = Some(status::workspace(d, o.status.as_ref(), counters, now)),
            ),
            mux_rules: each(
                &self.mux_rules,
                |ns, n| diagnostic(Kind::MuxRule, ns, n),
                |o, d| o.status = Some(status::mux_rule(d, o.status.as_ref(), counters, now)),
            ),
            router_policies: each(
                &self.router_policies,
                |ns, n| diagnostic(Kind::RouterPolicy, ns, n),
                |o, d| {
                    let enabled = o.spec.enabled;
                    o.status = Some(status::router_policy(
                        d,
                        o.status.as_ref(),
                        enabled,
                        counters,
                        now,
                    ));
                },
            ),
            task_chains: each(
                &self.task_chains,
                |ns, n| diagnostic(Kind::TaskChain, ns, n),
                |o, d| o.status = Some(status::task_chain(d, o.status.as_ref(), counters, now)),
            ),
        }
    }
}

/// Gives the facade the objects to show.
pub trait ViewSource: Send + Sync + fmt::Debug + 'static {
    /// The objects now.
    fn objects(&self) -> Objects;
}

impl ViewSource for Stores {
    fn objects(&self) -> Objects {
        Objects {
            providers: self.providers.state(),
            backends: self.backends.state(),
            affinity_groups: self.affinity_groups.state(),
            workspaces: self.workspaces.state(),
            mux_rules: self.mux_rules.state(),
            router_policies: self.router_policies.state(),
            task_chains: self.task_chains.state(),
        }
    }
}

/// Objects replaced as a whole (local mode, tests).
#[derive(Debug, Default)]
pub struct SharedObjects(ArcSwap<Objects>);

impl SharedObjects {
    /// Holding `objects`.
    pub fn new(objects: Objects) -> Self {
        Self(ArcSwap::from_pointee(objects))
    }

    /// Replaces the objects.
    pub fn set(&self, objects: Objects) {
        self.0.store(Arc::new(objects));
    }
}

impl ViewSource for SharedObjects {
    fn objects(&self) -> Objects {
        (**self.0.load()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_objects_get_the_status_the_compile_gives_them() {
        let mut inv = Inventory::default();
        switchyard_crds::manifest::add_yaml(
            &mut inv,
            "t.yaml",
            r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: p, namespace: ns}
spec: {type: openai, models: [{name: m}]}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: r, namespace: ns}
spec: {workspaceRef: missing, matcher: {type: catch_all}, target: {providerRef: p}}
"#,
        )
        .unwrap();
        let compiled = switchyard_crds::compile::compile(&inv);
        let objects = Objects::from_inventory(&inv);
        assert!(objects.providers[0].status.is_none());
        let shown = objects.with_status(
            &compiled,
            &Counters::default(),
            &Probes::default(),
            Timestamp::now(),
        );
        let ready = |c: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
            c.iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status.clone())
        };
        let p = shown.providers[0].status.as_ref().unwrap();
        assert_eq!(ready(&p.conditions).as_deref(), Some("True"));
        let r = shown.mux_rules[0].status.as_ref().unwrap();
        assert_eq!(ready(&r.conditions).as_deref(), Some("False"));
        let shared = SharedObjects::new(Objects::default());
        shared.set(shown);
        assert_eq!(shared.objects().mux_rules.len(), 1);
    }
}
