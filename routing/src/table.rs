//! The routing table: a [`Snapshot`] prepared for the hot path (indexes by key, name, model and
//! client key; globs compiled). Built once when a snapshot arrives, then shared read-only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use switchyard_crds::glob::ModelGlob;
use switchyard_crds::snapshot::{
    MuxRuleSnapshot, RouterPolicySnapshot, SCHEMA_VERSION, Snapshot, TargetKind, TargetSnapshot,
    WorkspaceSnapshot,
};

/// Why a snapshot was refused (the previous one stays in force).
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The version does not match the content.
    #[error("snapshot version {0} does not match its content")]
    Corrupt(String),
    /// Another wire format.
    #[error("snapshot schema version {0} is not supported (expected {SCHEMA_VERSION})")]
    Schema(u32),
    /// A glob did not compile.
    #[error("{owner}: invalid glob {pattern:?}: {error}")]
    Glob {
        /// Object holding it.
        owner: String,
        /// The pattern.
        pattern: String,
        /// The error.
        error: String,
    },
    /// A reference inside the snapshot points nowhere.
    #[error("{owner}: dangling reference to {target}")]
    Dangling {
        /// Object holding it.
        owner: String,
        /// What it points at.
        target: String,
    },
}

/// A MuxRule with its glob compiled.
#[derive(Debug)]
pub struct Rule {
    /// The rule.
    pub snap: MuxRuleSnapshot,
    /// Compiled pattern; `None` matches everything of the matcher's kind.
    pub glob: Option<ModelGlob>,
}

/// A RouterPolicy with its globs and workspace scope prepared.
#[derive(Debug)]
pub struct Policy {
    /// The policy.
    pub snap: RouterPolicySnapshot,
    /// Compiled model glob.
    pub model_glob: Option<ModelGlob>,
    /// Workspace keys in scope; `None`: every workspace of the policy's namespace.
    pub workspaces: Option<HashSet<String>>,
}

/// A client key binding.
#[derive(Debug, Clone)]
pub struct ClientBinding {
    /// Caller name.
    pub name: String,
    /// Workspace key.
    pub workspace: String,
}

/// The prepared table.
#[derive(Debug)]
pub struct RoutingTable {
    /// The snapshot as received.
    pub snapshot: Arc<Snapshot>,
    workspace_index: HashMap<String, usize>,
    workspace_by_name: HashMap<String, Vec<usize>>,
    rules: Vec<Vec<Rule>>,
    /// Enabled policies in evaluation order.
    pub policies: Vec<Policy>,
    model_targets: HashMap<(String, String), Vec<TargetSnapshot>>,
    namespace_models: HashMap<String, BTreeSet<String>>,
    client_keys: HashMap<String, ClientBinding>,
    service_accounts: HashMap<String, String>,
    namespaces: HashMap<String, String>,
}

impl RoutingTable {
    /// An empty table (no snapshot yet): routes nothing.
    pub fn empty() -> Self {
        Self::build(
            Snapshot {
                schema_version: SCHEMA_VERSION,
                ..Default::default()
            }
            .seal(),
        )
        .unwrap_or_else(|_| unreachable_empty())
    }

