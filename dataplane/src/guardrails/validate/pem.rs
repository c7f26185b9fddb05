//! PEM private keys: where a `-----BEGIN … PRIVATE KEY-----` block ends, and whether it holds
//! key material.

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
