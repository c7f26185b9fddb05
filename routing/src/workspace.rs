//! Which workspace a request belongs to:
//!
//! - a gateway API key whose SHA-256 matches a Workspace `clients.apiKeys` binding pins the
//!   workspace (`x-switchyard-workspace` may only repeat it);
//! - otherwise `x-switchyard-workspace` (`name` if unique, or `namespace/name`), else the
//!   default Workspace.
//!
//! Reading the credential and the header from a request is the data plane's job
//! (`switchyard_dataplane::identity`); test-match passes a described workspace.

use sha2::{Digest, Sha256};
use switchyard_crds::snapshot::WorkspaceSnapshot;

use crate::error::RoutingError;
use crate::table::{ClientBinding, RoutingTable, WorkspaceLookup};

/// Where a request lands.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'t> {
    /// The workspace.
    pub workspace: &'t WorkspaceSnapshot,
    /// The gateway key binding that pinned it, if the credential was a gateway key.
    pub binding: Option<&'t ClientBinding>,
}

/// A workspace by `namespace/name` or unique bare name.
pub fn by_ref<'t>(table: &'t RoutingTable, r: &str) -> Result<&'t WorkspaceSnapshot, RoutingError> {
    table.workspace_by_ref(r).map_err(|e| match e {
        WorkspaceLookup::NotFound => RoutingError::WorkspaceNotFound(r.to_owned()),
        WorkspaceLookup::Ambiguous => RoutingError::AmbiguousWorkspace(r.to_owned()),
    })
}

/// Resolves the workspace from the presented credential (`key`, any kind) and the asked
/// workspace reference. With `require_key`, only a gateway key gets through.
pub fn resolve<'t>(
    table: &'t RoutingTable,
    key: Option<&str>,
    asked: Option<&str>,
    require_key: bool,
) -> Result<Resolved<'t>, RoutingError> {
    let binding = key.and_then(|k| table.client_key(&hex::encode(Sha256::digest(k.as_bytes()))));
    if require_key && binding.is_none() {
        return Err(RoutingError::KeyRequired);
    }
    let workspace = match binding {
        Some(b) => {
            let ws = table
                .workspace(&b.workspace)
                .ok_or(RoutingError::BoundWorkspaceMissing)?;
            if let Some(a) = asked {
                let same = by_ref(table, a).is_ok_and(|w| w.key == ws.key);
                if !same {
                    return Err(RoutingError::KeyBoundElsewhere {
                        bound: ws.key.clone(),
                        asked: a.to_owned(),
                    });
                }
            }
            ws
        }
        None => match asked {
            Some(a) => by_ref(table, a)?,
            None => table
                .default_workspace()
                .ok_or(RoutingError::NoDefaultWorkspace)?,
        },
    };
    Ok(Resolved { workspace, binding })
}

#[cfg(test)]
mod tests {
    use switchyard_crds::snapshot::{ClientKeySnapshot, SCHEMA_VERSION, Snapshot};

    use super::*;

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

    fn table(default: Option<&str>) -> RoutingTable {
        let snapshot = Snapshot {
            schema_version: SCHEMA_VERSION,
            workspaces: ["team-a/dev", "team-b/dev", "team-a/prod"]
                .into_iter()
                .map(workspace)
                .collect(),
            default_workspace: default.map(str::to_owned),
            client_keys: vec![ClientKeySnapshot {
                sha256: hex::encode(Sha256::digest(b"sk-gw-1")),
                name: "ci".to_owned(),
                workspace: "team-a/prod".to_owned(),
            }],
            ..Default::default()
        }
        .seal();
        match RoutingTable::build(snapshot) {
            Ok(t) => t,
            Err(e) => panic!("test snapshot refused: {e}"),
        }
    }

    fn key(r: Result<Resolved<'_>, RoutingError>) -> Result<String, RoutingError> {
        r.map(|r| r.workspace.key.clone())
    }

    #[test]
    fn gateway_key_pins_its_workspace() {
        let t = table(None);
        let r = resolve(&t, Some("sk-gw-1"), None, true);
        assert_eq!(
            r.map(|r| r.binding.map(|b| b.name.clone())),
            Ok(Some("ci".to_owned()))
        );
        assert_eq!(
            key(resolve(&t, Some("sk-gw-1"), Some("prod"), true)),
            Ok("team-a/prod".to_owned())
        );
        assert_eq!(
            key(resolve(&t, Some("sk-gw-1"), Some("team-b/dev"), false)),
            Err(RoutingError::KeyBoundElsewhere {
                bound: "team-a/prod".to_owned(),
                asked: "team-b/dev".to_owned()
            })
        );
    }

    #[test]
    fn other_credentials_follow_the_header_or_the_default() {
        let t = table(Some("team-a/dev"));
        assert_eq!(
            key(resolve(&t, Some("sk-own"), None, false)),
            Ok("team-a/dev".to_owned())
        );
        assert_eq!(
            key(resolve(&t, None, Some("prod"), false)),
            Ok("team-a/prod".to_owned())
        );
        assert_eq!(
            key(resolve(&t, None, Some("team-b/dev"), false)),
            Ok("team-b/dev".to_owned())
        );
        assert_eq!(
            key(resolve(&t, None, Some("dev"), false)),
            Err(RoutingError::AmbiguousWorkspace("dev".to_owned()))
        );
        assert_eq!(
            key(resolve(&t, None, Some("nope"), false)),
            Err(RoutingError::WorkspaceNotFound("nope".to_owned()))
        );
        assert_eq!(
            key(resolve(&t, Some("sk-own"), None, true)),
            Err(RoutingError::KeyRequired)
        );
        assert_eq!(
            key(resolve(&table(None), None, None, false)),
            Err(RoutingError::NoDefaultWorkspace)
        );
    }
}
