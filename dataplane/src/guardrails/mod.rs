//! Secret and PII detection, redaction and blocking on prompts (request path step 6).
//!
//! Build one [`Scanner`] at start-up (`Scanner::new()` compiles every pattern once) and share it
//! behind an `Arc`; per request call [`apply`] with the workspace's [`Policy`].
//!
//! # Cost on the hot path
//!
//! `scan` makes one Aho-Corasick pass (SIMD, case-sensitive, leftmost-first) over an
//! ASCII-lower-cased copy of the text looking for the detectors' anchor literals (`ghp_`,
//! `akia`, `-----begin`, `password`, `token`, `://`, …; `@` via memchr), and one pass that
//! finds runs of `[0-9A-Z .()+/-]` holding enough digits. Only detectors whose anchor occurs run
//! their regex (the generic `key = value` rule only in windows around its keywords), and the
//! number-shaped PII rules run only on the digit runs. Text without anchors or digit runs costs
//! those two passes. All patterns use ASCII classes and ASCII word boundaries so the regex
//! engine stays on its DFA paths for non-ASCII text.
//!
//! # Rules
//!
//! Findings are byte ranges on char boundaries. Overlapping findings are merged into one range
//! covering all of them, named after the longest (ties: the more specific detector). For
//! key/value rules only the value is the finding, so redaction keeps `password=[REDACTED:password]`.
//!
//! **Secrets** (kind — rule):
//! - `aws_access_key_id` — `AKIA|ASIA|ABIA|ACCA` + 16 `[A-Z0-9]`, whole word; non-`AKIA` prefixes
//!   need a digit (so capitalised prose like `ASIAPACIFIC…` is not a key).
//! - `aws_secret_access_key` — 40 base64 chars after `aws_secret_access_key`, `aws_secret_key`,
//!   `secret_access_key`, `SecretAccessKey` (any case, `-`/`_`, `=`/`:`/`=>`, optional quotes),
//!   not followed by more base64, mixed character classes, not a placeholder.
//! - `gcp_service_account_key` — the PEM in a service-account JSON `"private_key": "-----BEGIN
//!   PRIVATE KEY-----\n…-----END PRIVATE KEY-----\n"` (escaped or real newlines).
//! - `gcp_api_key` — `AIza` + exactly 35 base64url chars.
//! - `google_oauth_client_secret` — `GOCSPX-` + 28 base64url chars (legacy secrets are caught by
//!   the `client_secret` assignment rule).
//! - `azure_storage_account_key` — 88-char base64 (`…==`) after `AccountKey=` (connection
//!   strings), `account_key:`/`accountKey=`, or `--account-key`.
//! - `azure_shared_access_key` — 44-char base64 after `SharedAccessKey=` (Service Bus, Event Hubs).
//! - `azure_sas_token` — the `sig=` value of a URL that also carries `sv=`.
//! - `github_token` — `ghp_|gho_|ghu_|ghs_|ghr_` + ≥ 36 alphanumerics; `github_pat_` + ≥ 22.
//! - `gitlab_token` — `glpat-|gldt-|glrt-|glptt-` + ≥ 20 base64url chars (plus `.`-segments).
//! - `slack_token` — `xox[baprs]-` + ≥ 10 `[A-Za-z0-9-]` containing a digit.
//! - `slack_webhook` — `https://hooks.slack.com/{services,workflows,triggers}/…` (≥ 20 chars of path).
//! - `stripe_secret_key` — `sk_live_` / `rk_live_` + ≥ 20 alphanumerics (test-mode keys are not
//!   flagged).
//! - `anthropic_api_key` — `sk-ant-` + ≥ 32 base64url chars.
//! - `openrouter_api_key` — `sk-or-v1-` + 64 hex.
//! - `openai_api_key` — `sk-proj-|sk-svcacct-|sk-admin-` + ≥ 20 base64url chars, or legacy `sk-` +
//!   ≥ 32 alphanumerics with letters and digits, at a word start (`task-…`, `risk-…` never match).
//! - `huggingface_token` — `hf_` + 34–40 alphanumerics, mixed classes. `npm_token` — `npm_` + 36.
//! - `jwt` — `eyJ…` `.` `ey…` `.` signature: three base64url segments (≥ 8, ≥ 8, ≥ 10 chars).
//! - `private_key` — `-----BEGIN … PRIVATE KEY-----` (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP …
//!   `BLOCK`) through the matching `-----END … -----` (within 32 KB); without an END (a truncated
//!   paste) the header lines and base64 body that follow. The body must hold a run of ≥ 40
//!   base64 chars (so `"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----"` test strings
//!   and regexes naming the header are not keys). Also PuTTY `.ppk` files through `Private-MAC`.
//! - `connection_string` — the password of `scheme://user:password@host` for postgres, mysql,
//!   mariadb, mongodb(+srv), redis(s), amqp(s), mssql, jdbc:*, ftp/sftp, smtp, ldap, http(s), nats,
//!   kafka, neo4j, … (`redis://:pass@host` too); placeholders (`pass`, `password`, `<pw>`, `${PW}`,
//!   `****`) and values under 3 chars are ignored.
//! - `bearer_token` — `Authorization: Bearer <token>` (token ≥ 8 chars), or `Bearer <token>`
//!   anywhere with a token ≥ 20 chars; the token must mix character classes and not be a
//!   placeholder (`YOUR_API_KEY`, `$TOKEN`, `<token>`). `basic_auth` — `Authorization: Basic <b64>`.
//! - `password` / `generic_secret` — assignments `key = value`, `key: value`, `key := value`,
//!   `key => value`, `"key": "value"`, `--password value`, where the key (any case; any
//!   `prefix_`, `prefix-`, `prefix.` or camelCase prefix up to 40 chars) ends in
//!   `password|passwd|passphrase|pwd|secret|<x>_pass` (→ `password` for the pass-words,
//!   `generic_secret` for `secret`; value ≥ 6 chars, ≤ 3 spaces) or in
//!   `api_key|apikey|access_key|secret_key|private_key|signing_key|encryption_key|master_key|token|credential(s)`
//!   (→ `generic_secret`; value ≥ 12 chars, no whitespace, mixed character classes). Values are
//!   ≤ 200 chars. Not flagged:
//!   - keys whose last word is a counter, pagination or tokenizer term (`next_page_token`,
//!     `eos_token`, `CancellationToken`, `csrf_token`, …; `max_tokens` never matches because the
//!     key must end in the keyword), keys inside a URL authority, `${SECRET:-default}`;
//!   - placeholder values (`****`, `xxxx`, `<password>`, `{{x}}`, `${X}`, `$X`, `%s`, `changeme`,
//!     `your_password_here`, `example`, `redacted`, `null`, `true`, …, fewer than 3 distinct
//!     chars), references (`os.environ[…]`, `process.env.X`, paths, URLs), and values that
//!     contain their own keyword (`"CLIENT_TRAFFIC_SECRET"`, `my-password-here`);
//!   - *unquoted* values that look like code: words and identifiers (`userPassword`,
//!     `DB_PASSWORD`, `user_password`), paths and member access (`std::string::String`,
//!     `config.db.password`, `self.0.split_off`), pointer/reference types (`*const u8`),
//!     numeric literals (`0x0017`), a type followed by `<`, `(`, `[` or ` = …`, and anything
//!     after an escaped line break (`\r\n` inside a string literal). Quote a letters-only
//!     password to have it flagged.
//!
//! **PII**:
//! - `email` — `local@domain.tld` (ASCII; TLD 2–24 letters). Not: `icon@2x.png`-style density
//!   suffixes, file extensions as TLD, `git@github.com` remotes, `user:pass@host` inside a URL
//!   authority, locale names (`sd_IN@devanagari.UTF-8`), `user@localhost`, `pkg@1.2.3`.
//! - `phone_number` — (a) `+` country code then 8–15 digits with single space/dot/dash
//!   separators and at most one `(…)` group (`+14155552671`, `+44 20 7946 0958`,
//!   `+1 (555) 123-4567`); (b) North American `(555) 123-4567`, `555-123-4567`, `555.123.4567`,
//!   `1-800-555-0199` (area code and exchange 2–9, consistent separators); (c) national numbers
//!   with a trunk `0` and separators, 9–12 digits, consistent separators (`020 7946 0958`,
//!   `06 12 34 56 78`, `030/12345678`, `(030) 1234567`). Never plain digit runs; never glued to
//!   letters, `-`, `.`, `/`, `#` (order ids, versions, paths); never one element of a longer
//!   space/dot/dash-separated list of numbers or hex tokens (byte dumps, code point lists,
//!   `512 768 1024 2048`); not dotted quads (IPs), counting sequences (`01 02 03 04 05`),
//!   four-digit groups all starting with 0 (code points), `+2147483647`, `+1.5`-style decimals.
//! - `credit_card` — 13–19 digits, optionally grouped by single spaces or dashes (groups of 3–6,
//!   one separator kind), with a known issuer prefix and length (Visa, Mastercard, Amex,
//!   Discover, JCB, Diners, UnionPay, Maestro, Mir) **and** a valid Luhn checksum. A trailing
//!   group (CVV, another number) is dropped if the shorter number validates. An ungrouped
//!   number of 17–19 digits (which is what big integer constants look like) additionally needs a
//!   card word (`card`, `visa`, `credit`, `debit`, `tarjeta`, `karte`, …) in the 48 bytes before
//!   it. Not after `.`/`,`/`-`/`_`/`/` glued to a word or digit (decimals, ids).
//! - `iban` — upper-case country code with a registered length (SEPA and ~40 more countries) +
//!   2 check digits + BBAN, compact or in groups of four, exactly the country's length, passing
//!   the ISO 13616 mod-97 check.
//!
//! Base64 payloads of `data:…;base64,` URIs are excluded (pasted images).

