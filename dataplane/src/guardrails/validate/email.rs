//! Email addresses, and the `user:pass@host` authority of a URL that only looks like one.

use super::char_before;

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
