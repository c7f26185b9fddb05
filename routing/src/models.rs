//! The models a workspace can reach (`GET /v1/models`): those declared by the Providers and
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
    let ns = namespace_of(&workspace.key);
    let mut names: BTreeSet<String> = table.namespace_models(ns).map(str::to_owned).collect();
    for r in table.rules(&workspace.key) {
        if let Some(m) = &r.snap.target.model {
            names.insert(m.clone());
        }
    }
    for p in table
        .policies
        .iter()
        .filter(|p| policy_in_scope(p, workspace))
    {
        names.extend(p.snap.route.iter().filter_map(|t| t.model.clone()));
    }
    for c in &table.snapshot.task_chains {
        if namespace_of(&c.key) == ns {
            names.insert(format!("{CHAIN_MODEL_PREFIX}{}", name_of(&c.key)));
        }
    }
    names
}
