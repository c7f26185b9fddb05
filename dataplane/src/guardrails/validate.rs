//! Validators that turn a regex candidate into a finding (or reject it): checksums, boundaries,
//! separator rules and placeholder filters. Every function here is total: it never panics on any
//! input, and every offset it returns lies on a char boundary of the text it was given.
//!
//! One module per family: [`pem`] (private keys), [`card`] (payment cards), [`iban`],
//! [`phone`], [`email`] and [`placeholder`] (values that are not literal credentials); the
//! character and boundary tests they share are here.

mod card;
mod email;
mod iban;
mod pem;
mod phone;
mod placeholder;

pub(crate) use card::credit_card;
pub(crate) use email::{email, in_url_authority};
pub(crate) use iban::iban;
pub(crate) use pem::pem_end;
pub(crate) use phone::{PhoneRule, phone};
pub(crate) use placeholder::looks_placeholder;

/// `c` may appear in a standard base64 body (`A-Z a-z 0-9 + /`).
pub(crate) fn is_b64(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '/'
}

/// `c` may appear in a base64url token (`A-Z a-z 0-9 - _`).
pub(crate) fn is_b64url(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The char right after byte offset `end`, if any.
pub(crate) fn char_after(text: &str, end: usize) -> Option<char> {
    text.get(end..).and_then(|s| s.chars().next())
}

/// The char right before byte offset `start`, if any.
pub(crate) fn char_before(text: &str, start: usize) -> Option<char> {
    text.get(..start).and_then(|s| s.chars().next_back())
}

/// The second char after byte offset `end`, if any.
fn second_char_after(text: &str, end: usize) -> Option<char> {
    text.get(end..).and_then(|s| s.chars().nth(1))
}

/// Counts of character classes in a value.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Classes {
    pub lower: bool,
    pub upper: bool,
    pub digit: bool,
    pub other: bool,
}

pub(crate) fn classes(s: &str) -> Classes {
    let mut c = Classes::default();
    for ch in s.chars() {
        if ch.is_ascii_lowercase() {
            c.lower = true;
        } else if ch.is_ascii_uppercase() {
            c.upper = true;
        } else if ch.is_ascii_digit() {
            c.digit = true;
        } else {
            c.other = true;
        }
    }
    c
}

/// At least two of lower case, upper case and digits: what a random token looks like.
pub(crate) fn looks_random(s: &str) -> bool {
    let c = classes(s);
    u8::from(c.lower) + u8::from(c.upper) + u8::from(c.digit) >= 2
}

/// Splits a run of digits and single separators into (digit groups, separators).
fn groups(s: &str) -> (Vec<&str>, Vec<char>) {
    let mut groups = Vec::new();
    let mut seps = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if !c.is_ascii_digit() {
            groups.push(&s[start..i]);
            seps.push(c);
            start = i + c.len_utf8();
        }
    }
    groups.push(&s[start..]);
    (groups, seps)
}

/// The number ends here: next char is not alphanumeric, and not a `.`/`-`/`/` that continues
/// with a digit (a longer dotted or dashed identifier).
fn trailing_ok(text: &str, end: usize) -> bool {
    match char_after(text, end) {
        None => true,
        Some(c) if c.is_alphanumeric() || c == '_' => false,
        Some('.' | '-' | '/' | ',') => {
            !second_char_after(text, end).is_some_and(|d| d.is_ascii_digit())
        }
        Some(_) => true,
    }
}

/// The number starts here: previous char is not alphanumeric and not a connector that makes the
/// number part of a longer token (`ORD-`, `v1.`, `/path/`, `#`).
fn leading_ok(text: &str, start: usize) -> bool {
    match char_before(text, start) {
        None => true,
        Some(c) => !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '+' | '#' | '\\')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrails_validators_never_panic_on_bad_offsets() {
        let t = "é+1 555 0100 ÄÖ";
        for s in 0..=t.len() + 2 {
            for e in 0..=t.len() + 2 {
                let _ = credit_card(t, s, e);
                let _ = iban(t, s, e);
                let _ = phone(t, s, e, PhoneRule::International);
                let _ = phone(t, s, e, PhoneRule::Trunk);
                let _ = email(t, s, e);
            }
        }
    }
}
