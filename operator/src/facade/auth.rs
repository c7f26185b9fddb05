//! Who is calling and what they may see.
//!
//! - Authentication: `Authorization: Bearer <token>` on every route but `openapi.json`, checked
//!   by the operator's [`crate::channel::Authenticator`] (TokenReview in a cluster, the static
//!   admin token in local mode). Missing or rejected: 401.
//! - Authorization: an [`Action`] on the matching `switchyard.dev` resource, asked of the
//!   [`crate::channel::Authorizer`] (SubjectAccessReview in a cluster; everything for the local
//!   admin token). Namespaced and named requests are allowed or refused (403); all-namespace
//!   lists are *filtered* to the namespaces the caller may list (one cluster-scope check first,
//!   then one per namespace that has something to show).
//! - Interceptions, sessions, summaries, clients and models are authorized as `get workspaces`
//!   in the namespace of each record's workspace; records without a workspace (requests refused
//!   before one was known) need cluster scope.

use std::collections::BTreeSet;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::channel::{Action, Identity};
use crate::store::{Filter, Store};

use super::Facade;
use super::error::ApiError;

/// Authenticates the request and stores the caller's [`Identity`] in its extensions.
pub(crate) async fn authenticate(
    State(facade): State<std::sync::Arc<Facade>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return ApiError::unauthenticated("an `Authorization: Bearer <token>` header is required")
            .into_response();
    };
    match facade.authn.authenticate(token).await {
        Ok(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Namespaces a caller may see in an all-namespace listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (cluster-scope permission).
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl Scope {
    /// Whether `namespace` is visible.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(set) => set.contains(namespace),
        }
    }
}

/// The authorization questions of one request.
#[derive(Debug)]
pub(crate) struct Access<'a> {
    pub(crate) facade: &'a Facade,
    pub(crate) who: &'a Identity,
}

impl Access<'_> {
    /// Whether the caller may perform `action`.
    pub(crate) async fn allowed(&self, action: &Action) -> Result<bool, ApiError> {
        Ok(self.facade.authz.allowed(self.who, action).await?)
    }

    /// 403 unless the caller may perform `action`.
    pub(crate) async fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.allowed(&action).await? {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} may not {action}",
                self.who.username
            )))
        }
    }

    /// The namespaces among `candidates` where the caller may `verb` `resource`, or all of them
    /// with cluster-scope permission.
    pub(crate) async fn scope(
        &self,
        verb: &str,
        resource: &str,
        candidates: impl IntoIterator<Item = String>,
    ) -> Result<Scope, ApiError> {
        let action = Action::switchyard(verb, resource);
        if self.allowed(&action).await? {
            return Ok(Scope::All);
        }
        Ok(Scope::Only(self.namespaces(&action, candidates).await?))
    }

    /// The namespaces among `candidates` where the caller may perform `action` (a
    /// cluster-scope action, asked per namespace).
    async fn namespaces(
        &self,
        action: &Action,
        candidates: impl IntoIterator<Item = String>,
    ) -> Result<BTreeSet<String>, ApiError> {
        let candidates: BTreeSet<String> = candidates.into_iter().collect();
        let mut allowed = BTreeSet::new();
        for ns in candidates {
            if self
                .allowed(&action.clone().in_namespace(ns.clone()))
                .await?
            {
                allowed.insert(ns);
            }
        }
        Ok(allowed)
    }

    /// Restricts a record filter to what the caller may see: a `workspace` filter must be
    /// allowed (`get workspaces NAME` in its namespace, else 403); otherwise, without
    /// cluster-scope `get workspaces`, the filter is limited to the workspaces of the namespaces
    /// where the caller may get workspaces.
    pub(crate) async fn restrict(
        &self,
        store: &Store,
        filter: &mut Filter,
    ) -> Result<(), ApiError> {
        if let Some(ws) = &filter.workspace {
            let (ns, name) = split_key(ws).ok_or_else(|| {
                ApiError::invalid(
                    "workspace",
                    format!("workspace must be a key namespace/name, got {ws:?}"),
                )
            })?;
            return self
                .require(
                    Action::switchyard("get", "workspaces")
                        .in_namespace(ns)
                        .named(name),
                )
                .await;
        }
        let action = Action::switchyard("get", "workspaces");
        if self.allowed(&action).await? {
            return Ok(());
        }
        // Only callers without cluster scope pay for listing the workspaces with records.
        let known = store.distinct_workspaces(&Filter::default()).await?;
        let namespaces = self
            .namespaces(
                &action,
                known
                    .iter()
                    .filter_map(|k| split_key(k).map(|(ns, _)| ns.to_owned())),
            )
            .await?;
        filter.allowed_workspaces = Some(
            known
                .into_iter()
                .filter(|k| split_key(k).is_some_and(|(ns, _)| namespaces.contains(ns)))
                .collect(),
        );
        Ok(())
    }
}

/// `(namespace, name)` of a key `namespace/name`.
pub(crate) fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
}
