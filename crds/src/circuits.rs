//! Circuit reports: what a data plane tells the operator about its circuit breakers, so that
//! RouterPolicy status shows each target's circuit (`state`, `targets`) and the operator emits a
//! `CircuitOpened` Event when a policy with `notifyOnOpen` opens a circuit.
//!
//! Each data plane POSTs its whole table (bounded by [`MAX_CIRCUITS`]) to the channel's
//! `/v1/circuits` on every transition (debounced) and every [`REPORT_INTERVAL_SECS`] as a
//! heartbeat; the operator forgets a data plane's report [`REPORT_TTL_SECS`] after it last heard
//! from it (a pod that died must not keep a circuit open in status forever).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Heartbeat period of a data plane's report, seconds.
pub const REPORT_INTERVAL_SECS: u64 = 10;
/// How long the operator keeps a report it has not heard again, seconds.
pub const REPORT_TTL_SECS: u64 = 35;
/// Most entries one report may carry; the operator refuses larger ones.
pub const MAX_CIRCUITS: usize = 4096;
/// Policy name used for routes that came from no RouterPolicy.
pub const DEFAULT_POLICY: &str = "default";

/// One data plane's circuit breakers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitReport {
    /// The reporting data plane (its pod name, or host name outside a cluster).
    pub data_plane: String,
    /// Snapshot version in force there.
    pub snapshot_version: String,
    /// When the report was made.
    pub at: Timestamp,
    /// Every breaker the data plane holds (at most [`MAX_CIRCUITS`]).
    pub circuits: Vec<CircuitEntry>,
}

/// Circuit states, spelled as RouterPolicy status spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CircuitStateName {
    /// Calls go through.
    Closed,
    /// Probing after the cooldown.
    HalfOpen,
    /// Calls are refused (or the target is skipped with `autoDisable`).
    Open,
}

impl CircuitStateName {
    /// `Closed`, `HalfOpen` or `Open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "Closed",
            Self::HalfOpen => "HalfOpen",
            Self::Open => "Open",
        }
    }
}

/// One breaker: a (policy, target) pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitEntry {
    /// RouterPolicy key (`namespace/name`), or [`DEFAULT_POLICY`].
    pub policy: String,
    /// Target label (`provider/NAME:model`, `backend/NAME:model`; an AffinityGroup's members
    /// have one breaker each, labelled with the member backend).
    pub target: String,
    /// Current state.
    pub state: CircuitStateName,
    /// Counted failures in the evaluation window.
    pub failures: u64,
    /// Counted successes in the evaluation window.
    pub successes: u64,
    /// failures / (failures + successes), percent.
    pub error_rate_percent: f64,
    /// When the circuit last opened (wall clock), while not closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<Timestamp>,
    /// Times this breaker opened since the data plane started: lets the operator see an
    /// open-and-close that happened between two reports.
    #[serde(default)]
    pub times_opened: u64,
}
