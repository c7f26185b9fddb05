//! Guardrails: detector table (positives and negatives), property tests, request-level `apply`
//! over realistic OpenAI and Anthropic bodies, and a throughput probe (`--ignored`).
//!
//! No realistic secret is written literally in this file or the fixtures: fake keys are
//! generated at run time from a seeded generator (so push protection and secret scanners stay
//! quiet, and every run sees the same values).

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::Value;
use switchyard_crds::workspace::GuardrailAction;
use switchyard_dataplane::guardrails::{
    Category, Finding, Outcome, Policy, Scanner, apply, apply_fields, fields, redact, snippet,
    snippet_masked,
};
use switchyard_routing::Endpoint;

static SCANNER: LazyLock<Scanner> = LazyLock::new(Scanner::new);

// ---------------------------------------------------------------- fake credentials

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// SplitMix64: small, seeded, good enough for fake keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }

    /// Random string that has an upper-case letter, a lower-case letter and a digit.
    fn mixed(&mut self, alphabet: &[u8], n: usize) -> String {
        let mut s: Vec<u8> = self.pick(alphabet, n).into_bytes();
        let at = |r: &mut Rng| (r.next() % n as u64) as usize;
        let (a, b, c) = (at(self), at(self), at(self));
        s[a] = UPPER[(self.next() % 26) as usize];
        s[b] = LOWER[(self.next() % 26) as usize];
        s[c] = DIGITS[(self.next() % 10) as usize];
        // `a`, `b`, `c` may collide; make sure all three classes survive.
        let (u, l, d) = (s.len() - 1, s.len() - 2, s.len() - 3);
        if !s.iter().any(u8::is_ascii_uppercase) {
            s[u] = b'Q';
        }
        if !s.iter().any(u8::is_ascii_lowercase) {
            s[l] = b'q';
        }
        if !s.iter().any(u8::is_ascii_digit) {
            s[d] = b'7';
        }
        String::from_utf8(s).unwrap()
    }

    fn digits(&mut self, n: usize) -> String {
        self.pick(DIGITS, n)
    }
}

fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn luhn_ok(d: &str) -> bool {
    let digits: Vec<u32> = d.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &v)| {
            if i % 2 == 1 {
                let x = v * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A Luhn-valid card number with this prefix and length.
fn card(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut s = format!("{prefix}{}", rng.digits(len - prefix.len() - 1));
    for check in 0..10 {
        let cand = format!("{s}{check}");
        if luhn_ok(&cand) {
            s = cand;
            break;
        }
    }
    s
}

fn iban_mod97(s: &str) -> u32 {
    let re: String = s[4..].chars().chain(s[..4].chars()).collect();
    re.chars().fold(0u32, |rem, c| match c.to_digit(36) {
        Some(v) if v < 10 => (rem * 10 + v) % 97,
        Some(v) => (rem * 100 + v) % 97,
        None => rem,
    })
}

/// A valid IBAN for `country` with this BBAN.
fn iban(country: &str, bban: &str) -> String {
    let check = 98 - iban_mod97(&format!("{country}00{bban}"));
    format!("{country}{check:02}{bban}")
}

/// Generated fake credentials, one of each kind.
struct Fakes {
    aws_key_id: String,
    aws_secret: String,
    gcp_api_key: String,
    gcp_sa_json: String,
    gcp_sa_pem: String,
    google_oauth: String,
    azure_key: String,
    azure_sas_sig: String,
    github: Vec<String>,
    github_pat: String,
    gitlab: String,
    slack_bot: String,
    slack_webhook: String,
    stripe: String,
    stripe_rk: String,
    openai_proj: String,
    openai_legacy: String,
    anthropic: String,
    hf: String,
    jwt: String,
    pem_rsa: String,
    pem_openssh: String,
    pem_ec_escaped: String,
    db_password: String,
    bearer: String,
    api_key_value: String,
    cards: Vec<String>,
    ibans: Vec<String>,
}

fn pem(rng: &mut Rng, label: &str, lines: usize, nl: &str) -> String {
    let mut s = format!("-----BEGIN {label}-----{nl}");
    for _ in 0..lines {
        s.push_str(&rng.pick(B64, 64));
        s.push_str(nl);
    }
    s.push_str(&rng.pick(B64, 20));
    s.push_str("==");
    s.push_str(nl);
    s.push_str(&format!("-----END {label}-----"));
    s
}

impl Fakes {
    fn new(seed: u64) -> Self {
        let mut r = Rng(seed);
        let pk = "PRIVATE KEY";
        let gcp_sa_pem = pem(&mut r, pk, 6, "\\n") + "\\n";
        let gcp_sa_json = format!(
            "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"acme-prod\",\n  \"private_key_id\": \"{}\",\n  \"private_key\": \"{gcp_sa_pem}\",\n  \"client_email\": \"deployer@acme-prod.iam.gserviceaccount.com\"\n}}",
            r.pick(HEX, 40)
        );
        let jwt = format!(
            "{}.{}.{}",
            b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
            b64url(br#"{"sub":"1234567890","name":"Jane Doe","iat":1716239022}"#),
            r.mixed(B64URL, 43)
        );
        Fakes {
            aws_key_id: format!("{}{}", "AKIA", r.mixed(BASE32, 16).to_ascii_uppercase()),
            aws_secret: r.mixed(B64, 40),
            gcp_api_key: format!("{}{}", "AIza", r.mixed(B64URL, 35)),
            gcp_sa_json,
            gcp_sa_pem,
            google_oauth: format!("{}{}", "GOCSPX-", r.mixed(B64URL, 28)),
            azure_key: format!("{}==", r.mixed(B64, 86)),
            azure_sas_sig: format!("{}%3D", r.mixed(ALNUM, 43)),
            github: ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]
                .iter()
                .map(|p| format!("{p}{}", r.mixed(ALNUM, 36)))
                .collect(),
            github_pat: format!(
                "{}{}_{}",
                "github_pat_",
                r.mixed(ALNUM, 22),
                r.mixed(ALNUM, 59)
            ),
            gitlab: format!("{}{}", "glpat-", r.mixed(B64URL, 20)),
            slack_bot: format!(
                "{}{}-{}-{}",
                "xoxb-",
                r.digits(12),
                r.digits(13),
                r.mixed(ALNUM, 24)
            ),
            slack_webhook: format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                r.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 8),
                r.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 10),
                r.mixed(ALNUM, 24)
            ),
            stripe: format!("{}{}", concat!("sk", "_live_"), r.mixed(ALNUM, 24)),
            stripe_rk: format!("{}{}", concat!("rk", "_live_"), r.mixed(ALNUM, 24)),
            openai_proj: format!("{}{}", "sk-proj-", r.mixed(B64URL, 120)),
            openai_legacy: format!("sk-{}T3BlbkFJ{}", r.mixed(ALNUM, 20), r.mixed(ALNUM, 20)),
            anthropic: format!("{}{}AA", "sk-ant-api03-", r.mixed(B64URL, 93)),
            hf: format!("{}{}", "hf_", r.mixed(UPPER, 17) + &r.mixed(LOWER, 17)),
            jwt,
            pem_rsa: pem(&mut r, "RSA PRIVATE KEY", 10, "\n"),
            pem_openssh: pem(&mut r, "OPENSSH PRIVATE KEY", 5, "\n"),
            pem_ec_escaped: pem(&mut r, "EC PRIVATE KEY", 2, "\\n"),
            db_password: format!("Pg{}", r.mixed(ALNUM, 14)),
            bearer: r.mixed(B64URL, 40),
            api_key_value: r.mixed(ALNUM, 32),
            cards: vec![
                card(&mut r, "4", 16),
                card(&mut r, "51", 16),
                card(&mut r, "2221", 16),
                card(&mut r, "37", 15),
                card(&mut r, "6011", 16),
                card(&mut r, "3530", 16),
                card(&mut r, "36", 14),
                card(&mut r, "62", 19),
            ],
            ibans: vec![
                iban("DE", &r.digits(18)),
                iban(
                    "FR",
                    &format!(
                        "{}{}{}",
                        r.digits(10),
                        r.pick(ALNUM, 11).to_ascii_uppercase(),
                        r.digits(2)
                    ),
                ),
                iban("NL", &format!("ABNA{}", r.digits(10))),
                iban("ES", &r.digits(20)),
                iban("IT", &format!("X{}", r.digits(22))),
                iban("BE", &r.digits(12)),
                iban("AT", &r.digits(16)),
                iban("GB", &format!("WEST{}", r.digits(14))),
                iban("PL", &r.digits(24)),
                iban("CH", &r.digits(17)),
            ],
        }
    }

    /// Every generated secret (not the PII), for leak checks.
    fn all_secrets(&self) -> Vec<&str> {
        let mut v: Vec<&str> = vec![
            &self.aws_key_id,
            &self.aws_secret,
            &self.gcp_api_key,
            &self.gcp_sa_pem,
            &self.google_oauth,
            &self.azure_key,
            &self.github_pat,
            &self.gitlab,
            &self.slack_bot,
            &self.slack_webhook,
            &self.stripe,
            &self.stripe_rk,
            &self.openai_proj,
            &self.openai_legacy,
            &self.anthropic,
            &self.hf,
            &self.jwt,
            &self.pem_rsa,
            &self.pem_openssh,
            &self.db_password,
            &self.bearer,
            &self.api_key_value,
        ];
        v.extend(self.github.iter().map(String::as_str));
        v
    }
}

