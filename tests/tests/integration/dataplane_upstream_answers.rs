//! What an upstream answers is checked before it is relayed (hardening issue, defects 1–4): a
//! 200 whose body is an error (echoing the key it got) is an upstream error, scrubbed, counted
//! and failed over; a 200 that is not an answer of its dialect, a malformed stream, a body cut
//! or silent after its head are upstream errors too, with a fallback while nothing reached the
//! caller; a stream that breaks after it started ends with one error event and nothing after
//! it; buffered answers share one memory budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard_dataplane::record::Outcome;
use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
use switchyard_tests::harness::manifests::{
    api_key, mux_rule, passthrough, provider, router_policy, secret, to_provider, workspace,
};
use switchyard_tests::harness::{Answer, DataplaneProcess, Gateway, rss_kib, sse_data, sse_events};

const OPENAI_KEY: &str = "sk-canary-openai-0123456789abcdef";
const ANTHROPIC_KEY: &str = "sk-ant-canary-anthropic-0123456789";
const CALLER_KEY: &str = "sk-canary-caller-fedcba9876543210";

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// `gpt` (OpenAI, key from a Secret), `claude` (Anthropic, key from a Secret), `pass`
/// (passthrough), each by model prefix; policies `fallback` (gpt-mock, then claude-mock) and
/// `alone` (gpt-mock only), both with short idle timeouts and breakers that never open here.
fn objects(mock: &MockUpstream) -> Vec<Value> {
    let base = mock.base_url();
    let quiet = json!({"consecutiveFailures": 100000, "minRequestsThreshold": 1000000});
    let mut fallback = router_policy(
        "fallback",
        10,
        json!({"model": "fallback"}),
        to_provider("gpt", Some("gpt-mock")),
        vec![to_provider("claude", Some("claude-mock"))],
    );
    fallback["spec"]["circuitBreaker"] = quiet.clone();
    fallback["spec"]["timeouts"] = json!({"idle": "300ms"});
    let mut alone = router_policy(
        "alone",
        20,
        json!({"model": "alone"}),
        to_provider("gpt", Some("gpt-mock")),
        vec![],
    );
    alone["spec"]["circuitBreaker"] = quiet;
    alone["spec"]["timeouts"] = json!({"idle": "300ms"});
    vec![
        secret(
            "llm",
            &[("openai", OPENAI_KEY), ("anthropic", ANTHROPIC_KEY)],
        ),
        workspace("default", true),
        api_key(
            provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
            "llm",
            "openai",
        ),
        api_key(
            provider("claude", "anthropic", &base, &["claude-mock"]),
            "llm",
            "anthropic",
        ),
        passthrough(provider(
            "pass",
            "openrouter",
            &format!("{base}/v1"),
            &["pass-gpt"],
        )),
        mux_rule(
            "gpt",
            "default",
            10,
            "model",
            Some("gpt-mock*"),
            to_provider("gpt", None),
        ),
        mux_rule(
            "claude",
            "default",
            20,
            "model",
            Some("claude-mock*"),
            to_provider("claude", None),
        ),
        mux_rule(
            "pass",
            "default",
            30,
            "model",
            Some("pass-gpt*"),
            to_provider("pass", None),
        ),
        fallback,
        alone,
    ]
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 50,
           "messages": [{"role": "user", "content": "hello there"}]})
}

const ANT: (&str, &str) = ("anthropic-version", "2023-06-01");

fn once(mock: &MockUpstream, model: &str, b: Behavior) {
    mock.script(ScriptRule::new(b).model(model).times(1));
}

fn error_body() -> Behavior {
    Behavior {
        error_body: Some(true),
        echo_key: Some(true),
        message: Some("Authentication failed.".into()),
        ..Default::default()
    }
}

fn served_by_the_fallback(a: &Answer) {
    assert!(
        a.route().contains("target=provider/claude"),
        "not served by the fallback: {}",
        a.route()
    );
}

fn no_canary(what: &str, text: &str) {
    for k in [OPENAI_KEY, ANTHROPIC_KEY, CALLER_KEY] {
        assert!(!text.contains(k), "{k} leaked into {what}: {text}");
    }
}

