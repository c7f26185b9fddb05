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

#[cfg(test)]
mod tests {
    use switchyard_crds::provider::{AuthType, ProviderType};
    use switchyard_crds::snapshot::{
        ModelSnapshot, ProviderSnapshot, SCHEMA_VERSION, Snapshot, TimeoutsMs,
    };

    use super::*;

    fn provider(key: &str, models: &[&str]) -> ProviderSnapshot {
        ProviderSnapshot {
            key: key.to_owned(),
            type_: ProviderType::Openai,
            endpoint: "https://api.example.com/v1".into(),
            auth: AuthType::None,
            api_key: None,
            headers: vec![],
            models: models
                .iter()
                .map(|m| ModelSnapshot {
                    name: (*m).to_owned(),
                    capabilities: Default::default(),
                    context_length: None,
                    pricing: None,
                })
                .collect(),
            prices: vec![],
            timeouts: TimeoutsMs::default(),
        }
    }

    fn workspace(key: &str) -> WorkspaceSnapshot {
        WorkspaceSnapshot {
            key: key.to_owned(),
            labels: Default::default(),
            custom_instructions: None,
            guardrail_secrets: Default::default(),
            guardrail_pii: Default::default(),
            limits: Default::default(),
            service_accounts: Vec::new(),
            namespaces: Vec::new(),
            mux_rules: Vec::new(),
        }
    }

    #[test]
    fn one_model_is_reachable_exactly_when_the_listing_has_it() {
        let snapshot = Snapshot {
            schema_version: SCHEMA_VERSION,
            providers: vec![
                provider("team/p", &["a", "org/b"]),
                provider("other/q", &["c"]),
            ],
            workspaces: vec![workspace("team/w")],
            ..Default::default()
        }
        .seal();
        let table = match RoutingTable::build(snapshot) {
            Ok(t) => t,
            Err(e) => panic!("test snapshot refused: {e}"),
        };
        let w = workspace("team/w");
        let listed = reachable(&table, &w);
        assert_eq!(
            listed.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "org/b"]
        );
        for id in ["a", "org/b"] {
            assert!(is_reachable(&table, &w, id), "{id}");
        }
        for id in ["c", "b", "", "A"] {
            assert!(!is_reachable(&table, &w, id), "{id}");
        }
    }
}
