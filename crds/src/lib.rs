//! Switchyard's API crate: the seven `switchyard.dev/v1alpha1` kinds, the compiler that turns a
//! set of them (plus resolved Secret values) into a routing [`Snapshot`](snapshot::Snapshot), and
//! the snapshot wire types shared with the data plane. Pure code: no I/O.

pub mod affinity_group;
pub mod backend;
pub mod common;
pub mod mux_rule;
pub mod provider;
pub mod router_policy;
pub mod task_chain;
pub mod workspace;

pub use affinity_group::{AffinityGroup, AffinityGroupSpec, AffinityGroupStatus};
pub use backend::{Backend, BackendSpec, BackendStatus};
pub use mux_rule::{MuxRule, MuxRuleSpec, MuxRuleStatus};
pub use provider::{Provider, ProviderSpec, ProviderStatus};
pub use router_policy::{RouterPolicy, RouterPolicySpec, RouterPolicyStatus};
pub use task_chain::{TaskChain, TaskChainSpec, TaskChainStatus};
pub use workspace::{Workspace, WorkspaceSpec, WorkspaceStatus};

/// API group of every kind.
pub const GROUP: &str = "switchyard.dev";
/// API version of every kind.
pub const VERSION: &str = "v1alpha1";
pub mod crdgen;
