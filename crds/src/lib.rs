//! Switchyard's API crate: the seven `switchyard.dev/v1alpha1` kinds, the compiler that turns a
//! set of them (plus resolved Secret values) into a routing [`Snapshot`](snapshot::Snapshot), and
//! the snapshot wire types shared with the data plane. Pure code: no I/O.

// kube-derive's repeated `printcolumn(...)` arguments trip this lint; they are distinct columns.
#![allow(clippy::duplicated_attributes)]

pub mod affinity_group;
pub mod backend;
pub mod channel;
pub mod circuits;
pub mod common;
pub mod mux_rule;
pub mod provider;
pub mod record;
pub mod router_policy;
pub mod task_chain;
pub mod usage;
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
pub mod compile;
pub mod crdgen;
pub mod glob;
pub mod pricing;
pub mod snapshot;

/// Parses an `in_range` bound `min-max` (or a single number `n` meaning `n-n`), as the seed's
/// parse_range handler does. Negative numbers are written with their sign: `-5--1`.
pub fn task_chain_range(text: &str) -> Option<(f64, f64)> {
    let text = text.trim();
    let finite = |t: &str| t.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    if let Some(n) = finite(text) {
        return Some((n, n));
    }
    // Split at a '-' that is not a leading sign.
    let bytes = text.as_bytes();
    (1..bytes.len())
        .filter(|&i| bytes[i] == b'-' && bytes[i - 1] != b'-' && bytes[i - 1] != b'e')
        .find_map(|i| {
            let lo = finite(&text[..i])?;
            let hi = finite(&text[i + 1..])?;
            (lo <= hi).then_some((lo, hi))
        })
}
pub use compile::manifest;
