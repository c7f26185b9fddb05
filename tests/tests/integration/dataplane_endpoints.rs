//! Acceptance point 1: every endpoint of the data plane in both streaming modes, against the
//! mock upstream — what the caller gets, what the upstream received and what was recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_dataplane::record::Outcome;
use switchyard_mock::MockUpstream;
use switchyard_runtime::telemetry::Captured;
use switchyard_tests::harness::manifests::{provider, task_chain, workspace};
use switchyard_tests::harness::{Gateway, anthropic_stream_text, openai_stream_text};

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A default workspace, an OpenAI provider (chat, completions, embeddings models), an
/// Anthropic provider and a task chain; routing by declared model.
async fn setup(mock: &MockUpstream) -> Gateway {
    let base = mock.base_url();
    let mut foreign = provider(
        "elsewhere",
        "openai",
        &format!("{base}/v1"),
        &["foreign-model"],
    );
    foreign["metadata"]["namespace"] = json!("other");
    Gateway::start_objects(&[
        workspace("default", true),
        provider(
            "main",
            "openai",
            &format!("{base}/v1"),
            &["demo-fast", "embed-mock"],
        ),
        provider("claude", "anthropic", &base, &["claude-mock"]),
        foreign,
        task_chain("triage", "demo-fast"),
    ])
    .await
    .unwrap()
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn chat_completions_non_stream() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    let a = gw
        .post_with(
            "/v1/chat/completions",
            &json!({"model": "demo-fast", "messages": user("hello there gateway")}),
            &[("x-request-id", "req-chat-1")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.request_id(), "req-chat-1");
    assert_eq!(a.route(), "model; target=provider/main; model=demo-fast");
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = a.json().unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock reply: hello there gateway"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["completion_tokens"], 5);

    let got = mock.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[0].model(), Some("demo-fast"));
    assert_eq!(got[0].header("x-request-id"), Some("req-chat-1"));
    assert!(
        got[0].body.get("stream_options").is_none(),
        "no stream options without streaming"
    );

    let recs = gw.records_of("req-chat-1").await.unwrap();
    assert_eq!(recs.len(), 1, "exactly one record");
    let r = &recs[0];
    assert_eq!(r.endpoint, "/v1/chat/completions");
    assert_eq!(r.status, 200);
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.workspace.as_deref(), Some("default/default"));
    assert_eq!(r.provider.as_deref(), Some("openai"));
    assert_eq!(r.provider_name.as_deref(), Some("default/main"));
    assert_eq!(r.model_requested, "demo-fast");
    assert_eq!(r.model_served.as_deref(), Some("demo-fast"));
    assert_eq!(r.route.as_ref().unwrap().source, "model");
    assert!(!r.stream);
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (3, 5));
    assert!(!r.usage_estimated);
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(r.user_prompt.as_deref(), Some("hello there gateway"));
}

#[tokio::test]
async fn chat_completions_stream_hides_the_usage_chunk_it_asked_for() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    let a = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "demo-fast", "stream": true, "messages": user("stream this reply please")}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(a.route(), "model; target=provider/main; model=demo-fast");
    let (chunks, done) = a.sse_data().unwrap();
    assert!(done, "ends with [DONE]: {}", a.text);
    assert_eq!(
        openai_stream_text(&chunks),
        "mock reply: stream this reply please"
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())),
        "the usage-only chunk is not passed to a caller that did not ask for it: {}",
        a.text
    );
    assert!(chunks.iter().all(|c| c["usage"].is_null()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    let got = mock.requests();
    assert_eq!(got[0].body["stream"], true);
    assert_eq!(
        got[0].body["stream_options"]["include_usage"], true,
        "always asked upstream"
    );

    let recs = gw.records_of(&a.request_id()).await.unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.stream);
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        (r.usage.input_tokens, r.usage.output_tokens),
        (4, 6),
        "real usage from the stream"
    );
    assert!(!r.usage_estimated);
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert!(r.ttft_ms.is_some());
}

#[tokio::test]
async fn chat_completions_stream_passes_the_usage_chunk_when_asked() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    let a = gw
        .post(
            "/v1/chat/completions",
            &json!({
                "model": "demo-fast", "stream": true, "stream_options": {"include_usage": true},
                "messages": user("count my tokens")
            }),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let (chunks, done) = a.sse_data().unwrap();
    assert!(done);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "usage chunk last: {}", a.text);
    assert_eq!(last["usage"]["prompt_tokens"], 3);
    assert_eq!(last["usage"]["completion_tokens"], 5);
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (3, 5));
}