static FAKES: LazyLock<Fakes> = LazyLock::new(|| Fakes::new(0x5157_1CA7_D00D_F00D));

/// Distinctive middle part of a secret: what must never show up anywhere.
fn distinctive(s: &str) -> &str {
    let n = s.len();
    if n <= 16 { s } else { &s[n / 2 - 8..n / 2 + 8] }
}

// ---------------------------------------------------------------- table test

/// `(text, kind, exact matched text)`.
fn positives() -> Vec<(String, &'static str, String)> {
    let f = &*FAKES;
    let mut v: Vec<(String, &'static str, String)> = Vec::new();
    let mut add =
        |text: String, kind: &'static str, hit: &str| v.push((text, kind, hit.to_owned()));

    // AWS
    add(
        format!("export AWS_ACCESS_KEY_ID={}", f.aws_key_id),
        "aws_access_key_id",
        &f.aws_key_id,
    );
    let asia = format!("ASIA{}", &f.aws_key_id[4..]);
    add(
        format!("temporary creds: {asia} (expires 1h)"),
        "aws_access_key_id",
        &asia,
    );
    add(
        format!("aws_secret_access_key = {}", f.aws_secret),
        "aws_secret_access_key",
        &f.aws_secret,
    );
    add(
        format!("AWS_SECRET_ACCESS_KEY: \"{}\"", f.aws_secret),
        "aws_secret_access_key",
        &f.aws_secret,
    );
    add(
        format!("{{\"SecretAccessKey\": \"{}\"}}", f.aws_secret),
        "aws_secret_access_key",
        &f.aws_secret,
    );
    // GCP / Google
    add(
        format!("service account:\n{}", f.gcp_sa_json),
        "gcp_service_account_key",
        &f.gcp_sa_pem,
    );
    add(
        format!("maps key={} ", f.gcp_api_key),
        "gcp_api_key",
        &f.gcp_api_key,
    );
    add(
        format!("\"client_secret\":\"{}\"", f.google_oauth),
        "google_oauth_client_secret",
        &f.google_oauth,
    );
    // Azure
    add(
        format!(
            "DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey={};EndpointSuffix=core.windows.net",
            f.azure_key
        ),
        "azure_storage_account_key",
        &f.azure_key,
    );
    add(
        format!("az storage blob list --account-key {}", f.azure_key),
        "azure_storage_account_key",
        &f.azure_key,
    );
    add(
        format!(
            "https://acme.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2025-01-01T00:00:00Z&sig={}",
            f.azure_sas_sig
        ),
        "azure_sas_token",
        &f.azure_sas_sig,
    );
    // GitHub, GitLab, Slack
    for t in &f.github {
        add(format!("token {t} leaked"), "github_token", t);
    }
    add(
        format!("GH_TOKEN={}", f.github_pat),
        "github_token",
        &f.github_pat,
    );
    add(
        format!(
            "git clone https://oauth2:{}@gitlab.com/acme/x.git",
            f.gitlab
        ),
        "gitlab_token",
        &f.gitlab,
    );
    add(
        format!("SLACK_BOT_TOKEN: {}", f.slack_bot),
        "slack_token",
        &f.slack_bot,
    );
    add(
        format!("curl -X POST {} -d '{{}}'", f.slack_webhook),
        "slack_webhook",
        &f.slack_webhook,
    );
    // Stripe, OpenAI, Anthropic, Hugging Face
    add(
        format!("stripe.api_key = '{}'", f.stripe),
        "stripe_secret_key",
        &f.stripe,
    );
    add(
        format!("restricted key {}", f.stripe_rk),
        "stripe_secret_key",
        &f.stripe_rk,
    );
    add(
        format!("client = OpenAI(api_key=\"{}\")", f.openai_proj),
        "openai_api_key",
        &f.openai_proj,
    );
    add(
        format!("old key {} still works?", f.openai_legacy),
        "openai_api_key",
        &f.openai_legacy,
    );
    add(
        format!("ANTHROPIC_API_KEY={}", f.anthropic),
        "anthropic_api_key",
        &f.anthropic,
    );
    add(
        format!("huggingface-cli login --token {}", f.hf),
        "huggingface_token",
        &f.hf,
    );
    // JWT, PEM
    add(format!("Cookie: session={}; Path=/", f.jwt), "jwt", &f.jwt);
    add(
        format!("curl -H 'Authorization: Bearer {}' https://api", f.jwt),
        "jwt",
        &f.jwt,
    );
    add(
        format!("my key:\n{}\nwhy does ssh reject it?", f.pem_rsa),
        "private_key",
        &f.pem_rsa,
    );
    add(
        format!("{}\n", f.pem_openssh),
        "private_key",
        &f.pem_openssh,
    );
    add(
        format!("{{\"key\": \"{}\"}}", f.pem_ec_escaped),
        "private_key",
        &f.pem_ec_escaped,
    );
    let truncated = f.pem_rsa[..f.pem_rsa.len() / 2].to_owned();
    add(
        format!("{truncated}\n"),
        "private_key",
        truncated.trim_end(),
    );
    // Connection strings
    let pw = &f.db_password;
    add(
        format!("DATABASE_URL=postgres://app:{pw}@db.internal:5432/app"),
        "connection_string",
        pw,
    );
    add(
        format!("mongodb+srv://admin:{pw}@cluster0.ab1cd.mongodb.net/test?retryWrites=true"),
        "connection_string",
        pw,
    );
    add(
        format!("REDIS_URL=redis://:{pw}@cache:6379/0"),
        "connection_string",
        pw,
    );
    add(
        format!("mysql://root:{pw}@127.0.0.1/shop"),
        "connection_string",
        pw,
    );
    // Headers
    add(
        format!("Authorization: Bearer {}", f.bearer),
        "bearer_token",
        &f.bearer,
    );
    add(
        format!(
            "\"headers\": {{\"authorization\": \"Bearer {}\"}}",
            f.bearer
        ),
        "bearer_token",
        &f.bearer,
    );
    add(
        "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_owned(),
        "basic_auth",
        "YWxhZGRpbjpvcGVuc2VzYW1l",
    );
    // Generic assignments
    add("password=hunter22".to_owned(), "password", "hunter22");
    add(
        "DB_PASSWORD=Tr0ub4dor3x".to_owned(),
        "password",
        "Tr0ub4dor3x",
    );
    add(
        "{\"password\": \"correct horse battery staple\"}".to_owned(),
        "password",
        "correct horse battery staple",
    );
    add("passwd: p4ssw0rd!x".to_owned(), "password", "p4ssw0rd!x");
    add(
        "mysql --password 'S3cure!Pass' -h db".to_owned(),
        "password",
        "S3cure!Pass",
    );
    add(
        "smtp_pass = \"Wint3r-is-coming\"".to_owned(),
        "password",
        "Wint3r-is-coming",
    );
    add(
        "Server=db;User Id=sa;Password=Sql$erver2019;".to_owned(),
        "password",
        "Sql$erver2019",
    );
    add(
        "secret: 8f2a9c1e7b3d".to_owned(),
        "generic_secret",
        "8f2a9c1e7b3d",
    );
    add(
        format!("api_key={}", f.api_key_value),
        "generic_secret",
        &f.api_key_value,
    );
    add(
        format!("x-api-key: {}", f.api_key_value),
        "generic_secret",
        &f.api_key_value,
    );
    add(
        format!("  access_token: \"{}\"", f.api_key_value),
        "generic_secret",
        &f.api_key_value,
    );
    add(
        format!("{{\\\"token\\\": \\\"{}\\\"}}", f.api_key_value),
        "generic_secret",
        &f.api_key_value,
    );

    // PII
    add(
        "write to jane.doe+news@example.co.uk today".to_owned(),
        "email",
        "jane.doe+news@example.co.uk",
    );
    add(
        "<a href=\"mailto:ops@acme.io\">".to_owned(),
        "email",
        "ops@acme.io",
    );
    for phone in [
        "+1 (415) 555-2671",
        "+14155552671",
        "+44 20 7946 0958",
        "+33 6 12 34 56 78",
        "+49 30 12345678",
        "+44 (0)20 7946 0958",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "1-800-555-0199",
        "020 7946 0958",
        "07700 900123",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "030/12345678",
        "(030) 1234567",
    ] {
        add(format!("call me at {phone}."), "phone_number", phone);
    }
    for c in [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
    ] {
        add(format!("card: {c}, exp 12/27"), "credit_card", c);
    }
    add(
        "pay with 4111 1111 1111 1111 123 (cvv)".to_owned(),
        "credit_card",
        "4111 1111 1111 1111",
    );
    for c in &f.cards {
        add(format!("card number {c} ok"), "credit_card", c);
    }
    for i in [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "ES9121000418450200051332",
        "IT60X0542811101000000123456",
        "BE68539007547034",
        "AT611904300234573201",
        "CH9300762011623852957",
    ] {
        add(format!("IBAN: {i} EUR"), "iban", i);
    }
    for i in &f.ibans {
        add(format!("to {i}."), "iban", i);
    }
    v
}

fn negatives() -> Vec<String> {
    let mut r = Rng(7);
    let mut image = String::from("![chart](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA");
    image.push_str(&r.pick(B64, 8000));
    image.push_str("==)");
    let mut v: Vec<String> = [
        // identifiers
        "request 123e4567-e89b-12d3-a456-426614174000 failed",
        "trace 550e8400-e29b-41d4-a716-446655440000",
        "commit e83c5163316f89bfbde7d9ab23ca2e25604af290 (short a1b2c3d)",
        "Order #100234567890 shipped; ORD-2024-000123; order id 98765432101234",
        "invoice INV-2024-00017-4411",
        // dates, times, versions, numbers
        "released 2024-01-15, 15/01/2024, 01.02.2024 at 2024-01-15T10:30:00+01:00",
        "upgrade from v1.2.3 to 1.13.1; Windows 10.0.19045.3693; Python 3.12.1",
        "npm i lodash@4.17.21 and react@18.2.0",
        "total 1,299.99 EUR; 100.000.000 rows; timestamp 1700000000000",
        "ISBN 978-3-16-148410-0",
        "server 192.168.100.200 and 010.120.130.140",
        "c = a+123456789 * b; 1e+10",
        "plain digits 0123456789 and 4155552671",
        "5 + 3 = 8",
        // Luhn failures and bad IBANs
        "card 4111111111111112",
        "card 4111 1111 1111 1112",
        "num 1234 5678 9012 3456",
        "IBAN DE88 3704 0044 0532 0130 00",
        "IBAN GB83WEST12345698765432",
        "IBAN DE89 3704 0044 0532 0130",
        // sk- inside words
        "task-management-system-configuration-abcdefghij1234567890",
        "the risk-assessment0123456789abcdefghijklmnopqr doc",
        "desk-1234567890abcdefghijklmnopqrstuvwxyzABCD",
        // placeholders and references
        "max_tokens: 4096, temperature: 0.7",
        "each token: approximately four characters",
        "password: <password>",
        "password=****",
        "password: changeme",
        "PASSWORD=${DB_PASSWORD}",
        "api_key=YOUR_API_KEY",
        "api_key = \"your-api-key-here\"",
        "password = os.environ['DB_PASSWORD']",
        "password = user.password",
        "token = get_token()",
        "PWD=/home/user/project",
        "next_page_token: CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA",
        "eos_token: \"</s>\"",
        "secretName: my-secret",
        "Authorization: Bearer $TOKEN",
        "Authorization: Bearer <token>",
        "-H \"Authorization: Bearer YOUR_TOKEN_HERE\"",
        "postgres://user:password@localhost/db",
        "postgres://user:<password>@host/db",
        "redis://localhost:6379/0 and http://localhost:8080/a@b",
        // not emails
        "user@localhost",
        "logo icon@2x.png and icon@3x.png",
        "git clone git@github.com:acme/api.git",
        "@dataclass\nclass A: pass",
        // near misses for tokens
        "ASIAPACIFICSUMMITXYZ",
        "eyJhbGciOi is the start of a JWT header",
        "xoxb-not-a-real-token",
        "hf_hub_download(repo_id)",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
        "unicode: 日本語のテキスト、电话 and émojis 🎉🔑",
        // number sequences that look like phones
        "48 8B 05 00 00 00 00 // movq",
        "0061 05AE 0300 0315 0062;00E0 05AE 0300 0315 0062;",
        "FD94;FD94;FD94;0647 0645 0645;0647 0645 0645; # ARABIC",
        "sizes 160 192 200 224 256 384 512 768 1024 2048 4096",
        "range -2147483648 to +2147483647",
        "p(b\"+255959.999\")",
        "// Prints: <Buffer 01 02 03 04 05>",
        "check_normalize(6848554330849612046, 446, 11)",
        "locale sd_IN@devanagari.UTF-8",
        // code that assigns to secret-ish names
        "pub token: std::string::String,",
        "let token = self.0.split_off(idx + 1);",
        "pub pw_passwd: *const c_char,",
        "ExtendedMasterSecret => 0x0017,",
        "ClientTrafficSecret => \"CLIENT_TRAFFIC_SECRET_0\",",
        "\"${MISSING:?${SECRET:-unused}}\"",
        "let f = move |token: CancellationToken| token.cancel();",
        "let raw_private_key: Curve25519SeedBin<'_> = private_key;",
        "pub const CN_ENCRYPTION_KEY: X509HardwareKeyUsageFlags = 2i32;",
        "b\"Access-Control-Allow-Credentials: true\\r\\nBread: baguette\\r\\n\"",
        "let secret = \"sentinel-secret-never-in-errors\";",
        "pub credentials: MI_UserCredentials_0,",
        "IFLA_INET6_TOKEN: _bindgen_ty_7 = _bindgen_ty_7::IFLA",
        // PEM lines without key material
        "let weak = \"-----BEGIN PRIVATE KEY-----\\n-----END PRIVATE KEY-----\\n\";",
        "consistent!(click_1, r\"-----BEGIN PRIVATE KEY-----\");",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push(image);
    v
}

#[test]
fn table_positive_examples_match_exactly() {
    let mut failures = Vec::new();
    for (text, kind, hit) in positives() {
        let found = SCANNER.scan(&text, true, true);
        let ok = found
            .iter()
            .any(|f| f.kind == kind && &text[f.start..f.end] == hit.as_str());
        if !ok {
            let got: Vec<(&str, &str)> = found
                .iter()
                .map(|f| (f.kind, &text[f.start..f.end]))
                .collect();
            failures.push(format!(
                "{kind}: {text:?}\n    want {hit:?}\n    got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} misses:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn table_positive_examples_have_one_finding_each() {
    // No stray extra findings around the expected one (except where the text has two on purpose).
    for (text, kind, _) in positives() {
        let found = SCANNER.scan(&text, true, true);
        let others: Vec<_> = found.iter().filter(|f| f.kind != kind).collect();
        let allowed = text.contains("client_email") // the service-account JSON has an email
            || text.contains("exp 12/27") && others.is_empty();
        if !allowed {
            assert!(
                others.is_empty(),
                "{text:?}: unexpected {:?}",
                others
                    .iter()
                    .map(|f| (f.kind, &text[f.start..f.end]))
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn table_negative_examples_do_not_match() {
    let mut failures = Vec::new();
    for text in negatives() {
        let found = SCANNER.scan(&text, true, true);
        if !found.is_empty() {
            let got: Vec<(&str, &str)> = found
                .iter()
                .map(|f| (f.kind, &text[f.start..f.end]))
                .collect();
            failures.push(format!(
                "{:?}\n    got {got:?}",
                &text[..text.len().min(120)]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} false positives:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_fixtures_are_really_invalid() {
    assert!(!luhn_ok("4111111111111112"));
    assert!(!luhn_ok("1234567890123456"));
    assert_ne!(iban_mod97("DE88370400440532013000"), 1);
    assert_ne!(iban_mod97("GB83WEST12345698765432"), 1);
    assert_eq!(iban_mod97("DE89370400440532013000"), 1);
    for i in &FAKES.ibans {
        assert_eq!(iban_mod97(i), 1, "{i}");
    }
    for c in &FAKES.cards {
        assert!(luhn_ok(c), "{c}");
    }
}

#[test]
fn categories_are_independent() {
    let text = format!("mail a.b@example.com key {}", FAKES.github[0]);
    let only_secrets = SCANNER.scan(&text, true, false);
    assert_eq!(only_secrets.len(), 1);
    assert_eq!(only_secrets[0].category, Category::Secrets);
    let only_pii = SCANNER.scan(&text, false, true);
    assert_eq!(only_pii.len(), 1);
    assert_eq!(only_pii[0].kind, "email");
    assert!(SCANNER.scan(&text, false, false).is_empty());
}

#[test]
fn overlapping_findings_merge_longest_wins() {
    // The GitHub token is also the password of the URL: one finding, named by the specific rule.
    let t = format!("https://x:{}@github.com/a/b", FAKES.github[0]);
    let found = SCANNER.scan(&t, true, true);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, "github_token");
    // A JWT behind `Authorization: Bearer` is one `jwt` finding.
    let t = format!("Authorization: Bearer {}", FAKES.jwt);
    let found = SCANNER.scan(&t, true, true);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, "jwt");
}

#[test]
fn findings_are_sorted_and_disjoint() {
    let f = &*FAKES;
    let text = format!(
        "a {} b jane@example.org c {} d +44 20 7946 0958 e {} f",
        f.stripe, f.aws_key_id, f.cards[0]
    );
    let found = SCANNER.scan(&text, true, true);
    assert_eq!(found.len(), 5, "{found:?}");
    for w in found.windows(2) {
        assert!(w[0].end <= w[1].start);
    }
}

#[test]
fn redact_replaces_with_markers() {
    let text = format!("key={} mail=jane@example.org", FAKES.gcp_api_key);
    let found = SCANNER.scan(&text, true, true);
    let out = redact(&text, &found);
    assert_eq!(out, "key=[REDACTED:gcp_api_key] mail=[REDACTED:email]");
}

#[test]
fn snippet_has_context_and_no_secret() {
    let prefix = "x".repeat(60);
    let text = format!(
        "{prefix} token {} trailing words that go on and on and on",
        FAKES.github[1]
    );
    let found = SCANNER.scan(&text, true, true);
    assert_eq!(found.len(), 1);
    let s = snippet(&text, &found[0]);
    assert!(!s.contains(distinctive(&FAKES.github[1])));
    assert!(s.contains("[REDACTED:github_token]"));
    let (before, after) = s.split_once("[REDACTED:github_token]").unwrap();
    assert!(
        before.trim_start_matches('…').chars().count() <= 40,
        "{before:?}"
    );
    assert!(
        after.trim_end_matches('…').chars().count() <= 40,
        "{after:?}"
    );
    assert_eq!(before, format!("…{} token ", "x".repeat(33)));
}

#[test]
fn snippet_cuts_on_char_boundaries() {
    let text = format!(
        "{} {} {}",
        "日本語".repeat(30),
        FAKES.stripe,
        "é".repeat(60)
    );
    let found = SCANNER.scan(&text, true, true);
    assert_eq!(found.len(), 1);
    let s = snippet(&text, &found[0]);
    assert_eq!(
        s,
        format!(
            "…{} [REDACTED:stripe_secret_key] {}…",
            "日本語".repeat(13),
            "é".repeat(39)
        )
    );
}

#[test]
fn snippet_masked_hides_neighbouring_findings() {
    let text = format!("{} and {}", FAKES.aws_key_id, FAKES.github[2]);
    let found = SCANNER.scan(&text, true, true);
    assert_eq!(found.len(), 2);
    let s = snippet_masked(&text, &found[1], &found);
    assert_eq!(
        s,
        "[REDACTED:aws_access_key_id] and [REDACTED:github_token]"
    );
}

// ---------------------------------------------------------------- property tests

/// A generated secret or PII value by index, derived from `seed`.
fn injected(kind: usize, seed: u64) -> String {
    let f = Fakes::new(seed);
    let all: Vec<String> = vec![
        f.aws_key_id,
        f.gcp_api_key,
        f.github[0].clone(),
        f.github_pat,
        f.gitlab,
        f.slack_bot,
        f.slack_webhook,
        f.stripe,
        f.openai_proj,
        f.openai_legacy,
        f.anthropic,
        f.jwt,
        f.pem_rsa,
        f.pem_openssh,
        format!("aws_secret_access_key = {}", f.aws_secret),
        format!("postgres://app:{}@db:5432/x", f.db_password),
        format!("Authorization: Bearer {}", f.bearer),
        format!("api_key={}", f.api_key_value),
        format!("card {}", f.cards[(seed % 8) as usize]),
        f.ibans[(seed % 10) as usize].clone(),
        format!("u{}@example.com", seed % 1000),
        "+44 20 7946 0958".to_owned(),
    ];
    all[kind % all.len()].clone()
}

const INJECTED_KINDS: usize = 22;

fn filler() -> impl Strategy<Value = String> {
    "[a-zA-Z éüß日本語🎉,;!?]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig {
        // 256 cases unless PROPTEST_CASES says otherwise.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn prop_scan_never_panics_on_arbitrary_unicode(text in any::<String>()) {
        let found = SCANNER.scan(&text, true, true);
        for f in &found {
            prop_assert!(f.start < f.end && f.end <= text.len());
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        for w in found.windows(2) {
            prop_assert!(w[0].end <= w[1].start);
        }
        let _ = redact(&text, &found);
        for f in &found {
            let _ = snippet(&text, f);
        }
    }

    #[test]
    fn prop_scan_never_panics_on_secret_shaped_noise(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("sk-".to_owned()), Just("ghp_".to_owned()), Just("AKIA".to_owned()),
                Just("password=".to_owned()), Just("@".to_owned()), Just("+1 ".to_owned()),
                Just("-----BEGIN PRIVATE KEY-----".to_owned()), Just("eyJ".to_owned()),
                Just("://u:".to_owned()), Just("DE89".to_owned()), Just("Bearer ".to_owned()),
                Just("\\n".to_owned()), Just(";base64,".to_owned()), Just("(0".to_owned()),
                "[0-9 ().+-]{1,20}", "[A-Za-z0-9_=/+.-]{1,40}", "\\PC{0,8}",
            ],
            0..40,
        )
    ) {
        let text = parts.concat();
        let found = SCANNER.scan(&text, true, true);
        for f in &found {
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            let s = snippet_masked(&text, f, &found);
            prop_assert!(s.contains("[REDACTED:"));
        }
        let out = redact(&text, &found);
        for f in &found {
            let original = &text[f.start..f.end];
            // Short findings (an email like `a@b.cd`) may legitimately recur in noise.
            if original.len() >= 12 {
                prop_assert!(!out.contains(original) || text.matches(original).count() > 1);
            }
        }
    }

    #[test]
    fn prop_redaction_never_contains_any_finding(
        pieces in proptest::collection::vec((filler(), 0..INJECTED_KINDS, any::<u64>()), 1..8)
    ) {
        let mut text = String::new();
        let mut secrets = Vec::new();
        for (fill, kind, seed) in &pieces {
            let s = injected(*kind, *seed);
            text.push_str(fill);
            text.push_str(" \n ");
            text.push_str(&s);
            text.push_str(" \n ");
            secrets.push(s);
        }
        let found = SCANNER.scan(&text, true, true);
        let out = redact(&text, &found);
        for f in &found {
            let original = &text[f.start..f.end];
            prop_assert!(!out.contains(original), "finding {:?} survived in {:?}", f, out);
            let s = snippet_masked(&text, f, &found);
            for g in &found {
                prop_assert!(!s.contains(&text[g.start..g.end]));
            }
        }
        for s in &secrets {
            prop_assert!(!out.contains(distinctive(s)), "injected {:?} survived in {:?}", s, out);
        }
    }

    #[test]
    fn prop_redact_is_total_on_arbitrary_offsets(
        text in "\\PC{0,60}",
        spans in proptest::collection::vec((0usize..80, 0usize..80), 0..6)
    ) {
        let fs: Vec<Finding> = spans
            .iter()
            .map(|&(s, e)| Finding { category: Category::Secrets, kind: "k", start: s, end: e })
            .collect();
        let out = redact(&text, &fs);
        let _ = out.len();
        for f in &fs {
            let _ = snippet(&text, f);
        }
    }
}

// ---------------------------------------------------------------- apply over request bodies

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/guardrails/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut raw = std::fs::read_to_string(&path).unwrap();
    let f = &*FAKES;
    // Values are JSON-escaped before substitution (the PEM has newlines).
    let esc = |s: &str| {
        let q = serde_json::to_string(s).unwrap();
        q[1..q.len() - 1].to_owned()
    };
    for (k, v) in [
        ("{{GITHUB_TOKEN}}", f.github[0].as_str()),
        ("{{AWS_KEY_ID}}", &f.aws_key_id),
        ("{{AWS_SECRET}}", &f.aws_secret),
        ("{{DB_PASSWORD}}", &f.db_password),
        ("{{SLACK_WEBHOOK}}", &f.slack_webhook),
        ("{{STRIPE_KEY}}", &f.stripe),
        ("{{BEARER}}", &f.bearer),
        ("{{PEM}}", &f.pem_rsa),
        ("{{JWT}}", &f.jwt),
        ("{{OPENAI_KEY}}", &f.openai_proj),
        ("{{ANTHROPIC_KEY}}", &f.anthropic),
    ] {
        raw = raw.replace(k, &esc(v));
    }
    assert!(!raw.contains("{{"), "unsubstituted placeholder in {name}");
    serde_json::from_str(&raw).unwrap()
}

fn policy(secrets: GuardrailAction, pii: GuardrailAction) -> Policy {
    Policy { secrets, pii }
}

fn triples(out: &Outcome) -> BTreeSet<(String, &'static str, String)> {
    out.alerts
        .iter()
        .map(|a| {
            let cat = match a.category {
                Category::Secrets => "secrets",
                Category::Pii => "pii",
            };
            (a.location.clone(), cat, a.kind.clone())
        })
        .collect()
}

fn set(items: &[(&str, &'static str, &str)]) -> BTreeSet<(String, &'static str, String)> {
    items
        .iter()
        .map(|(l, c, k)| ((*l).to_owned(), *c, (*k).to_owned()))
        .collect()
}

/// Nothing secret in the outcome: not in its JSON, not in its Debug output.
fn assert_no_leak(out: &Outcome) {
    let json = serde_json::to_string(out).unwrap();
    let debug = format!("{out:?}");
    for s in FAKES.all_secrets() {
        let d = distinctive(s);
        assert!(
            !json.contains(d),
            "secret part {d:?} leaked into alerts: {json}"
        );
        assert!(!debug.contains(d), "secret part {d:?} leaked into Debug");
    }
    for pii in [
        "jane.doe@example.com",
        "7946 0958",
        "555-2671",
        "0532 0130",
        "1111 1111 1111",
        "ops@example.org",
        "a.b@example.net",
        "0000-0000-0004",
    ] {
        assert!(!json.contains(pii), "{pii:?} leaked: {json}");
    }
}

const OPENAI_EXPECTED: &[(&str, &str, &str)] = &[
    ("/messages/1/content", "secrets", "github_token"),
    ("/messages/1/content", "pii", "email"),
    ("/messages/2/content/0/text", "secrets", "aws_access_key_id"),
    (
        "/messages/2/content/0/text",
        "secrets",
        "aws_secret_access_key",
    ),
    (
        "/messages/3/tool_calls/0/function/arguments",
        "secrets",
        "connection_string",
    ),
    ("/messages/4/content", "secrets", "slack_webhook"),
    ("/messages/5/content", "pii", "phone_number"),
];

const ANTHROPIC_EXPECTED: &[(&str, &str, &str)] = &[
    ("/system/0/text", "pii", "phone_number"),
    ("/messages/0/content/0/text", "pii", "iban"),
    ("/messages/0/content/0/text", "secrets", "stripe_secret_key"),
    (
        "/messages/1/content/1/input/headers/Authorization",
        "secrets",
        "bearer_token",
    ),
    ("/messages/1/content/1/input/args/1", "pii", "credit_card"),
    ("/messages/2/content/0/content", "secrets", "private_key"),
    ("/messages/2/content/1/content/0/text", "secrets", "jwt"),
];

#[test]
fn apply_openai_alert_records_without_touching_body() {
    let mut body = fixture("openai_chat.json");
    let before = body.clone();
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Alert, GuardrailAction::Alert),
        Endpoint::ChatCompletions,
        &mut body,
    );
    assert_eq!(triples(&out), set(OPENAI_EXPECTED));
    assert!(!out.blocked && !out.modified);
    assert_eq!(body, before);
    assert!(
        out.alerts
            .iter()
            .all(|a| a.action == GuardrailAction::Alert)
    );
    assert_no_leak(&out);
    // Body order: message 1 before message 2 before message 3.
    let locs: Vec<&str> = out.alerts.iter().map(|a| a.location.as_str()).collect();
    let mut sorted = locs.clone();
    sorted.sort_by_key(|l| OPENAI_EXPECTED.iter().position(|e| e.0 == *l));
    assert_eq!(locs, sorted);
}

#[test]
fn apply_openai_redact_rewrites_in_place() {
    let mut body = fixture("openai_chat.json");
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Redact, GuardrailAction::Redact),
        Endpoint::ChatCompletions,
        &mut body,
    );
    assert_eq!(triples(&out), set(OPENAI_EXPECTED));
    assert!(out.modified && !out.blocked);
    assert_no_leak(&out);
    let text = body.to_string();
    for s in FAKES.all_secrets() {
        assert!(!text.contains(distinctive(s)), "{s} survived redaction");
    }
    assert_eq!(
        body.pointer("/messages/2/content/0/text").unwrap(),
        "Here is my ~/.aws/credentials:\n[default]\naws_access_key_id = [REDACTED:aws_access_key_id]\naws_secret_access_key = [REDACTED:aws_secret_access_key]\n"
    );
    assert_eq!(
        body.pointer("/messages/5/content").unwrap(),
        "Thanks! Call me on [REDACTED:phone_number] if it breaks again."
    );
    // Tool call arguments stay valid JSON with the password replaced.
    let args = body
        .pointer("/messages/3/tool_calls/0/function/arguments")
        .unwrap()
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(args).unwrap();
    assert_eq!(
        parsed["dsn"],
        "postgres://app:[REDACTED:connection_string]@db.internal:5432/orders"
    );
    // The image part is untouched; the rest of the body keeps its shape.
    assert!(
        body.pointer("/messages/2/content/1/image_url/url")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert_eq!(body["model"], "gpt-4o");
    // Scanning the redacted body again finds nothing.
    let again = apply(
        &SCANNER,
        &policy(GuardrailAction::Alert, GuardrailAction::Alert),
        Endpoint::ChatCompletions,
        &mut body,
    );
    assert!(again.alerts.is_empty(), "{:?}", again.alerts);
}

#[test]
fn apply_openai_block_secrets_alert_pii() {
    let mut body = fixture("openai_chat.json");
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Block, GuardrailAction::Alert),
        Endpoint::ChatCompletions,
        &mut body,
    );
    assert!(out.blocked);
    assert_eq!(triples(&out), set(OPENAI_EXPECTED));
    for a in &out.alerts {
        let want = if a.category == Category::Secrets {
            GuardrailAction::Block
        } else {
            GuardrailAction::Alert
        };
        assert_eq!(a.action, want, "{a:?}");
    }
    // Blocked secrets are scrubbed from the body too (it may be logged); PII on alert is kept.
    assert!(out.modified);
    let text = body.to_string();
    assert!(!text.contains(distinctive(&FAKES.github[0])));
    assert!(text.contains("jane.doe@example.com"));
    assert_no_leak(&out);
}

#[test]
fn apply_pii_only_policy_ignores_secrets() {
    let mut body = fixture("openai_chat.json");
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Off, GuardrailAction::Block),
        Endpoint::ChatCompletions,
        &mut body,
    );
    assert!(out.blocked);
    assert!(out.alerts.iter().all(|a| a.category == Category::Pii));
    assert_eq!(out.alerts.len(), 2);
}

#[test]
fn apply_anthropic_alert() {
    let mut body = fixture("anthropic_messages.json");
    let before = body.clone();
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Alert, GuardrailAction::Alert),
        Endpoint::Messages,
        &mut body,
    );
    assert_eq!(triples(&out), set(ANTHROPIC_EXPECTED));
    assert!(!out.blocked && !out.modified);
    assert_eq!(body, before);
    assert_no_leak(&out);
    let iban = out.alerts.iter().find(|a| a.kind == "iban").unwrap();
    assert_eq!(
        iban.snippet,
        "Refund to IBAN [REDACTED:iban] please, and rotate our Stripe key [REDACTED:stripe_secret_key]…"
    );
}

#[test]
fn apply_anthropic_redact() {
    let mut body = fixture("anthropic_messages.json");
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Redact, GuardrailAction::Redact),
        Endpoint::Messages,
        &mut body,
    );
    assert_eq!(triples(&out), set(ANTHROPIC_EXPECTED));
    assert!(out.modified && !out.blocked);
    assert_no_leak(&out);
    assert_eq!(
        body.pointer("/messages/1/content/1/input/headers/Authorization")
            .unwrap(),
        "Bearer [REDACTED:bearer_token]"
    );
    assert_eq!(
        body.pointer("/messages/1/content/1/input/args/1").unwrap(),
        "card [REDACTED:credit_card]"
    );
    assert_eq!(
        body.pointer("/messages/2/content/0/content").unwrap(),
        "403 Forbidden. Deploy key on the runner:\n[REDACTED:private_key]\n"
    );
    assert_eq!(
        body.pointer("/messages/2/content/1/content/0/text")
            .unwrap(),
        "session=[REDACTED:jwt]"
    );
    assert_eq!(
        body.pointer("/system/0/text").unwrap(),
        "You are the billing assistant for Acme. Escalations: [REDACTED:phone_number]."
    );
    // Non-text blocks and metadata are untouched.
    assert_eq!(body.pointer("/messages/0/content/1/type").unwrap(), "image");
    assert_eq!(
        body.pointer("/system/0/cache_control/type").unwrap(),
        "ephemeral"
    );
    assert_eq!(
        body.pointer("/messages/1/content/1/input/url").unwrap(),
        "https://billing.internal/v1/refunds"
    );
    let text = body.to_string();
    for s in FAKES.all_secrets() {
        assert!(!text.contains(distinctive(s)));
    }
}

