//! Credentials never leave the gateway. Every byte an upstream sends back, whatever its status
//! (a 200 body, an error body, each SSE event, a transport error's text), passes through the
//! attempt's [`Scrubber`] before it reaches the caller, a record, a log line or a metric:
//!
//! - the credentials of the attempt (the provider key from its Secret, a passthrough caller's
//!   own key, the caller's gateway key, extra header values from Secrets) are replaced by
//!   `[REDACTED]` in everything;
//! - error texts (upstream error messages, error events, transport errors) also lose the masked
//!   `sk-ab***yz` form upstreams print. Model output keeps such text: it is not a credential.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::http::HeaderMap;
use bytes::Bytes;
use regex::Regex;

use crate::identity::Caller;
use crate::sse::SseEvent;
use crate::upstream::Upstream;

/// What a credential is replaced with.
const REDACTED: &str = "[REDACTED]";

/// Shorter values are not treated as credentials (they would match ordinary text).
const MIN_SECRET_LEN: usize = 8;

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

static MASKED_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"\b(sk|rk|pk|key|ak)[-_][A-Za-z0-9_\-]{0,12}\*{2,}[A-Za-z0-9_\-]{0,12}").ok()
});

/// The credentials one upstream attempt involves, and the one place that removes them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// The credentials of an attempt to `up` for `caller`, with the request's own headers (the
    /// gateway key a caller presented is never sent upstream, but an upstream or a log must not
    /// be able to show it either).
    pub(crate) fn for_attempt(up: &Upstream, caller: &Caller, headers: &HeaderMap) -> Self {
        let mut secrets = Vec::new();
        if let crate::upstream::Credential::Key(k) = &up.credential {
            secrets.push(k.expose().to_owned());
        }
        if let Some(p) = &caller.passthrough {
            secrets.push(p.clone());
        }
        if let Some(k) = crate::identity::presented(headers) {
            secrets.push(k.to_owned());
        }
        secrets.extend(up.headers.iter().map(|h| h.value.expose().to_owned()));
        Self::new(secrets)
    }

    /// A scrubber for these credentials.
    pub(crate) fn new(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| s.len() >= MIN_SECRET_LEN);
        // Longest first, so a credential that contains another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// Bytes relayed from an upstream (a body, an event): credentials removed, unchanged (and
    /// not copied) when there are none.
    pub(crate) fn bytes(&self, bytes: Bytes) -> Bytes {
        if !self.found_in(&bytes) {
            return bytes;
        }
        let text = String::from_utf8_lossy(&bytes);
        Bytes::from(self.replace(&text).into_owned())
    }

    /// An SSE event from an upstream: credentials removed from its data; an error event also
    /// loses masked keys.
    pub(crate) fn event(&self, ev: SseEvent) -> SseEvent {
        let data = if is_error_event(&ev) {
            self.error_text(&ev.data)
        } else if self.found_in(ev.data.as_bytes()) {
            self.replace(&ev.data).into_owned()
        } else {
            return ev;
        };
        SseEvent { data, ..ev }
    }

    /// An error text (an upstream's message, a transport error): credentials and masked keys
    /// removed.
    pub(crate) fn error_text(&self, text: &str) -> String {
        let out = self.replace(text);
        match MASKED_KEY.as_ref() {
            Some(re) => re.replace_all(&out, REDACTED).into_owned(),
            None => out.into_owned(),
        }
    }

    fn found_in(&self, hay: &[u8]) -> bool {
        self.secrets
            .iter()
            .any(|s| memchr::memmem::find(hay, s.as_bytes()).is_some())
    }

    fn replace<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
        out
    }
}

/// Removes the given credentials (whole, or in the masked `sk-ab***yz` form upstreams print)
/// from an error text.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    Scrubber::new(secrets.to_vec()).error_text(text)
}

/// An upstream's in-stream error event: Anthropic `event: error` (or `"type":"error"`),
/// OpenAI-dialect `data: {"error": …}`.
pub(crate) fn is_error_event(ev: &SseEvent) -> bool {
    ev.event.as_deref() == Some("error")
        || (ev.data.contains("\"error\"")
            && serde_json::from_str::<serde_json::Value>(&ev.data).is_ok_and(|v| {
                v.get("error").is_some_and(|e| !e.is_null())
                    || v.get("type").and_then(serde_json::Value::as_str) == Some("error")
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-0123456789abcdef";

    fn scrubber() -> Scrubber {
        Scrubber::new(vec![KEY.to_owned(), "short".to_owned()])
    }

    #[test]
    fn error_texts_lose_whole_and_masked_keys() {
        let text = format!("Incorrect API key provided: {KEY}; also sk-ab****yz and key_12***34");
        let s = scrubber().error_text(&text);
        assert!(!s.contains("0123456789abcdef"), "{s}");
        assert!(!s.contains("sk-ab****yz"), "{s}");
        assert!(!s.contains("key_12***34"), "{s}");
        assert_eq!(scrub(&text, &[KEY.to_owned()]), s);
    }

    #[test]
    fn bodies_lose_credentials_and_are_not_copied_without_them() {
        let clean =
            Bytes::from_static(br#"{"choices":[{"message":{"content":"short sk-ab***yz"}}]}"#);
        let out = scrubber().bytes(clean.clone());
        assert_eq!(
            out, clean,
            "no credential: unchanged (short values are not credentials, masked forms in output stay)"
        );
        assert_eq!(out.as_ptr(), clean.as_ptr(), "not copied");
        let leaky = Bytes::from(format!(r#"{{"error":{{"message":"bad key {KEY}"}}}}"#));
        let out = scrubber().bytes(leaky);
        assert_eq!(&out[..], br#"{"error":{"message":"bad key [REDACTED]"}}"#);
    }

    #[test]
    fn longer_credentials_go_first() {
        let s = Scrubber::new(vec!["abcdefgh".to_owned(), "abcdefgh-ijklmnop".to_owned()]);
        assert_eq!(s.error_text("x abcdefgh-ijklmnop y"), "x [REDACTED] y");
    }

    #[test]
    fn events_are_scrubbed_error_events_also_of_masked_keys() {
        let s = scrubber();
        let openai = SseEvent::data(format!(
            r#"{{"error":{{"message":"bad key {KEY} sk-ab****yz","type":"server_error"}}}}"#
        ));
        let out = s.event(openai);
        assert!(!out.data.contains("0123456789abcdef"), "{}", out.data);
        assert!(!out.data.contains("sk-ab****yz"), "{}", out.data);
        let anthropic = SseEvent::named(
            "error",
            r#"{"type":"error","error":{"message":"key sk-ab****yz"}}"#,
        );
        let out = s.event(anthropic);
        assert_eq!(out.event.as_deref(), Some("error"));
        assert!(!out.data.contains("sk-ab****yz"), "{}", out.data);
        let content = SseEvent::data(format!(
            r#"{{"choices":[{{"delta":{{"content":"{KEY} and sk-ab****yz"}}}}]}}"#
        ));
        let out = s.event(content);
        assert!(
            !out.data.contains(KEY),
            "a credential in any event goes: {}",
            out.data
        );
        assert!(
            out.data.contains("sk-ab****yz"),
            "model output is not rewritten otherwise"
        );
        let plain = SseEvent::data(r#"{"choices":[]}"#);
        assert_eq!(s.event(plain.clone()), plain);
    }
}