#[tokio::test]
async fn completions_plain_and_fim_in_both_modes() {
    let mock = mock().await;
    let gw = setup(&mock).await;

    let plain = gw
        .post(
            "/v1/completions",
            &json!({"model": "demo-fast", "prompt": "Once upon a time"}),
        )
        .await
        .unwrap();
    assert_eq!(plain.status, 200, "{}", plain.text);
    let v = plain.json().unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "mock reply: Once upon a time");
    assert_eq!(v["usage"]["prompt_tokens"], 4);

    let fim = gw
        .post(
            "/v1/completions",
            &json!({"model": "demo-fast", "prompt": "def add(a, b):\n    return", "suffix": "\n\nprint(add(1, 2))"}),
        )
        .await
        .unwrap();
    assert_eq!(fim.status, 200, "{}", fim.text);
    assert_eq!(fim.json().unwrap()["choices"][0]["text"], "<fim>");

    let plain_stream = gw
        .post(
            "/v1/completions",
            &json!({"model": "demo-fast", "prompt": "Once upon a time", "stream": true}),
        )
        .await
        .unwrap();
    assert_eq!(plain_stream.status, 200, "{}", plain_stream.text);
    let (chunks, done) = plain_stream.sse_data().unwrap();
    assert!(done);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "mock reply: Once upon a time");
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty()))
    );

    let fim_stream = gw
        .post(
            "/v1/completions",
            &json!({"model": "demo-fast", "prompt": "fn main() {", "suffix": "}", "stream": true}),
        )
        .await
        .unwrap();
    assert_eq!(fim_stream.status, 200, "{}", fim_stream.text);
    let (chunks, done) = fim_stream.sse_data().unwrap();
    assert!(done);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "<fim>");

    let got = mock.requests();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|r| r.path == "/v1/completions"));
    assert_eq!(
        got[1].body["suffix"], "\n\nprint(add(1, 2))",
        "suffix forwarded"
    );
    assert_eq!(got[2].body["stream_options"]["include_usage"], true);
    assert_eq!(got[3].body["stream_options"]["include_usage"], true);

    for (a, input) in [(&plain, 4), (&plain_stream, 4)] {
        let r = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(r.endpoint, "/v1/completions");
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!(r.usage.input_tokens, input);
        assert_eq!(r.usage.output_tokens, 6);
        assert!(!r.usage_estimated);
    }
    let r = gw.record_of(&fim_stream.request_id()).await.unwrap();
    assert!(r.stream);
    assert_eq!(r.usage.output_tokens, 1, "<fim> is one word");
}

#[tokio::test]
async fn messages_non_stream_and_stream() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    let body = json!({"model": "claude-mock", "max_tokens": 100, "messages": user("hi from anthropic land")});
    let a = gw
        .post_with(
            "/v1/messages",
            &body,
            &[("anthropic-version", "2023-06-01")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.route(),
        "model; target=provider/claude; model=claude-mock"
    );
    let v = a.json().unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(
        v["content"][0]["text"],
        "mock reply: hi from anthropic land"
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 6);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let s = gw
        .post_with(
            "/v1/messages",
            &streamed,
            &[("anthropic-version", "2023-06-01")],
        )
        .await
        .unwrap();
    assert_eq!(s.status, 200, "{}", s.text);
    assert!(
        s.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = s.sse_events().unwrap();
    assert_eq!(events.first().unwrap().0, "message_start");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(
        anthropic_stream_text(&events),
        "mock reply: hi from anthropic land"
    );

    let got = mock.requests();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.path == "/v1/messages"));
    assert!(
        got.iter()
            .all(|r| r.header("anthropic-version") == Some("2023-06-01"))
    );
    assert_eq!(got[1].body["stream"], true);
    assert!(
        got[1].body.get("stream_options").is_none(),
        "no OpenAI options in an Anthropic request"
    );

    for (a, stream) in [(&a, false), (&s, true)] {
        let recs = gw.records_of(&a.request_id()).await.unwrap();
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.endpoint, "/v1/messages");
        assert_eq!(r.stream, stream);
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!(r.provider.as_deref(), Some("anthropic"));
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (4, 6));
        assert_eq!(r.finish_reason.as_deref(), Some("end_turn"));
    }
}

#[tokio::test]
async fn embeddings_and_no_streaming_of_embeddings() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    let a = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "embed-mock", "input": ["alpha beta", "gamma"]}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json().unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(mock.requests()[0].path, "/v1/embeddings");
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.endpoint, "/v1/embeddings");
    assert_eq!(r.usage.input_tokens, 3);

    let s = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "embed-mock", "input": "x", "stream": true}),
        )
        .await
        .unwrap();
    assert_eq!(s.status, 400, "{}", s.text);
    let e = s.json().unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["param"], "stream");
    assert_eq!(mock.requests().len(), 1, "nothing sent upstream");
    let recs = gw.records_of(&s.request_id()).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, 400);
    assert_eq!(recs[0].outcome, Outcome::Rejected);
}