#[test]
fn apply_anthropic_block() {
    let mut body = fixture("anthropic_messages.json");
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Alert, GuardrailAction::Block),
        Endpoint::Messages,
        &mut body,
    );
    assert!(out.blocked);
    assert_eq!(triples(&out), set(ANTHROPIC_EXPECTED));
    assert_no_leak(&out);
}

#[test]
fn apply_completions_and_embeddings() {
    let mut body = fixture("completions.json");
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Redact, GuardrailAction::Alert),
        Endpoint::Completions,
        &mut body,
    );
    assert_eq!(
        triples(&out),
        set(&[
            ("/prompt/0", "secrets", "openai_api_key"),
            ("/suffix", "pii", "email")
        ])
    );
    assert_eq!(
        body["prompt"][0],
        "# config.py\nOPENAI_API_KEY = \"[REDACTED:openai_api_key]\"\n"
    );
    assert_eq!(body["suffix"], "\n# contact: ops@example.org\n");
    assert_no_leak(&out);

    let mut body = fixture("embeddings.json");
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Alert, GuardrailAction::Redact),
        Endpoint::Embeddings,
        &mut body,
    );
    assert_eq!(
        triples(&out),
        set(&[
            ("/input/1", "pii", "credit_card"),
            ("/input/1", "pii", "email"),
            ("/input/2", "secrets", "anthropic_api_key"),
        ])
    );
    assert_eq!(
        body["input"][1],
        "Customer card [REDACTED:credit_card], email [REDACTED:email]"
    );
    assert_no_leak(&out);

    let mut body = serde_json::json!({"model": "m", "input": format!("ghp token {}", FAKES.github[3]), "prompt": [[1, 2, 3]]});
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Redact, GuardrailAction::Off),
        Endpoint::Embeddings,
        &mut body,
    );
    assert_eq!(triples(&out), set(&[("/input", "secrets", "github_token")]));
    assert_eq!(body["input"], "ghp token [REDACTED:github_token]");
}

