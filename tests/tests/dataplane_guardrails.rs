//! Acceptance point 7: workspace guardrails. Redaction replaces a finding before the upstream
//! sees it; block refuses the request in the caller's dialect without calling the upstream;
//! alert lets it through. Whatever the action, the record keeps an alert with a redacted
//! snippet and never the secret, and the recorded prompt is redacted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_crds::workspace::GuardrailAction;
use switchyard_dataplane::guardrails::Category;
use switchyard_dataplane::record::{Interception, Outcome};
use switchyard_tests::harness::manifests::{guardrails, provider, workspace};
use switchyard_tests::harness::{Answer, Gateway};
use switchyard_tests::mock::MockUpstream;

/// A GitHub personal access token shape (`ghp_` + 36 alphanumerics), fake.
const TOKEN: &str = "ghp_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2";
const EMAIL: &str = "jane.doe@example.com";

async fn setup() -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = mock.base_url();
    let gw = Gateway::start_objects(&[
        guardrails(workspace("redacting", true), "redact", "redact"),
        guardrails(workspace("blocking", false), "block", "alert"),
        guardrails(workspace("alerting", false), "alert", "alert"),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
        provider("claude", "anthropic", &base, &["claude-mock"]),
    ])
    .await
    .unwrap();
    (mock, gw)
}

fn prompt() -> String {
    format!("deploy with token {TOKEN} and mail {EMAIL} when done")
}

fn openai(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt()}]})
}

fn anthropic(model: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": prompt()}]})
}

async fn send(gw: &Gateway, path: &str, body: &Value, ws: &str) -> Answer {
    gw.post_with(
        path,
        body,
        &[
            ("x-switchyard-workspace", ws),
            ("anthropic-version", "2023-06-01"),
        ],
    )
    .await
    .unwrap()
}

/// The record keeps the findings and never the secret.
fn assert_record_is_clean(
    r: &Interception,
    action: GuardrailAction,
    email_action: GuardrailAction,
) {
    let text = serde_json::to_string(r).unwrap();
    assert!(!text.contains(TOKEN), "record holds the token: {text}");
    assert!(!text.contains(EMAIL), "record holds the email: {text}");
    let prompt = r.user_prompt.as_deref().unwrap();
    assert!(prompt.contains("[REDACTED:github_token]"), "{prompt}");
    assert!(prompt.contains("[REDACTED:email]"), "{prompt}");
    let token = r.alerts.iter().find(|a| a.kind == "github_token").unwrap();
    assert_eq!(token.category, Category::Secrets);
    assert_eq!(token.action, action);
    assert!(
        token.snippet.contains("[REDACTED:github_token]"),
        "{:?}",
        token
    );
    assert!(
        token.snippet.contains("deploy with token"),
        "context kept: {:?}",
        token
    );
    assert!(
        token.location.starts_with("/messages/0/content"),
        "{:?}",
        token
    );
    let email = r.alerts.iter().find(|a| a.kind == "email").unwrap();
    assert_eq!(email.category, Category::Pii);
    assert_eq!(email.action, email_action);
}

