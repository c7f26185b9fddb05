//! Acceptance point 10: the errors a caller can meet, in both dialects' shapes, each with
//! exactly one record: malformed JSON, unknown model, oversized body, missing or unknown
//! workspace, upstream 4xx passed through, upstream 5xx after the fallbacks, and a stream cut
//! in the middle that ends with a well-formed error event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_dataplane::record::{Interception, Outcome};
use switchyard_dataplane::usage::Usage;
use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
use switchyard_tests::harness::manifests::{
    mux_rule, provider, router_policy, to_provider, workspace,
};
use switchyard_tests::harness::{Answer, Gateway, GatewayOptions};

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

/// A chat body for `model` with `field` set to `value` (a `/`-separated path into the body).
fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut body
    } else {
        body.pointer_mut(parent).unwrap()
    };
    match target {
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
        other => other[key] = value,
    }
    body
}

#[tokio::test]
async fn wrong_types_are_a_400_naming_the_field_in_each_dialect() {
    let (mock, gw) = setup().await;
    let openai = json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hello"}]});
    let completion = json!({"model": "gpt-mock", "prompt": "x"});
    let embedding = json!({"model": "gpt-mock", "input": "x"});
    let tool_call = json!({"model": "gpt-mock", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    ]});
    let obj = json!({"type": "text", "text": "hello"});
    let openai_cases = [
        (
            "/v1/chat/completions",
            with(openai.clone(), "/messages/0/content", obj.clone()),
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/messages/0/content", json!(5)),
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            with(
                openai.clone(),
                "/messages/0/content",
                json!([{"text": "no type"}]),
            ),
            "messages[0].content[0].type",
        ),
        (
            "/v1/chat/completions",
            with(
                openai.clone(),
                "/messages/0/content",
                json!([{"type": "text", "text": 5}]),
            ),
            "messages[0].content[0].text",
        ),
        (
            "/v1/chat/completions",
            with(
                openai.clone(),
                "/messages/0/content",
                json!(["bare string part"]),
            ),
            "messages[0].content[0]",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/messages/0", json!("hello")),
            "messages[0]",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/messages/0/name", json!(1)),
            "messages[0].name",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/tools", json!("lookup")),
            "tools",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/tools", json!(["lookup"])),
            "tools[0]",
        ),
        (
            "/v1/chat/completions",
            with(
                openai.clone(),
                "/tools",
                json!([{"type": "function", "function": "lookup"}]),
            ),
            "tools[0].function",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/tool_choice", json!(1)),
            "tool_choice",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/max_tokens", json!("50")),
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/max_tokens", json!(1.5)),
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/temperature", json!("hot")),
            "temperature",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/n", json!("2")),
            "n",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/stop", json!(5)),
            "stop",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/stop", json!(["a", 5])),
            "stop[1]",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/response_format", json!("json")),
            "response_format",
        ),
        (
            "/v1/chat/completions",
            with(openai.clone(), "/user", json!({"id": 1})),
            "user",
        ),
        (
            "/v1/chat/completions",
            with(
                tool_call.clone(),
                "/messages/1/tool_calls/0/function/arguments",
                json!({"q": 1}),
            ),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            "/v1/chat/completions",
            with(tool_call.clone(), "/messages/1/tool_calls", json!({})),
            "messages[1].tool_calls",
        ),
        (
            "/v1/completions",
            with(completion.clone(), "/prompt", json!({"text": "x"})),
            "prompt",
        ),
        (
            "/v1/completions",
            with(completion.clone(), "/suffix", json!(5)),
            "suffix",
        ),
        (
            "/v1/completions",
            with(completion.clone(), "/max_tokens", json!("5")),
            "max_tokens",
        ),
        (
            "/v1/embeddings",
            with(embedding.clone(), "/input", json!(["a", 5])),
            "input[1]",
        ),
        (
            "/v1/embeddings",
            with(embedding.clone(), "/input", json!({"text": "x"})),
            "input",
        ),
        (
            "/v1/embeddings",
            with(embedding.clone(), "/dimensions", json!("256")),
            "dimensions",
        ),
    ];
    for (path, body, param) in &openai_cases {
        let a = gw.post(path, body).await.unwrap();
        let e = openai_error(&a, 400);
        assert_eq!(e["type"], "invalid_request_error", "{body}");
        assert_eq!(e["param"], *param, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(param),
            "the message names the field: {e}"
        );
        assert_eq!(one_record(&gw, &a).await.outcome, Outcome::Rejected);
    }

    let claude = json!({"model": "claude-mock", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]});
    let tool_use = json!({"model": "claude-mock", "max_tokens": 50, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]});
    let anthropic_cases = [
        (
            with(claude.clone(), "/messages/0/content", obj.clone()),
            "messages[0].content",
        ),
        (
            with(claude.clone(), "/messages/0/content", json!(null)),
            "messages[0].content",
        ),
        (
            with(
                claude.clone(),
                "/messages/0/content",
                json!([{"text": "no type"}]),
            ),
            "messages[0].content[0].type",
        ),
        (
            with(claude.clone(), "/messages/0/content", json!(["bare"])),
            "messages[0].content[0]",
        ),
        (with(claude.clone(), "/system", json!(5)), "system"),
        (
            with(
                claude.clone(),
                "/system",
                json!({"type": "text", "text": "x"}),
            ),
            "system",
        ),
        (with(claude.clone(), "/tools", json!("lookup")), "tools"),
        (
            with(
                claude.clone(),
                "/tools",
                json!([{"description": "no name"}]),
            ),
            "tools[0].name",
        ),
        (
            with(claude.clone(), "/tool_choice", json!("auto")),
            "tool_choice",
        ),
        (
            with(claude.clone(), "/max_tokens", json!("50")),
            "max_tokens",
        ),
        (
            with(claude.clone(), "/temperature", json!("hot")),
            "temperature",
        ),
        (
            with(claude.clone(), "/stop_sequences", json!("END")),
            "stop_sequences",
        ),
        (with(claude.clone(), "/metadata", json!("x")), "metadata"),
        (
            with(tool_use.clone(), "/messages/1/content/0/input", json!("{}")),
            "messages[1].content[0].input",
        ),
        (
            with(tool_use.clone(), "/messages/2/content/0/content", json!(5)),
            "messages[2].content[0].content",
        ),
    ];
    for (body, param) in &anthropic_cases {
        let a = gw
            .post_with("/v1/messages", body, &[ANTHROPIC])
            .await
            .unwrap();
        let e = anthropic_error(&a, 400);
        assert_eq!(e["type"], "invalid_request_error", "{body}");
        assert!(
            e["message"].as_str().unwrap().contains(param),
            "{body}: the message names `{param}`: {e}"
        );
        assert_eq!(one_record(&gw, &a).await.outcome, Outcome::Rejected);
    }
    assert!(
        mock.requests().is_empty(),
        "a malformed body reached the upstream"
    );
    exactly_one_record_each(&gw, openai_cases.len() + anthropic_cases.len()).await;
}