#[test]
fn apply_tool_use_keys_and_escaping() {
    let key = FAKES.github[4].clone();
    let mut body = serde_json::json!({
        "messages": [{"role": "assistant", "content": [{
            "type": "tool_use", "id": "t", "name": "x",
            "input": {"a/b~c": "mail x.y@example.com", key.clone(): "v", "n": [1, "safe"]}
        }]}]
    });
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Alert, GuardrailAction::Alert),
        Endpoint::Messages,
        &mut body,
    );
    assert_eq!(
        triples(&out),
        set(&[
            ("/messages/0/content/0/input/a~1b~0c", "pii", "email"),
            (
                "/messages/0/content/0/input/[REDACTED:github_token]",
                "secrets",
                "github_token"
            ),
        ])
    );
    assert_no_leak(&out);
    assert!(!format!("{out:?}").contains(&key));
    // Redact renames the key.
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Redact, GuardrailAction::Off),
        Endpoint::Messages,
        &mut body,
    );
    assert!(out.modified);
    let input = body.pointer("/messages/0/content/0/input").unwrap();
    assert!(input.get(&key).is_none());
    assert_eq!(input["[REDACTED:github_token]"], "v");
}

#[test]
fn apply_walks_legacy_function_calls_documents_and_responses_items() {
    let f = &*FAKES;
    let alert = policy(GuardrailAction::Alert, GuardrailAction::Alert);
    let mut chat = serde_json::json!({"messages": [
        {"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": format!("{{\"k\": \"{}\"}}", f.gcp_api_key)}}
    ]});
    let out = apply(&SCANNER, &alert, Endpoint::ChatCompletions, &mut chat);
    assert_eq!(
        triples(&out),
        set(&[(
            "/messages/0/function_call/arguments",
            "secrets",
            "gcp_api_key"
        )])
    );
    let mut messages = serde_json::json!({"messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": format!("aws {}", f.aws_key_id)}},
            {"type": "thinking", "thinking": f.stripe.clone(), "signature": "sig"}
        ]}
    ]});
    let out = apply(&SCANNER, &alert, Endpoint::Messages, &mut messages);
    assert_eq!(
        triples(&out),
        set(&[(
            "/messages/0/content/0/source/data",
            "secrets",
            "aws_access_key_id"
        )]),
        "thinking blocks are signed: never scanned"
    );
    let mut responses = serde_json::json!({
        "instructions": format!("use {}", f.gitlab),
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": format!("key {}", f.hf)}]},
            {"type": "function_call_output", "call_id": "c", "output": format!("card {}", f.cards[1])},
        ],
    });
    let out = apply_fields(&SCANNER, &alert, &fields::RESPONSES, &mut responses);
    assert_eq!(
        triples(&out),
        set(&[
            ("/instructions", "secrets", "gitlab_token"),
            ("/input/0/content/0/text", "secrets", "huggingface_token"),
            ("/input/1/output", "pii", "credit_card"),
        ])
    );
}