    /// Prepares a snapshot, refusing one that is corrupt or inconsistent.
    pub fn build(snapshot: Snapshot) -> Result<Self, TableError> {
        if snapshot.schema_version != SCHEMA_VERSION {
            return Err(TableError::Schema(snapshot.schema_version));
        }
        if !snapshot.verify() {
            return Err(TableError::Corrupt(snapshot.version.clone()));
        }
        let snapshot = Arc::new(snapshot);
        let check_target = |owner: &str, t: &TargetSnapshot| -> Result<(), TableError> {
            let exists = match t.kind {
                TargetKind::Provider => snapshot.provider(&t.key).is_some(),
                TargetKind::Backend => snapshot.backend(&t.key).is_some(),
                TargetKind::AffinityGroup => snapshot.affinity_group(&t.key).is_some(),
            };
            if exists {
                Ok(())
            } else {
                Err(TableError::Dangling {
                    owner: owner.to_owned(),
                    target: t.to_string(),
                })
            }
        };
        let glob =
            |owner: &str, pattern: &Option<String>| -> Result<Option<ModelGlob>, TableError> {
                pattern
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        ModelGlob::new(p).map_err(|e| TableError::Glob {
                            owner: owner.to_owned(),
                            pattern: p.to_owned(),
                            error: e.kind().to_string(),
                        })
                    })
                    .transpose()
            };

        let mut workspace_index = HashMap::new();
        let mut workspace_by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut rules = Vec::with_capacity(snapshot.workspaces.len());
        let mut service_accounts = HashMap::new();
        let mut namespaces = HashMap::new();
        for (i, w) in snapshot.workspaces.iter().enumerate() {
            workspace_index.insert(w.key.clone(), i);
            workspace_by_name
                .entry(name_of(&w.key).to_owned())
                .or_default()
                .push(i);
            let mut compiled = Vec::with_capacity(w.mux_rules.len());
            for r in &w.mux_rules {
                check_target(&r.key, &r.target)?;
                compiled.push(Rule {
                    snap: r.clone(),
                    glob: glob(&r.key, &r.pattern)?,
                });
            }
            rules.push(compiled);
            for sa in &w.service_accounts {
                service_accounts.insert(sa.clone(), w.key.clone());
            }
            for ns in &w.namespaces {
                namespaces.insert(ns.clone(), w.key.clone());
            }
        }
        let mut policies = Vec::with_capacity(snapshot.router_policies.len());
        for p in &snapshot.router_policies {
            for t in &p.route {
                check_target(&p.key, t)?;
            }
            policies.push(Policy {
                snap: p.clone(),
                model_glob: glob(&p.key, &p.match_.model)?,
                workspaces: p
                    .match_
                    .workspaces
                    .as_ref()
                    .map(|w| w.iter().cloned().collect()),
            });
        }
        // Targets that declare each model, per namespace: providers first, then groups, then
        // backends, each by key — a deterministic fallback order.
        let mut model_targets: HashMap<(String, String), Vec<TargetSnapshot>> = HashMap::new();
        let mut namespace_models: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut add = |kind: TargetKind, key: &str, model: &str| {
            let ns = namespace_of(key).to_owned();
            namespace_models
                .entry(ns.clone())
                .or_default()
                .insert(model.to_owned());
            model_targets
                .entry((ns, model.to_owned()))
                .or_default()
                .push(TargetSnapshot {
                    kind,
                    key: key.to_owned(),
                    model: None,
                });
        };
        for p in &snapshot.providers {
            for m in &p.models {
                add(TargetKind::Provider, &p.key, &m.name);
            }
        }
        for g in &snapshot.affinity_groups {
            let models: BTreeSet<&str> = g
                .members
                .iter()
                .flat_map(|m| m.models.iter().map(String::as_str))
                .collect();
            for m in models {
                add(TargetKind::AffinityGroup, &g.key, m);
            }
        }
        let client_keys = snapshot
            .client_keys
            .iter()
            .map(|k| {
                (
                    k.sha256.clone(),
                    ClientBinding {
                        name: k.name.clone(),
                        workspace: k.workspace.clone(),
                    },
                )
            })
            .collect();
        Ok(Self {
            snapshot,
            workspace_index,
            workspace_by_name,
            rules,
            policies,
            model_targets,
            namespace_models,
            client_keys,
            service_accounts,
            namespaces,
        })
    }

    /// The snapshot version.
    pub fn version(&self) -> &str {
        &self.snapshot.version
    }

    /// A workspace by key.
    pub fn workspace(&self, key: &str) -> Option<&WorkspaceSnapshot> {
        self.workspace_index
            .get(key)
            .map(|&i| &self.snapshot.workspaces[i])
    }

    /// A workspace by `namespace/name` or by a bare name that is unique across namespaces.
    pub fn workspace_by_ref(&self, r: &str) -> Result<&WorkspaceSnapshot, WorkspaceLookup> {
        if r.contains('/') {
            return self.workspace(r).ok_or(WorkspaceLookup::NotFound);
        }
        match self.workspace_by_name.get(r).map(Vec::as_slice) {
            Some([i]) => Ok(&self.snapshot.workspaces[*i]),
            Some([_, _, ..]) => Err(WorkspaceLookup::Ambiguous),
            _ => Err(WorkspaceLookup::NotFound),
        }
    }

    /// The default workspace.
    pub fn default_workspace(&self) -> Option<&WorkspaceSnapshot> {
        self.snapshot
            .default_workspace
            .as_deref()
            .and_then(|k| self.workspace(k))
    }

    /// MuxRules of a workspace in evaluation order.
    pub fn rules(&self, workspace_key: &str) -> &[Rule] {
        self.workspace_index
            .get(workspace_key)
            .map_or(&[], |&i| &self.rules[i])
    }

    /// Targets declaring `model` in `namespace`.
    pub fn model_targets(&self, namespace: &str, model: &str) -> &[TargetSnapshot] {
        self.model_targets
            .get(&(namespace.to_owned(), model.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// Models declared in a namespace.
    pub fn namespace_models(&self, namespace: &str) -> impl Iterator<Item = &str> {
        self.namespace_models
            .get(namespace)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The binding of a gateway key, by hex SHA-256.
    pub fn client_key(&self, sha256_hex: &str) -> Option<&ClientBinding> {
        self.client_keys.get(sha256_hex)
    }

    /// The workspace bound to a ServiceAccount (`namespace/name`), or to its namespace.
    pub fn service_account_workspace(&self, namespace: &str, name: &str) -> Option<&str> {
        self.service_accounts
            .get(&format!("{namespace}/{name}"))
            .or_else(|| self.namespaces.get(namespace))
            .map(String::as_str)
    }
}

/// Why a workspace reference did not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceLookup {
    /// No such workspace.
    NotFound,
    /// The bare name exists in several namespaces.
    Ambiguous,
}

/// `name` of `namespace/name`.
pub fn name_of(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, n)| n)
}

/// `namespace` of `namespace/name`.
pub fn namespace_of(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

#[cold]
fn unreachable_empty() -> RoutingTable {
    // An empty sealed snapshot always verifies; this keeps `empty()` total without a panic.
    RoutingTable {
        snapshot: Arc::new(Snapshot::default()),
        workspace_index: HashMap::new(),
        workspace_by_name: HashMap::new(),
        rules: Vec::new(),
        policies: Vec::new(),
        model_targets: HashMap::new(),
        namespace_models: HashMap::new(),
        client_keys: HashMap::new(),
        service_accounts: HashMap::new(),
        namespaces: HashMap::new(),
    }
}
