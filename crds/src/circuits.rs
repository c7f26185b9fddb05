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
/// Model part of a breaker label (`provider/NAME:other`) for every model the target's Provider
/// or Backend does not declare: a caller's model name forwarded by a catch-all route never
/// becomes a breaker, a metric label value or a report entry of its own (see
/// [`crate::snapshot::Snapshot::label_model`]).
pub const OTHER_MODEL: &str = "other";
/// Longest data-plane name accepted (a pod name is at most 253 characters).
pub const MAX_DATA_PLANE_NAME: usize = 253;

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

impl CircuitReport {
    /// Checks what the operator requires of a report: a data-plane name of 1 to
    /// [`MAX_DATA_PLANE_NAME`] characters and at most [`MAX_CIRCUITS`] entries.
    pub fn validate(&self) -> Result<(), ReportError> {
        let name = self.data_plane.trim();
        if name.is_empty() || name.chars().count() > MAX_DATA_PLANE_NAME {
            return Err(ReportError::DataPlaneName);
        }
        if self.circuits.len() > MAX_CIRCUITS {
            return Err(ReportError::TooManyCircuits(self.circuits.len()));
        }
        Ok(())
    }
}

/// Why a report is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// `dataPlane` is empty or too long.
    #[error("dataPlane must name the data plane (1 to {MAX_DATA_PLANE_NAME} characters)")]
    DataPlaneName,
    /// More than [`MAX_CIRCUITS`] entries.
    #[error("a report carries at most {MAX_CIRCUITS} circuits, this one has {0}")]
    TooManyCircuits(usize),
}

/// Circuit states, spelled as RouterPolicy status spells them. Ordered by severity:
/// `Closed < HalfOpen < Open`, so the worst of several is their maximum.
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

impl std::fmt::Display for CircuitStateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(n: usize) -> CircuitReport {
        CircuitReport {
            data_plane: "dp-0".into(),
            snapshot_version: "v".into(),
            at: Timestamp::UNIX_EPOCH,
            circuits: (0..n)
                .map(|i| CircuitEntry {
                    policy: DEFAULT_POLICY.into(),
                    target: format!("provider/p:m{i}"),
                    state: CircuitStateName::Closed,
                    failures: 0,
                    successes: 0,
                    error_rate_percent: 0.0,
                    opened_at: None,
                    times_opened: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn severity_orders_states_and_the_wire_spelling_is_status_spelling() {
        use CircuitStateName::*;
        assert_eq!([Closed, Open, HalfOpen].into_iter().max(), Some(Open));
        assert_eq!([Closed, HalfOpen].into_iter().max(), Some(HalfOpen));
        assert_eq!(serde_json::to_string(&HalfOpen).unwrap(), "\"HalfOpen\"");
        let json = serde_json::to_value(report(1)).unwrap();
        assert_eq!(json["dataPlane"], "dp-0");
        assert_eq!(json["circuits"][0]["errorRatePercent"], 0.0);
        assert!(json["circuits"][0].get("openedAt").is_none());
    }

    #[test]
    fn validation_bounds_entries_and_names() {
        assert_eq!(report(MAX_CIRCUITS).validate(), Ok(()));
        assert_eq!(
            report(MAX_CIRCUITS + 1).validate(),
            Err(ReportError::TooManyCircuits(MAX_CIRCUITS + 1))
        );
        let mut r = report(0);
        r.data_plane = " ".into();
        assert_eq!(r.validate(), Err(ReportError::DataPlaneName));
        r.data_plane = "x".repeat(MAX_DATA_PLANE_NAME + 1);
        assert_eq!(r.validate(), Err(ReportError::DataPlaneName));
    }
}