/// One caller text field per case: the endpoint, the body with `{}` where the secret goes, and
/// the JSON pointer of the string that holds it.
const FIELD_CASES: &[(Endpoint, &str, &str)] = &[
    (
        Endpoint::ChatCompletions,
        r#"{"messages": [{"role": "user", "name": "{}", "content": "hi"}]}"#,
        "/messages/0/name",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"user": "{}", "messages": []}"#,
        "/user",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"messages": [{"role": "user", "content": {"type": "text", "text": "{}"}}]}"#,
        "/messages/0/content/text",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "{}"}]}]}"#,
        "/messages/0/content/0/text",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"messages": [{"role": "assistant", "content": [{"type": "refusal", "refusal": "{}"}]}]}"#,
        "/messages/0/content/0/refusal",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"messages": [{"role": "user", "content": [{"type": "file", "file": {"filename": "{}", "file_data": "data:application/pdf;base64,AAAA"}}]}]}"#,
        "/messages/0/content/0/file/filename",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}"#,
        "/messages/0/tool_calls/0/function/arguments",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f", "input": "{}"}}]}]}"#,
        "/messages/0/tool_calls/0/custom/input",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"tools": [{"type": "function", "function": {"name": "f", "description": "{}"}}]}"#,
        "/tools/0/function/description",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"q": {"description": "{}"}}}}}]}"#,
        "/tools/0/function/parameters/properties/q/description",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"tool_choice": {"type": "function", "function": {"name": "{}"}}}"#,
        "/tool_choice/function/name",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"functions": [{"name": "f", "description": "{}"}]}"#,
        "/functions/0/description",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"response_format": {"type": "json_schema", "json_schema": {"name": "a", "description": "{}"}}}"#,
        "/response_format/json_schema/description",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"metadata": {"k": "{}"}}"#,
        "/metadata/k",
    ),
    (Endpoint::ChatCompletions, r#"{"stop": "{}"}"#, "/stop"),
    (
        Endpoint::ChatCompletions,
        r#"{"stop": ["x", "{}"]}"#,
        "/stop/1",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"prediction": {"type": "content", "content": [{"type": "text", "text": "{}"}]}}"#,
        "/prediction/content/0/text",
    ),
    (
        Endpoint::ChatCompletions,
        r#"{"safety_identifier": "{}"}"#,
        "/safety_identifier",
    ),
    (Endpoint::Completions, r#"{"prompt": "{}"}"#, "/prompt"),
    (
        Endpoint::Completions,
        r#"{"prompt": ["a", "{}"]}"#,
        "/prompt/1",
    ),
    (
        Endpoint::Completions,
        r#"{"prompt": "a", "suffix": "{}"}"#,
        "/suffix",
    ),
    (
        Endpoint::Completions,
        r#"{"prompt": "a", "user": "{}"}"#,
        "/user",
    ),
    (
        Endpoint::Completions,
        r#"{"prompt": "a", "stop": ["{}"]}"#,
        "/stop/0",
    ),
    (Endpoint::Embeddings, r#"{"input": "{}"}"#, "/input"),
    (
        Endpoint::Embeddings,
        r#"{"input": ["a", "{}"]}"#,
        "/input/1",
    ),
    (
        Endpoint::Embeddings,
        r#"{"input": "a", "user": "{}"}"#,
        "/user",
    ),
    (Endpoint::Messages, r#"{"system": "{}"}"#, "/system"),
    (
        Endpoint::Messages,
        r#"{"system": [{"type": "text", "text": "{}"}]}"#,
        "/system/0/text",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": "{}"}]}"#,
        "/messages/0/content",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": {"type": "text", "text": "{}"}}]}"#,
        "/messages/0/content/text",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "ok", "citations": [{"type": "char_location", "cited_text": "{}"}]}]}]}"#,
        "/messages/0/content/0/citations/0/cited_text",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "{}"}]}]}"#,
        "/messages/0/content/0/content",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "{}"}]}]}]}"#,
        "/messages/0/content/0/content/0/text",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "{}"}]}]}]}]}"#,
        "/messages/0/content/0/content/0/content/0/text",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"q": "{}"}}]}]}"#,
        "/messages/0/content/0/input/q",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": [{"type": "document", "title": "{}", "source": {"type": "url", "url": "https://x"}}]}]}"#,
        "/messages/0/content/0/title",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "{}"}]}}]}]}"#,
        "/messages/0/content/0/source/content/0/text",
    ),
    (
        Endpoint::Messages,
        r#"{"messages": [{"role": "user", "content": [{"type": "some_future_block", "text": "{}"}]}]}"#,
        "/messages/0/content/0/text",
    ),
    (
        Endpoint::Messages,
        r#"{"tools": [{"name": "f", "description": "{}", "input_schema": {"type": "object"}}]}"#,
        "/tools/0/description",
    ),
    (
        Endpoint::Messages,
        r#"{"tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"q": {"description": "{}"}}}}]}"#,
        "/tools/0/input_schema/properties/q/description",
    ),
    (
        Endpoint::Messages,
        r#"{"tool_choice": {"type": "tool", "name": "{}"}}"#,
        "/tool_choice/name",
    ),
    (
        Endpoint::Messages,
        r#"{"metadata": {"user_id": "{}"}}"#,
        "/metadata/user_id",
    ),
    (
        Endpoint::Messages,
        r#"{"stop_sequences": ["{}"]}"#,
        "/stop_sequences/0",
    ),
];

