//! Events for notable transitions, derived purely from the conditions before and after a
//! status write: a condition turning False (a Secret went missing, a reference broke, a backend
//! became unreachable) is a Warning with the condition's reason and message; Ready coming back
//! is a Normal `Recovered` event. Computed only for statuses actually written, so each
//! transition is reported once.
//!
//! Circuits have their own tracker, [`CircuitNotifier`]: a Warning `CircuitOpened` on the
//! RouterPolicy when one of its circuits opens, a Normal `CircuitClosed` when it closes again.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType};

use crate::circuits::{CircuitKey, Merged, MergedCircuit};

/// Condition types whose transitions are worth an Event.
const WATCHED: [&str; 4] = ["Ready", "SecretResolved", "ResolvedRefs", "Reachable"];

/// Longest Event note (the API server allows 1 KiB).
const MAX_NOTE: usize = 1000;

fn note(s: &str) -> String {
    if s.len() <= MAX_NOTE {
        return s.to_owned();
    }
    let mut end = MAX_NOTE - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Events for the step from `old` to `new` conditions.
pub fn transitions(old: &[Condition], new: &[Condition]) -> Vec<Event> {
    let mut out = Vec::new();
    for c in new.iter().filter(|c| WATCHED.contains(&c.type_.as_str())) {
        let before = old.iter().find(|o| o.type_ == c.type_);
        let was_false = before.is_some_and(|b| b.status == "False");
        match c.status.as_str() {
            // Newly False, or False for a different reason: say why.
            "False" if !was_false || before.is_some_and(|b| b.reason != c.reason) => {
                // A failing Ready usually repeats the specific condition's reason; report it once.
                let duplicate = c.type_ == "Ready"
                    && new
                        .iter()
                        .any(|o| o.type_ != "Ready" && o.status == "False" && o.reason == c.reason);
                if !duplicate {
                    out.push(Event {
                        type_: EventType::Warning,
                        reason: c.reason.clone(),
                        note: Some(note(&c.message)),
                        action: format!("Check{}", c.type_),
                        secondary: None,
                    });
                }
            }
            "True" if c.type_ == "Ready" && was_false => out.push(Event {
                type_: EventType::Normal,
                reason: "Recovered".into(),
                note: Some(note(&c.message)),
                action: "CheckReady".into(),
                secondary: None,
            }),
            _ => {}
        }
    }
    out
}

/// What [`CircuitNotifier`] remembers of a circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    /// Open or half-open somewhere (an open episode is under way).
    open: bool,
    /// Opening count by data plane.
    times_opened: BTreeMap<String, u64>,
}

/// Turns changes of the merged circuit view into Events on RouterPolicies whose
/// `circuitBreaker.notifyOnOpen` is true (circuits of the `default` policy are only logged and
/// counted by the board):
///
/// - `CircuitOpened` (Warning) when a circuit that was closed (or unknown) is open or half-open
///   on some data plane: "circuit of provider/x:gpt-4o opened on 1 of 2 data planes, error rate
///   62%". One per open episode: half-open probes failing and re-opening it say nothing more.
/// - `CircuitOpened` and then `CircuitClosed` when a closed circuit is still closed but a data
///   plane's opening count grew: it opened and closed again between two reports.
/// - `CircuitClosed` (Normal) when an open circuit is closed everywhere, or no data plane
///   reports it any more.
///
/// Counts are compared per data plane, so a data plane whose report expires and comes back,
/// or a new one, raises nothing by itself. Run it on the leader only, and [`Self::reset`] it
/// when leadership is lost (a new leader reports circuits open at the time once).
#[derive(Debug, Default)]
pub struct CircuitNotifier {
    seen: BTreeMap<CircuitKey, Seen>,
}

/// An Event for the RouterPolicy with key `policy`.
pub struct PolicyEvent {
    /// RouterPolicy key (`namespace/name`).
    pub policy: String,
    /// The Event.
    pub event: Event,
}

