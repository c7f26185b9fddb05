//! Why a request cannot be routed. The data plane renders these as API errors in the caller's
//! dialect (`switchyard_dataplane::errors`); the facade's test-match reports them.

/// Header that selects a workspace.
pub const WORKSPACE_HEADER: &str = "x-switchyard-workspace";

/// A routing refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// A gateway key is required (`--require-client-key`) and none valid was presented.
    #[error("a valid gateway API key is required")]
    KeyRequired,
    /// The gateway key's workspace is not the one asked for.
    #[error("this API key is bound to workspace \"{bound}\" and cannot use \"{asked}\"")]
    KeyBoundElsewhere {
        /// The key's workspace.
        bound: String,
        /// What the request asked for.
        asked: String,
    },
    /// A gateway key is bound to a workspace the snapshot lacks (a corrupt snapshot).
    #[error("bound workspace missing from snapshot")]
    BoundWorkspaceMissing,
    /// No workspace has that key or name.
    #[error("workspace \"{0}\" not found")]
    WorkspaceNotFound(String),
    /// A bare workspace name exists in several namespaces.
    #[error(
        "workspace name \"{0}\" exists in several namespaces: use namespace/name in {WORKSPACE_HEADER}"
    )]
    AmbiguousWorkspace(String),
    /// Nothing selects a workspace and none is the default.
    #[error("no workspace: send {WORKSPACE_HEADER} or mark a Workspace as default")]
    NoDefaultWorkspace,
    /// Nothing routes the model.
    #[error(
        "no route for model \"{model}\" in workspace \"{workspace}\": no RouterPolicy or MuxRule matches and no Provider or AffinityGroup declares the model"
    )]
    NoRoute {
        /// Requested model.
        model: String,
        /// Workspace key.
        workspace: String,
    },
}
