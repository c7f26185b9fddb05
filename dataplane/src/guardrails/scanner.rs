//! The [`Scanner`]: compiles the detector table once, gates detectors with a single
//! Aho-Corasick pass over their anchor literals (on an ASCII-lower-cased copy, so the fast
//! case-sensitive SIMD searcher applies) and a pass that finds digit runs for the number-shaped
//! PII rules, runs each regex only where it can match, validates candidates and merges overlaps.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Captures, Regex, RegexBuilder};

use super::detectors::{Check, EXCLUDED_KEY_PREFIXES, SPECS, Scope, Spec, WINDOW_AFTER};
use super::validate::{self, char_after, looks_placeholder, looks_random};
use super::{Category, Finding};

/// A compiled detector.
#[derive(Debug)]
struct Detector {
    spec: &'static Spec,
    regex: Regex,
    /// Capture groups whose span is the finding (first one that participated wins); empty:
    /// the whole match.
    value_groups: Vec<usize>,
}

/// A validated candidate before overlap merging; `prio` is the detector's table index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw {
    pub finding: Finding,
    pub prio: usize,
}

/// Compiled secret and PII detectors. Build once with [`Scanner::new`] and share (it is `Send +
/// Sync`; wrap in an `Arc`).
#[derive(Debug)]
pub struct Scanner {
    detectors: Vec<Detector>,
    /// Multi-byte anchors of all detectors (lower case), leftmost-first.
    prefilter: Option<AhoCorasick>,
    /// Prefilter pattern id → detectors to run when it matches. Besides the pattern's own
    /// detectors this holds those of every anchor that can start inside it, since a
    /// non-overlapping search does not report those.
    triggers: Vec<Vec<usize>>,
    /// Single-byte anchors (searched with memchr) and their detectors.
    byte_anchors: Vec<(u8, Vec<usize>)>,
    /// Base64 payloads of data URIs (images pasted as text): findings inside are dropped.
    data_uri: Option<Regex>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

/// Compiles a pattern. The patterns are compile-time constants covered by
/// `guardrails_all_detectors_compile`; a failure is logged and the detector skipped rather than
/// taking the data plane down.
fn compile(kind: &str, pattern: &str) -> Option<Regex> {
    match RegexBuilder::new(pattern)
        .size_limit(32 * (1 << 20))
        .dfa_size_limit(16 * (1 << 20))
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(kind, error = %e, "guardrails: detector pattern does not compile");
            None
        }
    }
}

/// An occurrence of `b` can start inside an occurrence of `a` (at any offset).
fn starts_inside(a: &str, b: &str) -> bool {
    (0..a.len()).any(|k| {
        a.get(k..)
            .is_some_and(|tail| tail.starts_with(b) || b.starts_with(tail))
    })
}

/// Is this byte part of `[0-9A-Z .()+/-]` (what phone numbers, cards and IBANs are made of)?
fn in_digit_run(b: u8) -> bool {
    b.is_ascii_digit()
        || b.is_ascii_uppercase()
        || matches!(b, b' ' | b'.' | b'(' | b')' | b'+' | b'/' | b'-')
}

