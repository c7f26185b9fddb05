//! Prices by model pattern: which declared price applies to a model a call asked for.
//!
//! A Provider declares prices in `spec.models[].pricing` (one exact model) and in
//! `spec.pricing[]` (a [`PricePattern`]: an exact model name, or a prefix glob `claude-opus-4-*`).
//! The most specific declaration that matches wins ([`Specificity`], most specific first):
//!
//! 1. **exact**: the pattern is the model name;
//! 2. **dated alias**: a dated snapshot and its alias name each other. The pattern
//!    `claude-sonnet-4-5` prices `claude-sonnet-4-5-20250929` (Anthropic's `-YYYYMMDD`) and
//!    `gpt-4o` prices `gpt-4o-2024-08-06` (OpenAI's `-YYYY-MM-DD`); the other way, a price
//!    declared for a dated id prices its alias (the alias points at a snapshot; when several
//!    dated ids of the alias are declared, the newest date wins);
//! 3. **prefix glob**, longest literal prefix first: `claude-opus-4-1*` before `claude-opus-4-*`
//!    before `claude-*` before `*`.
//!
//! Two prefix globs are equally specific only when their prefixes have the same length, and two
//! such globs overlap only when they are the same pattern, so the compiler reports a repeated
//! pattern (warning `DuplicatePrice`, the first declaration is used) and nothing else can be
//! ambiguous. Among equally specific matches the first declared wins.

use serde::{Deserialize, Serialize};

use crate::common::ModelPricing;

/// Longest price pattern.
pub const MAX_PRICE_PATTERN: usize = 256;

/// A declared price for the models a pattern names, as the snapshot carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceRule {
    /// An exact model name, or a prefix glob (`literal*`).
    pub model: String,
    /// Prices per 1M tokens.
    pub pricing: ModelPricing,
}

/// A parsed price pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PricePattern<'a> {
    /// An exact model name (which also names its dated snapshots or alias).
    Exact(&'a str),
    /// Every model that starts with the prefix (empty for `*`).
    Prefix(&'a str),
}

impl<'a> PricePattern<'a> {
    /// Parses `pattern`: at most one `*`, and only as the last character; not empty, at most
    /// [`MAX_PRICE_PATTERN`] bytes, no whitespace or control characters.
    pub fn parse(pattern: &'a str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("a price pattern must not be empty".into());
        }
        if pattern.len() > MAX_PRICE_PATTERN {
            return Err(format!(
                "a price pattern is at most {MAX_PRICE_PATTERN} bytes"
            ));
        }
        if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a price pattern must not contain whitespace".into());
        }
        match pattern.find('*') {
            None => Ok(Self::Exact(pattern)),
            Some(i) if i == pattern.len() - 1 => Ok(Self::Prefix(&pattern[..i])),
            Some(_) => Err(format!(
                "price pattern \"{pattern}\": `*` may only end a pattern (`claude-opus-4-*`)"
            )),
        }
    }

    /// How specifically this pattern names `model`, or `None` when it does not match.
    pub fn matches(self, model: &str) -> Option<Specificity<'a>> {
        match self {
            Self::Exact(name) if name == model => Some(Specificity::Exact),
            Self::Exact(name) => {
                if undated(model).is_some_and(|(alias, _)| alias == name) {
                    // The alias prices its dated snapshots: all equally specific.
                    Some(Specificity::Alias(""))
                } else {
                    match undated(name) {
                        Some((alias, date)) if alias == model => Some(Specificity::Alias(date)),
                        _ => None,
                    }
                }
            }
            Self::Prefix(prefix) => model
                .starts_with(prefix)
                .then_some(Specificity::Prefix(prefix.len())),
        }
    }
}

/// How specifically a pattern names a model: a larger value is more specific (variants in
/// increasing order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Specificity<'a> {
    /// A prefix glob, by the length of its literal prefix.
    Prefix(usize),
    /// A dated alias, by the date of the declared snapshot (empty when the alias is declared and
    /// a snapshot is asked for).
    Alias(&'a str),
    /// The model name itself.
    Exact,
}

/// Splits a dated snapshot id into its alias and its date: `claude-sonnet-4-5-20250929` into
/// `claude-sonnet-4-5` and `20250929`, `gpt-4o-2024-08-06` into `gpt-4o` and `2024-08-06`.
pub fn undated(model: &str) -> Option<(&str, &str)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (alias, date) = model.rsplit_once('-')?;
    if date.len() == 8 && digits(date) && !alias.is_empty() {
        return Some((alias, date));
    }
    // `-YYYY-MM-DD`: the last three `-` pieces.
    let (rest, day) = (alias, date);
    let (rest, month) = rest.rsplit_once('-')?;
    let (alias, year) = rest.rsplit_once('-')?;
    let ok = year.len() == 4 && month.len() == 2 && day.len() == 2;
    if ok && digits(year) && digits(month) && digits(day) && !alias.is_empty() {
        let start = alias.len() + 1;
        return Some((alias, &model[start..]));
    }
    None
}

