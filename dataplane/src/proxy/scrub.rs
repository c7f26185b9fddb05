//! Credentials never leave the gateway: they are scrubbed from every upstream error text before
//! it is relayed to the caller or recorded.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::identity::Caller;
use crate::sse::SseEvent;
use crate::upstream::Upstream;

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

/// Credentials involved in an attempt, to be scrubbed from any text that leaves the gateway.
pub(crate) fn secrets_of(up: &Upstream, caller: &Caller) -> Vec<String> {
    let mut out = Vec::new();
    if let crate::upstream::Credential::Key(k) = &up.credential {
        out.push(k.expose().to_owned());
    }
    if let Some(p) = &caller.passthrough {
        out.push(p.clone());
    }
    out.extend(up.headers.iter().map(|h| h.value.expose().to_owned()));
    out.retain(|s| s.len() >= 8);
    out
}

static MASKED_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"\b(sk|rk|pk|key|ak)[-_][A-Za-z0-9_\-]{0,12}\*{2,}[A-Za-z0-9_\-]{0,12}").ok()
});

/// Removes credentials (whole, or in the masked `sk-ab***yz` form upstreams print) from text.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[REDACTED]");
        }
    }
    if let Some(re) = MASKED_KEY.as_ref() {
        out = re.replace_all(&out, "[REDACTED]").into_owned();
    }
    out
}

/// An upstream's in-stream error event (Anthropic `event: error`, OpenAI-dialect
/// `data: {"error": …}`) with credentials scrubbed from its text: error events are relayed to
/// the caller (translated or not) and recorded, and upstreams like to quote the key they were
/// given. Other events pass untouched.
pub(crate) fn scrub_error_event(ev: SseEvent, secrets: &[String]) -> SseEvent {
    let is_error = ev.event.as_deref() == Some("error")
        || (ev.data.contains("\"error\"")
            && serde_json::from_str::<Value>(&ev.data)
                .is_ok_and(|v| v.get("error").is_some_and(|e| !e.is_null())));
    if !is_error {
        return ev;
    }
    let data = scrub(&ev.data, secrets);
    SseEvent { data, ..ev }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_whole_and_masked_keys() {
        let secrets = vec!["sk-live-0123456789abcdef".to_owned()];
        let text = "Incorrect API key provided: sk-live-0123456789abcdef; also sk-ab****yz and key_12***34";
        let s = scrub(text, &secrets);
        assert!(!s.contains("0123456789abcdef"), "{s}");
        assert!(!s.contains("sk-ab****yz"), "{s}");
        assert!(!s.contains("key_12***34"), "{s}");
    }

    #[test]
    fn error_events_are_scrubbed_and_other_events_untouched() {
        let secrets = vec!["sk-live-0123456789abcdef".to_owned()];
        let openai = SseEvent::data(
            r#"{"error":{"message":"bad key sk-live-0123456789abcdef","type":"server_error"}}"#,
        );
        assert!(
            !scrub_error_event(openai, &secrets)
                .data
                .contains("0123456789abcdef")
        );
        let anthropic = SseEvent::named(
            "error",
            r#"{"type":"error","error":{"message":"key sk-ab****yz"}}"#,
        );
        let out = scrub_error_event(anthropic, &secrets);
        assert_eq!(out.event.as_deref(), Some("error"));
        assert!(!out.data.contains("sk-ab****yz"), "{}", out.data);
        let content =
            SseEvent::data(r#"{"choices":[{"delta":{"content":"sk-live-0123456789abcdef"}}]}"#);
        assert_eq!(
            scrub_error_event(content.clone(), &secrets),
            content,
            "model output is not rewritten"
        );
    }
}