fn upstream_errors(gw: &Gateway, kind: &str) -> u64 {
    let want = format!("kind=\"{kind}\"");
    gw.metrics_text()
        .lines()
        .filter(|l| l.starts_with("switchyard_upstream_errors_total") && l.contains(&want))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn a_200_with_an_error_body_is_an_upstream_error_scrubbed_counted_and_failed_over() {
    let mock = mock().await;
    let gw = Gateway::start_objects(&objects(&mock)).await.unwrap();

    // No fallback: 502 in the caller's dialect, the echoed key scrubbed, recorded as an
    // upstream error, counted by the breaker and the metrics. Both callers' dialects, the
    // provider key from a Secret and a passthrough caller's own key.
    let caller = format!("Bearer {CALLER_KEY}");
    for (path, model, headers, key) in [
        ("/v1/chat/completions", "gpt-mock", vec![], OPENAI_KEY),
        ("/v1/messages", "gpt-mock", vec![ANT], OPENAI_KEY),
        ("/v1/chat/completions", "claude-mock", vec![], ANTHROPIC_KEY),
        ("/v1/messages", "claude-mock", vec![ANT], ANTHROPIC_KEY),
        (
            "/v1/chat/completions",
            "pass-gpt",
            vec![("authorization", caller.as_str())],
            CALLER_KEY,
        ),
    ] {
        let before = upstream_errors(&gw, "error_body");
        once(&mock, model, error_body());
        let a = gw
            .post_with(path, &chat(model, false), &headers)
            .await
            .unwrap();
        assert_eq!(a.status, 502, "{path} {model}: {}", a.text);
        no_canary("the answer", &a.text);
        let v = a.json().unwrap();
        let message = if path == "/v1/messages" {
            assert_eq!(v["type"], "error", "{}", a.text);
            v["error"]["message"].as_str().unwrap().to_owned()
        } else {
            v["error"]["message"].as_str().unwrap().to_owned()
        };
        assert!(
            message.contains("Incorrect API key provided: [REDACTED]"),
            "the upstream's message, scrubbed: {message}"
        );
        let r = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(r.outcome, Outcome::UpstreamError, "{r:?}");
        no_canary("the record", &serde_json::to_string(&r).unwrap());
        assert_eq!(upstream_errors(&gw, "error_body"), before + 1);
        let sent = mock.requests().last().unwrap().clone();
        assert!(
            sent.header("authorization")
                .is_some_and(|h| h.contains(key))
                || sent.header("x-api-key") == Some(key),
            "the mock got (and echoed) the real key"
        );
    }

    // With a fallback: the next target serves the request.
    once(&mock, "gpt-mock", error_body());
    let a = gw
        .post("/v1/chat/completions", &chat("fallback", false))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    served_by_the_fallback(&a);
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.attempts.len(), 2, "{:?}", r.attempts);
    let first = r.attempts[0].error.as_deref().unwrap();
    assert!(first.contains("answered with an error"), "{first}");
    no_canary("the record", first);
    assert_eq!(r.outcome, Outcome::Success);

    // The same inside a stream: an error event before any content falls back too.
    once(
        &mock,
        "gpt-mock",
        Behavior {
            error_event: Some(true),
            cut_after_chunks: Some(0),
            echo_key: Some(true),
            ..Default::default()
        },
    );
    let a = gw
        .post("/v1/chat/completions", &chat("fallback", true))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let (chunks, done) = a.sse_data().unwrap();
    assert!(done, "a complete stream from the fallback: {}", a.text);
    assert!(
        chunks.iter().all(|c| c.get("error").is_none()),
        "{}",
        a.text
    );
    served_by_the_fallback(&a);
}

