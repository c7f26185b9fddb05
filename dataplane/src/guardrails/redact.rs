//! Replacing findings with `[REDACTED:<kind>]` and building alert snippets.

use super::Finding;

/// Characters of context kept on each side of a finding in a snippet.
pub const SNIPPET_CONTEXT_CHARS: usize = 40;

/// The marker that replaces a finding.
pub fn marker(kind: &str) -> String {
    format!("[REDACTED:{kind}]")
}

/// Largest char boundary ≤ `i` (clamped to the text).
fn floor_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Smallest char boundary ≥ `i` (clamped to the text).
fn ceil_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Findings made safe to slice with: clamped to the text, widened (never narrowed) to char
/// boundaries, empty ones dropped, overlaps merged (named after the longest), sorted by start.
pub(crate) fn normalize<'a>(
    text: &str,
    findings: impl IntoIterator<Item = &'a Finding>,
) -> Vec<Finding> {
    let mut fs: Vec<Finding> = findings
        .into_iter()
        .filter_map(|f| {
            let start = floor_boundary(text, f.start.min(f.end));
            let end = ceil_boundary(text, f.end.max(f.start));
            (start < end).then_some(Finding { start, end, ..*f })
        })
        .collect();
    fs.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<(Finding, usize)> = Vec::with_capacity(fs.len());
    for f in fs {
        let len = f.end - f.start;
        if let Some((last, best)) = out.last_mut()
            && f.start < last.end
        {
            last.end = last.end.max(f.end);
            if len > *best {
                last.kind = f.kind;
                last.category = f.category;
                *best = len;
            }
            continue;
        }
        out.push((f, len));
    }
    out.into_iter().map(|(f, _)| f).collect()
}

/// Replaces every finding in `text` with `[REDACTED:<kind>]`. Findings may be in any order and
/// may overlap (the union is replaced, named after the longest); offsets that are out of range
/// or inside a char are widened to the enclosing char boundaries, so no byte of a finding
/// survives.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let fs = normalize(text, findings);
    if fs.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for f in fs {
        out.push_str(&text[cursor..f.start]);
        out.push_str(&marker(f.kind));
        cursor = f.end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// A short, single-line context for an alert: up to [`SNIPPET_CONTEXT_CHARS`] characters either
/// side of `f`, with `f` itself replaced by `[REDACTED:<kind>]`. Control characters (newlines,
/// tabs) become spaces; a cut context is marked with `…`.
///
/// Only `f` is masked here; use [`snippet_masked`] when other findings may sit within 40
/// characters (the request-level [`apply`](super::apply) does).
pub fn snippet(text: &str, f: &Finding) -> String {
    snippet_masked(text, f, std::slice::from_ref(f))
}

/// As [`snippet`], but every finding in `all` that touches the context window is masked too.
pub fn snippet_masked(text: &str, f: &Finding, all: &[Finding]) -> String {
    let Some(target) = normalize(text, [f]).into_iter().next() else {
        return String::new();
    };
    let before: usize = text[..target.start]
        .char_indices()
        .rev()
        .nth(SNIPPET_CONTEXT_CHARS - 1)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let after: usize = text[target.end..]
        .char_indices()
        .nth(SNIPPET_CONTEXT_CHARS)
        .map(|(i, _)| target.end + i)
        .unwrap_or(text.len());
    // Mask the target plus every other finding overlapping the window, then cut the window.
    let mut masks: Vec<Finding> = normalize(
        text,
        all.iter()
            .filter(|o| o.start < after && o.end > before)
            .chain(std::iter::once(&target)),
    );
    // A mask may stick out of the window: widen the window to hold it whole.
    let lo = masks
        .iter()
        .map(|m| m.start)
        .min()
        .unwrap_or(before)
        .min(before);
    let hi = masks
        .iter()
        .map(|m| m.end)
        .max()
        .unwrap_or(after)
        .max(after);
    let mut out = String::new();
    if lo > 0 {
        out.push('…');
    }
    let mut cursor = lo;
    for m in masks.drain(..) {
        push_clean(&mut out, &text[cursor..m.start]);
        out.push_str(&marker(if m.start <= target.start && m.end >= target.end {
            target.kind
        } else {
            m.kind
        }));
        cursor = m.end;
    }
    push_clean(&mut out, &text[cursor..hi]);
    if hi < text.len() {
        out.push('…');
    }
    out
}

fn push_clean(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if c.is_control() { ' ' } else { c }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::Category;

    fn f(kind: &'static str, start: usize, end: usize) -> Finding {
        Finding {
            category: Category::Secrets,
            kind,
            start,
            end,
        }
    }

    #[test]
    fn guardrails_redact_replaces_union_of_overlaps() {
        let t = "key=abcdef123456 tail";
        let out = redact(t, &[f("b", 6, 16), f("a", 4, 10)]);
        assert_eq!(out, "key=[REDACTED:b] tail");
    }

    #[test]
    fn guardrails_redact_widens_to_char_boundaries() {
        let t = "xé秘密y";
        // 2 is inside 'é', 5 is inside '秘'
        let out = redact(t, &[f("k", 2, 5)]);
        assert_eq!(out, "x[REDACTED:k]密y");
        assert_eq!(redact(t, &[f("k", 50, 60)]), t);
    }

    #[test]
    fn guardrails_snippet_bounds_and_masks() {
        let prefix = "a".repeat(100);
        let t = format!("{prefix}\nSECRETVALUE\nbbbbb");
        let s = snippet(&t, &f("k", 101, 112));
        assert!(!s.contains("SECRETVALUE"));
        assert_eq!(s, format!("…{} [REDACTED:k] bbbbb", "a".repeat(39)));
    }

    #[test]
    fn guardrails_snippet_masks_neighbours() {
        let t = "one NEIGHBOUR two TARGET three";
        let all = [f("n", 4, 13), f("t", 18, 24)];
        let s = snippet_masked(t, &all[1], &all);
        assert_eq!(s, "one [REDACTED:n] two [REDACTED:t] three");
    }
}
