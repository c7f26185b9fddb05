//! Events for notable transitions, derived purely from the conditions before and after a
//! status write: a condition turning False (a Secret went missing, a reference broke, a backend
//! became unreachable) is a Warning with the condition's reason and message; Ready coming back
//! is a Normal `Recovered` event. Computed only for statuses actually written, so each
//! transition is reported once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType};

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
}
