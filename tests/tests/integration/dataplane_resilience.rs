//! Fault injection against the data plane with the mock upstream (issue 5): circuit breakers
//! open, skip and recover; a slow target trips the latency threshold; stream failures count;
//! resets are retried or fall back; `Retry-After` is honoured; a caller who leaves cancels the
//! upstream call at once; workspace limits answer 429 in the caller's dialect; a saturated
//! Backend answers 503 without opening its circuit; the retry budget bounds retries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_dataplane::record::{Interception, Outcome};
use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
use switchyard_tests::harness::manifests::{
    backend, provider, router_policy, target, to_provider, workspace,
};
use switchyard_tests::harness::{Answer, Gateway, GatewayOptions};

const ANTHROPIC: (&str, &str) = ("anthropic-version", "2023-06-01");

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A RouterPolicy for model `ask` with these breaker/retry settings.
fn policy(route_to: Value, fallback: Vec<Value>, breaker: Value, retries: Option<Value>) -> Value {
    let mut p = router_policy("p", 10, json!({"model": "ask"}), route_to, fallback);
    p["spec"]["circuitBreaker"] = breaker;
    if let Some(r) = retries {
        p["spec"]["retries"] = r;
    }
    p
}

fn providers(mock: &MockUpstream) -> Vec<Value> {
    let base = mock.base_url();
    vec![
        workspace("default", true),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
        provider("claude", "anthropic", &base, &["claude-mock"]),
    ]
}

fn ask() -> Value {
    json!({"model": "ask", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]})
}

fn ask_stream() -> Value {
    let mut b = ask();
    b["stream"] = json!(true);
    b
}

async fn post(gw: &Gateway, id: &str, body: &Value) -> (Answer, Interception) {
    let a = gw
        .post_with("/v1/chat/completions", body, &[("x-request-id", id)])
        .await
        .unwrap();
    let r = gw.record_of(id).await.unwrap();
    (a, r)
}

fn metric(gw: &Gateway, name_and_labels: &str) -> Option<f64> {
    gw.metrics_text().lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

fn circuit_gauge(gw: &Gateway, target: &str) -> Option<f64> {
    metric(
        gw,
        &format!("switchyard_circuit_state{{policy=\"default/p\",target=\"{target}\"}}"),
    )
}

fn mock_calls(mock: &MockUpstream, model: &str) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.body["model"].as_str() == Some(model))
        .count()
}

#[tokio::test]
async fn failing_target_opens_its_circuit_then_half_open_probes_close_it() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock")),
        vec![to_provider("claude", Some("claude-mock"))],
        json!({"consecutiveFailures": 3, "minRequestsThreshold": 100, "cooldownSeconds": 1, "halfOpenRequests": 2}),
        None,
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    mock.script(
        ScriptRule::new(Behavior {
            status: Some(500),
            ..Default::default()
        })
        .model("gpt-mock"),
    );

    // Three failures: each request still succeeds through the fallback, every attempt listed.
    for i in 0..3 {
        let (a, r) = post(&gw, &format!("fail-{i}"), &ask()).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(r.attempts.len(), 2, "{:?}", r.attempts);
        assert_eq!(r.attempts[0].status, Some(500));
        assert_eq!(r.attempts[1].status, Some(200));
        assert_eq!(r.provider_name.as_deref(), Some("default/claude"));
    }
    assert_eq!(mock_calls(&mock, "gpt-mock"), 3);
    assert_eq!(circuit_gauge(&gw, "provider/gpt:gpt-mock"), Some(1.0));

    // Open: gpt is no longer called; the record says why.
    let (a, r) = post(&gw, "while-open", &ask()).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        mock_calls(&mock, "gpt-mock"),
        3,
        "an open circuit is not called"
    );
    assert_eq!(r.attempts[0].status, None);
    let why = r.attempts[0].error.as_deref().unwrap();
    assert!(why.contains("circuit Open"), "{why}");
    assert_eq!(r.outcome, Outcome::Success);

    // After the cooldown the target recovers; two successful probes close the circuit.
    mock.clear_scripts();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..2 {
        let (a, r) = post(&gw, &format!("probe-{i}"), &ask()).await;
        assert_eq!(a.status, 200);
        assert_eq!(r.provider_name.as_deref(), Some("default/gpt"), "probe {i}");
    }
    assert_eq!(circuit_gauge(&gw, "provider/gpt:gpt-mock"), Some(0.0));
    let (_, r) = post(&gw, "closed-again", &ask()).await;
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.provider_name.as_deref(), Some("default/gpt"));
    let text = gw.metrics_text();
    assert!(
        text.contains("switchyard_circuit_transitions_total{policy=\"default/p\",target=\"provider/gpt:gpt-mock\",to=\"open\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_failed_half_open_probe_reopens_the_circuit() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock")),
        vec![to_provider("claude", Some("claude-mock"))],
        json!({"consecutiveFailures": 1, "cooldownSeconds": 1, "halfOpenRequests": 1}),
        None,
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    mock.script(
        ScriptRule::new(Behavior {
            status: Some(502),
            ..Default::default()
        })
        .model("gpt-mock"),
    );
    post(&gw, "open-it", &ask()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (a, r) = post(&gw, "probe", &ask()).await;
    assert_eq!(a.status, 200);
    assert_eq!(r.attempts[0].status, Some(502), "the probe was sent");
    assert_eq!(circuit_gauge(&gw, "provider/gpt:gpt-mock"), Some(1.0));
    let (_, r) = post(&gw, "after-probe", &ask()).await;
    assert_eq!(r.attempts[0].status, None, "open again: not called");
    assert_eq!(mock_calls(&mock, "gpt-mock"), 2);
}

