//! Acceptance point 10: the errors a caller can meet, in both dialects' shapes, each with
//! exactly one record: malformed JSON, unknown model, oversized body, missing or unknown
//! workspace, upstream 4xx passed through, upstream 5xx after the fallbacks, and a stream cut
//! in the middle that ends with a well-formed error event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_dataplane::record::{Interception, Outcome};
use switchyard_dataplane::usage::Usage;
use switchyard_tests::harness::manifests::{
    mux_rule, provider, router_policy, to_provider, workspace,
};
use switchyard_tests::harness::{Answer, Gateway, GatewayOptions};
use switchyard_tests::mock::{Behavior, MockUpstream, ScriptRule};

const ANTHROPIC: (&str, &str) = ("anthropic-version", "2023-06-01");

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Providers `gpt` and `claude` declaring one model each, rules that let model directives
/// through (`gpt-mock+…`, `claude-mock+…`), no catch-all, and a policy with a fallback for
/// `flaky` whose every target fails.
fn objects(mock: &MockUpstream) -> Vec<Value> {
    let base = mock.base_url();
    vec![
        workspace("default", true),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
        provider("claude", "anthropic", &base, &["claude-mock"]),
        mux_rule(
            "gpt-directives",
            "default",
            10,
            "model",
            Some("gpt-mock+*"),
            to_provider("gpt", None),
        ),
        mux_rule(
            "claude-directives",
            "default",
            20,
            "model",
            Some("claude-mock+*"),
            to_provider("claude", None),
        ),
        router_policy(
            "flaky",
            10,
            json!({"model": "flaky"}),
            to_provider("gpt", Some("gpt-mock+status=503")),
            vec![to_provider("claude", Some("claude-mock+status=500"))],
        ),
    ]
}

async fn setup() -> (MockUpstream, Gateway) {
    let mock = mock().await;
    let gw = Gateway::start_objects(&objects(&mock)).await.unwrap();
    (mock, gw)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]})
}

/// The OpenAI error object, checking the shape.
fn openai_error(a: &Answer, status: u16) -> Value {
    assert_eq!(a.status, status, "{}", a.text);
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = a.json().unwrap();
    let e = v["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(e.get(field).is_some(), "OpenAI error has `{field}`: {v}");
    }
    assert!(e["message"].is_string() && e["type"].is_string());
    e
}

/// The Anthropic error object, checking the shape.
fn anthropic_error(a: &Answer, status: u16) -> Value {
    assert_eq!(a.status, status, "{}", a.text);
    let v = a.json().unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        v["error"]["type"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );
    v["error"].clone()
}

/// The record of a request (each test ends with [`Gateway::unique_records`], so this is
/// its only one).
async fn one_record(gw: &Gateway, a: &Answer) -> Interception {
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.status, a.status);
    r
}

/// Every request of the test has exactly one record.
async fn exactly_one_record_each(gw: &Gateway, requests: usize) {
    let records = gw.unique_records().await.unwrap();
    assert_eq!(records.len(), requests, "one record per request");
}

