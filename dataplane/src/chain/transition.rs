//! Transitions: which task runs next, from the task's transition value (see
//! [`super::handlers::Outcome::eval`]) and its branches (seed 002 `evaluateTransitions`).

use switchyard_crds::task_chain::{END, Operator, Transition};

/// Whether `operator` holds between the transition value and `when`. Numeric operators on a
/// value that is not a number do not match (so a `default` branch can still be taken).
pub fn matches(operator: Operator, value: &str, when: &str) -> bool {
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    match operator {
        Operator::Equals => value == when,
        Operator::Contains => value.contains(when),
        Operator::StartsWith => value.starts_with(when),
        Operator::EndsWith => value.ends_with(when),
        Operator::Gt | Operator::GreaterSymbol => {
            number(value).zip(number(when)).is_some_and(|(v, w)| v > w)
        }
        Operator::Lt | Operator::LessSymbol => {
            number(value).zip(number(when)).is_some_and(|(v, w)| v < w)
        }
        Operator::InRange => {
            let Some((lo, hi)) = switchyard_crds::task_chain_range(when) else {
                return false;
            };
            match number(value) {
                Some(n) => lo <= n && n <= hi,
                // A range value (`parse_range`): matches when it lies inside.
                None => switchyard_crds::task_chain_range(value)
                    .is_some_and(|(vlo, vhi)| lo <= vlo && vhi <= hi),
            }
        }
        Operator::Default => true,
    }
}

/// The task to run next (`end` finishes the chain): the first non-default branch that
/// matches, else the `default` branch; a task without branches ends the chain.
pub fn next<'t>(task_id: &str, t: &'t Transition, value: &str) -> Result<&'t str, String> {
    if t.branches.is_empty() {
        return Ok(END);
    }
    t.branches
        .iter()
        .find(|b| b.operator != Operator::Default && matches(b.operator, value, &b.when))
        .or_else(|| t.branches.iter().find(|b| b.operator == Operator::Default))
        .map(|b| b.goto.as_str())
        .ok_or_else(|| {
            let tried: Vec<String> = t
                .branches
                .iter()
                .map(|b| format!("{} {:?}", b.operator.as_str(), b.when))
                .collect();
            format!(
                "task \"{task_id}\": no matching transition for {:?} (branches: {}) and no default branch",
                crate::classify::truncate(value, 200),
                tried.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use switchyard_crds::task_chain::Branch;

    use super::*;

    #[test]
    fn every_operator() {
        use Operator::*;
        for (op, value, when, want) in [
            (Equals, "yes", "yes", true),
            (Equals, "yes ", "yes", false),
            (Contains, "a positive answer", "positive", true),
            (StartsWith, "positive!", "pos", true),
            (StartsWith, "apositive", "pos", false),
            (EndsWith, "very good", "good", true),
            (GreaterSymbol, "7.5", "7", true),
            (Gt, "7", "7", false),
            (Gt, "seven", "7", false),
            (LessSymbol, "-1", "0", true),
            (Lt, "3", "2.5", false),
            (InRange, "7", "5-8", true),
            (InRange, "8", "5-8", true),
            (InRange, "8.01", "5-8", false),
            (InRange, "-3", "-5--1", true),
            (InRange, "6-7", "5-8", true),
            (InRange, "4-7", "5-8", false),
            (InRange, "x", "5-8", false),
            (Default, "anything", "", true),
        ] {
            assert_eq!(matches(op, value, when), want, "{op:?} {value:?} {when:?}");
        }
    }

    fn branch(operator: Operator, when: &str, goto: &str) -> Branch {
        Branch {
            operator,
            when: when.into(),
            goto: goto.into(),
        }
    }

    #[test]
    fn first_match_then_default_then_error() {
        let t = Transition {
            branches: vec![
                branch(Operator::Default, "", "fallback"),
                branch(Operator::InRange, "0-4", "low"),
                branch(Operator::InRange, "3-10", "high"),
            ],
            on_failure: None,
        };
        assert_eq!(
            next("s", &t, "3").unwrap(),
            "low",
            "first non-default match wins"
        );
        assert_eq!(next("s", &t, "9").unwrap(), "high");
        assert_eq!(
            next("s", &t, "11").unwrap(),
            "fallback",
            "default is the last resort"
        );
        let no_default = Transition {
            branches: vec![branch(Operator::Equals, "yes", "y")],
            on_failure: None,
        };
        let e = next("classify", &no_default, "maybe").unwrap_err();
        assert!(
            e.contains("task \"classify\": no matching transition for \"maybe\""),
            "{e}"
        );
        assert_eq!(next("t", &Transition::default(), "x").unwrap(), END);
    }
}