#[tokio::test]
async fn slow_target_trips_the_latency_threshold() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock+latency=300")),
        vec![to_provider("claude", Some("claude-mock"))],
        json!({"latencyThresholdMs": 100, "consecutiveFailures": 2, "cooldownSeconds": 60}),
        None,
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    for i in 0..2 {
        let (a, r) = post(&gw, &format!("slow-{i}"), &ask()).await;
        assert_eq!(a.status, 200);
        assert_eq!(
            r.provider_name.as_deref(),
            Some("default/gpt"),
            "slow but served"
        );
    }
    let calls = mock_calls(&mock, "gpt-mock");
    let (a, r) = post(&gw, "after", &ask()).await;
    assert_eq!(a.status, 200);
    assert_eq!(r.provider_name.as_deref(), Some("default/claude"));
    assert!(r.attempts[0].error.as_deref().unwrap().contains("circuit"));
    assert_eq!(r.attempts[0].status, None, "skipped, not waited for");
    assert_eq!(
        mock_calls(&mock, "gpt-mock"),
        calls,
        "the slow target was not called"
    );
}

#[tokio::test]
async fn stream_cuts_and_error_events_count_against_the_target() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("claude", Some("claude-mock")),
        vec![to_provider("gpt", Some("gpt-mock"))],
        json!({"consecutiveFailures": 2, "cooldownSeconds": 60}),
        None,
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();

    // A cut after the first byte: the caller gets a terminal error event, never a truncation.
    mock.script(
        ScriptRule::new(Behavior {
            cut_after_chunks: Some(2),
            ..Default::default()
        })
        .model("claude-mock")
        .times(1),
    );
    let (a, r) = post(&gw, "cut", &ask_stream()).await;
    assert_eq!(a.status, 200);
    let (chunks, done) = a.sse_data().unwrap();
    let last = chunks.last().unwrap();
    assert!(last.get("error").is_some(), "{}", a.text);
    assert!(!done, "nothing after the error event: {}", a.text);
    assert_eq!(r.outcome, Outcome::UpstreamError);

    // An error event inside a 200 stream (Anthropic overloaded_error) is a failure too.
    mock.script(
        ScriptRule::new(Behavior {
            error_event: Some(true),
            ..Default::default()
        })
        .model("claude-mock")
        .times(1),
    );
    let (a, r) = post(&gw, "overloaded", &ask_stream()).await;
    assert_eq!(a.status, 200);
    assert!(a.text.contains("error"), "{}", a.text);
    assert_eq!(r.outcome, Outcome::UpstreamError);

    // Two failures in a row: the circuit is open and the next stream goes to the fallback.
    assert_eq!(circuit_gauge(&gw, "provider/claude:claude-mock"), Some(1.0));
    let (a, r) = post(&gw, "fallback", &ask_stream()).await;
    assert_eq!(a.status, 200);
    let (_, done) = a.sse_data().unwrap();
    assert!(done);
    assert_eq!(r.provider_name.as_deref(), Some("default/gpt"));
}

