//! The detector table: one regex per rule, the literals that gate it, and the validator that
//! accepts or rejects each candidate. Order is priority: when two findings cover exactly the same
//! bytes the earlier (more specific) detector names the finding.
//!
//! Patterns use ASCII word boundaries `(?-u:\b)` and ASCII classes only, so the regex engine
//! stays on its DFA paths for any input, including non-ASCII text.

use super::Category;
use super::validate::PhoneRule;

/// How a regex candidate is turned into a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Accept as is.
    None,
    /// The token must not continue: the next char is outside the token alphabet.
    EndB64url,
    /// As `EndB64url`, for standard base64 (`+` and `/`).
    EndB64,
    /// At least two of lower, upper and digits (random-looking).
    Random,
    /// AWS key id: `AKIA…` as is; other prefixes need a digit (so `ASIAPACIFICSUMMITXXXX` is prose).
    AwsKeyId,
    /// AWS secret key: 40 base64 chars, random-looking, not followed by more base64.
    AwsSecret,
    /// Slack token: must contain a digit (real tokens have numeric team/user ids).
    HasDigit,
    /// Azure SAS `sig=`: the URL also has an `sv=` (signed version) parameter.
    AzureSas,
    /// `password=`/`token:` assignments: key exclusions and value placeholder rules.
    Assignment,
    /// Password inside a URL: not a placeholder.
    UrlPassword,
    /// Authorization header value: not a placeholder, not a constant reference.
    HeaderCredential,
    /// OpenAI-style `sk-…` legacy key: letters and digits.
    LegacySk,
    /// PEM private key: the match is the BEGIN line; the finding runs through the matching
    /// END line, or over the header lines and base64 body when there is none (truncated paste).
    Pem,
    /// Email address rules.
    Email,
    /// Phone number rules.
    Phone(PhoneRule),
    /// Payment card: issuer prefix, length, grouping and Luhn.
    Luhn,
    /// IBAN: registered country length and mod-97.
    Iban,
}

/// Where a detector's regex runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole text, when one of its anchors occurs.
    Text,
    /// Only windows around occurrences of its anchors (from 4 bytes before an anchor to
    /// [`WINDOW_AFTER`] bytes after it), for rules whose match starts at most a few bytes before
    /// the anchor and is bounded in length. The regex runs on the ASCII-lower-cased text (same
    /// offsets; its literals are lower case, so it gets a fast literal prefilter); validation
    /// reads the original text.
    Windows,
    /// Only runs of `[0-9A-Z .()+/-]` holding at least `min_digits` digits (phone numbers,
    /// cards, IBANs consist of those characters only).
    DigitRuns,
}

/// Bytes after an anchor that a windowed rule's match can reach (keyword tail, quotes,
/// `[ \t]{0,8}`, separator, `[ \t]{0,8}`, a value of at most 200 chars and its quote).
pub(crate) const WINDOW_AFTER: usize = 300;

/// A detector as written in the table.
#[derive(Debug)]
pub(crate) struct Spec {
    pub kind: &'static str,
    pub category: Category,
    pub pattern: &'static str,
    pub scope: Scope,
    /// Lower-case ASCII literals, matched against the ASCII-lower-cased text; the regex runs only
    /// if one occurs. Single-byte anchors are searched with `memchr`.
    pub anchors: &'static [&'static str],
    /// For `DigitRuns`: digits a run needs.
    pub min_digits: usize,
    pub check: Check,
}

const fn secret(
    kind: &'static str,
    pattern: &'static str,
    anchors: &'static [&'static str],
    check: Check,
) -> Spec {
    Spec {
        kind,
        category: Category::Secrets,
        pattern,
        scope: Scope::Text,
        anchors,
        min_digits: 0,
        check,
    }
}