fn field_case(template: &str, secret: &str) -> Value {
    serde_json::from_str(&template.replace("{}", secret)).unwrap()
}

#[test]
fn apply_scans_every_caller_text_field_in_each_action() {
    let secret = FAKES.github[1].clone();
    for (endpoint, template, location) in FIELD_CASES {
        for action in [
            GuardrailAction::Alert,
            GuardrailAction::Redact,
            GuardrailAction::Block,
        ] {
            let mut body = field_case(template, &secret);
            let out = apply(
                &SCANNER,
                &policy(action, GuardrailAction::Off),
                *endpoint,
                &mut body,
            );
            assert_eq!(
                triples(&out),
                set(&[(location, "secrets", "github_token")]),
                "{endpoint:?} {template} ({action:?})"
            );
            assert_eq!(out.blocked, action == GuardrailAction::Block);
            let replaced = body.pointer(location).and_then(Value::as_str).unwrap();
            if action == GuardrailAction::Alert {
                assert_eq!(replaced, secret);
            } else {
                assert_eq!(replaced, "[REDACTED:github_token]", "{template}");
                assert!(!body.to_string().contains(&secret), "{template}");
            }
        }
    }
}

#[test]
fn apply_leaves_media_signatures_and_provider_credentials_alone() {
    // Not caller text: image and audio payloads, signed thinking blocks, encrypted search
    // results, ids, the model name, and credentials addressed to the provider's MCP client.
    let secret = FAKES.github[2].clone();
    let cases: &[(Endpoint, &str)] = &[
        (
            Endpoint::ChatCompletions,
            r#"{"model": "{}", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/{}"}}, {"type": "input_audio", "input_audio": {"data": "{}", "format": "wav"}}]}]}"#,
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"messages": [{"role": "tool", "tool_call_id": "{}", "content": "ok"}], "logit_bias": {"{}": 1}}"#,
        ),
        (
            Endpoint::Messages,
            r#"{"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "{}", "signature": "{}"}, {"type": "redacted_thinking", "data": "{}"}]}]}"#,
        ),
        (
            Endpoint::Messages,
            r#"{"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "{}"}}]}]}"#,
        ),
        (
            Endpoint::Messages,
            r#"{"messages": [{"role": "user", "content": [{"type": "web_search_tool_result", "tool_use_id": "t", "content": [{"type": "web_search_result", "url": "https://x", "encrypted_content": "{}"}]}]}]}"#,
        ),
        (
            Endpoint::Messages,
            r#"{"mcp_servers": [{"type": "url", "url": "https://mcp", "name": "m", "authorization_token": "{}"}]}"#,
        ),
    ];
    for (endpoint, template) in cases {
        let mut body = field_case(template, &secret);
        let before = body.clone();
        let out = apply(
            &SCANNER,
            &policy(GuardrailAction::Redact, GuardrailAction::Redact),
            *endpoint,
            &mut body,
        );
        assert_eq!(out, Outcome::default(), "{template}");
        assert_eq!(body, before);
    }
}