#[tokio::test]
async fn a_200_that_is_not_an_answer_of_its_dialect_is_an_upstream_error() {
    let mock = mock().await;
    let gw = Gateway::start_objects(&objects(&mock)).await.unwrap();
    let raw = |body: &str| Behavior {
        raw_body: Some(body.to_owned()),
        ..Default::default()
    };
    for (path, model, body) in [
        ("/v1/chat/completions", "gpt-mock", r#"{"choices":"nope"}"#),
        ("/v1/messages", "gpt-mock", r#"{"choices":"nope"}"#),
        (
            "/v1/chat/completions",
            "gpt-mock",
            r#"{"choices":[{"index":0}]}"#,
        ),
        (
            "/v1/chat/completions",
            "claude-mock",
            r#"{"type":"message"}"#,
        ),
        (
            "/v1/messages",
            "claude-mock",
            r#"{"id":"msg_1","content":"x"}"#,
        ),
        (
            "/v1/chat/completions",
            "gpt-mock",
            r#"{"choices":[{"message":{"content":"x"}}"#,
        ),
        (
            "/v1/embeddings",
            "gpt-mock",
            r#"{"object":"list","data":[{"embedding":{}}]}"#,
        ),
    ] {
        once(&mock, model, raw(body));
        let request = if path == "/v1/embeddings" {
            json!({"model": model, "input": "hello"})
        } else {
            chat(model, false)
        };
        let a = gw.post_with(path, &request, &[ANT]).await.unwrap();
        assert_eq!(a.status, 502, "{path} {model} {body}: {}", a.text);
        let v = a.json().unwrap();
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("invalid answer"), "{message}");
        if path == "/v1/messages" {
            assert_eq!(v["type"], "error");
        }
        let r = gw.record_of(&a.request_id()).await.unwrap();
        assert_eq!(r.outcome, Outcome::UpstreamError);
    }
    assert!(upstream_errors(&gw, "invalid_answer") >= 7);
    // With a fallback the next target answers.
    once(&mock, "gpt-mock", raw(r#"{"choices":"nope"}"#));
    let a = gw
        .post("/v1/chat/completions", &chat("fallback", false))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.json().unwrap()["choices"][0]["message"]["content"].is_string());
}

#[tokio::test]
async fn a_malformed_stream_ends_with_one_error_event_and_nothing_after_it() {
    let mock = mock().await;
    let gw = Gateway::start_objects(&objects(&mock)).await.unwrap();
    let inject = |text: &str| Behavior {
        inject: Some(text.to_owned()),
        chunks: Some(6),
        ..Default::default()
    };
    // OpenAI → OpenAI: a data line that is not JSON is never relayed.
    once(&mock, "gpt-mock", inject("data: not json at all\n\n"));
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock", true))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.text.contains("not json at all"), "{}", a.text);
    let (chunks, done) = a.sse_data().unwrap();
    assert!(!done, "nothing after the error event: {}", a.text);
    let last = chunks.last().unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid stream"),
        "{}",
        a.text
    );
    assert_eq!(
        chunks.iter().filter(|c| c.get("error").is_some()).count(),
        1,
        "one error event"
    );
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.outcome, Outcome::UpstreamError);

    // A chunk of the wrong shape, same dialect.
    once(
        &mock,
        "gpt-mock",
        inject("data: {\"choices\":\"nope\"}\n\n"),
    );
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock", true))
        .await
        .unwrap();
    let (chunks, done) = a.sse_data().unwrap();
    assert!(
        !done && chunks.last().unwrap().get("error").is_some(),
        "{}",
        a.text
    );
    assert!(!a.text.contains("nope"), "{}", a.text);

    // Anthropic → OpenAI caller: no [DONE] anywhere, the error event is last.
    once(
        &mock,
        "claude-mock",
        inject("event: content_block_delta\ndata: {oops\n\n"),
    );
    let a = gw
        .post("/v1/chat/completions", &chat("claude-mock", true))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let (chunks, done) = a.sse_data().unwrap();
    assert!(!done, "no [DONE] before or after the error: {}", a.text);
    assert!(chunks.last().unwrap().get("error").is_some(), "{}", a.text);

    // Anthropic → Anthropic: the last event is one `error` event.
    once(&mock, "claude-mock", inject("data: [1, 2]\n\n"));
    let a = gw
        .post_with("/v1/messages", &chat("claude-mock", true), &[ANT])
        .await
        .unwrap();
    let events = sse_events(&a.text).unwrap();
    assert_eq!(events.last().unwrap().0, "error", "{}", a.text);
    assert_eq!(
        events.iter().filter(|(n, _)| n == "error").count(),
        1,
        "{}",
        a.text
    );
    assert!(
        !events.iter().any(|(n, _)| n == "message_stop"),
        "{}",
        a.text
    );

    // OpenAI → Anthropic caller.
    once(&mock, "gpt-mock", inject("data: {\"id\": 3}\n\n"));
    let a = gw
        .post_with("/v1/messages", &chat("gpt-mock", true), &[ANT])
        .await
        .unwrap();
    let events = sse_events(&a.text).unwrap();
    assert_eq!(events.last().unwrap().0, "error", "{}", a.text);

    // A stream broken before any content falls back (nothing reached the caller).
    once(
        &mock,
        "gpt-mock",
        Behavior {
            raw_body: Some(
                "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: broken\n\n"
                    .into(),
            ),
            ..Default::default()
        },
    );
    let a = gw
        .post("/v1/chat/completions", &chat("fallback", true))
        .await
        .unwrap();
    let (chunks, done) = sse_data(&a.text).unwrap();
    assert!(
        done && chunks.iter().all(|c| c.get("error").is_none()),
        "{}",
        a.text
    );
    served_by_the_fallback(&a);
}