#[tokio::test]
async fn a_cancelled_stream_is_not_a_failure_of_the_target() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock+chunks=50+chunk_delay=20")),
        vec![],
        json!({"consecutiveFailures": 1}),
        None,
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    for i in 0..3 {
        let resp = gw
            .open(
                "/v1/chat/completions",
                &ask_stream(),
                &[("x-request-id", &format!("leave-{i}"))],
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut resp = resp;
        assert!(!resp.chunk().await.unwrap().unwrap().is_empty());
        drop(resp);
        let r = gw.record_of(&format!("leave-{i}")).await.unwrap();
        assert_eq!(r.outcome, Outcome::Cancelled);
    }
    assert_ne!(circuit_gauge(&gw, "provider/gpt:gpt-mock"), Some(1.0));
    let (a, _) = post(&gw, "still-closed", &ask()).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn a_reset_before_the_first_byte_is_retried_or_falls_back() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock")),
        vec![to_provider("claude", Some("claude-mock"))],
        json!({}),
        Some(json!({"attempts": 2, "backoff": "10ms", "maxBackoff": "20ms"})),
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    mock.script(
        ScriptRule::new(Behavior {
            reset_before: Some(true),
            ..Default::default()
        })
        .model("gpt-mock")
        .times(1),
    );
    let (a, r) = post(&gw, "retried", &ask()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(r.attempts.len(), 2, "{:?}", r.attempts);
    assert_eq!(r.attempts[0].status, None);
    assert!(r.attempts[0].error.is_some());
    assert_eq!(r.attempts[1].status, Some(200));
    assert_eq!(
        r.provider_name.as_deref(),
        Some("default/gpt"),
        "retried on the same target"
    );

    // Without retries a reset moves to the fallback.
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock")),
        vec![to_provider("claude", Some("claude-mock"))],
        json!({}),
        None,
    ));
    gw.replace_objects(&objects).await.unwrap();
    mock.script(
        ScriptRule::new(Behavior {
            reset_before: Some(true),
            ..Default::default()
        })
        .model("gpt-mock")
        .times(1),
    );
    let (a, r) = post(&gw, "fell-back", &ask()).await;
    assert_eq!(a.status, 200);
    assert_eq!(r.attempts.len(), 2);
    assert_eq!(r.provider_name.as_deref(), Some("default/claude"));
}

#[tokio::test]
async fn retry_after_is_honoured_and_passed_to_the_caller() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock")),
        vec![],
        json!({}),
        Some(json!({"attempts": 1, "backoff": "10ms", "maxBackoff": "2s"})),
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    mock.script(
        ScriptRule::new(Behavior {
            status: Some(429),
            retry_after: Some(1),
            ..Default::default()
        })
        .model("gpt-mock")
        .times(1),
    );
    let started = Instant::now();
    let (a, r) = post(&gw, "waited", &ask()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the retry waited for Retry-After ({:?})",
        started.elapsed()
    );
    assert_eq!(
        r.attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        vec![Some(429), Some(200)]
    );

    // When nothing is left to try, the caller gets the 429 and the upstream's Retry-After.
    mock.script(
        ScriptRule::new(Behavior {
            status: Some(429),
            retry_after: Some(7),
            ..Default::default()
        })
        .model("gpt-mock")
        .times(2),
    );
    let (a, r) = post(&gw, "limited", &ask()).await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.header("retry-after"), Some("7"));
    assert_eq!(
        r.attempts.len(),
        1,
        "Retry-After beyond maxBackoff: not waited for"
    );
}