#[tokio::test]
async fn models_lists_the_namespace_and_its_chains_in_both_shapes() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    let a = gw.get("/v1/models", &[]).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json().unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["chain/triage", "claude-mock", "demo-fast", "embed-mock"],
        "{v}"
    );
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["object"] == "model")
    );
    assert!(
        !ids.contains(&"foreign-model"),
        "models of other namespaces are not listed"
    );

    let b = gw
        .get("/v1/models", &[("anthropic-version", "2023-06-01")])
        .await
        .unwrap();
    assert_eq!(b.status, 200, "{}", b.text);
    let v = b.json().unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["chain/triage", "claude-mock", "demo-fast", "embed-mock"]
    );
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["type"] == "model" && m["display_name"].is_string())
    );
    assert_eq!(v["has_more"], false);
    assert_eq!(v["first_id"], "chain/triage");
    assert_eq!(v["last_id"], "embed-mock");
    assert!(mock.requests().is_empty(), "the list is the gateway's own");
}

#[tokio::test]
async fn usage_is_asked_upstream_whatever_the_caller_sent_as_stream_options() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    for options in [json!(null), json!({"include_usage": false}), json!({})] {
        mock.clear();
        let a = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "demo-fast", "stream": true, "stream_options": options, "messages": user("count my tokens")}),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        let got = mock.requests();
        assert_eq!(
            got[0].body["stream_options"]["include_usage"], true,
            "caller sent {options}"
        );
        let (chunks, done) = a.sse_data().unwrap();
        assert!(done);
        assert!(
            chunks
                .iter()
                .all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())),
            "caller sent {options}: no usage chunk for it: {}",
            a.text
        );
        let r = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(
            (r.usage.input_tokens, r.usage.output_tokens),
            (3, 5),
            "caller sent {options}"
        );
        assert!(!r.usage_estimated);
    }
}

#[tokio::test]
async fn health_and_metrics_are_on_the_admin_listener_only() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    for path in ["/metrics", "/healthz", "/readyz"] {
        let api = gw.get(path, &[]).await.unwrap();
        assert_eq!(api.status, 404, "{path} on the API port: {}", api.text);
        let admin = gw.get_admin(path).await.unwrap();
        assert_eq!(
            admin.status, 200,
            "{path} on the admin port: {}",
            admin.text
        );
    }
    let metrics = gw.get_admin("/metrics").await.unwrap();
    assert!(
        metrics.text.contains("switchyard_"),
        "the registry: {}",
        metrics.text
    );
    assert_ne!(gw.addr, gw.admin_addr);
}

/// Every line logged in this test binary, at DEBUG (one global subscriber: a thread-scoped
/// one misses lines while other tests run, tracing caching callsite interest across threads).
fn logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        assert!(
            logs.install_global(tracing::Level::DEBUG),
            "the only subscriber of this test binary"
        );
        logs
    })
}

#[tokio::test]
async fn every_log_line_of_a_request_names_its_id_as_the_record_does() {
    let logs = logs();
    let mock = mock().await;
    let gw = setup(&mock).await;
    // An OpenAI parameter Anthropic does not know: the translation logs that it dropped it.
    let body = json!({"model": "claude-mock", "max_tokens": 20, "frobnicate": 1, "messages": [{"role": "user", "content": "hi"}]});
    for sent in [Some("caller-trace-42"), None] {
        let headers: Vec<(&str, &str)> = sent.iter().map(|id| ("x-request-id", *id)).collect();
        let a = gw
            .post_with("/v1/chat/completions", &body, &headers)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        let id = a.request_id();
        if let Some(sent) = sent {
            assert_eq!(id, sent, "the caller's id is kept");
        }
        assert_eq!(gw.record_of(&id).await.unwrap().request_id, id);
        let text = logs.text();
        let line = text
            .lines()
            .find(|l| l.contains("unknown OpenAI parameters dropped") && l.contains(&id));
        assert!(
            line.is_some_and(|l| l.contains(&format!("request{{id={id}"))),
            "a line in the request span naming {id}: {text}"
        );
    }
}

/// The data plane's background work runs under a supervisor (`Running::task_ended`; `run` stops
/// the process when one ends), here the local-mode snapshot watcher.
#[tokio::test]
async fn the_snapshot_watcher_is_supervised() {
    let mock = mock().await;
    let gw = setup(&mock).await;
    assert_eq!(gw.running().task_names(), ["snapshot watcher"]);
}
