//! IBANs: registered lengths per country and the mod-97 check.

use super::char_after;

/// IBAN lengths per country (ISO 13616 registry): SEPA and other common countries.
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// Registered IBAN length for a country code.
pub(crate) fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| *c == country)
        .map(|(_, n)| *n)
}

/// ISO 13616 / ISO 7064 mod-97-10 check over an IBAN without spaces (upper-case ASCII).
pub(crate) fn iban_mod97(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in iban[4..].iter().chain(iban[..4].iter()) {
        rem = match b {
            b'0'..=b'9' => (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(b - b'A' + 10)) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// IBAN candidate starting at `start`: takes exactly the registered number of characters for the
/// country (single spaces allowed between them), checks mod 97 and that the IBAN ends there.
pub(crate) fn iban(text: &str, start: usize, end: usize) -> Option<usize> {
    let cand = text.get(start..end)?;
    let country = cand.get(..2)?;
    let want = iban_length(country)?;
    let mut compact = Vec::with_capacity(want);
    let mut pos = 0;
    let mut prev_space = false;
    for (i, c) in cand.char_indices() {
        if compact.len() == want {
            break;
        }
        if c == ' ' {
            // Printed form: groups of four separated by single spaces.
            if prev_space || compact.is_empty() || !compact.len().is_multiple_of(4) {
                return None;
            }
            prev_space = true;
            continue;
        }
        prev_space = false;
        if !(c.is_ascii_uppercase() || c.is_ascii_digit()) {
            return None;
        }
        compact.push(c as u8);
        pos = i + 1;
    }
    if compact.len() != want || !compact[2..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let iban_end = start + pos;
    if char_after(text, iban_end).is_some_and(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    iban_mod97(&compact).then_some(iban_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrails_iban_mod97_known_values() {
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(!iban_mod97(b"DE88370400440532013000"));
        assert!(!iban_mod97(b"DE8"));
        assert!(!iban_mod97(b"de89370400440532013000"));
    }

    #[test]
    fn guardrails_iban_trims_to_country_length() {
        let t = "IBAN DE89 3704 0044 0532 0130 00 EUR";
        let start = 5;
        let end = t.len() - 4 + 4; // greedy candidate may run into "EUR"
        assert_eq!(
            iban(t, start, end),
            Some(start + "DE89 3704 0044 0532 0130 00".len())
        );
    }
}
