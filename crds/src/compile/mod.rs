//! The compiler: a pure, deterministic function from a set of CRs plus resolved Secret values
//! to a [`Snapshot`] and one [`Diagnostic`] per object.
//!
//! Input order never matters: objects are sorted by key first, every output list is sorted, and
//! the snapshot version is a hash of its content.

mod chains;
mod diagnostics;
mod groups;
pub mod manifest;
mod policies;
mod providers;
mod selector;
mod targets;
mod workspaces;

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde::{Deserialize, Serialize};

pub use diagnostics::{
    ConditionSpec, ConditionType, Details, Diagnostic, Issue, Kind, ObjectKey, Severity,
};
pub use selector::selector_matches;

use crate::snapshot::{SCHEMA_VERSION, SecretValue, Snapshot};
use crate::{AffinityGroup, Backend, MuxRule, Provider, RouterPolicy, TaskChain, Workspace};

/// Namespace assumed for objects that name none (manifests read from files).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Secret values by `namespace/name`, then key. Values are already decoded from base64.
pub type SecretStore = BTreeMap<String, BTreeMap<String, SecretValue>>;

/// A Service's ports, for Backends that use `serviceRef`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// (port name, port number) pairs.
    pub ports: Vec<(Option<String>, i32)>,
}

/// Everything the compiler reads.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Providers.
    pub providers: Vec<Provider>,
    /// Backends.
    pub backends: Vec<Backend>,
    /// AffinityGroups.
    pub affinity_groups: Vec<AffinityGroup>,
    /// Workspaces.
    pub workspaces: Vec<Workspace>,
    /// MuxRules.
    pub mux_rules: Vec<MuxRule>,
    /// RouterPolicies.
    pub router_policies: Vec<RouterPolicy>,
    /// TaskChains.
    pub task_chains: Vec<TaskChain>,
    /// Secret values referenced by the objects (others may be present and are ignored).
    pub secrets: SecretStore,
    /// Services by `namespace/name`; `None` when unknown (local mode), in which case
    /// `serviceRef`s are not checked for existence and named ports cannot be resolved.
    pub services: Option<BTreeMap<String, ServiceInfo>>,
}

/// Output of [`compile`].
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The routing table, sealed with its content hash.
    pub snapshot: Snapshot,
    /// One entry per input object, sorted by object.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    /// The diagnostic of one object.
    pub fn diagnostic(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Diagnostic> {
        self.diagnostics.iter().find(|d| {
            d.object.kind == kind && d.object.namespace == namespace && d.object.name == name
        })
    }

    /// Every issue of every object, as `Kind ns/name: message` lines (for CLIs and tests).
    pub fn issue_lines(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .flat_map(|d| {
                d.issues
                    .iter()
                    .map(move |i| format!("{}: {}", d.object, i.message))
            })
            .collect()
    }

    /// Logs every issue: errors (the object is left out of the snapshot) at warn, warnings at
    /// info, each with the object and the reason.
    pub fn log_issues(&self) {
        for d in &self.diagnostics {
            for i in &d.issues {
                match i.severity {
                    Severity::Error => {
                        tracing::warn!(object = %d.object, reason = %i.reason, "{}", i.message)
                    }
                    Severity::Warning => {
                        tracing::info!(object = %d.object, reason = %i.reason, "{}", i.message)
                    }
                }
            }
        }
    }
}

/// Compiles the inventory.
pub fn compile(inventory: &Inventory) -> Compiled {
    let mut cx = Cx::new(inventory);
    let providers = providers::compile_providers(&mut cx);
    let backends = providers::compile_backends(&mut cx);
    let groups = groups::compile(&mut cx, &backends);
    let usable = targets::Usable {
        providers: &providers,
        backends: &backends,
        groups: &groups,
    };
    let ws = workspaces::compile(&mut cx, &usable);
    let router_policies = policies::compile(&mut cx, &usable, &ws.workspaces);
    let task_chains = chains::compile(&mut cx, &usable);

    let snapshot = Snapshot {
        version: String::new(),
        schema_version: SCHEMA_VERSION,
        providers: providers.into_values().collect(),
        backends: backends.into_values().collect(),
        affinity_groups: groups.into_values().collect(),
        workspaces: ws.workspaces.into_values().collect(),
        default_workspace: ws.default_workspace,
        client_keys: ws.client_keys,
        router_policies,
        task_chains,
    }
    .seal();
    let mut diagnostics: Vec<Diagnostic> = cx.diagnostics.into_values().collect();
    for d in &mut diagnostics {
        d.issues.sort();
        d.issues.dedup();
    }
    Compiled {
        snapshot,
        diagnostics,
    }
}

/// Compile state shared by the per-kind passes.
pub(crate) struct Cx<'a> {
    pub inv: &'a Inventory,
    pub diagnostics: BTreeMap<ObjectKey, Diagnostic>,
}

impl<'a> Cx<'a> {
    fn new(inv: &'a Inventory) -> Self {
        Self {
            inv,
            diagnostics: BTreeMap::new(),
        }
    }

    /// Registers an object and returns its key; records duplicates.
    pub fn register<K: kube::Resource>(
        &mut self,
        kind: Kind,
        obj: &K,
        details: Details,
    ) -> ObjectKey {
        let key = object_key(kind, obj);
        self.diagnostics
            .entry(key.clone())
            .or_insert_with(|| Diagnostic {
                object: key.clone(),
                generation: obj.meta().generation,
                issues: Vec::new(),
                details,
            });
        key
    }

    /// Records an issue on an object.
    pub fn issue(
        &mut self,
        key: &ObjectKey,
        severity: Severity,
        condition: ConditionType,
        reason: &str,
        message: String,
    ) {
        if let Some(d) = self.diagnostics.get_mut(key) {
            d.issues.push(Issue {
                severity,
                condition,
                reason: reason.to_owned(),
                message,
            });
        }
    }

