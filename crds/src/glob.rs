//! Model-name globs (MuxRule `pattern`, RouterPolicy `match.model`): `*` matches any run of
//! characters (including `/`), `?` one character, `[abc]`/`[!a-z]` a class, `{a,b}` alternatives,
//! `\` escapes; the syntax is globset's.
//!
//! Compiling a glob to a regex costs tens of microseconds, and a snapshot holds one glob per
//! MuxRule: with thousands of rules that cost dominated both the compiler and a data plane's
//! snapshot apply. Nearly every model pattern is a literal and `*` (`gpt-4o*`, `*-mini`,
//! `claude-*-latest`), so [`ModelGlob`] matches those by comparing the pieces between the stars,
//! and compiles globset's regex only for the other patterns (and `**`, which globset treats as
//! a recursive wildcard), on their first match.

use std::sync::OnceLock;

/// A validated model glob, cheap to build and to match.
#[derive(Debug, Clone)]
pub struct ModelGlob {
    pattern: String,
    how: How,
}

#[derive(Debug, Clone)]
enum How {
    /// Literal pieces separated by `*` (at least one piece; a lone `*` is `["", ""]`).
    Stars(Vec<String>),
    /// Any other syntax: globset's matcher, compiled on first use.
    Full(globset::Glob, OnceLock<globset::GlobMatcher>),
}

impl ModelGlob {
    /// Parses `pattern`; an invalid glob (an unclosed `[`, a dangling `\`, …) is an error.
    pub fn new(pattern: &str) -> Result<Self, globset::Error> {
        // `**` is globset's recursive wildcard (`**/x` also matches `x`): globset's path too.
        let how = if pattern.contains(['?', '[', ']', '{', '}', '\\']) || pattern.contains("**") {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(false)
                .empty_alternates(true)
                .build()?;
            How::Full(glob, OnceLock::new())
        } else {
            How::Stars(pattern.split('*').map(str::to_owned).collect())
        };
        Ok(Self {
            pattern: pattern.to_owned(),
            how,
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether `name` matches the whole pattern.
    pub fn is_match(&self, name: &str) -> bool {
        match &self.how {
            How::Stars(pieces) => stars_match(pieces, name),
            How::Full(glob, matcher) => matcher
                .get_or_init(|| glob.compile_matcher())
                .is_match(name),
        }
    }
}

/// `pieces` are the literal runs between stars: the first must start `name`, the last must end
/// it, the others must appear in order in between. Taking each middle piece at its leftmost
/// position is optimal for star-only patterns, so this never backtracks.
fn stars_match(pieces: &[String], name: &str) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return name.is_empty();
    };
    let Some((last, middle)) = rest.split_last() else {
        // No star: a literal.
        return name == first;
    };
    let Some(mut rest) = name.strip_prefix(first.as_str()) else {
        return false;
    };
    if rest.len() < last.len() {
        return false;
    }
    let tail_at = rest.len() - last.len();
    if !rest.is_char_boundary(tail_at) || &rest[tail_at..] != last {
        return false;
    }
    rest = &rest[..tail_at];
    for piece in middle {
        match rest.find(piece.as_str()) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn globset_says(pattern: &str, name: &str) -> bool {
        globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .empty_alternates(true)
            .build()
            .unwrap()
            .compile_matcher()
            .is_match(name)
    }

    #[test]
    fn star_patterns() {
        let m = |p: &str, n: &str| ModelGlob::new(p).unwrap().is_match(n);
        assert!(m("*", ""));
        assert!(m("*", "anything/at all"));
        assert!(m("gpt-4o*", "gpt-4o"));
        assert!(m("gpt-4o*", "gpt-4o-mini"));
        assert!(!m("gpt-4o*", "gpt-4"));
        assert!(m("*-mini", "gpt-4o-mini"));
        assert!(!m("*-mini", "gpt-4o-mini-x"));
        assert!(m("claude-*-latest", "claude-3-5-sonnet-latest"));
        assert!(!m("claude-*-latest", "claude-latest"));
        assert!(m("a*a", "aa"));
        assert!(!m("a*a", "a"), "prefix and suffix may not overlap");
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXcYb"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exact2"));
        assert!(m("", ""));
        assert!(!m("", "x"));
        assert!(m("é*", "été"));
        assert!(!m("*é", "ée"));
    }

    #[test]
    fn other_syntax_goes_to_globset() {
        let m = |p: &str, n: &str| ModelGlob::new(p).unwrap().is_match(n);
        assert!(m("gpt-?o", "gpt-4o"));
        assert!(m("{gpt,o}*", "o3-mini"));
        assert!(m("model-[0-9]", "model-7"));
        assert!(!m("model-[!0-9]", "model-7"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m("**/x", "x"), "globset's recursive prefix");
        assert!(m("**/", ""));
        assert!(ModelGlob::new("model-[0-9").is_err());
        assert_eq!(ModelGlob::new("x*").unwrap().pattern(), "x*");
    }

    proptest! {
        /// The fast path agrees with globset on every star-only pattern.
        #[test]
        fn stars_agree_with_globset(
            pattern in "[ab*/.-]{0,8}",
            name in "[ab/.-]{0,10}",
        ) {
            let ours = ModelGlob::new(&pattern).unwrap().is_match(&name);
            prop_assert_eq!(ours, globset_says(&pattern, &name), "{:?} vs {:?}", pattern, name);
        }
    }
}