#[test]
fn every_endpoint_has_a_field_description() {
    for endpoint in [
        Endpoint::ChatCompletions,
        Endpoint::Messages,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ] {
        assert!(
            !matches!(fields::of(endpoint), fields::Text::Skip),
            "{endpoint:?}"
        );
    }
}

#[test]
fn apply_snippets_mask_categories_the_policy_ignores() {
    // PII on alert, secrets off: the email's snippet must still hide the neighbouring token.
    let token = FAKES.github[2].clone();
    let mut body = serde_json::json!({"messages": [{"role": "user", "content": format!("mail jane@example.org with {token}")}]});
    let out = apply(
        &SCANNER,
        &policy(GuardrailAction::Off, GuardrailAction::Alert),
        Endpoint::ChatCompletions,
        &mut body,
    );
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].kind, "email");
    assert_eq!(
        out.alerts[0].snippet,
        "mail [REDACTED:email] with [REDACTED:github_token]"
    );
    assert!(!format!("{out:?}").contains(distinctive(&token)));
}

#[test]
fn apply_ignores_non_objects_and_unknown_shapes() {
    for mut body in [
        serde_json::json!(null),
        serde_json::json!("text"),
        serde_json::json!([1, 2]),
        serde_json::json!({"messages": "not an array", "system": 5, "prompt": {"x": 1}}),
    ] {
        for endpoint in [
            Endpoint::ChatCompletions,
            Endpoint::Messages,
            Endpoint::Completions,
            Endpoint::Embeddings,
        ] {
            let out = apply(
                &SCANNER,
                &policy(GuardrailAction::Block, GuardrailAction::Block),
                endpoint,
                &mut body,
            );
            assert_eq!(out, Outcome::default());
        }
    }
}

