//! The models a workspace can reach (`GET /v1/models`, and `GET /v1/models/{id}` for one): those declared by the Providers and
//! AffinityGroups of its namespace, the models named by its MuxRules and by the RouterPolicies
//! in its scope, and its namespace's TaskChains as `chain/NAME`.

use std::collections::BTreeSet;

use switchyard_crds::snapshot::WorkspaceSnapshot;

use crate::route::policy_in_scope;
use crate::table::{RoutingTable, name_of, namespace_of};

/// Prefix of TaskChain models (`chain/NAME`): listed here, asked for on `/v1/chat/completions`.
pub const CHAIN_MODEL_PREFIX: &str = "chain/";

/// Model names in order.
pub fn reachable(table: &RoutingTable, workspace: &WorkspaceSnapshot) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    visit(table, workspace, |name| {
        names.insert(name.to_owned());
        false
    });
    names
}

/// Whether `id` is one of the models [`reachable`] lists (`GET /v1/models/{id}`), without
/// building the list.
pub fn is_reachable(table: &RoutingTable, workspace: &WorkspaceSnapshot, id: &str) -> bool {
    visit(table, workspace, |name| name == id)
}

/// Calls `found` with every model the workspace can reach (a name may come more than once),
/// until it returns `true`; whether it did. The one definition of what is reachable.
fn visit(
    table: &RoutingTable,
    workspace: &WorkspaceSnapshot,
    mut found: impl FnMut(&str) -> bool,
) -> bool {
    let ns = namespace_of(&workspace.key);
    if table.namespace_models(ns).any(&mut found) {
        return true;
    }
    for r in table.rules(&workspace.key) {
        if let Some(m) = &r.snap.target.model
            && found(m)
        {
            return true;
        }
    }
    for p in table
        .policies
        .iter()
        .filter(|p| policy_in_scope(p, workspace))
    {
        if p.snap
            .route
            .iter()
            .filter_map(|t| t.model.as_deref())
            .any(&mut found)
        {
            return true;
        }
    }
    table
        .snapshot
        .task_chains
        .iter()
        .filter(|c| namespace_of(&c.key) == ns)
        .any(|c| found(&format!("{CHAIN_MODEL_PREFIX}{}", name_of(&c.key))))
}