/// The price of `model`: the most specific rule that matches (the first among equals), or `None`
/// when no rule prices it. Rules whose pattern does not parse are skipped (the compiler reports
/// them and leaves them out of snapshots).
pub fn price_for<'r>(rules: &'r [PriceRule], model: &str) -> Option<&'r ModelPricing> {
    best_price(rules.iter().map(|r| (r.model.as_str(), &r.pricing)), model)
}

/// [`price_for`] over `(pattern, price)` pairs in declaration order.
pub fn best_price<'r>(
    rules: impl IntoIterator<Item = (&'r str, &'r ModelPricing)>,
    model: &str,
) -> Option<&'r ModelPricing> {
    let mut best: Option<(Specificity<'r>, &'r ModelPricing)> = None;
    for (pattern, pricing) in rules {
        let Ok(pattern) = PricePattern::parse(pattern) else {
            continue;
        };
        let Some(s) = pattern.matches(model) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| s > *b) {
            best = Some((s, pricing));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(model: &str, input: f64) -> PriceRule {
        PriceRule {
            model: model.into(),
            pricing: ModelPricing {
                input,
                output: input * 5.0,
                ..Default::default()
            },
        }
    }

    fn input(rules: &[PriceRule], model: &str) -> Option<f64> {
        price_for(rules, model).map(|p| p.input)
    }

    #[test]
    fn parses_exact_and_prefix_patterns_and_rejects_others() {
        assert_eq!(
            PricePattern::parse("gpt-4o"),
            Ok(PricePattern::Exact("gpt-4o"))
        );
        assert_eq!(
            PricePattern::parse("claude-opus-4-*"),
            Ok(PricePattern::Prefix("claude-opus-4-"))
        );
        assert_eq!(PricePattern::parse("*"), Ok(PricePattern::Prefix("")));
        for bad in ["", "*-mini", "claude-*-latest", "a**", "gpt 4o", "a\u{0}"] {
            assert!(PricePattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PricePattern::parse(&"a".repeat(MAX_PRICE_PATTERN + 1)).is_err());
    }

    #[test]
    fn splits_dated_snapshot_ids() {
        assert_eq!(
            undated("claude-sonnet-4-5-20250929"),
            Some(("claude-sonnet-4-5", "20250929"))
        );
        assert_eq!(undated("gpt-4o-2024-08-06"), Some(("gpt-4o", "2024-08-06")));
        for not_dated in [
            "claude-sonnet-4-5",
            "gpt-4o",
            "o1-mini",
            "-20250929",
            "m-2025092",
        ] {
            assert_eq!(undated(not_dated), None, "{not_dated}");
        }
    }

    #[test]
    fn the_most_specific_declaration_wins_whatever_the_order() {
        let mut rules = vec![
            rule("*", 1.0),
            rule("claude-*", 2.0),
            rule("claude-opus-4-*", 3.0),
            rule("claude-opus-4-1*", 4.0),
            rule("claude-opus-4-1-20250805", 5.0),
            rule("claude-sonnet-4-5", 6.0),
        ];
        for _ in 0..2 {
            assert_eq!(input(&rules, "claude-opus-4-1-20250805"), Some(5.0));
            // The alias is priced by its declared snapshot.
            assert_eq!(input(&rules, "claude-opus-4-1"), Some(5.0));
            assert_eq!(input(&rules, "claude-opus-4-0"), Some(3.0));
            assert_eq!(input(&rules, "claude-haiku-4-5"), Some(2.0));
            // A snapshot is priced by its declared alias, before any glob.
            assert_eq!(input(&rules, "claude-sonnet-4-5-20250929"), Some(6.0));
            assert_eq!(input(&rules, "gpt-4o"), Some(1.0));
            rules.reverse();
        }
        rules.retain(|r| r.model != "*");
        assert_eq!(input(&rules, "gpt-4o"), None);
    }

    #[test]
    fn an_alias_takes_its_newest_declared_snapshot_and_first_among_equals() {
        let rules = vec![
            rule("gpt-4o-2024-05-13", 5.0),
            rule("gpt-4o-2024-08-06", 2.5),
            rule("claude-*", 1.0),
            rule("claude-*", 9.0),
        ];
        assert_eq!(input(&rules, "gpt-4o"), Some(2.5));
        assert_eq!(input(&rules, "gpt-4o-2024-05-13"), Some(5.0));
        assert_eq!(input(&rules, "gpt-4o-mini"), None);
        assert_eq!(input(&rules, "claude-x"), Some(1.0));
        // An unparsable rule (not from the compiler) prices nothing.
        assert_eq!(input(&[rule("*-mini", 1.0)], "gpt-4o-mini"), None);
    }
}