#[tokio::test]
async fn malformed_json_is_a_400_in_each_dialect() {
    let (mock, gw) = setup().await;
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        let a = gw
            .post_raw(path, b"{\"model\": \"gpt-mock\", ".to_vec(), &[])
            .await
            .unwrap();
        let e = openai_error(&a, 400);
        assert_eq!(e["type"], "invalid_request_error");
        assert!(
            e["message"].as_str().unwrap().contains("not valid JSON"),
            "{e}"
        );
        let r = one_record(&gw, &a).await;
        assert_eq!(r.outcome, Outcome::Rejected);
        assert_eq!(r.endpoint, path);
    }
    let a = gw
        .post_raw("/v1/messages", b"not json at all".to_vec(), &[ANTHROPIC])
        .await
        .unwrap();
    let e = anthropic_error(&a, 400);
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(one_record(&gw, &a).await.outcome, Outcome::Rejected);
    // Valid JSON that is not a valid request names the parameter.
    let a = gw
        .post("/v1/chat/completions", &json!({"model": "gpt-mock"}))
        .await
        .unwrap();
    assert_eq!(openai_error(&a, 400)["param"], "messages");
    let a = gw
        .post_with(
            "/v1/messages",
            &json!({"model": "claude-mock", "messages": [{"role": "user", "content": "x"}]}),
            &[ANTHROPIC],
        )
        .await
        .unwrap();
    assert!(
        anthropic_error(&a, 400)["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    assert!(mock.requests().is_empty());
    exactly_one_record_each(&gw, 6).await;
}

#[tokio::test]
async fn an_unknown_model_is_a_404_naming_model_and_workspace() {
    let (mock, gw) = setup().await;
    let a = gw
        .post("/v1/chat/completions", &chat("no-such-model"))
        .await
        .unwrap();
    let e = openai_error(&a, 404);
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(e["param"], "model");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("\"no-such-model\"") && m.contains("\"default/default\""),
        "{m}"
    );
    let r = one_record(&gw, &a).await;
    assert_eq!(
        (r.outcome, r.workspace.as_deref()),
        (Outcome::Rejected, Some("default/default"))
    );

    let a = gw
        .post_with("/v1/messages", &chat("no-such-model"), &[ANTHROPIC])
        .await
        .unwrap();
    let e = anthropic_error(&a, 404);
    assert_eq!(e["type"], "not_found_error");
    assert!(e["message"].as_str().unwrap().contains("no-such-model"));
    one_record(&gw, &a).await;
    assert!(mock.requests().is_empty());
    exactly_one_record_each(&gw, 2).await;
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let mock = mock().await;
    let gw = Gateway::start_objects_with(
        &objects(&mock),
        GatewayOptions {
            max_body_bytes: Some(2048),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut big = chat("gpt-mock");
    big["messages"][0]["content"] = json!("word ".repeat(1000));
    let a = gw.post("/v1/chat/completions", &big).await.unwrap();
    let e = openai_error(&a, 413);
    assert!(e["message"].as_str().unwrap().contains("2048"), "{e}");
    assert_eq!(one_record(&gw, &a).await.outcome, Outcome::Rejected);
    let a = gw
        .post_with("/v1/messages", &big, &[ANTHROPIC])
        .await
        .unwrap();
    assert_eq!(anthropic_error(&a, 413)["type"], "request_too_large");
    one_record(&gw, &a).await;
    assert!(mock.requests().is_empty());
    let ok = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "a small body still passes: {}", ok.text);
    exactly_one_record_each(&gw, 3).await;
}

#[tokio::test]
async fn a_missing_or_unknown_workspace_is_a_404() {
    let mock = mock().await;
    let mut objs = objects(&mock);
    objs[0] = workspace("team", false);
    let gw = Gateway::start_objects(&objs).await.unwrap();
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    let e = openai_error(&a, 404);
    assert_eq!(e["code"], "workspace_not_found");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("x-switchyard-workspace")
    );
    one_record(&gw, &a).await;
    let a = gw
        .post_with("/v1/messages", &chat("claude-mock"), &[ANTHROPIC])
        .await
        .unwrap();
    assert_eq!(anthropic_error(&a, 404)["type"], "not_found_error");
    one_record(&gw, &a).await;
    let a = gw
        .post_with(
            "/v1/chat/completions",
            &chat("gpt-mock"),
            &[("x-switchyard-workspace", "ghost")],
        )
        .await
        .unwrap();
    let e = openai_error(&a, 404);
    assert_eq!(e["code"], "workspace_not_found");
    assert!(e["message"].as_str().unwrap().contains("\"ghost\""));
    one_record(&gw, &a).await;
    let a = gw
        .post_with(
            "/v1/messages",
            &chat("claude-mock"),
            &[ANTHROPIC, ("x-switchyard-workspace", "ghost")],
        )
        .await
        .unwrap();
    assert!(
        anthropic_error(&a, 404)["message"]
            .as_str()
            .unwrap()
            .contains("ghost")
    );
    let m = gw.get("/v1/models", &[]).await.unwrap();
    assert_eq!(openai_error(&m, 404)["code"], "workspace_not_found");
    assert!(mock.requests().is_empty());
    let ok = gw
        .post_with(
            "/v1/chat/completions",
            &chat("gpt-mock"),
            &[("x-switchyard-workspace", "team")],
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
    exactly_one_record_each(&gw, 5).await;
}

#[tokio::test]
async fn upstream_4xx_is_passed_through() {
    let (mock, gw) = setup().await;
    let script = |status: u16, message: &str| {
        mock.script(
            ScriptRule::new(Behavior {
                status: Some(status),
                message: Some(message.into()),
                ..Default::default()
            })
            .times(1),
        );
    };
    script(400, "Unsupported parameter: 'foo'");
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    let e = openai_error(&a, 400);
    assert_eq!(e["type"], "invalid_request_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Unsupported parameter: 'foo'"),
        "{e}"
    );
    let r = one_record(&gw, &a).await;
    assert_eq!(r.outcome, Outcome::UpstreamError);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0].status, Some(400));
    assert!(
        r.usage.is_zero() && !r.usage_estimated,
        "a refused call costs nothing: {:?}",
        r.usage
    );

    script(404, "The model `gpt-mock` does not exist");
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    assert!(
        openai_error(&a, 404)["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    one_record(&gw, &a).await;

    script(429, "Rate limit reached");
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    assert_eq!(openai_error(&a, 429)["type"], "rate_limit_error");
    assert_eq!(a.header("retry-after"), Some("1"), "Retry-After passed on");
    one_record(&gw, &a).await;

    script(400, "max_tokens: must be positive");
    let a = gw
        .post_with("/v1/messages", &chat("claude-mock"), &[ANTHROPIC])
        .await
        .unwrap();
    let e = anthropic_error(&a, 400);
    assert_eq!(e["type"], "invalid_request_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens: must be positive")
    );
    assert_eq!(one_record(&gw, &a).await.outcome, Outcome::UpstreamError);
    assert_eq!(mock.requests().len(), 4, "a 4xx is not retried elsewhere");
    exactly_one_record_each(&gw, 4).await;
}