#[tokio::test]
async fn a_caller_who_leaves_cancels_the_upstream_call_within_100ms() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    let mut slow = policy(
        to_provider("gpt", Some("gpt-mock+latency=5000")),
        vec![],
        json!({}),
        None,
    );
    slow["metadata"]["name"] = json!("slow");
    slow["spec"]["match"] = json!({"model": "slow"});
    objects.push(slow);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock+chunks=100+chunk_delay=20")),
        vec![],
        json!({}),
        None,
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    // Before the first byte: the upstream is still thinking.
    let slow = json!({"model": "slow", "messages": [{"role": "user", "content": "hi"}]});
    let client = gw.http_client();
    let url = gw.url("/v1/chat/completions");
    let call = tokio::spawn(async move { client.post(url).json(&slow).send().await });
    mock.wait_for_requests(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let left = Instant::now();
    call.abort();
    let cancelled = mock.wait_for_cancelled(1, Duration::from_secs(5)).await;
    assert_eq!(cancelled.len(), 1);
    let seen = cancelled[0].at.saturating_duration_since(left);
    assert!(seen < Duration::from_millis(100), "seen after {seen:?}");

    // In the middle of a stream.
    mock.reset();
    let body = ask_stream();
    let mut resp = gw.open("/v1/chat/completions", &body, &[]).await.unwrap();
    assert!(!resp.chunk().await.unwrap().unwrap().is_empty());
    let left = Instant::now();
    drop(resp);
    let cancelled = mock.wait_for_cancelled(1, Duration::from_secs(5)).await;
    assert_eq!(cancelled.len(), 1);
    let seen = cancelled[0].at.saturating_duration_since(left);
    assert!(seen < Duration::from_millis(100), "seen after {seen:?}");
}

#[tokio::test]
async fn workspace_limits_answer_429_in_the_callers_dialect() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects[0]["spec"]["limits"] = json!({"requestsPerMinute": 2});
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let body = json!({"model": "gpt-mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    for i in 0..2 {
        let a = gw
            .post_with(
                "/v1/chat/completions",
                &body,
                &[("x-request-id", &format!("ok-{i}"))],
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200);
    }
    let a = gw
        .post_with("/v1/chat/completions", &body, &[("x-request-id", "over")])
        .await
        .unwrap();
    assert_eq!(a.status, 429, "{}", a.text);
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let e = a.json().unwrap();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requests per minute"),
        "{e}"
    );
    let r = gw.record_of("over").await.unwrap();
    assert_eq!((r.status, r.outcome), (429, Outcome::Rejected));
    assert!(r.attempts.is_empty(), "refused before any upstream call");

    // The Anthropic dialect's shape.
    let a = gw
        .post_with(
            "/v1/messages",
            &json!({"model": "claude-mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            &[ANTHROPIC],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 429);
    let e = a.json().unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "rate_limit_error", "{e}");
    assert!(a.header("retry-after").is_some());
    assert_eq!(
        mock.requests().len(),
        2,
        "refusals never reach the upstream"
    );
}

#[tokio::test]
async fn token_limits_are_charged_on_actual_usage() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects[0]["spec"]["limits"] = json!({"tokensPerMinute": 5});
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let body = json!({"model": "gpt-mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hello there"}]});
    let a = gw.post("/v1/chat/completions", &body).await.unwrap();
    assert_eq!(a.status, 200, "under the limit before the first call");
    let used = a.json().unwrap()["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used >= 5, "the mock reports {used} tokens");
    let a = gw.post("/v1/chat/completions", &body).await.unwrap();
    assert_eq!(a.status, 429, "{}", a.text);
    assert!(a.text.contains("tokens per minute"), "{}", a.text);
}