const fn windowed(pattern: &'static str, anchors: &'static [&'static str]) -> Spec {
    Spec {
        kind: "generic_secret",
        category: Category::Secrets,
        pattern,
        scope: Scope::Windows,
        anchors,
        min_digits: 0,
        check: Check::Assignment,
    }
}

const fn digits(
    kind: &'static str,
    pattern: &'static str,
    min_digits: usize,
    check: Check,
) -> Spec {
    Spec {
        kind,
        category: Category::Pii,
        pattern,
        scope: Scope::DigitRuns,
        anchors: &[],
        min_digits,
        check,
    }
}

pub(crate) static SPECS: &[Spec] = &[
    // ---- cloud providers ----
    secret(
        "aws_access_key_id",
        r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
        &["akia", "asia", "abia", "acca"],
        Check::AwsKeyId,
    ),
    secret(
        "aws_secret_access_key",
        r#"(?i-u:aws[_-]?secret[_-]?access[_-]?key|aws[_-]?secret[_-]?key|secret[_-]?access[_-]?key)\\?["']?[ \t]{0,8}(?:=|:|=>)[ \t]{0,8}\\?["']?(?P<v>[A-Za-z0-9/+]{40})"#,
        &[
            "secret_access",
            "secret-access",
            "secretaccess",
            "secret_key",
            "secret-key",
            "secretkey",
        ],
        Check::AwsSecret,
    ),
    secret(
        "gcp_service_account_key",
        r#""private_key"[ \t]*:[ \t]*"(?P<v>-----BEGIN PRIVATE KEY-----(?:\\[nr]|[A-Za-z0-9+/=\r\n])+-----END PRIVATE KEY-----(?:\\n)?)""#,
        &["\"private_key\""],
        Check::None,
    ),
    secret(
        "gcp_api_key",
        r"(?-u:\b)AIza[0-9A-Za-z_-]{35}",
        &["aiza"],
        Check::EndB64url,
    ),
    secret(
        "google_oauth_client_secret",
        r"(?-u:\b)GOCSPX-[0-9A-Za-z_-]{28}",
        &["gocspx-"],
        Check::EndB64url,
    ),
    secret(
        "azure_storage_account_key",
        r#"(?i-u:AccountKey[ \t]*=|account[_-]?key\\?["']?[ \t]*[:=]|--account-key[ \t=]+)[ \t]*\\?["']?(?P<v>[A-Za-z0-9+/]{86}==)"#,
        &["accountkey", "account_key", "account-key"],
        Check::EndB64,
    ),
    secret(
        "azure_shared_access_key",
        r"(?i-u:SharedAccessKey)[ \t]*=[ \t]*(?P<v>[A-Za-z0-9+/]{43}=)",
        &["sharedaccesskey"],
        Check::EndB64,
    ),
    secret(
        "azure_sas_token",
        r"[?&]sig=(?P<v>[A-Za-z0-9%+/]{30,120}(?:%3[Dd]|=){0,2})",
        &["sig="],
        Check::AzureSas,
    ),
    // ---- code hosting and collaboration ----
    secret(
        "github_token",
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})(?-u:\b)",
        &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        Check::None,
    ),
    secret(
        "gitlab_token",
        r"(?-u:\b)gl(?:pat|dt|rt|ptt)-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*",
        &["glpat-", "gldt-", "glrt-", "glptt-"],
        Check::None,
    ),
    secret(
        "slack_token",
        r"(?-u:\b)xox[baprs]-[0-9A-Za-z-]{10,}",
        &["xox"],
        Check::HasDigit,
    ),
    secret(
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,}",
        &["hooks.slack.com"],
        Check::None,
    ),
    // ---- payment and AI providers ----
    secret(
        "stripe_secret_key",
        r"(?-u:\b)(?:sk|rk)_live_[0-9A-Za-z]{20,}(?-u:\b)",
        &["_live_"],
        Check::None,
    ),
    secret(
        "anthropic_api_key",
        r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{32,}",
        &["sk-ant-"],
        Check::None,
    ),
    secret(
        "openrouter_api_key",
        r"(?-u:\b)sk-or-v1-[0-9a-f]{64}(?-u:\b)",
        &["sk-or-"],
        Check::None,
    ),
    secret(
        "openai_api_key",
        r"(?-u:\b)sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|(?P<legacy>[A-Za-z0-9]{32,}))",
        &["sk-"],
        Check::LegacySk,
    ),
    secret(
        "huggingface_token",
        r"(?-u:\b)hf_[A-Za-z0-9]{34,40}(?-u:\b)",
        &["hf_"],
        Check::Random,
    ),
    secret(
        "npm_token",
        r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)",
        &["npm_"],
        Check::Random,
    ),
    // ---- structured tokens and keys ----
    secret(
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.ey[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{10,}",
        &["eyj"],
        Check::None,
    ),
    secret(
        "private_key",
        r"-----BEGIN[ A-Z0-9]{0,24}PRIVATE KEY(?: BLOCK)?-----",
        &["-----begin"],
        Check::Pem,
    ),
    secret(
        "private_key",
        r"PuTTY-User-Key-File-[0-9]:(?s:.*?)Private-MAC: [0-9a-fA-F]+",
        &["putty-user-key-file"],
        Check::None,
    ),
    // ---- credentials in URLs and headers ----
    secret(
        "connection_string",
        r#"(?i-u:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|cockroachdb|clickhouse|jdbc:[a-z0-9]+|ftps?|sftp|smtps?|ldaps?|https?|nats|kafka|couchbases?|neo4j(?:\+s)?|bolt)://[^\s:/@"'<>]*:(?P<v>[^\s/"'<>]+)@[^\s/"'@<>:]+"#,
        &["://"],
        Check::UrlPassword,
    ),
    secret(
        "bearer_token",
        r#"(?i-u:authorization)\\?["']?[ \t]*[:=][ \t]*\\?["']?(?i-u:bearer)[ \t]+(?P<v>[A-Za-z0-9._~+/-]{8,}=*)"#,
        &["bearer"],
        Check::HeaderCredential,
    ),
    secret(
        "bearer_token",
        r"(?-u:\b)Bearer[ \t]+(?P<v>[A-Za-z0-9._~+/-]{20,}=*)",
        &["bearer"],
        Check::HeaderCredential,
    ),
    secret(
        "basic_auth",
        r#"(?i-u:authorization)\\?["']?[ \t]*[:=][ \t]*\\?["']?(?i-u:basic)[ \t]+(?P<v>[A-Za-z0-9+/]{8,}={0,2})"#,
        &["authorization"],
        Check::HeaderCredential,
    ),
    // ---- generic assignments (last: specific detectors win ties) ----
    // The regex starts at the keyword; the key name around it is read back from the text by
    // the `Assignment` check.
    windowed(
        concat!(
            r#"(?:(?P<pw>password|passwd|passphrase|pwd|secret|_pass)|(?P<tk>secret[_-]?key|api[_-]?key|apikey|access[_-]?key|private[_-]?key|signing[_-]?key|encryption[_-]?key|master[_-]?key|token|credentials?))"#,
            r#"\\?["']?[ \t]{0,8}(?:=|:=|:|=>)[ \t]{0,8}"#,
            r#"(?:\\?"(?P<v>[^"\r\n]+)"|'(?P<v2>[^'\r\n]+)'|(?P<v3>[^\s"'`,;&|<>(){}\[\]]+))"#
        ),
        &[
            "password",
            "passwd",
            "passphrase",
            "pwd",
            "secret",
            "_pass",
            "api_key",
            "api-key",
            "apikey",
            "access_key",
            "access-key",
            "accesskey",
            "private_key",
            "private-key",
            "privatekey",
            "signing",
            "encryption",
            "master",
            "token",
            "credential",
        ],
    ),
    windowed(
        concat!(
            r#"(?-u:\B)--(?:(?P<pw>password|passwd|secret|client-secret)|(?P<tk>token|api-key|apikey|access-key))"#,
            r"[ \t]{1,8}",
            r#"(?:\\?"(?P<v>[^"\r\n]+)"|'(?P<v2>[^'\r\n]+)'|(?P<v3>[^\s"'`,;&|<>(){}\[\]]+))"#
        ),
        &[
            "password",
            "passwd",
            "secret",
            "token",
            "api-key",
            "apikey",
            "access-key",
        ],
    ),
    // ---- PII ----
    Spec {
        kind: "email",
        category: Category::Pii,
        pattern: r"(?-u:\b)[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?-u:\b)",
        scope: Scope::Text,
        anchors: &["@"],
        min_digits: 0,
        check: Check::Email,
    },
    digits(
        "phone_number",
        r"\+[1-9][0-9 ().-]{6,24}[0-9]",
        8,
        Check::Phone(PhoneRule::International),
    ),
    digits(
        "phone_number",
        r"(?:\+?1[ .-])?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}",
        10,
        Check::Phone(PhoneRule::Nanp),
    ),
    digits(
        "phone_number",
        r"\(0[1-9][0-9]{0,4}\)[ ]?[0-9]{2,8}(?:[ .\-/][0-9]{2,8}){0,3}|0[1-9][0-9]{0,4}(?:[ .\-/][0-9]{2,8}){1,4}",
        9,
        Check::Phone(PhoneRule::Trunk),
    ),
    digits(
        "credit_card",
        r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
        13,
        Check::Luhn,
    ),
    digits(
        "iban",
        r"(?-u:\b)[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}",
        8,
        Check::Iban,
    ),
];

/// Key name prefixes that make an assignment something other than a credential
/// (`max_tokens`, `next_page_token`, `eos_token`, `CancellationToken`).
pub(crate) const EXCLUDED_KEY_PREFIXES: &[&str] = &[
    "max",
    "min",
    "num",
    "page",
    "next",
    "prev",
    "continuation",
    "eos",
    "bos",
    "pad",
    "unk",
    "sep",
    "cls",
    "mask",
    "total",
    "count",
    "cancellation",
    "sync",
    "csrf",
    "xsrf",
    "stop",
    "special",
    "start",
    "end",
    "input",
    "output",
    "prompt",
    "completion",
    "reasoning",
    "cached",
];
