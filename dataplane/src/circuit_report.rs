//! Circuit reports: tells the operator the state of every circuit breaker of this data plane,
//! so RouterPolicy status shows each target's circuit and the operator can raise Events (wire
//! type: [`switchyard_crds::circuits`]).
//!
//! [`run`] POSTs a [`CircuitReport`] of the whole [`crate::breaker::BreakerRegistry`] to the
//! operator channel's `POST /v1/circuits`:
//!
//! - once at start, then after every burst of circuit transitions ([`AppState::circuit_changed`],
//!   debounced by [`DEBOUNCE`] so a burst makes one report);
//! - every [`REPORT_INTERVAL_SECS`] as a heartbeat (the operator forgets a data plane it has
//!   not heard from for `REPORT_TTL_SECS`);
//! - on failure, again with the operator client's backoff (100 ms … 10 s, jittered), each
//!   attempt carrying the state of that moment.
//!
//! A report holds at most [`MAX_CIRCUITS`] entries: when there are more breakers, open and
//! half-open ones are kept first. Authentication, CA and client reuse are those of the snapshot
//! stream ([`crate::operator_client`]); the token is never logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use jiff::Timestamp;
use reqwest::StatusCode;
use switchyard_crds::channel::CIRCUITS_PATH;
use switchyard_crds::circuits::{
    CircuitEntry, CircuitReport, CircuitStateName, MAX_CIRCUITS, REPORT_INTERVAL_SECS,
};

use crate::breaker::{BreakerState, CircuitState};
use crate::operator_client::{Backoff, ClientCache, OperatorClientConfig, post_json};
use crate::state::AppState;

/// Quiet time after a transition before reporting, so a burst of transitions is one report.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// This data plane's name in reports: `$POD_NAME`, else the host name, else `unknown`.
pub fn data_plane_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The wire name of a breaker state.
pub fn state_name(state: CircuitState) -> CircuitStateName {
    match state {
        CircuitState::Closed => CircuitStateName::Closed,
        CircuitState::HalfOpen => CircuitStateName::HalfOpen,
        CircuitState::Open => CircuitStateName::Open,
    }
}

/// The wall-clock time of `at`, given that `now` is `wall` (an instant after `now` is `wall`).
pub fn wall_clock(at: Instant, now: Instant, wall: Timestamp) -> Timestamp {
    let ago = now.saturating_duration_since(at);
    wall.checked_sub(ago).unwrap_or(wall)
}

/// One breaker as reported (`now` is `wall`).
pub fn entry(b: BreakerState, now: Instant, wall: Timestamp) -> CircuitEntry {
    CircuitEntry {
        policy: b.policy,
        target: b.target,
        state: state_name(b.state),
        failures: b.failures,
        successes: b.successes,
        error_rate_percent: b.error_rate_percent,
        opened_at: b.opened_at.map(|at| wall_clock(at, now, wall)),
        times_opened: b.times_opened,
    }
}

/// A report of `breakers` (`now` is `wall`), bounded to [`MAX_CIRCUITS`] entries: open circuits
/// first, then half-open, then closed, each by policy and target. Returns it with the number of
/// breakers left out.
pub fn report(
    breakers: Vec<BreakerState>,
    data_plane: &str,
    snapshot_version: &str,
    now: Instant,
    wall: Timestamp,
) -> (CircuitReport, usize) {
    let mut circuits: Vec<CircuitEntry> =
        breakers.into_iter().map(|b| entry(b, now, wall)).collect();
    let dropped = circuits.len().saturating_sub(MAX_CIRCUITS);
    if dropped > 0 {
        circuits.sort_by(|a, b| {
            b.state
                .cmp(&a.state)
                .then_with(|| (&a.policy, &a.target).cmp(&(&b.policy, &b.target)))
        });
        circuits.truncate(MAX_CIRCUITS);
    }
    (
        CircuitReport {
            data_plane: data_plane.to_owned(),
            snapshot_version: snapshot_version.to_owned(),
            at: wall,
            circuits,
        },
        dropped,
    )
}