#[tokio::test]
async fn a_saturated_backend_answers_503_and_its_circuit_stays_closed() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    let mut b = backend(
        "vllm",
        "vllm",
        &format!("{}/v1", mock.base_url()),
        &["local-mock"],
    );
    b["spec"]["maxConcurrency"] = json!(1);
    objects.push(b);
    objects.push(policy(
        target("backendRef", "vllm", Some("local-mock+latency=400")),
        vec![],
        json!({"consecutiveFailures": 1, "minRequestsThreshold": 1, "errorThresholdPercent": 1}),
        None,
    ));
    let gw = Gateway::start_objects_with(
        &objects,
        GatewayOptions {
            queue_length: Some(1),
            queue_timeout_ms: Some(2_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut calls = Vec::new();
    for i in 0..6 {
        let client = gw.http_client();
        let url = gw.url("/v1/chat/completions");
        let id = format!("busy-{i}");
        calls.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("x-request-id", id)
                .json(&ask())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut statuses = Vec::new();
    for c in calls {
        let (status, text) = c.await.unwrap();
        if status == 503 {
            assert!(text.contains("backend_saturated"), "{text}");
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    // One in flight, one queued; the other four refused at once.
    assert_eq!(statuses, vec![200, 200, 503, 503, 503, 503], "{statuses:?}");
    // `local-mock+latency=400` is not a model the Backend declares: its breaker is `other`.
    assert_ne!(circuit_gauge(&gw, "backend/vllm:other"), Some(1.0));
    let (a, r) = post(&gw, "after-the-rush", &ask()).await;
    assert_eq!(a.status, 200, "the circuit stayed closed: {}", a.text);
    assert_eq!(r.attempts.len(), 1);
    let text = gw.metrics_text();
    assert!(
        text.contains("switchyard_refusals_total{reason=\"queue_full\"} 4"),
        "{text}"
    );
}

#[tokio::test]
async fn the_retry_budget_bounds_retries_against_an_always_failing_upstream() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    // A breaker that never opens here (it needs 10000 requests), three retries per request, a
    // 20% budget.
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock+status=503+retry_after=0")),
        vec![],
        json!({"consecutiveFailures": 10000, "minRequestsThreshold": 1000000}),
        Some(json!({"attempts": 3, "backoff": "1ms", "maxBackoff": "2ms", "budgetPercent": 20})),
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let started = Instant::now();
    let requests = 200;
    for _ in 0..requests {
        let a = gw.post("/v1/chat/completions", &ask()).await.unwrap();
        assert_eq!(a.status, 503);
    }
    let seconds = started.elapsed().as_secs_f64();
    let attempts = mock.requests().len();
    // Budget: 0.2 per request, plus a floor of 1 token per second, plus the starting token.
    let bound = (requests as f64 * 1.2 + seconds.ceil() + 1.0) as usize;
    assert!(
        attempts <= bound,
        "{attempts} upstream attempts for {requests} requests in {seconds:.1} s (bound {bound})"
    );
    assert!(attempts > requests, "some retries were made ({attempts})");
    let text = gw.metrics_text();
    assert!(text.contains("outcome=\"budget_exhausted\""), "{text}");
}

#[tokio::test]
async fn an_open_circuit_without_auto_disable_fails_fast_and_autodisable_falls_through() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock+status=500")),
        vec![to_provider("claude", Some("claude-mock+status=500"))],
        json!({"consecutiveFailures": 1, "autoDisable": false}),
        None,
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let (a, r) = post(&gw, "both-fail", &ask()).await;
    assert_eq!(a.status, 502, "{} {:?}", a.text, r.attempts);
    let a = gw.post("/v1/chat/completions", &ask()).await.unwrap();
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.json().unwrap()["error"]["code"], "circuit_open");
    assert!(a.header("retry-after").is_some());

    // With autoDisable, a policy whose every target is open stops matching: the declared
    // model's provider serves the request.
    let mut objects = providers(&mock);
    let mut p = policy(
        to_provider("gpt", Some("gpt-mock+status=500")),
        vec![],
        json!({"consecutiveFailures": 1}),
        None,
    );
    p["metadata"]["name"] = json!("q");
    p["spec"]["match"] = json!({"model": "gpt-mock"});
    objects.push(p);
    gw.replace_objects(&objects).await.unwrap();
    let body = json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]});
    let a = gw.post("/v1/chat/completions", &body).await.unwrap();
    assert_eq!(a.status, 502);
    let a = gw
        .post_with(
            "/v1/chat/completions",
            &body,
            &[("x-request-id", "fell-through")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let r = gw.record_of("fell-through").await.unwrap();
    assert_eq!(r.route.as_ref().unwrap().source, "model", "{:?}", r.route);
}

#[tokio::test]
async fn a_body_larger_than_the_retry_buffer_is_sent_once() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock+status=503")),
        vec![to_provider("claude", Some("claude-mock"))],
        json!({}),
        Some(json!({"attempts": 2, "backoff": "1ms", "budgetPercent": 100})),
    ));
    let gw = Gateway::start_objects_with(
        &objects,
        GatewayOptions {
            retry_buffer_bytes: Some(1024),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut big = ask();
    big["messages"][0]["content"] = json!("x".repeat(4096));
    let (a, r) = post(&gw, "big", &big).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(r.attempts.len(), 1, "never sent twice: {:?}", r.attempts);
    assert_eq!(mock.requests().len(), 1);
    let (a, r) = post(&gw, "small", &ask()).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        r.attempts.len(),
        4,
        "two retries then the fallback: {:?}",
        r.attempts
    );
}