/// Index of the first ASCII digit at or after `from`, eight bytes at a time.
fn next_digit(b: &[u8], mut from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(from..from + 8) {
        let Ok(arr) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(arr);
        // Per-byte "0x2F < byte < 0x3A" without carries between bytes (bytes ≥ 0x80 excluded).
        let low7 = x & (LO * 127);
        let hits = (LO * (127 + 0x3A) - low7) & !x & (low7 + LO * (127 - 0x2F)) & HI;
        if hits != 0 {
            return Some(from + (hits.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    b.get(from..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| from + p)
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Sorts and merges overlapping or touching ranges.
fn merge_ranges(mut v: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    v.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

impl Scanner {
    /// Compiles every detector and the prefilter.
    pub fn new() -> Self {
        let mut detectors = Vec::with_capacity(SPECS.len());
        for spec in SPECS {
            let Some(regex) = compile(spec.kind, spec.pattern) else {
                continue;
            };
            let value_groups = regex
                .capture_names()
                .enumerate()
                .filter(|(_, n)| n.is_some_and(|n| n.starts_with('v')))
                .map(|(i, _)| i)
                .collect();
            detectors.push(Detector {
                spec,
                regex,
                value_groups,
            });
        }
        // Anchor → owning detectors.
        let mut owners: Vec<(String, Vec<usize>)> = Vec::new();
        let mut byte_anchors: Vec<(u8, Vec<usize>)> = Vec::new();
        for (i, d) in detectors.iter().enumerate() {
            for a in d.spec.anchors {
                let a = a.to_ascii_lowercase();
                if let [b] = a.as_bytes() {
                    match byte_anchors.iter_mut().find(|(x, _)| x == b) {
                        Some((_, v)) => v.push(i),
                        None => byte_anchors.push((*b, vec![i])),
                    }
                    continue;
                }
                match owners.iter_mut().find(|(x, _)| *x == a) {
                    Some((_, v)) => v.push(i),
                    None => owners.push((a, vec![i])),
                }
            }
        }
        // Longer anchors first: at one position the longest is reported.
        owners.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let triggers: Vec<Vec<usize>> = owners
            .iter()
            .map(|(a, _)| {
                let mut t: Vec<usize> = owners
                    .iter()
                    .filter(|(b, _)| starts_inside(a, b))
                    .flat_map(|(_, ds)| ds.iter().copied())
                    .collect();
                t.sort_unstable();
                t.dedup();
                t
            })
            .collect();
        let patterns: Vec<&str> = owners.iter().map(|(a, _)| a.as_str()).collect();
        let prefilter = match AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&patterns)
        {
            Ok(ac) => Some(ac),
            Err(e) => {
                tracing::error!(error = %e, "guardrails: prefilter does not build; scanning without it");
                None
            }
        };
        Scanner {
            detectors,
            prefilter,
            triggers,
            byte_anchors,
            data_uri: compile("data_uri", r";base64,[A-Za-z0-9+/=\r\n]{16,}"),
        }
    }

    /// Number of compiled detectors (every rule in the table, unless one failed to compile).
    pub fn detector_count(&self) -> usize {
        self.detectors.len()
    }

    /// Finds secrets and/or PII in `text`. Findings are sorted by start, never overlap (overlapping
    /// matches are merged into one finding covering all of them, named after the longest), and
    /// their offsets lie on char boundaries.
    pub fn scan(&self, text: &str, secrets: bool, pii: bool) -> Vec<Finding> {
        merge(self.scan_raw(text, secrets, pii))
    }

    /// Validated candidates before merging, in no particular order.
    pub(crate) fn scan_raw(&self, text: &str, secrets: bool, pii: bool) -> Vec<Raw> {
        let mut out = Vec::new();
        if text.is_empty() || !(secrets || pii) {
            return out;
        }
        let enabled = |d: &Detector| match d.spec.category {
            Category::Secrets => secrets,
            Category::Pii => pii,
        };
        let n = self.detectors.len();
        let mut want = vec![false; n];
        let mut windows: Vec<(usize, usize)> = Vec::new();
        let mut lower = String::new();
        // Every multi-byte anchor belongs to a secrets rule; PII uses `@` and digit runs.
        if secrets {
            match &self.prefilter {
                Some(ac) => {
                    lower = text.to_ascii_lowercase();
                    for m in ac.find_iter(lower.as_bytes()) {
                        let mut windowed = false;
                        for &i in &self.triggers[m.pattern().as_usize()] {
                            if enabled(&self.detectors[i]) {
                                want[i] = true;
                                windowed |= self.detectors[i].spec.scope == Scope::Windows;
                            }
                        }
                        if windowed {
                            windows.push((
                                floor_boundary(text, m.start().saturating_sub(4)),
                                ceil_boundary(text, m.end().saturating_add(WINDOW_AFTER)),
                            ));
                        }
                    }
                }
                None => {
                    lower = text.to_ascii_lowercase();
                    for (i, d) in self.detectors.iter().enumerate() {
                        if enabled(d) && d.spec.scope != Scope::DigitRuns {
                            want[i] = true;
                        }
                    }
                    windows.push((0, text.len()));
                }
            }
        }
        for (b, ds) in &self.byte_anchors {
            if ds.iter().any(|&i| enabled(&self.detectors[i]) && !want[i])
                && text.as_bytes().contains(b)
            {
                for &i in ds {
                    want[i] |= enabled(&self.detectors[i]);
                }
            }
        }
        let windows = merge_ranges(windows);
        let runs = if pii {
            self.digit_runs(text)
        } else {
            Vec::new()
        };
        for (i, d) in self.detectors.iter().enumerate() {
            match d.spec.scope {
                Scope::Text if want[i] => self.run(d, i, text, text, 0, text.len(), &mut out),
                Scope::Windows if want[i] => {
                    for &(s, e) in &windows {
                        self.run(d, i, &lower, text, s, e, &mut out);
                    }
                }
                Scope::DigitRuns if enabled(d) => {
                    for &(s, e, digits) in &runs {
                        if digits >= d.spec.min_digits {
                            self.run(d, i, text, text, s, e, &mut out);
                        }
                    }
                }
                _ => {}
            }
        }
        if !out.is_empty()
            && let Some(re) = &self.data_uri
            && text.contains(";base64,")
        {
            let blobs: Vec<(usize, usize)> =
                re.find_iter(text).map(|m| (m.start(), m.end())).collect();
            out.retain(|r| {
                !blobs
                    .iter()
                    .any(|&(s, e)| r.finding.start >= s && r.finding.end <= e)
            });
        }
        out
    }

    /// Maximal runs of `[0-9A-Z .()+/-]` with at least the smallest `min_digits` of the digit
    /// rules, widened by one char on each side so word-boundary assertions see the real
    /// neighbours. Returns (start, end, digit count).
    fn digit_runs(&self, text: &str) -> Vec<(usize, usize, usize)> {
        let min = self
            .detectors
            .iter()
            .filter(|d| d.spec.scope == Scope::DigitRuns)
            .map(|d| d.spec.min_digits)
            .min()
            .unwrap_or(usize::MAX);
        let mut runs = Vec::new();
        let bytes = text.as_bytes();
        let mut from = 0;
        let mut floor = 0;
        while let Some(j) = next_digit(bytes, from) {
            let mut start = j;
            while start > floor && in_digit_run(bytes[start - 1]) {
                start -= 1;
            }
            let mut end = j;
            let mut digits = 0;
            while end < bytes.len() && in_digit_run(bytes[end]) {
                digits += usize::from(bytes[end].is_ascii_digit());
                end += 1;
            }
            if digits >= min {
                runs.push((
                    floor_boundary(text, start.saturating_sub(1)),
                    ceil_boundary(text, end + 1),
                    digits,
                ));
            }
            floor = end;
            from = end + 1;
        }
        runs
    }

    /// Runs one detector's regex over `source[s..e]` and validates against `text` (`source` is
    /// `text` or its ASCII-lower-cased copy: same offsets).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        d: &Detector,
        prio: usize,
        source: &str,
        text: &str,
        s: usize,
        e: usize,
        out: &mut Vec<Raw>,
    ) {
        let Some(hay) = source.get(s..e) else { return };
        if d.value_groups.is_empty() && !needs_captures(d.spec.check) {
            for m in d.regex.find_iter(hay) {
                if let Some((start, end, kind)) = accept(d, text, s + m.start(), s + m.end(), None)
                {
                    out.push(raw(d, prio, start, end, kind));
                }
            }
        } else {
            for caps in d.regex.captures_iter(hay) {
                let span = d
                    .value_groups
                    .iter()
                    .find_map(|&g| caps.get(g))
                    .or_else(|| caps.get(0));
                let Some(span) = span else { continue };
                if let Some((start, end, kind)) = accept(
                    d,
                    text,
                    s + span.start(),
                    s + span.end(),
                    Some((&caps, s, e)),
                ) {
                    out.push(raw(d, prio, start, end, kind));
                }
            }
        }
    }
}

fn raw(d: &Detector, prio: usize, start: usize, end: usize, kind: &'static str) -> Raw {
    Raw {
        finding: Finding {
            category: d.spec.category,
            kind,
            start,
            end,
        },
        prio,
    }
}

fn needs_captures(check: Check) -> bool {
    matches!(check, Check::Assignment | Check::LegacySk)
}

/// Validates one candidate. Returns the (possibly narrowed) span and the finding kind.
fn accept(
    d: &Detector,
    text: &str,
    start: usize,
    end: usize,
    caps: Option<(&Captures<'_>, usize, usize)>,
) -> Option<(usize, usize, &'static str)> {
    let kind = d.spec.kind;
    let value = text.get(start..end)?;
    let ok = |b: bool| b.then_some((start, end, kind));
    match d.spec.check {
        Check::None => Some((start, end, kind)),
        Check::EndB64url => ok(!char_after(text, end).is_some_and(validate::is_b64url)),
        Check::EndB64 => ok(!char_after(text, end).is_some_and(validate::is_b64)),
        Check::Random => ok(looks_random(value)),
        Check::HasDigit => ok(value.bytes().any(|b| b.is_ascii_digit())),
        Check::AwsKeyId => {
            ok(value.starts_with("AKIA") || value.bytes().skip(4).any(|b| b.is_ascii_digit()))
        }
        Check::AwsSecret => {
            ok(!char_after(text, end).is_some_and(validate::is_b64) && looks_random(value))
        }
        Check::AzureSas => {
            let lo = start.saturating_sub(1024);
            let hi = end.saturating_add(1024).min(text.len());
            let around = text.as_bytes().get(lo..hi).unwrap_or_default();
            ok(around.windows(3).any(|w| w == b"sv="))
        }
        Check::LegacySk => {
            let legacy = caps.and_then(|(c, _, _)| c.name("legacy"));
            match legacy {
                None => Some((start, end, kind)),
                Some(l) => {
                    let c = validate::classes(l.as_str());
                    ok((c.lower || c.upper)
                        && c.digit
                        && !char_after(text, end).is_some_and(|c| c == '-' || c == '_'))
                }
            }
        }
        Check::UrlPassword => ok(value.chars().count() >= 3 && !looks_placeholder(value)),
        Check::HeaderCredential => ok(looks_random(value) && !looks_placeholder(value)),
        Check::Assignment => {
            let (caps, offset, window_end) = caps?;
            assignment(text, start, end, caps, offset, window_end)
        }
        Check::Pem => validate::pem_end(text, start, end).map(|e| (start, e, kind)),
        Check::Email => ok(validate::email(text, start, end)),
        Check::Phone(rule) => validate::phone(text, start, end, rule).map(|e| (start, e, kind)),
        Check::Luhn => validate::credit_card(text, start, end).map(|e| (start, e, kind)),
        Check::Iban => validate::iban(text, start, end).map(|e| (start, e, kind)),
    }
}

/// Last word of a key name: `next_page` → `page`, `nextPage` → `page`.
fn last_key_word(prefix: &str) -> String {
    let seg = prefix
        .rsplit(['_', '-', '.'])
        .find(|s| !s.is_empty())
        .unwrap_or("");
    let cut = seg
        .char_indices()
        .filter(|(i, c)| *i > 0 && c.is_ascii_uppercase())
        .map(|(i, _)| i)
        .next_back()
        .unwrap_or(0);
    seg.get(cut..).unwrap_or(seg).to_ascii_lowercase()
}

/// Generic `key = value` assignment rules (documented in the module docs). The captures refer
/// to the haystack `text[offset..window_end]`.
fn assignment(
    text: &str,
    start: usize,
    end: usize,
    caps: &Captures<'_>,
    offset: usize,
    window_end: usize,
) -> Option<(usize, usize, &'static str)> {
    let (kw, password_like) = match (caps.name("pw"), caps.name("tk")) {
        (Some(k), _) => (k, true),
        (None, Some(k)) => (k, false),
        (None, None) => return None,
    };
    let keyword = kw.as_str();
    let kw_start = offset + kw.start();
    // The key name is the run of `[A-Za-z0-9_.-]` ending with the keyword (at most 40 chars
    // before it).
    let before = text.get(..kw_start)?;
    let prefix_len = before
        .bytes()
        .rev()
        .take(41)
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    if prefix_len > 40 {
        return None;
    }
    let key_start = kw_start - prefix_len;
    // `https://x-access-token:<token>@host`: the URL rule (or the token's own rule) owns it.
    if validate::in_url_authority(text, key_start) {
        return None;
    }
    let prefix = text.get(key_start..kw_start)?;
    // `_pass` only as the tail of a longer key (`db_pass`, `SMTP_PASS`).
    if keyword == "_pass" && !prefix.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let quoted = caps.name("v3").is_none();
    let mut end = end;
    // A JSON-escaped closing quote (`\"`) leaves a backslash; bare values lose sentence
    // punctuation.
    loop {
        let v = text.get(start..end)?;
        let trim = v.ends_with('\\') || (!quoted && v.ends_with(['.', ':', '!', '?']));
        if !trim || end <= start + 1 {
            break;
        }
        end -= 1;
    }
    // Bare values stop at an escaped line break (`…\r\nNext-Header: …` inside a string literal).
    if !quoted
        && let Some(cut) = text
            .get(start..end)?
            .find("\\r")
            .into_iter()
            .chain(text.get(start..end)?.find("\\n"))
            .min()
    {
        end = start + cut;
    }
    let value = text.get(start..end)?;
    // Values are at most 200 chars; one that runs into the end of its window is longer.
    let truncated = offset + caps.get(0)?.end() >= window_end && window_end < text.len();
    if truncated || value.chars().count() > 200 {
        return None;
    }
    let word = last_key_word(prefix);
    if EXCLUDED_KEY_PREFIXES.contains(&word.as_str()) {
        return None;
    }
    let n = value.chars().count();
    if password_like {
        if n < 6 || value.matches(' ').count() > 3 {
            return None;
        }
    } else if n < 12 || value.contains(char::is_whitespace) || !looks_random(value) {
        return None;
    }
    if looks_placeholder(value) {
        return None;
    }
    if !quoted && looks_like_code(value) {
        return None;
    }
    if !quoted {
        // `name: Type = …`, `key: Vec<…>`, `token: make(…)`: a type or a call, not a value.
        let after = text
            .get(end..)
            .unwrap_or("")
            .trim_start_matches([' ', '\t']);
        if after.starts_with(['<', '(', '['])
            || (after.starts_with('=') && !after.starts_with("=="))
        {
            return None;
        }
    }
    // A value naming its own key (`"CLIENT_TRAFFIC_SECRET"`, `secure%20password`,
    // `MI_UserCredentials_0`) is a label or a constant, not a credential.
    if value.to_ascii_lowercase().contains(
        keyword
            .trim_start_matches('_')
            .to_ascii_lowercase()
            .as_str(),
    ) {
        return None;
    }
    // Shell parameter expansion: `${SECRET:-default}`.
    if text.get(..key_start).is_some_and(|b| b.ends_with("${")) {
        return None;
    }
    let lower = keyword.to_ascii_lowercase();
    let kind = if lower.contains("pass") || lower == "pwd" {
        "password"
    } else {
        "generic_secret"
    };
    Some((start, end, kind))
}

/// A bare (unquoted) value that is code rather than a literal: a word or identifier
/// (`userPassword`, `DB_PASSWORD`, `_bindgen_ty_7`), a path or member access (`std::string::String`,
/// `config.db.password`, `self.0.split_off`), or the tail of `::` (`token::Error`).
fn looks_like_code(v: &str) -> bool {
    let ident = |s: &str| {
        let mut cs = s.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if v.starts_with([':', '*', '&']) || v.contains("::") {
        return true;
    }
    // Numeric literals: 0x0017, 0b1010, 1_000_000.
    if v.len() > 2
        && (v.starts_with("0x") || v.starts_with("0b") || v.starts_with("0o"))
        && v[2..].bytes().all(|b| b.is_ascii_hexdigit() || b == b'_')
    {
        return true;
    }
    // Letters only (with `_`/`.`): a word or a reference.
    if v.chars()
        .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
    {
        return true;
    }
    // Member access: identifier segments (or indices) joined by dots.
    let segs: Vec<&str> = v.split('.').collect();
    if segs.len() >= 2
        && segs
            .iter()
            .all(|s| ident(s) || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())))
        && segs.iter().any(|s| ident(s))
    {
        return true;
    }
    // snake_case or SCREAMING_CASE identifier.
    if ident(v) && v.contains('_') {
        let c = validate::classes(v);
        if !(c.lower && c.upper) {
            return true;
        }
    }
    false
}

/// Merges overlapping candidates into one finding spanning all of them, named after the longest
/// (ties: the earlier, more specific detector). Output is sorted by start.
pub(crate) fn merge(mut raws: Vec<Raw>) -> Vec<Finding> {
    raws.sort_by(|a, b| {
        a.finding
            .start
            .cmp(&b.finding.start)
            .then((b.finding.end - b.finding.start).cmp(&(a.finding.end - a.finding.start)))
            .then(a.prio.cmp(&b.prio))
    });
    let mut out: Vec<(Finding, usize, usize)> = Vec::with_capacity(raws.len());
    for r in raws {
        let f = r.finding;
        let len = f.end.saturating_sub(f.start);
        if let Some((last, best_len, best_prio)) = out.last_mut()
            && f.start < last.end
        {
            last.end = last.end.max(f.end);
            if len > *best_len || (len == *best_len && r.prio < *best_prio) {
                last.kind = f.kind;
                last.category = f.category;
                *best_len = len;
                *best_prio = r.prio;
            }
            continue;
        }
        out.push((f, len, r.prio));
    }
    out.into_iter().map(|(f, _, _)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrails_all_detectors_compile() {
        let s = Scanner::new();
        assert_eq!(s.detector_count(), SPECS.len());
        assert!(s.prefilter.is_some());
        assert!(s.data_uri.is_some());
    }

    #[test]
    fn guardrails_next_digit_matches_naive() {
        let samples: [&[u8]; 6] = [
            b"",
            b"abc",
            b"abcdefgh9",
            b"/:/:/:/:/:/:/:0",
            "é€ü日本語 x 7 y".as_bytes(),
            b"0123456789",
        ];
        for s in samples {
            for from in 0..=s.len() + 1 {
                let naive = s
                    .get(from..)
                    .and_then(|r| r.iter().position(u8::is_ascii_digit).map(|p| from + p));
                assert_eq!(next_digit(s, from), naive, "{s:?} from {from}");
            }
        }
        for b in 0..=255u8 {
            let s = [b'a', b'a', b, b'a', b'a', b'a', b'a', b'a', b'a'];
            assert_eq!(next_digit(&s, 0), b.is_ascii_digit().then_some(2), "{b}");
        }
    }

    #[test]
    fn guardrails_multibyte_anchors_are_secrets_only() {
        // `scan_raw` skips the prefilter pass when secrets are off; that is only sound if no PII
        // rule relies on a multi-byte anchor.
        for spec in SPECS {
            if spec.category == Category::Pii {
                assert!(spec.anchors.iter().all(|a| a.len() == 1), "{}", spec.kind);
            }
            assert!(
                spec.anchors.iter().all(|a| *a == a.to_ascii_lowercase()),
                "{}: anchors are matched on lower-cased text",
                spec.kind
            );
        }
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Scanner>();
    }

    #[test]
    fn guardrails_prefilter_reports_hidden_anchors() {
        // `_pass` hides `password` in a leftmost-first search; its triggers must include the
        // generic rule anyway, and `secret_access` (AWS) must trigger the generic rule too.
        assert!(starts_inside("_pass", "password"));
        assert!(starts_inside("secret_access", "secret"));
        assert!(starts_inside("secret_access", "access_key"));
        assert!(!starts_inside("token", "password"));
        let s = Scanner::new();
        let found = s.scan("db_password = Zq8!mK2#", true, false);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, "password");
        let t = "my_secret_access_key: Zx81kQ9pW2mR7tY3";
        let found = s.scan(t, true, false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(&t[found[0].start..found[0].end], "Zx81kQ9pW2mR7tY3");
    }

    #[test]
    fn guardrails_key_word() {
        assert_eq!(last_key_word("next_page_"), "page");
        assert_eq!(last_key_word("nextPage"), "page");
        assert_eq!(last_key_word("Cancellation"), "cancellation");
        assert_eq!(last_key_word("backend_"), "backend");
        assert_eq!(last_key_word(""), "");
    }

    #[test]
    fn guardrails_merge_unions_and_names_after_longest() {
        let f = |kind, start, end| Raw {
            finding: Finding {
                category: Category::Secrets,
                kind,
                start,
                end,
            },
            prio: 0,
        };
        let merged = merge(vec![f("b", 5, 20), f("a", 0, 10), f("c", 30, 35)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            (merged[0].start, merged[0].end, merged[0].kind),
            (0, 20, "b")
        );
        assert_eq!((merged[1].start, merged[1].end), (30, 35));
    }
}
