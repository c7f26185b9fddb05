//! Phone numbers: international, North American and national (trunk `0`) forms, and the
//! number sequences that only look like them.

use super::{groups, leading_ok, trailing_ok};

/// Which phone rule produced a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhoneRule {
    /// `+` country code, then digits with optional single separators and one parenthesised group.
    International,
    /// North American `(555) 123-4567`, `555-123-4567`, `1-800-555-0199`.
    Nanp,
    /// National numbers with a trunk `0`: `020 7946 0958`, `06 12 34 56 78`, `(030) 1234567`.
    Trunk,
}

/// Phone candidate `text[start..end]`. Returns the accepted end.
pub(crate) fn phone(text: &str, start: usize, end: usize, rule: PhoneRule) -> Option<usize> {
    let cand = text.get(start..end)?;
    if !leading_ok(text, start) || !trailing_ok(text, end) {
        return None;
    }
    // One number of a longer sequence (hex dumps, code point lists, `512 768 1024 2048`).
    if number_neighbour(text, start, end) {
        return None;
    }
    let digits = cand.bytes().filter(u8::is_ascii_digit).count();
    match rule {
        PhoneRule::International => {
            if !(8..=15).contains(&digits) || !separators_sane(cand.get(1..)?) {
                return None;
            }
            // Integer limits written with a sign (`-2147483648 to +2147483647`).
            let bare: String = cand.chars().filter(char::is_ascii_digit).collect();
            if ["2147483647", "2147483648", "4294967295", "4294967296"].contains(&bare.as_str()) {
                return None;
            }
            // `+255959.999`: a signed decimal, not a phone number.
            let seps: Vec<char> = cand.chars().filter(|c| !c.is_ascii_digit()).collect();
            if seps == ['+', '.'] {
                return None;
            }
        }
        PhoneRule::Nanp => {
            // Separators outside parentheses must agree: 555-123-4567, not 555-123.4567.
            let body = cand.trim_start_matches('+');
            let seps: Vec<char> = body
                .chars()
                .filter(|c| matches!(c, ' ' | '.' | '-'))
                .collect();
            let has_paren = body.contains('(');
            if !has_paren && seps.windows(2).any(|w| w[0] != w[1]) {
                return None;
            }
            if !(10..=11).contains(&digits) {
                return None;
            }
        }
        PhoneRule::Trunk => {
            if !(9..=12).contains(&digits) {
                return None;
            }
            let rest = match cand.strip_prefix('(') {
                Some(r) => r.split_once(')').map(|(_, r)| r.trim_start())?,
                None => cand,
            };
            let (gs, seps) = groups(rest);
            if seps.windows(2).any(|w| w[0] != w[1]) {
                return None;
            }
            // Code point lists (`0644 0627 0655`): four-digit groups that all start with 0.
            if gs.len() >= 2 && gs.iter().all(|g| g.len() == 4 && g.starts_with('0')) {
                return None;
            }
            // Counting sequences (`01 02 03 04 05`, a byte dump).
            let nums: Vec<u32> = gs.iter().filter_map(|g| g.parse().ok()).collect();
            if nums.len() >= 3 && nums.windows(2).all(|w| w[1] == w[0] + 1) {
                return None;
            }
            // Dotted quad: an IPv4 address, not a phone.
            if seps.first() == Some(&'.') && gs.len() == 4 && gs.iter().all(|g| g.len() <= 3) {
                return None;
            }
        }
    }
    Some(end)
}

/// Is the candidate `text[start..end]` separated by a single space, dot or dash from another
/// number-like token (digits or hex digits with at least one digit: `05AE`, `2048`)?
fn number_neighbour(text: &str, start: usize, end: usize) -> bool {
    let numberish = |tok: &[u8]| {
        !tok.is_empty()
            && tok.iter().all(u8::is_ascii_hexdigit)
            && tok.iter().any(u8::is_ascii_digit)
    };
    let b = text.as_bytes();
    let is_sep = |i: usize| matches!(b.get(i), Some(b' ' | b'.' | b'-'));
    if start >= 2 && is_sep(start - 1) {
        let tok_end = start - 1;
        let tok_start = b[..tok_end]
            .iter()
            .rposition(|c| !c.is_ascii_alphanumeric())
            .map_or(0, |p| p + 1);
        if numberish(&b[tok_start..tok_end]) {
            return true;
        }
    }
    if is_sep(end) {
        let tok_start = end + 1;
        let tok_end = b
            .get(tok_start..)
            .and_then(|r| r.iter().position(|c| !c.is_ascii_alphanumeric()))
            .map_or(b.len(), |p| tok_start + p);
        if numberish(b.get(tok_start..tok_end).unwrap_or_default()) {
            return true;
        }
    }
    false
}

/// Digits with single separators (space, dot, dash) and at most one `(digits)` group, ending
/// in a digit. `s` is the candidate without its leading `+`.
fn separators_sane(s: &str) -> bool {
    #[derive(PartialEq)]
    enum Prev {
        Start,
        Digit,
        Sep,
        Open,
        Close,
    }
    let mut prev = Prev::Start;
    let mut used_paren = false;
    let mut in_paren = false;
    for c in s.chars() {
        prev = match c {
            '0'..='9' => Prev::Digit,
            ' ' | '.' | '-' if matches!(prev, Prev::Digit | Prev::Close) && !in_paren => Prev::Sep,
            '(' if !used_paren && prev != Prev::Open && prev != Prev::Close => {
                used_paren = true;
                in_paren = true;
                Prev::Open
            }
            ')' if in_paren && prev == Prev::Digit => {
                in_paren = false;
                Prev::Close
            }
            _ => return false,
        };
    }
    !in_paren && prev == Prev::Digit
}