// ---------------------------------------------------------------- throughput

/// Realistic prompt text: prose and code, no secrets, some numbers, `@` and `+`.
fn clean_prompt(size: usize) -> String {
    const PARAS: &[&str] = &[
        "You are a senior Rust engineer. Review the following change for correctness, performance and style. Point out any unsafe assumptions about input sizes, and suggest tests. Keep the answer under 300 words; use bullet points.\n",
        "fn parse_header(buf: &[u8]) -> Result<Header, Error> {\n    let len = u32::from_be_bytes(buf[0..4].try_into()?);\n    if len as usize + 4 > buf.len() { return Err(Error::Truncated); }\n    Ok(Header { len, kind: buf[4] })\n}\n",
        "The deployment on 2024-03-12 rolled out version 1.13.1 to 42 pods; p99 latency went from 180 ms to 240 ms between 10:00 and 10:45 UTC. The token budget per request is 4096 and max_tokens defaults to 1024.\n",
        "@@ -12,7 +12,9 @@ impl Server {\n-    let x = a + b;\n+    let x = a.saturating_add(b);\n+    // see issue #4412\n",
        "Customers in Europe and Asia reported errors for order ORD-2024-000123 and ticket 98765. The commit e83c5163316f89bfbde7d9ab23ca2e25604af290 touched the cache layer.\n",
        "SELECT id, name, created_at FROM users WHERE created_at > '2024-01-01' AND status = 'active' ORDER BY id LIMIT 100;\n",
    ];
    let mut s = String::with_capacity(size + 512);
    let mut i = 0;
    while s.len() < size {
        s.push_str(PARAS[i % PARAS.len()]);
        i += 1;
    }
    s
}

/// The same prompt with a secret or PII item every ~1 KB.
fn dirty_prompt(size: usize) -> String {
    let clean = clean_prompt(size);
    let mut s = String::with_capacity(size + size / 4);
    let mut n = 0u64;
    for (i, line) in clean.split_inclusive('\n').enumerate() {
        s.push_str(line);
        if i % 5 == 4 {
            s.push_str(&injected(n as usize, n));
            s.push('\n');
            n += 1;
        }
    }
    s
}

/// Best and median seconds per call over `rounds` rounds of `iters` calls (best-of-N is what
/// the code costs; the median shows how noisy the machine was).
fn timed(rounds: usize, iters: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut per: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() / iters as f64
        })
        .collect();
    per.sort_by(f64::total_cmp);
    (per[0], per[per.len() / 2])
}

#[test]
#[ignore = "throughput probe; run with --release -- --ignored --nocapture"]
fn guardrails_throughput() {
    let scanner = Scanner::new();
    for (name, text) in [
        ("clean", clean_prompt(100 * 1024)),
        ("with findings", dirty_prompt(100 * 1024)),
    ] {
        let found = scanner.scan(&text, true, true).len();
        let (best, median) = timed(25, 20, || {
            assert_eq!(
                scanner.scan(std::hint::black_box(&text), true, true).len(),
                found
            );
        });
        let mbps = |secs: f64| text.len() as f64 / secs / 1e6;
        println!(
            "guardrails scan {name}: {} bytes, {found} findings: best {:.0} µs = {:.0} MB/s (median {:.0} µs = {:.0} MB/s)",
            text.len(),
            best * 1e6,
            mbps(best),
            median * 1e6,
            mbps(median),
        );
        let (best, _) = timed(25, 20, || {
            let _ = scanner.scan(std::hint::black_box(&text), true, false);
        });
        println!("  secrets only: {:.0} MB/s", mbps(best));
        let (best, _) = timed(25, 20, || {
            let _ = scanner.scan(std::hint::black_box(&text), false, true);
        });
        println!("  pii only: {:.0} MB/s", mbps(best));
    }
    let short = "Please summarise the attached meeting notes in five bullet points.";
    let (best, _) = timed(25, 2000, || {
        let _ = scanner.scan(std::hint::black_box(short), true, true);
    });
    println!(
        "guardrails scan of a {}-byte prompt: {:.2} µs",
        short.len(),
        best * 1e6
    );
    // The request-level path on a realistic body.
    let body = fixture("anthropic_messages.json");
    let (best, median) = timed(25, 100, || {
        let mut b = body.clone();
        let _ = apply(
            &scanner,
            &policy(GuardrailAction::Redact, GuardrailAction::Redact),
            Endpoint::Messages,
            &mut b,
        );
    });
    println!(
        "guardrails apply (anthropic fixture, redact, incl. body clone): best {:.1} µs, median {:.1} µs",
        best * 1e6,
        median * 1e6
    );
}