/// Logs the report link's state changes once rather than on every attempt.
#[derive(Debug, Default)]
struct Link {
    failing: Option<String>,
    failures: u64,
    truncated: bool,
}

impl Link {
    fn sent(&mut self, url: &str) {
        if self.failing.take().is_some() {
            tracing::info!(operator = %url, failed_attempts = self.failures, "circuit reports reach the operator again");
        }
        self.failures = 0;
    }

    fn failed(&mut self, status: Option<StatusCode>, error: &str) {
        self.failures += 1;
        let kind = status.map_or_else(|| "transport".to_owned(), |s| s.as_u16().to_string());
        if self.failing.as_deref() != Some(kind.as_str()) {
            tracing::warn!(error = %error, "could not report circuit states to the operator; retrying with backoff");
            self.failing = Some(kind);
        } else {
            tracing::debug!(error = %error, attempt = self.failures, "circuit report still failing");
        }
    }

    fn truncated(&mut self, dropped: usize) {
        if dropped > 0 && !self.truncated {
            tracing::warn!(
                dropped,
                max = MAX_CIRCUITS,
                "more circuit breakers than a report may carry; closed ones left out"
            );
        }
        self.truncated = dropped > 0;
    }
}

/// Reports circuit states to the operator at `cfg.url` as `data_plane` until the task is
/// dropped (see the module docs).
pub async fn run(state: Arc<AppState>, cfg: OperatorClientConfig, data_plane: String) {
    let heartbeat = Duration::from_secs(REPORT_INTERVAL_SECS);
    let mut clients = ClientCache::default();
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    let mut link = Link::default();
    let url = cfg.endpoint(CIRCUITS_PATH);
    loop {
        let outcome = send(&state, &cfg, &data_plane, &mut clients, &mut link).await;
        let wait = match outcome {
            Ok(()) => {
                link.sent(&url);
                backoff.reset();
                heartbeat
            }
            Err((status, e)) => {
                link.failed(status, &e);
                match status {
                    // An operator without circuit reports: ask again at the next heartbeat.
                    Some(StatusCode::NOT_FOUND) => heartbeat,
                    _ => backoff.delay(),
                }
            }
        };
        tokio::select! {
            () = state.circuit_changed.notified() => {
                tokio::time::sleep(DEBOUNCE).await;
                // Transitions during the debounce are in this report: drop their wake-up.
                let _ = state.circuit_changed.notified().now_or_never();
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Builds and posts one report.
async fn send(
    state: &AppState,
    cfg: &OperatorClientConfig,
    data_plane: &str,
    clients: &mut ClientCache,
    link: &mut Link,
) -> Result<(), (Option<StatusCode>, String)> {
    let client = clients.get(cfg).map_err(|e| (None, e))?;
    let version = if state.is_ready() {
        state.table().version().to_owned()
    } else {
        String::new()
    };
    let now = Instant::now();
    let (report, dropped) = report(
        state.breakers.snapshot(now),
        data_plane,
        &version,
        now,
        Timestamp::now(),
    );
    link.truncated(dropped);
    let body = serde_json::to_vec(&report).map_err(|e| (None, e.to_string()))?;
    post_json(&client, cfg, CIRCUITS_PATH, body).await?;
    tracing::debug!(
        circuits = report.circuits.len(),
        "circuit states reported to the operator"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(policy: &str, target: &str, state: CircuitState) -> BreakerState {
        BreakerState {
            policy: policy.into(),
            target: target.into(),
            state,
            failures: 0,
            successes: 0,
            error_rate_percent: 0.0,
            consecutive_failures: 0,
            opened_at: None,
            times_opened: 0,
        }
    }

    #[test]
    fn opened_at_becomes_wall_clock_time() {
        let now = Instant::now();
        let wall: Timestamp = "2026-03-01T12:00:10Z".parse().unwrap();
        let mut b = breaker("ns/p", "provider/openai:gpt-4o", CircuitState::Open);
        b.opened_at = Some(now - Duration::from_millis(2_500));
        b.failures = 5;
        b.successes = 3;
        b.error_rate_percent = 62.5;
        b.times_opened = 2;
        let e = entry(b, now, wall);
        assert_eq!(e.state, CircuitStateName::Open);
        assert_eq!(e.opened_at, Some("2026-03-01T12:00:07.5Z".parse().unwrap()));
        assert_eq!((e.failures, e.successes, e.times_opened), (5, 3, 2));
        assert_eq!(e.error_rate_percent, 62.5);
        assert_eq!(e.policy, "ns/p");
        assert_eq!(e.target, "provider/openai:gpt-4o");

        // Closed: no opening time; an instant "after now" clamps to now.
        let closed = entry(breaker("default", "t", CircuitState::Closed), now, wall);
        assert_eq!(
            (closed.state, closed.opened_at),
            (CircuitStateName::Closed, None)
        );
        assert_eq!(
            wall_clock(now + Duration::from_secs(1), now, wall),
            wall,
            "never in the future"
        );
        let half = entry(breaker("default", "t", CircuitState::HalfOpen), now, wall);
        assert_eq!(half.state, CircuitStateName::HalfOpen);
    }

    #[test]
    fn a_report_keeps_everything_up_to_the_bound_in_registry_order() {
        let now = Instant::now();
        let wall = Timestamp::UNIX_EPOCH;
        let breakers = vec![
            breaker("default", "provider/a:m", CircuitState::Closed),
            breaker("ns/p", "provider/b:m", CircuitState::Open),
        ];
        let (r, dropped) = report(breakers, "dp-1", "v1", now, wall);
        assert_eq!(dropped, 0);
        assert_eq!(
            (r.data_plane.as_str(), r.snapshot_version.as_str()),
            ("dp-1", "v1")
        );
        assert_eq!(r.at, wall);
        let targets: Vec<&str> = r.circuits.iter().map(|c| c.target.as_str()).collect();
        assert_eq!(targets, ["provider/a:m", "provider/b:m"], "order kept");
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn truncation_keeps_open_then_half_open_circuits() {
        let now = Instant::now();
        let mut breakers: Vec<BreakerState> = (0..MAX_CIRCUITS + 10)
            .map(|i| {
                breaker(
                    "default",
                    &format!("provider/p:m{i:05}"),
                    CircuitState::Closed,
                )
            })
            .collect();
        breakers.push(breaker("ns/z", "provider/half:m", CircuitState::HalfOpen));
        breakers.push(breaker("ns/z", "provider/open:m", CircuitState::Open));
        breakers.push(breaker("ns/a", "provider/open:m", CircuitState::Open));
        let total = breakers.len();
        let (r, dropped) = report(breakers, "dp", "v", now, Timestamp::UNIX_EPOCH);
        assert_eq!(r.circuits.len(), MAX_CIRCUITS);
        assert_eq!(dropped, total - MAX_CIRCUITS);
        let head: Vec<(&str, &str, CircuitStateName)> = r
            .circuits
            .iter()
            .take(4)
            .map(|c| (c.policy.as_str(), c.target.as_str(), c.state))
            .collect();
        assert_eq!(
            head,
            [
                ("ns/a", "provider/open:m", CircuitStateName::Open),
                ("ns/z", "provider/open:m", CircuitStateName::Open),
                ("ns/z", "provider/half:m", CircuitStateName::HalfOpen),
                ("default", "provider/p:m00000", CircuitStateName::Closed),
            ]
        );
        assert!(
            r.circuits.iter().all(|c| c.target != "provider/p:m04105"),
            "the last closed ones are left out"
        );
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn the_name_comes_from_pod_name_or_the_host() {
        // POD_NAME is not set in tests (and setting it would race other tests): the host name.
        let name = data_plane_name();
        assert!(!name.is_empty());
        if std::env::var("POD_NAME").is_err() {
            let host = hostname::get().unwrap().into_string().unwrap();
            assert_eq!(
                name,
                if host.is_empty() {
                    "unknown".into()
                } else {
                    host
                }
            );
        }
    }
}