#[tokio::test]
async fn every_valid_shape_real_sdks_send_is_forwarded() {
    let (mock, gw) = setup().await;
    let openai = [
        json!({"model": "gpt-mock", "stream": false, "n": 1, "temperature": 0.2, "top_p": 1, "max_tokens": 20,
        "max_completion_tokens": 20, "stop": null, "seed": 7, "logprobs": false, "user": "u-1",
        "stream_options": null, "parallel_tool_calls": true, "x_vendor_extension": {"any": ["thing"]},
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}, "strict": true}}],
        "tool_choice": "auto", "response_format": {"type": "json_object"},
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": [{"type": "text", "text": "sys"}]},
            {"role": "user", "name": "jane", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "found"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}], "refusal": null},
            {"role": "user", "content": "thanks"},
        ]}),
        json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "tools": [{"type": "function", "function": {"name": "lookup"}}], "stop": ["a", "b"], "metadata": {"k": "v"}}),
    ];
    for body in &openai {
        let a = gw.post("/v1/chat/completions", body).await.unwrap();
        assert_eq!(a.status, 200, "{body}: {}", a.text);
    }
    for (path, body) in [
        (
            "/v1/completions",
            json!({"model": "gpt-mock", "prompt": ["a", "b"], "suffix": null, "max_tokens": 5, "echo": false, "logprobs": 2, "stop": "\n"}),
        ),
        (
            "/v1/completions",
            json!({"model": "gpt-mock", "prompt": [1, 2, 3]}),
        ),
        (
            "/v1/completions",
            json!({"model": "gpt-mock", "prompt": [[1, 2], [3]]}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "gpt-mock", "input": ["a", "b"], "encoding_format": "float", "dimensions": 8}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "gpt-mock", "input": [1, 2, 3]}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "gpt-mock", "input": [[1, 2], [3]]}),
        ),
    ] {
        let a = gw.post(path, &body).await.unwrap();
        assert_eq!(a.status, 200, "{body}: {}", a.text);
    }
    let anthropic = json!({"model": "claude-mock", "max_tokens": 50, "temperature": 0.5, "top_k": 5, "stop_sequences": ["END"],
    "metadata": {"user_id": "u"}, "thinking": {"type": "enabled", "budget_tokens": 1024}, "x_vendor_extension": true,
    "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
    "tools": [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
              {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
    "tool_choice": {"type": "auto"},
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}, "title": "t"},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "abc"},
            {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "found"}], "is_error": false},
            {"type": "tool_result", "tool_use_id": "t1"},
        ]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "thanks"},
    ]});
    let a = gw
        .post_with("/v1/messages", &anthropic, &[ANTHROPIC])
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        mock.requests().len(),
        openai.len() + 7,
        "every valid body reached the upstream"
    );
}