#[tokio::test]
async fn upstream_5xx_after_every_fallback_failed() {
    let (mock, gw) = setup().await;
    for (path, stream) in [
        ("/v1/chat/completions", false),
        ("/v1/chat/completions", true),
        ("/v1/messages", false),
    ] {
        mock.clear();
        let mut body = chat("flaky");
        body["stream"] = json!(stream);
        let a = gw.post_with(path, &body, &[ANTHROPIC]).await.unwrap();
        let e = if path == "/v1/messages" {
            anthropic_error(&a, 502)
        } else {
            openai_error(&a, 502)
        };
        assert_eq!(e["type"], "api_error");
        assert!(
            e["message"].as_str().unwrap().contains("500"),
            "the last failure is reported: {e}"
        );
        assert_eq!(
            a.route(),
            "policy=default/flaky; target=provider/claude; model=claude-mock+status=500"
        );
        let got: Vec<String> = mock
            .requests()
            .iter()
            .map(|r| r.model().unwrap().to_owned())
            .collect();
        assert_eq!(
            got,
            ["gpt-mock+status=503", "claude-mock+status=500"],
            "every target tried once"
        );
        let r = one_record(&gw, &a).await;
        assert_eq!(r.outcome, Outcome::UpstreamError);
        let statuses: Vec<Option<u16>> = r.attempts.iter().map(|x| x.status).collect();
        assert_eq!(statuses, [Some(503), Some(500)]);
        assert_eq!(
            r.route.as_ref().unwrap().target,
            "provider/claude:claude-mock+status=500",
            "the last one tried"
        );
        assert!(r.provider.is_none(), "nobody served it");
        assert_eq!(r.usage, Usage::default(), "failed calls cost nothing");
        assert!(!r.usage_estimated);
    }
    exactly_one_record_each(&gw, 3).await;
}

