//! Payment cards: the Luhn check, issuer prefixes and lengths, and where a card ends in a run of
//! digit groups.

use super::{char_before, groups, trailing_ok};

/// Luhn (mod 10) check over ASCII digits.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.wrapping_sub(b'0'));
        if v > 9 {
            return false;
        }
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn prefix_num(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0u32, |acc, d| {
        acc * 10 + u32::from(d.wrapping_sub(b'0') % 10)
    })
}

/// Issuer prefix and length plausible for a payment card (Visa, Mastercard, Amex, Discover,
/// JCB, Diners, UnionPay, Maestro, Mir). Numbers starting with 0, 1, 7, 8 or 9 are never cards.
pub(crate) fn card_brand_ok(digits: &[u8]) -> bool {
    let n = digits.len();
    match digits.first() {
        Some(b'4') => n == 13 || n == 16 || n == 19,
        Some(b'5') => {
            let p2 = prefix_num(digits, 2);
            if (51..=55).contains(&p2) {
                n == 16
            } else {
                (13..=19).contains(&n) // Maestro 50, 56-59
            }
        }
        Some(b'2') => {
            let p4 = prefix_num(digits, 4);
            ((2221..=2720).contains(&p4) && n == 16) || ((2200..=2204).contains(&p4) && n >= 16)
        }
        Some(b'3') => {
            let p2 = prefix_num(digits, 2);
            let p3 = prefix_num(digits, 3);
            let p4 = prefix_num(digits, 4);
            match p2 {
                34 | 37 => n == 15,
                36 | 38 | 39 => (14..=19).contains(&n),
                30 => (300..=305).contains(&p3) && (14..=19).contains(&n),
                35 => (3528..=3589).contains(&p4) && (16..=19).contains(&n),
                _ => false,
            }
        }
        Some(b'6') => (13..=19).contains(&n),
        _ => false,
    }
}

/// Credit card candidate `text[start..end]` (digits with optional single spaces or dashes).
/// Tries the whole candidate, then shorter prefixes that end at a group boundary, so a card
/// followed by a CVV or another number is still found. Returns the end of the accepted card.
pub(crate) fn credit_card(text: &str, start: usize, end: usize) -> Option<usize> {
    let cand = text.get(start..end)?;
    // A decimal fraction or a dotted/slashed id is not a card.
    if let Some(b) = char_before(text, start)
        && matches!(b, '.' | ',' | '/' | '_' | '-' | '+')
        && char_before(text, start - b.len_utf8()).is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let (gs, seps) = groups(cand);
    if gs.iter().any(|g| g.is_empty()) {
        return None;
    }
    let mut k = gs.len();
    while k >= 1 {
        let used = &gs[..k];
        let used_seps = &seps[..k - 1];
        let digits: Vec<u8> = used.iter().flat_map(|g| g.bytes()).collect();
        let n = digits.len();
        if n < 13 {
            return None;
        }
        let sep_ok = used_seps.windows(2).all(|w| w[0] == w[1]);
        let group_ok = k == 1 || used.iter().all(|g| (3..=6).contains(&g.len()));
        // 17-19 digits in one block look like any other big integer (u64 constants, ids):
        // only with a card word just before.
        let context_ok = k > 1 || n <= 16 || card_context(text, start);
        if n <= 19 && sep_ok && group_ok && context_ok && card_brand_ok(&digits) && luhn(&digits) {
            let len: usize = used.iter().map(|g| g.len()).sum::<usize>() + used_seps.len();
            let card_end = start + len;
            if trailing_ok(text, card_end) {
                return Some(card_end);
            }
        }
        k -= 1;
    }
    None
}

/// A payment-card word in the 48 bytes before `start`.
fn card_context(text: &str, start: usize) -> bool {
    let lo = start.saturating_sub(48);
    let before = text
        .as_bytes()
        .get(lo..start)
        .unwrap_or_default()
        .to_ascii_lowercase();
    const WORDS: &[&[u8]] = &[
        b"card",
        b"visa",
        b"mastercard",
        b"amex",
        b"credit",
        b"debit",
        b"unionpay",
        b"maestro",
        b"karte",
        b"tarjeta",
        b"carte",
        b"carta",
        b"kaart",
    ];
    WORDS
        .iter()
        .any(|w| before.windows(w.len()).any(|x| x == *w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrails_luhn_known_values() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"378282246310005"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b""));
        assert!(!luhn(b"41x1"));
    }
}
