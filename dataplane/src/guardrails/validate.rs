//! Validators that turn a regex candidate into a finding (or reject it): checksums, boundaries,
//! separator rules and placeholder filters. Every function here is total: it never panics on any
//! input, and every offset it returns lies on a char boundary of the text it was given.

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

/// Longest PEM body an END line is looked for across (a 4096-bit RSA key is ~3.3 KB, PGP
/// private key blocks a few KB more).
const PEM_MAX_BODY: usize = 32 * 1024;

/// A PEM body holds at least one unbroken run of 40+ base64 characters (a full or partial line
/// of key material). Prose, empty bodies and regexes that merely mention a BEGIN line do not.
fn pem_body_ok(body: &[u8]) -> bool {
    let mut run = 0;
    for &c in body {
        if c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=' {
            run += 1;
            if run >= 40 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// End of a PEM private key whose BEGIN line is `text[start..header_end]`: through the END line
/// with the same label (or any `-----END …PRIVATE KEY…-----`) within [`PEM_MAX_BODY`] bytes, else
/// (a truncated paste) over the encapsulated headers and base64 body that follow. Newlines may
/// be real or JSON-escaped (`\n`). `None` when there is no key material.
pub(crate) fn pem_end(text: &str, start: usize, header_end: usize) -> Option<usize> {
    let header = text.get(start..header_end)?;
    let b = text.as_bytes();
    let window_end = header_end.saturating_add(PEM_MAX_BODY).min(b.len());
    let rest = b.get(header_end..window_end)?;
    let label = header
        .trim_start_matches("-----BEGIN")
        .trim_end_matches("-----");
    let exact = format!("-----END{label}-----");
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut end_at = find(rest, exact.as_bytes()).map(|i| (i, i + exact.len()));
    if end_at.is_none() {
        let mut from = 0;
        while let Some(i) = rest.get(from..).and_then(|r| find(r, b"-----END")) {
            let at = from + i + "-----END".len();
            let line = &rest[at..rest.len().min(at + 64)];
            if let Some(close) = find(line, b"-----")
                && find(&line[..close], b"PRIVATE KEY").is_some()
            {
                end_at = Some((from + i, at + close + "-----".len()));
                break;
            }
            from = at;
        }
    }
    if let Some((body_end, end)) = end_at
        && pem_body_ok(&rest[..body_end])
    {
        return Some(header_end + end);
    }
    // No END: encapsulated headers (`Proc-Type: 4,ENCRYPTED`), then the base64 body.
    let mut i = header_end;
    let newline = |i: usize| -> usize {
        match (b.get(i), b.get(i + 1)) {
            (Some(b'\r'), Some(b'\n')) => 2,
            (Some(b'\n'), _) => 1,
            (Some(b'\\'), Some(b'n' | b'r')) => 2,
            _ => 0,
        }
    };
    i += newline(i);
    loop {
        let name_len = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphabetic() || **c == b'-')
            .count();
        if name_len == 0 || b.get(i + name_len..i + name_len + 2) != Some(b": ") {
            break;
        }
        let mut j = i + name_len + 2;
        while j < b.len() && newline(j) == 0 {
            j += 1;
        }
        i = j + newline(j);
    }
    loop {
        let nl = newline(i);
        if nl > 0 {
            i += nl;
        } else if b
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        {
            i += 1;
        } else {
            break;
        }
    }
    // Do not swallow a trailing newline.
    while i > header_end && matches!(b.get(i - 1), Some(b'\n' | b'\r')) {
        i -= 1;
    }
    if i >= header_end + 2 && b.get(i - 2..i) == Some(b"\\n") {
        i -= 2;
    }
    pem_body_ok(&b[header_end..i]).then_some(i)
}

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

/// Email candidate. Rejects image-density suffixes (`icon@2x.png`), file extensions as TLDs,
/// `git@host` SSH remotes and malformed dots.
pub(crate) fn email(text: &str, start: usize, end: usize) -> bool {
    let Some(cand) = text.get(start..end) else {
        return false;
    };
    let Some((local, domain)) = cand.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.ends_with('.') || local.contains("..") || local == "git" {
        return false;
    }
    // Locale names with a modifier: `sd_IN@devanagari.UTF-8`.
    let lb = local.as_bytes();
    if lb.len() == 5
        && lb[2] == b'_'
        && lb[..2].iter().all(u8::is_ascii_lowercase)
        && lb[3..].iter().all(u8::is_ascii_uppercase)
    {
        return false;
    }
    let first_label = domain.split('.').next().unwrap_or("");
    if first_label.len() >= 2
        && first_label.ends_with(['x', 'X'])
        && first_label[..first_label.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let tld = domain.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    const FILE_EXTS: &[&str] = &[
        "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "js", "mjs", "ts",
        "tsx", "jsx", "css", "scss", "json", "yaml", "yml", "toml", "lock", "txt", "html", "htm",
        "xml", "pdf", "zip", "gz", "tgz", "wasm", "map", "rs", "go", "java", "kt",
    ];
    if FILE_EXTS.contains(&tld.as_str()) {
        return false;
    }
    if matches!(char_before(text, start), Some('@')) {
        return false;
    }
    !in_url_authority(text, start)
}

/// `start` lies in the authority of a URL (`scheme://user:pass@host`): the `user:pass@host` part
/// is a credential and a host, not an email address.
pub(crate) fn in_url_authority(text: &str, start: usize) -> bool {
    let Some(before) = text.get(..start) else {
        return false;
    };
    // The token that `start` belongs to, looking back at most 512 bytes.
    let token_start = before
        .char_indices()
        .rev()
        .take(512)
        .find(|(_, c)| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '(' | '`'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let token = &before[token_start..];
    match token.rfind("://") {
        Some(i) => !token[i + 3..].contains(['/', '?', '#']),
        None => false,
    }
}

/// Placeholder, template or reference rather than a literal credential.
pub(crate) fn looks_placeholder(v: &str) -> bool {
    let t = v.trim();
    if t.is_empty() {
        return true;
    }
    // Templates and references: $VAR, ${VAR}, %s, %(name)s, {{x}}, {x}, <x>, [x], !Ref, @Value.
    if t.starts_with(['$', '%', '{', '<', '[', '!', '@', '#'])
        || t.ends_with(['>', '}'])
        || t.contains("{{")
    {
        return true;
    }
    let lower = t.to_ascii_lowercase();
    const REFS: &[&str] = &[
        "process.env",
        "os.environ",
        "os.getenv",
        "getenv(",
        "env(",
        "env[",
        "vault:",
        "secretsmanager",
        "keyvault",
        "://",
    ];
    if REFS.iter().any(|r| lower.contains(r)) {
        return true;
    }
    // Filesystem paths.
    if t.starts_with('/') || t.starts_with("~/") || t.starts_with("./") || t.starts_with("..") {
        return true;
    }
    // Masks: ****, xxxx, ••••, ...., ----, ____.
    let distinct = {
        let mut seen: Vec<char> = Vec::new();
        for c in t.chars() {
            if !seen.contains(&c) {
                seen.push(c);
            }
            if seen.len() > 3 {
                break;
            }
        }
        seen.len()
    };
    if distinct < 3
        || t.chars()
            .all(|c| matches!(c, '*' | 'x' | 'X' | '•' | '.' | '-' | '_' | '?' | '#'))
    {
        return true;
    }
    let squashed: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    const EXACT: &[&str] = &[
        "password",
        "passwd",
        "pass",
        "secret",
        "changeme",
        "changeit",
        "example",
        "sample",
        "test",
        "testing",
        "dummy",
        "placeholder",
        "redacted",
        "hidden",
        "masked",
        "none",
        "null",
        "nil",
        "undefined",
        "true",
        "false",
        "empty",
        "default",
        "required",
        "optional",
        "string",
        "value",
        "token",
        "apikey",
        "mypassword",
        "mysecret",
        "mytoken",
        "secretkey",
        "accesstoken",
        "todo",
        "tbd",
        "fixme",
        "notset",
        "unset",
        "foobar",
        "letmein",
    ];
    if EXACT.contains(&squashed.as_str()) {
        return true;
    }
    const CONTAINS: &[&str] = &[
        "changeme",
        "placeholder",
        "redacted",
        "example",
        "yourpassword",
        "yourpass",
        "yoursecret",
        "yourtoken",
        "yourapikey",
        "yourkey",
        "yourapi",
        "youraccess",
        "insertyour",
        "replaceme",
        "replacewith",
        "notreal",
        "fakepassword",
        "faketoken",
        "dummy",
    ];
    if CONTAINS.iter().any(|p| squashed.contains(p)) {
        return true;
    }
    // Mostly x's: `xxxx-xxxx-1234`, `sk-xxxxxxxxxxxxxxxx`.
    let xs = squashed.bytes().filter(|&b| b == b'x').count();
    xs >= 4 && xs * 2 >= squashed.len()
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

    #[test]
    fn guardrails_placeholders() {
        for p in [
            "****",
            "<password>",
            "${DB_PASSWORD}",
            "$PASS",
            "changeme",
            "your_password_here",
            "xxxxxxxx",
            "%s",
            "{{ secret }}",
            "os.environ['X']",
            "null",
            "REDACTED",
            "/etc/secret",
            "xxxx-xxxx-1234",
        ] {
            assert!(looks_placeholder(p), "{p}");
        }
        for v in ["hunter2!", "S3cr3t-P4ss", "q8Zr2pL0vX", "PgEXXXX3bch698K7"] {
            assert!(!looks_placeholder(v), "{v}");
        }
    }

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
