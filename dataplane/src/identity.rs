//! Who is calling and which workspace the request belongs to.
//!
//! - A gateway API key (`Authorization: Bearer …`, `x-api-key` or `api-key`) whose SHA-256
//!   matches a Workspace `clients.apiKeys` binding identifies the caller and pins the workspace;
//!   `x-switchyard-workspace` may only repeat that workspace.
//! - Any other presented credential is the caller's own provider key, forwarded only to
//!   providers with `passthrough` auth.
//! - Otherwise the workspace comes from `x-switchyard-workspace` (`name` if unique, or
//!   `namespace/name`), else the default Workspace.
//!
//! The workspace rules themselves are `switchyard_routing::workspace`; this module reads the
//! credential and the header from the request and says who the caller is.

use axum::http::HeaderMap;
use switchyard_crds::snapshot::WorkspaceSnapshot;
use switchyard_routing::{RequestInfo, RoutingTable, WORKSPACE_HEADER, workspace};

use crate::errors::ApiError;

/// How the caller authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// A gateway key bound to a workspace.
    GatewayKey,
    /// A credential of its own, usable for passthrough providers.
    Passthrough,
    /// Nothing.
    None,
}

impl CredentialKind {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GatewayKey => "gateway_key",
            Self::Passthrough => "passthrough",
            Self::None => "none",
        }
    }
}

/// The caller every request without a gateway key counts as for `limits.perCaller`: one
/// bucket per workspace. Neither a body `user` nor a passthrough key identifies a caller for
/// limits (both are the caller's say-so: a new value per request would dodge the limit). A
/// binding name cannot be this (they start with a letter or digit).
pub const ANONYMOUS_CALLER: &str = "(anonymous)";

/// The caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Recorded initiator.
    pub initiator: Option<String>,
    /// How it authenticated.
    pub credential_kind: CredentialKind,
    /// The caller's own credential (never a gateway key).
    pub passthrough: Option<String>,
}

impl Caller {
    /// Who the caller is for `limits.perCaller`: its gateway key's binding name, else
    /// [`ANONYMOUS_CALLER`].
    pub fn limit_key(&self) -> &str {
        match (self.credential_kind, &self.initiator) {
            (CredentialKind::GatewayKey, Some(name)) => name,
            _ => ANONYMOUS_CALLER,
        }
    }
}

/// The presented credential, if any.
pub(crate) fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Identifies the caller and resolves the workspace ([`workspace::resolve`]).
pub fn identify<'t>(
    table: &'t RoutingTable,
    headers: &HeaderMap,
    info: &RequestInfo,
    require_key: bool,
) -> Result<(Caller, &'t WorkspaceSnapshot), ApiError> {
    let key = presented(headers);
    let asked = headers
        .get(WORKSPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let resolved = workspace::resolve(table, key, asked, require_key)?;
    let caller = match resolved.binding {
        Some(b) => Caller {
            initiator: Some(b.name.clone()),
            credential_kind: CredentialKind::GatewayKey,
            passthrough: None,
        },
        None => Caller {
            initiator: info.user.clone(),
            credential_kind: if key.is_some() {
                CredentialKind::Passthrough
            } else {
                CredentialKind::None
            },
            passthrough: key.map(str::to_owned),
        },
    };
    Ok((caller, resolved.workspace))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchyard_routing::Endpoint;

    use super::*;

    /// What a Claude Code request without a gateway key makes of the caller.
    fn claude_code_caller(session: &str, kind: CredentialKind) -> Caller {
        let user_id = json!({
            "device_id": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "account_uuid": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
            "session_id": session,
        });
        let body = json!({"model": "m", "max_tokens": 5, "metadata": {"user_id": user_id.to_string()},
            "messages": [{"role": "user", "content": "hi"}]});
        let info = crate::classify::classify(Endpoint::Messages, &HeaderMap::new(), &body).unwrap();
        Caller {
            initiator: info.user,
            credential_kind: kind,
            passthrough: None,
        }
    }

    #[test]
    fn the_initiator_is_stable_and_limits_never_key_on_the_bodys_say_so() {
        let a = claude_code_caller("s-1", CredentialKind::Passthrough);
        let b = claude_code_caller("s-2", CredentialKind::None);
        assert_eq!(a.initiator, b.initiator, "one initiator across sessions");
        assert_eq!(
            a.initiator.as_deref(),
            Some("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")
        );
        // A body id is the caller's say-so: per-caller limits count every such caller in the
        // workspace's anonymous bucket, whatever the id (a new one per request would dodge them).
        assert_eq!(a.limit_key(), ANONYMOUS_CALLER);
        assert_eq!(b.limit_key(), ANONYMOUS_CALLER);
        let keyed = Caller {
            initiator: Some("ci-bot".into()),
            credential_kind: CredentialKind::GatewayKey,
            passthrough: None,
        };
        assert_eq!(keyed.limit_key(), "ci-bot");
    }
}