    /// Records an error.
    pub fn error(
        &mut self,
        key: &ObjectKey,
        condition: ConditionType,
        reason: &str,
        message: String,
    ) {
        self.issue(key, Severity::Error, condition, reason, message);
    }

    /// Records a warning.
    pub fn warn(
        &mut self,
        key: &ObjectKey,
        condition: ConditionType,
        reason: &str,
        message: String,
    ) {
        self.issue(key, Severity::Warning, condition, reason, message);
    }

    /// Whether the object has an error so far.
    pub fn has_error(&self, key: &ObjectKey) -> bool {
        self.diagnostics.get(key).is_some_and(|d| !d.ready())
    }

    /// Sets the kind-specific details.
    pub fn set_details(&mut self, key: &ObjectKey, details: Details) {
        if let Some(d) = self.diagnostics.get_mut(key) {
            d.details = details;
        }
    }

    /// Resolves a Secret key, recording SecretResolved issues with the given severity.
    /// `what` says what the value is for (e.g. "API key").
    pub fn secret(
        &mut self,
        key: &ObjectKey,
        severity: Severity,
        what: &str,
        r: &crate::common::SecretKeyRef,
    ) -> Option<SecretValue> {
        let secret_key = format!("{}/{}", key.namespace, r.name);
        let Some(data) = self.inv.secrets.get(&secret_key) else {
            self.issue(
                key,
                severity,
                ConditionType::SecretResolved,
                "SecretNotFound",
                format!(
                    "{what}: Secret \"{}\" not found (key \"{}\"); in a cluster the operator \
                     only sees Secrets labelled switchyard.dev/secret=true",
                    r.name, r.key
                ),
            );
            return None;
        };
        let Some(value) = data.get(&r.key) else {
            self.issue(
                key,
                severity,
                ConditionType::SecretResolved,
                "SecretKeyNotFound",
                format!(
                    "{what}: key \"{}\" not found in Secret \"{}\"",
                    r.key, r.name
                ),
            );
            return None;
        };
        let trimmed = value.expose().trim();
        if trimmed.is_empty() {
            self.issue(
                key,
                severity,
                ConditionType::SecretResolved,
                "SecretKeyEmpty",
                format!(
                    "{what}: key \"{}\" in Secret \"{}\" is empty",
                    r.key, r.name
                ),
            );
            return None;
        }
        Some(SecretValue::new(trimmed))
    }
}

/// The key of an object (namespace defaults to [`DEFAULT_NAMESPACE`]).
pub fn object_key<K: kube::Resource>(kind: Kind, obj: &K) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: obj
            .namespace()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        name: obj.name_any(),
    }
}

/// Objects sorted by key, with duplicates (same namespace/name) reported and dropped: the one
/// with the smallest serialized spec is kept so the choice does not depend on input order.
pub(crate) fn sorted<'a, K>(
    cx: &mut Cx<'_>,
    kind: Kind,
    objs: &'a [K],
    details: impl Fn() -> Details,
) -> Vec<(ObjectKey, &'a K)>
where
    K: kube::Resource + Serialize,
{
    let mut all: Vec<(ObjectKey, String, &'a K)> = objs
        .iter()
        .map(|o| {
            (
                object_key(kind, o),
                serde_json::to_string(o).unwrap_or_default(),
                o,
            )
        })
        .collect();
    all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut out: Vec<(ObjectKey, &'a K)> = Vec::with_capacity(all.len());
    let mut duplicates = 0usize;
    for (key, _, obj) in all {
        if out.last().is_some_and(|(last, _)| *last == key) {
            duplicates += 1;
            continue;
        }
        cx.register(kind, obj, details());
        out.push((key, obj));
    }
    if duplicates > 0 {
        for (key, _) in &out {
            let count = objs.iter().filter(|o| object_key(kind, *o) == *key).count();
            if count > 1 {
                cx.warn(
                    key,
                    ConditionType::Conflicted,
                    "DuplicateObject",
                    format!("defined {count} times; one definition was kept"),
                );
            }
        }
    }
    out
}

/// Milliseconds of optional durations.
pub(crate) fn timeouts_ms(t: Option<&crate::common::Timeouts>) -> crate::snapshot::TimeoutsMs {
    let ms = |d: Option<crate::common::GoDuration>| d.map(|d| d.get().as_millis() as u64);
    match t {
        None => Default::default(),
        Some(t) => crate::snapshot::TimeoutsMs {
            connect: ms(t.connect),
            first_byte: ms(t.first_byte),
            idle: ms(t.idle),
            total: ms(t.total),
        },
    }
}

/// Resolves header specs (literal or from Secrets).
pub(crate) fn headers(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    severity: Severity,
    specs: &[crate::common::HeaderSpec],
) -> Vec<crate::snapshot::HeaderSnapshot> {
    let mut out = Vec::new();
    for h in specs {
        match (&h.value, &h.value_from) {
            (Some(v), None) => out.push(crate::snapshot::HeaderSnapshot {
                name: h.name.clone(),
                value: SecretValue::new(v.clone()),
            }),
            (None, Some(r)) => {
                if let Some(v) = cx.secret(key, severity, &format!("header \"{}\"", h.name), r) {
                    out.push(crate::snapshot::HeaderSnapshot {
                        name: h.name.clone(),
                        value: v,
                    });
                }
            }
            _ => cx.issue(
                key,
                severity,
                ConditionType::Ready,
                "InvalidHeader",
                format!(
                    "header \"{}\" must set exactly one of value and valueFrom",
                    h.name
                ),
            ),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests;
