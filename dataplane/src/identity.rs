//! Who is calling and which workspace the request belongs to.
//!
//! - A gateway API key (`Authorization: Bearer …`, `x-api-key` or `api-key`) whose SHA-256
//!   matches a Workspace `clients.apiKeys` binding identifies the caller and pins the workspace;
//!   `x-switchyard-workspace` may only repeat that workspace.
//! - Any other presented credential is the caller's own provider key, forwarded only to
//!   providers with `passthrough` auth.
//! - Otherwise the workspace comes from `x-switchyard-workspace` (`name` if unique, or
//!   `namespace/name`), else the default Workspace.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use switchyard_crds::snapshot::WorkspaceSnapshot;

use crate::classify::RequestInfo;
use crate::errors::{ApiError, ErrorKind};
use crate::table::{RoutingTable, WorkspaceLookup};

/// Header that selects a workspace.
pub const WORKSPACE_HEADER: &str = "x-switchyard-workspace";

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

/// Identifies the caller and resolves the workspace.
pub fn identify<'t>(
    table: &'t RoutingTable,
    headers: &HeaderMap,
    info: &RequestInfo,
    require_key: bool,
) -> Result<(Caller, &'t WorkspaceSnapshot), ApiError> {
    let key = presented(headers);
    let binding = key.and_then(|k| table.client_key(&hex::encode(Sha256::digest(k.as_bytes()))));
    let asked = headers
        .get(WORKSPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if require_key && binding.is_none() {
        return Err(ApiError::new(
            ErrorKind::Authentication,
            "a valid gateway API key is required",
        )
        .code("invalid_api_key"));
    }
    let lookup = |r: &str| {
        table.workspace_by_ref(r).map_err(|e| match e {
            WorkspaceLookup::NotFound => ApiError::new(ErrorKind::NotFound, format!("workspace \"{r}\" not found"))
                .code("workspace_not_found"),
            WorkspaceLookup::Ambiguous => ApiError::invalid(format!(
                "workspace name \"{r}\" exists in several namespaces: use namespace/name in {WORKSPACE_HEADER}"
            )),
        })
    };
    let (caller, workspace) = match binding {
        Some(b) => {
            let ws = table.workspace(&b.workspace).ok_or_else(|| {
                ApiError::new(ErrorKind::Internal, "bound workspace missing from snapshot")
            })?;
            if let Some(a) = asked {
                let same = lookup(a).map(|w| w.key == ws.key).unwrap_or(false);
                if !same {
                    return Err(ApiError::new(
                        ErrorKind::Permission,
                        format!(
                            "this API key is bound to workspace \"{}\" and cannot use \"{a}\"",
                            ws.key
                        ),
                    ));
                }
            }
            (
                Caller {
                    initiator: Some(b.name.clone()),
                    credential_kind: CredentialKind::GatewayKey,
                    passthrough: None,
                },
                ws,
            )
        }
        None => {
            let ws = match asked {
                Some(a) => lookup(a)?,
                None => table.default_workspace().ok_or_else(|| {
                    ApiError::new(
                        ErrorKind::NotFound,
                        format!(
                            "no workspace: send {WORKSPACE_HEADER} or mark a Workspace as default"
                        ),
                    )
                    .code("workspace_not_found")
                })?,
            };
            let kind = if key.is_some() {
                CredentialKind::Passthrough
            } else {
                CredentialKind::None
            };
            (
                Caller {
                    initiator: info.user.clone(),
                    credential_kind: kind,
                    passthrough: key.map(str::to_owned),
                },
                ws,
            )
        }
    };
    Ok((caller, workspace))
}
