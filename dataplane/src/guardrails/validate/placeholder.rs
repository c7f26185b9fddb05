//! Placeholders, templates and references that stand where a credential would be.

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
}
