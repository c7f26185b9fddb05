//! Kubernetes label selector matching (matchLabels and matchExpressions).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfy `selector`. An invalid operator is an error naming it.
/// An empty selector matches everything, as in Kubernetes.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    if let Some(ml) = &selector.match_labels {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(format!(
                    "unknown label selector operator \"{other}\" (In, NotIn, Exists, DoesNotExist)"
                ));
            }
        };
        if matches!(e.operator.as_str(), "In" | "NotIn") && values.is_empty() {
            return Err(format!(
                "label selector operator {} on \"{}\" needs values",
                e.operator, e.key
            ));
        }
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("tier", "gpu")])),
            match_expressions: Some(vec![
                expr("zone", "In", &["a", "b"]),
                expr("canary", "DoesNotExist", &[]),
            ]),
        };
        assert_eq!(
            selector_matches(&sel, &labels(&[("tier", "gpu"), ("zone", "a")])),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&sel, &labels(&[("tier", "gpu"), ("zone", "c")])),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&sel, &labels(&[("tier", "cpu"), ("zone", "a")])),
            Ok(false)
        );
        assert_eq!(
            selector_matches(
                &sel,
                &labels(&[("tier", "gpu"), ("zone", "a"), ("canary", "1")])
            ),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&LabelSelector::default(), &labels(&[])),
            Ok(true)
        );
    }

    #[test]
    fn bad_operator_is_named() {
        let sel = LabelSelector {
            match_expressions: Some(vec![expr("a", "Near", &["x"])]),
            ..Default::default()
        };
        assert!(
            selector_matches(&sel, &labels(&[]))
                .unwrap_err()
                .contains("\"Near\"")
        );
    }
}