#[tokio::test]
async fn a_non_streamed_answer_that_fails_after_its_head_falls_back() {
    let mock = mock().await;
    let gw = Gateway::start_objects(&objects(&mock)).await.unwrap();
    // Reset mid-body: nothing reached the caller, the fallback answers.
    once(
        &mock,
        "gpt-mock",
        Behavior {
            cut_after_chunks: Some(1),
            ..Default::default()
        },
    );
    let a = gw
        .post("/v1/chat/completions", &chat("fallback", false))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    served_by_the_fallback(&a);
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert!(
        r.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("broke off its answer"),
        "{:?}",
        r.attempts
    );

    // A 200 head and then silence: the idle timeout (300 ms here) applies to the body too.
    let stall = Behavior {
        stall: Some(true),
        ..Default::default()
    };
    once(&mock, "gpt-mock", stall.clone());
    let started = Instant::now();
    let a = gw
        .post("/v1/chat/completions", &chat("fallback", false))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(started.elapsed() < Duration::from_secs(5));
    served_by_the_fallback(&a);
    // Without a fallback: 504, naming the idle check.
    once(&mock, "gpt-mock", stall);
    let a = gw
        .post("/v1/chat/completions", &chat("alone", false))
        .await
        .unwrap();
    assert_eq!(a.status, 504, "{}", a.text);
    assert!(
        a.json().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sent nothing of its answer for 300 ms"),
        "{}",
        a.text
    );
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.outcome, Outcome::UpstreamError);
}

/// 24 concurrent 60 MiB answers: the data plane (a process of its own, with its default
/// `--answer-buffer-bytes` of 256 MiB) holds no more than the budget of them at once, and
/// every answer arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_large_answers_stay_within_the_buffer_budget() {
    const ANSWERS: usize = 24;
    const SIZE: &str = "60M";
    let mock = mock().await;
    let dp = DataplaneProcess::start(env!("CARGO_BIN_EXE_run-dataplane"), &objects(&mock))
        .await
        .unwrap();
    let (pid, base) = (dp.pid(), dp.base_url.clone());
    let client = switchyard_tests::harness::client();
    let baseline = rss_kib(pid);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut calls = Vec::new();
    for _ in 0..ANSWERS {
        let (client, base) = (client.clone(), base.clone());
        calls.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/v1/chat/completions"))
                .json(&chat(&format!("gpt-mock+bytes={SIZE}"), false))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let declared = r.content_length();
            let mut body = r.bytes_stream();
            let (mut read, mut tail) = (0usize, Vec::new());
            while let Some(c) = body.next().await {
                let c = c.unwrap();
                read += c.len();
                tail = c.to_vec();
            }
            (
                status,
                declared,
                read,
                String::from_utf8_lossy(&tail).into_owned(),
            )
        }));
    }
    for c in calls {
        let (status, declared, read, tail) = c.await.unwrap();
        assert_eq!(status, 200, "{tail}");
        assert!(read >= 60 << 20, "the whole answer arrived ({read} bytes)");
        assert_eq!(declared, Some(read as u64), "with its length");
        assert!(tail.contains("\"usage\""), "{tail}");
    }
    sampler.abort();
    let growth = peak.load(std::sync::atomic::Ordering::Relaxed) - baseline;
    println!(
        "{ANSWERS} concurrent {SIZE}B answers: data-plane RSS baseline {baseline} KiB, peak growth \
         {growth} KiB (buffer budget 262144 KiB)"
    );
    // The documented bound: the budget (256 MiB) plus 64 MiB of working memory (the answers'
    // free first 256 KiB, connection buffers, allocator slack).
    assert!(
        growth < (256 + 64) << 10,
        "resident memory grew by {growth} KiB with {ANSWERS} answers of {SIZE}B"
    );
}
