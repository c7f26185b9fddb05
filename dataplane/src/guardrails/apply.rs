//! Request-level guardrails: scan every caller text field of a request body (as
//! [`super::fields`] describes it per endpoint), and alert, redact or block according to the
//! workspace policy.

use serde_json::Value;
use switchyard_crds::workspace::GuardrailAction;
use switchyard_routing::Endpoint;

use super::fields::{self, Text};
use super::walk::Walker;
use super::{Outcome, Policy, Scanner};

/// Scans every caller text field of an `endpoint` request body (as [`fields::of`] describes
/// it) and applies `policy`:
/// - `alert`: record an [`Alert`](super::Alert), leave the text alone;
/// - `redact`: record, replace the finding in place with `[REDACTED:<kind>]`, set `modified`;
/// - `block`: record, set `blocked`. The finding is also replaced in the body (setting
///   `modified`), so a blocked body that is logged or recorded does not carry the secret.
///
/// Alerts come in the order of the field description, members of `All` fields in key order.
pub fn apply(scanner: &Scanner, policy: &Policy, endpoint: Endpoint, body: &mut Value) -> Outcome {
    apply_fields(scanner, policy, fields::of(endpoint), body)
}

/// [`apply`] over a given field description (e.g. [`fields::RESPONSES`]).
pub fn apply_fields(
    scanner: &Scanner,
    policy: &Policy,
    fields: &Text,
    body: &mut Value,
) -> Outcome {
    let mut w = Walker {
        scanner,
        policy,
        secrets: policy.secrets != GuardrailAction::Off,
        pii: policy.pii != GuardrailAction::Off,
        out: Outcome::default(),
    };
    if policy.is_off() || !body.is_object() {
        return w.out;
    }
    w.walk(fields, body, "");
    w.out
}

#[cfg(test)]
mod tests {
    use super::super::{Alert, Category};
    use super::*;

    #[test]
    fn guardrails_off_policy_touches_nothing() {
        let scanner = Scanner::new();
        let mut body = serde_json::json!({"messages":[{"role":"user","content":"mail me at a.b@example.org"}]});
        let before = body.clone();
        let out = apply(
            &scanner,
            &Policy::default(),
            Endpoint::ChatCompletions,
            &mut body,
        );
        assert_eq!(out, Outcome::default());
        assert_eq!(body, before);
    }

    #[test]
    fn guardrails_alert_serializes_category_lowercase() {
        let a = Alert {
            category: Category::Pii,
            kind: "email".into(),
            action: GuardrailAction::Redact,
            snippet: "x [REDACTED:email] y".into(),
            location: "/messages/0/content".into(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["category"], "pii");
        assert_eq!(v["action"], "redact");
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