#[tokio::test]
async fn redaction_happens_before_the_upstream_in_both_dialects() {
    let (mock, gw) = setup().await;
    for (path, body) in [
        ("/v1/chat/completions", openai("gpt-mock")),
        ("/v1/messages", anthropic("claude-mock")),
        ("/v1/chat/completions", openai("claude-mock")),
        ("/v1/messages", anthropic("gpt-mock")),
    ] {
        mock.clear();
        let a = send(&gw, path, &body, "redacting").await;
        assert_eq!(a.status, 200, "{}", a.text);
        let got = mock.requests();
        assert_eq!(got.len(), 1);
        let sent = String::from_utf8_lossy(&got[0].raw_body).into_owned();
        assert!(
            !sent.contains(TOKEN) && !sent.contains(EMAIL),
            "the upstream saw a finding: {sent}"
        );
        assert!(
            sent.contains("deploy with token [REDACTED:github_token] and mail [REDACTED:email]"),
            "{sent}"
        );
        assert!(
            !a.text.contains(TOKEN),
            "the echo comes from the redacted prompt"
        );
        let recs = gw.records_of(&a.request_id()).await.unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].outcome, Outcome::Success);
        assert_record_is_clean(&recs[0], GuardrailAction::Redact, GuardrailAction::Redact);
    }
    let metrics = gw.metrics_text();
    assert!(
        metrics
            .contains(r#"switchyard_guardrail_alerts_total{category="secrets",action="redact"} 4"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn block_refuses_in_the_callers_dialect_and_calls_nothing() {
    let (mock, gw) = setup().await;
    let a = send(&gw, "/v1/chat/completions", &openai("gpt-mock"), "blocking").await;
    assert_eq!(a.status, 400, "{}", a.text);
    let e = a.json().unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "guardrail_blocked");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("github_token")
    );
    assert!(!a.text.contains(TOKEN));

    let b = send(&gw, "/v1/messages", &anthropic("claude-mock"), "blocking").await;
    assert_eq!(b.status, 400, "{}", b.text);
    let e = b.json().unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("blocked"));

    let mut s = openai("gpt-mock");
    s["stream"] = json!(true);
    let c = send(&gw, "/v1/chat/completions", &s, "blocking").await;
    assert_eq!(
        c.status, 400,
        "a streamed request is refused before any stream starts: {}",
        c.text
    );
    assert!(
        c.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );

    assert!(mock.requests().is_empty(), "the upstream received nothing");
    for x in [&a, &b, &c] {
        let recs = gw.records_of(&x.request_id()).await.unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].status, recs[0].outcome), (400, Outcome::Rejected));
        assert!(recs[0].attempts.is_empty());
        assert_record_is_clean(&recs[0], GuardrailAction::Block, GuardrailAction::Alert);
    }
}

#[tokio::test]
async fn alert_lets_the_request_through_but_the_record_is_redacted() {
    let (mock, gw) = setup().await;
    let a = send(&gw, "/v1/chat/completions", &openai("gpt-mock"), "alerting").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got = mock.requests();
    assert_eq!(
        got[0].body["messages"][0]["content"],
        prompt(),
        "alert changes nothing upstream"
    );
    let recs = gw.records_of(&a.request_id()).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_record_is_clean(&recs[0], GuardrailAction::Alert, GuardrailAction::Alert);

    let s = send(
        &gw,
        "/v1/messages",
        &{
            let mut b = anthropic("claude-mock");
            b["stream"] = json!(true);
            b
        },
        "alerting",
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.text);
    let recs = gw.records_of(&s.request_id()).await.unwrap();
    assert_record_is_clean(&recs[0], GuardrailAction::Alert, GuardrailAction::Alert);
    assert!(!gw.spool_text().contains(TOKEN));
    assert!(
        !std::fs::read_to_string(gw.records_path())
            .unwrap()
            .contains(TOKEN)
    );
}

#[tokio::test]
async fn a_request_refused_before_the_guardrails_ran_is_recorded_redacted_too() {
    let (mock, gw) = setup().await;
    let mut ids = Vec::new();
    for (body, headers) in [
        (openai("no-such-model"), vec![]),
        (
            openai("no-such-model"),
            vec![("x-switchyard-workspace", "alerting")],
        ),
        (
            openai("gpt-mock"),
            vec![("x-switchyard-workspace", "ghost")],
        ),
    ] {
        let a = gw
            .post_with("/v1/chat/completions", &body, &headers)
            .await
            .unwrap();
        assert_eq!(a.status, 404, "{}", a.text);
        ids.push(a.request_id());
    }
    for id in ids {
        let r = gw.record_of(&id).await.unwrap();
        assert_eq!(r.outcome, Outcome::Rejected);
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains(TOKEN) && !text.contains(EMAIL), "{text}");
        assert!(
            r.user_prompt
                .unwrap()
                .contains("deploy with token [REDACTED:github_token]")
        );
    }
    assert!(mock.requests().is_empty());
}