fn assert_cut_record(r: &Interception) {
    assert_eq!(r.status, 200);
    assert!(r.stream);
    assert_eq!(r.outcome, Outcome::UpstreamError);
    assert!(
        r.error.as_deref().unwrap().contains("broke off"),
        "{:?}",
        r.error
    );
    // No final usage came: what was relayed ("mock reply: hello", 3 words) is estimated.
    assert!(r.usage_estimated, "{:?}", r.usage);
    assert!(r.usage.output_tokens >= 3, "{:?}", r.usage);
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_openai_error_event() {
    let (_mock, gw) = setup().await;
    for model in ["gpt-mock+cut=3", "claude-mock+cut=3"] {
        let mut body = chat(model);
        body["stream"] = json!(true);
        let a = gw.post("/v1/chat/completions", &body).await.unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        let (chunks, done) = a.sse_data().unwrap();
        assert!(
            !done,
            "{model}: the error event is the last event (a [DONE] after it reads as a success): {}",
            a.text
        );
        let last = chunks.last().unwrap();
        assert_eq!(last["error"]["type"], "api_error", "{model}: {}", a.text);
        assert!(last["error"]["message"].is_string());
        let text = switchyard_tests::harness::openai_stream_text(&chunks);
        assert!(
            text.starts_with("mock"),
            "{model}: the content before the cut arrived: {text:?}"
        );
        assert!(
            chunks.iter().all(|c| c
                .pointer("/choices/0/finish_reason")
                .is_none_or(Value::is_null)),
            "no finish"
        );
        assert_cut_record(&one_record(&gw, &a).await);
    }
    exactly_one_record_each(&gw, 2).await;
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_anthropic_error_event() {
    let (_mock, gw) = setup().await;
    for model in ["claude-mock+cut=3", "gpt-mock+cut=3"] {
        let mut body = chat(model);
        body["stream"] = json!(true);
        let a = gw
            .post_with("/v1/messages", &body, &[ANTHROPIC])
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        let events = a.sse_events().unwrap();
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error", "{model}: {}", a.text);
        assert_eq!(data["type"], "error");
        assert_eq!(data["error"]["type"], "api_error");
        assert!(!events.iter().any(|(e, _)| e == "message_stop"), "{model}");
        assert!(
            switchyard_tests::harness::anthropic_stream_text(&events).starts_with("mock"),
            "{model}"
        );
        assert_cut_record(&one_record(&gw, &a).await);
    }
    exactly_one_record_each(&gw, 2).await;
}

#[tokio::test]
async fn an_upstream_error_event_is_relayed_and_recorded() {
    let (_mock, gw) = setup().await;
    let mut body = chat("gpt-mock+error_event");
    body["stream"] = json!(true);
    let a = gw.post("/v1/chat/completions", &body).await.unwrap();
    assert_eq!(a.status, 200);
    let (chunks, _) = a.sse_data().unwrap();
    assert!(
        chunks.last().unwrap()["error"]["message"].is_string(),
        "{}",
        a.text
    );
    let r = one_record(&gw, &a).await;
    assert_eq!(r.outcome, Outcome::UpstreamError);

    let mut body = chat("claude-mock+error_event");
    body["stream"] = json!(true);
    let a = gw
        .post_with("/v1/messages", &body, &[ANTHROPIC])
        .await
        .unwrap();
    let events = a.sse_events().unwrap();
    assert_eq!(events.last().unwrap().0, "error", "{}", a.text);
    assert_eq!(
        events.last().unwrap().1["error"]["type"],
        "overloaded_error"
    );
    assert_eq!(one_record(&gw, &a).await.outcome, Outcome::UpstreamError);
    exactly_one_record_each(&gw, 2).await;
}

#[tokio::test]
async fn a_non_streamed_body_cut_midway_is_a_502() {
    let (_mock, gw) = setup().await;
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock+cut=1"))
        .await
        .unwrap();
    assert_eq!(openai_error(&a, 502)["type"], "api_error");
    let r = one_record(&gw, &a).await;
    assert_eq!(r.outcome, Outcome::UpstreamError);
    let a = gw
        .post_with("/v1/messages", &chat("claude-mock+cut=1"), &[ANTHROPIC])
        .await
        .unwrap();
    assert_eq!(anthropic_error(&a, 502)["type"], "api_error");
    one_record(&gw, &a).await;
    exactly_one_record_each(&gw, 2).await;
}

#[tokio::test]
async fn a_caller_leaving_midstream_cancels_the_upstream_and_is_recorded_once() {
    let (mock, gw) = setup().await;
    let mut body = chat("gpt-mock+chunks=20+chunk_delay=50");
    body["stream"] = json!(true);
    let mut resp = gw
        .open(
            "/v1/chat/completions",
            &body,
            &[("x-request-id", "leaving-early")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.chunk().await.unwrap().unwrap().is_empty());
    drop(resp);
    let cancelled = mock
        .wait_for_cancelled(1, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(cancelled.len(), 1, "the upstream request was cancelled");
    let r = gw.record_of("leaving-early").await.unwrap();
    assert_eq!((r.status, r.outcome), (499, Outcome::Cancelled));
    assert!(r.usage_estimated);
    assert_eq!(gw.unique_records().await.unwrap().len(), 1);
}