impl std::fmt::Debug for PolicyEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEvent")
            .field("policy", &self.policy)
            .field("type", &self.event.type_)
            .field("reason", &self.event.reason)
            .field("note", &self.event.note)
            .finish()
    }
}

fn opened(target: &str, c: &MergedCircuit) -> String {
    format!(
        "circuit of {target} opened on {} of {} data plane{}, error rate {:.0}%",
        c.open_on + c.half_open_on,
        c.data_planes,
        if c.data_planes == 1 { "" } else { "s" },
        c.error_rate_percent
    )
}

fn circuit_event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(self::note(&note)),
        action: "ReportCircuit".into(),
        secondary: None,
    }
}

impl CircuitNotifier {
    /// Forgets everything (on losing leadership).
    pub fn reset(&mut self) {
        self.seen.clear();
    }

    /// The Events for the step from the last view to `merged`; `notifying` holds the keys of
    /// the RouterPolicies with `notifyOnOpen`.
    pub fn step(&mut self, merged: &Merged, notifying: &HashSet<String>) -> Vec<PolicyEvent> {
        let mut out = Vec::new();
        let mut next: BTreeMap<CircuitKey, Seen> = BTreeMap::new();
        for (k, c) in merged
            .circuits
            .iter()
            .filter(|(k, _)| notifying.contains(&k.policy))
        {
            let open = c.state != switchyard_crds::circuits::CircuitStateName::Closed;
            let before = self.seen.get(k);
            let was_open = before.is_some_and(|b| b.open);
            let grew = before.is_some_and(|b| {
                c.times_opened
                    .iter()
                    .any(|(dp, n)| b.times_opened.get(dp).is_some_and(|old| n > old))
            });
            let event = |type_, reason, note| PolicyEvent {
                policy: k.policy.clone(),
                event: circuit_event(type_, reason, note),
            };
            match (was_open, open) {
                (false, true) => out.push(event(
                    EventType::Warning,
                    "CircuitOpened",
                    opened(&k.target, c),
                )),
                (false, false) if grew => {
                    out.push(event(
                        EventType::Warning,
                        "CircuitOpened",
                        format!(
                            "circuit of {} opened and closed again between two reports, error rate {:.0}%",
                            k.target, c.error_rate_percent
                        ),
                    ));
                    out.push(event(
                        EventType::Normal,
                        "CircuitClosed",
                        format!("circuit of {} closed", k.target),
                    ));
                }
                (true, false) => out.push(event(
                    EventType::Normal,
                    "CircuitClosed",
                    format!(
                        "circuit of {} closed on every data plane reporting it",
                        k.target
                    ),
                )),
                _ => {}
            }
            next.insert(
                k.clone(),
                Seen {
                    open,
                    times_opened: c.times_opened.clone(),
                },
            );
        }
        for (k, seen) in &self.seen {
            if seen.open && !next.contains_key(k) && notifying.contains(&k.policy) {
                out.push(PolicyEvent {
                    policy: k.policy.clone(),
                    event: circuit_event(
                        EventType::Normal,
                        "CircuitClosed",
                        format!(
                            "circuit of {} is no longer reported open by any data plane",
                            k.target
                        ),
                    ),
                });
            }
        }
        self.seen = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn c(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{type_} is {status} because {reason}"),
            observed_generation: None,
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn a_missing_secret_is_one_warning() {
        let old = [
            c("Ready", "True", "Ready"),
            c("SecretResolved", "True", "SecretResolved"),
        ];
        let new = [
            c("Ready", "False", "SecretNotFound"),
            c("SecretResolved", "False", "SecretNotFound"),
        ];
        let ev = transitions(&old, &new);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].type_, ev[0].reason.as_str()),
            (EventType::Warning, "SecretNotFound")
        );
    }

    #[test]
    fn recovery_is_normal_and_steady_state_is_silent() {
        let bad = [
            c("Ready", "False", "ProviderNotFound"),
            c("ResolvedRefs", "False", "ProviderNotFound"),
        ];
        let good = [
            c("Ready", "True", "Ready"),
            c("ResolvedRefs", "True", "ResolvedRefs"),
        ];
        let ev = transitions(&bad, &good);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].type_, ev[0].reason.as_str()),
            (EventType::Normal, "Recovered")
        );
        assert!(transitions(&good, &good).is_empty());
        assert!(transitions(&bad, &bad).is_empty());
    }

    #[test]
    fn a_new_object_that_is_broken_warns_and_a_new_reason_warns_again() {
        let new = [c("Ready", "False", "InvalidGraph")];
        assert_eq!(transitions(&[], &new)[0].reason, "InvalidGraph");
        let other = [c("Ready", "False", "RouteCycle")];
        assert_eq!(transitions(&new, &other)[0].reason, "RouteCycle");
        let unreachable = [
            c("Ready", "True", "Ready"),
            c("Reachable", "False", "Unreachable"),
        ];
        assert_eq!(
            transitions(&[c("Ready", "True", "Ready")], &unreachable)[0].reason,
            "Unreachable"
        );
    }

    fn merged(entries: &[(&str, &str, &str, CircuitStateName, u64, f64)]) -> Merged {
        use crate::circuits::CircuitBoard;
        use switchyard_crds::circuits::{CircuitEntry, CircuitReport};
        let board = CircuitBoard::default();
        let now = std::time::Instant::now();
        let mut by_dp: BTreeMap<&str, Vec<CircuitEntry>> = BTreeMap::new();
        for (dp, policy, target, state, times, rate) in entries {
            by_dp.entry(dp).or_default().push(CircuitEntry {
                policy: (*policy).into(),
                target: (*target).into(),
                state: *state,
                failures: 0,
                successes: 0,
                error_rate_percent: *rate,
                opened_at: None,
                times_opened: *times,
            });
        }
        for (dp, circuits) in by_dp {
            board.record(
                CircuitReport {
                    data_plane: dp.into(),
                    snapshot_version: "v".into(),
                    at: jiff::Timestamp::UNIX_EPOCH,
                    circuits,
                },
                now,
            );
        }
        board.merged(now)
    }

    fn summary(ev: &[PolicyEvent]) -> Vec<(String, EventType, String)> {
        ev.iter()
            .map(|e| (e.policy.clone(), e.event.type_, e.event.reason.clone()))
            .collect()
    }

    use switchyard_crds::circuits::CircuitStateName::{self, Closed, HalfOpen, Open};

    const T: &str = "provider/openai:gpt-4o";

    #[test]
    fn a_circuit_opening_and_closing_is_one_warning_then_one_normal_event() {
        let notifying: HashSet<String> = ["ns/p".to_owned()].into();
        let mut n = CircuitNotifier::default();
        let closed = merged(&[
            ("dp-a", "ns/p", T, Closed, 0, 0.0),
            ("dp-b", "ns/p", T, Closed, 0, 0.0),
        ]);
        assert!(n.step(&closed, &notifying).is_empty(), "closed: nothing");

        let open = merged(&[
            ("dp-a", "ns/p", T, Open, 1, 62.4),
            ("dp-b", "ns/p", T, Closed, 0, 10.0),
        ]);
        let ev = n.step(&open, &notifying);
        assert_eq!(
            summary(&ev),
            [(
                "ns/p".to_owned(),
                EventType::Warning,
                "CircuitOpened".to_owned()
            )]
        );
        assert_eq!(
            ev[0].event.note.as_deref(),
            Some("circuit of provider/openai:gpt-4o opened on 1 of 2 data planes, error rate 62%")
        );
        assert!(
            n.step(&open, &notifying).is_empty(),
            "still open: nothing more"
        );

        // The cooldown passes, a probe fails and it re-opens: the same episode.
        let half = merged(&[
            ("dp-a", "ns/p", T, HalfOpen, 1, 62.4),
            ("dp-b", "ns/p", T, Closed, 0, 0.0),
        ]);
        assert!(n.step(&half, &notifying).is_empty());
        let reopened = merged(&[
            ("dp-a", "ns/p", T, Open, 2, 70.0),
            ("dp-b", "ns/p", T, Closed, 0, 0.0),
        ]);
        assert!(n.step(&reopened, &notifying).is_empty());

        let closed_again = merged(&[
            ("dp-a", "ns/p", T, Closed, 2, 0.0),
            ("dp-b", "ns/p", T, Closed, 0, 0.0),
        ]);
        let ev = n.step(&closed_again, &notifying);
        assert_eq!(
            summary(&ev),
            [(
                "ns/p".to_owned(),
                EventType::Normal,
                "CircuitClosed".to_owned()
            )]
        );
        assert!(n.step(&closed_again, &notifying).is_empty());
    }

    #[test]
    fn an_open_and_close_between_reports_is_still_reported() {
        let notifying: HashSet<String> = ["ns/p".to_owned()].into();
        let mut n = CircuitNotifier::default();
        n.step(&merged(&[("dp-a", "ns/p", T, Closed, 3, 0.0)]), &notifying);
        let ev = n.step(&merged(&[("dp-a", "ns/p", T, Closed, 4, 55.0)]), &notifying);
        assert_eq!(
            summary(&ev),
            [
                (
                    "ns/p".to_owned(),
                    EventType::Warning,
                    "CircuitOpened".to_owned()
                ),
                (
                    "ns/p".to_owned(),
                    EventType::Normal,
                    "CircuitClosed".to_owned()
                ),
            ]
        );
        assert!(
            ev[0]
                .event
                .note
                .as_deref()
                .unwrap()
                .contains("between two reports")
        );

        // A data plane seen for the first time (or back after its report expired, or
        // restarted with a lower count) raises nothing by its count alone.
        assert!(
            n.step(
                &merged(&[
                    ("dp-a", "ns/p", T, Closed, 4, 0.0),
                    ("dp-new", "ns/p", T, Closed, 9, 0.0)
                ]),
                &notifying
            )
            .is_empty()
        );
        assert!(
            n.step(&merged(&[("dp-a", "ns/p", T, Closed, 0, 0.0)]), &notifying)
                .is_empty()
        );
    }

    #[test]
    fn only_notifying_policies_get_events_and_a_vanished_open_circuit_closes() {
        let notifying: HashSet<String> = ["ns/p".to_owned()].into();
        let mut n = CircuitNotifier::default();
        let ev = n.step(
            &merged(&[
                ("dp-a", "ns/p", T, Open, 1, 100.0),
                ("dp-a", "ns/quiet", T, Open, 1, 100.0),
                ("dp-a", "default", T, Open, 1, 100.0),
            ]),
            &notifying,
        );
        assert_eq!(
            summary(&ev),
            [(
                "ns/p".to_owned(),
                EventType::Warning,
                "CircuitOpened".to_owned()
            )]
        );
        // The data plane's report expired: nobody reports the circuit any more.
        let ev = n.step(&Merged::default(), &notifying);
        assert_eq!(
            summary(&ev),
            [(
                "ns/p".to_owned(),
                EventType::Normal,
                "CircuitClosed".to_owned()
            )]
        );
        assert!(n.step(&Merged::default(), &notifying).is_empty());

        // After a reset (leadership lost and regained) an open circuit is reported once more.
        let open = merged(&[("dp-a", "ns/p", T, Open, 1, 100.0)]);
        assert_eq!(n.step(&open, &notifying).len(), 1);
        n.reset();
        assert_eq!(n.step(&open, &notifying).len(), 1);
    }
}