#[tokio::test]
async fn policy_timeouts_override_the_targets_and_bound_the_whole_request() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    let mut p = policy(
        to_provider("gpt", Some("gpt-mock+latency=2000")),
        vec![to_provider("claude", Some("claude-mock"))],
        json!({}),
        None,
    );
    p["spec"]["timeouts"] = json!({"firstByte": "150ms"});
    objects.push(p);
    // A stream slower than the total: it ends with a terminal error event, not a hang.
    let mut slow = policy(
        to_provider("gpt", Some("gpt-mock+chunks=50+chunk_delay=40")),
        vec![],
        json!({}),
        None,
    );
    slow["metadata"]["name"] = json!("slow");
    slow["spec"]["match"] = json!({"model": "slow"});
    slow["spec"]["timeouts"] = json!({"total": "500ms"});
    objects.push(slow);
    let gw = Gateway::start_objects(&objects).await.unwrap();

    // (The bounds on elapsed time only guard against a hang; the records say which timeout hit.)
    let started = Instant::now();
    let (a, r) = post(&gw, "first-byte", &ask()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(r.attempts[0].status, None);
    assert!(
        r.attempts[0].error.as_deref().unwrap().contains("150 ms"),
        "{:?}",
        r.attempts[0]
    );
    assert_eq!(r.provider_name.as_deref(), Some("default/claude"));

    let started = Instant::now();
    let body =
        json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (a, r) = post(&gw, "total", &body).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(a.status, 200);
    let (chunks, done) = a.sse_data().unwrap();
    assert!(chunks.last().unwrap().get("error").is_some(), "{}", a.text);
    assert!(!done, "nothing after the error event");
    assert!(
        a.text.contains("total timeout (500 ms)"),
        "the error names the total timeout, not the idle check: {}",
        a.text
    );
    assert_eq!(r.outcome, Outcome::UpstreamError);
}

#[tokio::test]
async fn shutdown_lets_a_running_stream_finish_and_flushes_its_record() {
    let mock = mock().await;
    let mut objects = providers(&mock);
    objects.push(policy(
        to_provider("gpt", Some("gpt-mock+chunks=20+chunk_delay=25")),
        vec![],
        json!({}),
        None,
    ));
    let mut gw = Gateway::start_objects(&objects).await.unwrap();
    let mut resp = gw
        .open(
            "/v1/chat/completions",
            &ask_stream(),
            &[("x-request-id", "draining")],
        )
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    let addr = gw.addr;
    let reader = tokio::spawn(async move {
        let mut text = String::from_utf8_lossy(&first).into_owned();
        while let Some(c) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&c));
        }
        text
    });
    let shutdown = Instant::now();
    gw.shutdown().await;
    let text = reader.await.unwrap();
    assert!(
        text.contains("[DONE]"),
        "the stream finished during the drain: {text}"
    );
    assert!(shutdown.elapsed() >= Duration::from_millis(200));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
    let r = gw.record_of("draining").await.unwrap();
    assert_eq!(r.outcome, Outcome::Success);
}