mod apply;
mod detectors;
pub mod fields;
mod redact;
mod scanner;
mod validate;
mod walk;

pub use apply::{apply, apply_fields};
pub use redact::{SNIPPET_CONTEXT_CHARS, marker, redact, snippet, snippet_masked};
pub use scanner::Scanner;
pub use switchyard_crds::record::{Alert, Category};

use serde::{Deserialize, Serialize};
use switchyard_crds::workspace::{GuardrailAction, Guardrails};

/// One match in a text: `text[start..end]` (byte offsets on char boundaries). Holds no copy of
/// the matched text, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Finding {
    /// Secrets or PII.
    pub category: Category,
    /// Detector name, e.g. `aws_access_key_id`, `credit_card`.
    pub kind: &'static str,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

/// What to do per category (a Workspace's `spec.guardrails`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    /// Action for cloud keys, private keys, tokens and passwords.
    pub secrets: GuardrailAction,
    /// Action for emails, phone numbers, card numbers and IBANs.
    pub pii: GuardrailAction,
}

impl Policy {
    /// Action for one category.
    pub fn action(&self, category: Category) -> GuardrailAction {
        match category {
            Category::Secrets => self.secrets,
            Category::Pii => self.pii,
        }
    }

    /// Nothing to scan for.
    pub fn is_off(&self) -> bool {
        self.secrets == GuardrailAction::Off && self.pii == GuardrailAction::Off
    }
}

impl From<&Guardrails> for Policy {
    fn from(g: &Guardrails) -> Self {
        Policy {
            secrets: g.secrets,
            pii: g.pii,
        }
    }
}

/// Result of [`apply`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Every finding of a category whose action is not `off`, in body order.
    pub alerts: Vec<Alert>,
    /// A category with action `block` found something: refuse the request.
    pub blocked: bool,
    /// The body was changed (redaction).
    pub modified: bool,
}
