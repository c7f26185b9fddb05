//! Metric labels and circuit breakers never take raw caller input (hardening issue, defect 6):
//! on a catch-all route, where the caller's model name is forwarded as asked, thousands of
//! invented model names share one `other` breaker and label per target, so `/metrics`, the
//! breaker registry and the circuit report stay the same size, while a model the Provider
//! declares keeps a breaker of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
use switchyard_tests::harness::Gateway;
use switchyard_tests::harness::manifests::{
    mux_rule, provider, router_policy, to_provider, workspace,
};

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
}

/// Posts one chat request per model, 16 at a time; returns the statuses.
async fn flood(gw: &Gateway, models: impl Iterator<Item = String>) -> Vec<u16> {
    let http = gw.http_client();
    let url = gw.url("/v1/chat/completions");
    futures_util::stream::iter(models)
        .map(|m| {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.post(&url)
                    .json(&chat(&m))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Distinct `target` label values of the circuit metric families.
fn circuit_targets(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("switchyard_circuit_"))
        .filter_map(|l| {
            let rest = l.split_once("target=\"")?.1;
            Some(rest.split_once('"')?.0.to_owned())
        })
        .collect()
}

fn invented(range: std::ops::Range<usize>) -> impl Iterator<Item = String> {
    range.map(|i| format!("invented-{i}"))
}

#[tokio::test]
async fn invented_model_names_share_one_breaker_and_label_per_target() {
    let mock = mock().await;
    let base = mock.base_url();
    let mut policy = router_policy(
        "any",
        10,
        json!({"model": "*"}),
        to_provider("gpt", None),
        vec![],
    );
    policy["spec"]["circuitBreaker"] = json!({
        "consecutiveFailures": 2, "minRequestsThreshold": 1000, "cooldownSeconds": 600,
        "autoDisable": false
    });
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
        policy,
    ])
    .await
    .unwrap();
    // Every invented model fails upstream.
    mock.script(
        ScriptRule::new(Behavior {
            status: Some(500),
            ..Default::default()
        })
        .model("invented-*"),
    );

    let first = flood(&gw, invented(0..50)).await;
    assert!(first.iter().all(|s| *s == 502 || *s == 503), "{first:?}");
    let size_after_first = gw.metrics_text().len();

    let statuses = flood(&gw, invented(50..4000)).await;
    // The shared breaker is open: the invented names are refused without a call.
    assert!(
        statuses.iter().all(|s| *s == 503),
        "not every invented model was refused"
    );
    assert!(
        mock.requests().len() < 100,
        "an open `other` circuit is not called ({} calls)",
        mock.requests().len()
    );

    let text = gw.metrics_text();
    assert!(
        !text.contains("invented-"),
        "a caller's model name in /metrics"
    );
    // Only counter values changed (a few more digits).
    assert!(
        text.len() < size_after_first + 64,
        "/metrics grew with the invented names: {} bytes after 50, {} after 4000",
        size_after_first,
        text.len()
    );
    assert!(text.len() < 16 << 10, "/metrics is {} bytes", text.len());
    assert_eq!(
        circuit_targets(&text),
        BTreeSet::from(["provider/gpt:other".to_owned()])
    );

    // The declared model has its own breaker: still served while `other` is open.
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let text = gw.metrics_text();
    assert!(
        text.contains(
            "switchyard_circuit_state{policy=\"default/any\",target=\"provider/gpt:other\"} 1"
        ),
        "{text}"
    );
    let state = &gw.running().state;
    let now = Instant::now();
    let targets: BTreeSet<String> = state
        .breakers
        .snapshot(now)
        .into_iter()
        .map(|b| b.target)
        .collect();
    assert_eq!(
        targets,
        BTreeSet::from([
            "provider/gpt:gpt-mock".to_owned(),
            "provider/gpt:other".to_owned()
        ])
    );
    let (report, dropped) = switchyard_dataplane::circuit_report::report(
        state.breakers.snapshot(now),
        "test",
        &gw.version(),
        now,
        jiff::Timestamp::now(),
    );
    assert_eq!((report.circuits.len(), dropped), (2, 0));

    // The declared model's breaker opens on its own failures.
    mock.script(
        ScriptRule::new(Behavior {
            status: Some(500),
            ..Default::default()
        })
        .model("gpt-mock"),
    );
    for _ in 0..2 {
        let a = gw
            .post("/v1/chat/completions", &chat("gpt-mock"))
            .await
            .unwrap();
        assert_eq!(a.status, 502, "{}", a.text);
    }
    let calls = mock.requests().len();
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(
        mock.requests().len(),
        calls,
        "an open circuit is not called"
    );
    let text = gw.metrics_text();
    assert!(
        text.contains(
            "switchyard_circuit_state{policy=\"default/any\",target=\"provider/gpt:gpt-mock\"} 1"
        ),
        "{text}"
    );
    assert_eq!(
        circuit_targets(&text),
        BTreeSet::from([
            "provider/gpt:gpt-mock".to_owned(),
            "provider/gpt:other".to_owned()
        ])
    );
    assert_eq!(state.breakers.len(), 2);
}

#[tokio::test]
async fn catch_all_mux_rule_keeps_one_default_breaker_for_invented_names() {
    let mock = mock().await;
    let base = mock.base_url();
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
        mux_rule(
            "all",
            "default",
            100,
            "catch_all",
            None,
            to_provider("gpt", None),
        ),
    ])
    .await
    .unwrap();
    let statuses = flood(&gw, invented(0..1000)).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every invented model is served"
    );
    let a = gw
        .post("/v1/chat/completions", &chat("gpt-mock"))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let now = Instant::now();
    let breakers = gw.running().state.breakers.snapshot(now);
    let targets: Vec<(&str, &str)> = breakers
        .iter()
        .map(|b| (b.policy.as_str(), b.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            ("default", "provider/gpt:gpt-mock"),
            ("default", "provider/gpt:other")
        ]
    );
    // Every invented request was served and counted under `other`.
    let text = gw.metrics_text();
    assert!(
        !text.contains("invented-"),
        "a caller's model name in /metrics"
    );
    let other = breakers
        .iter()
        .find(|b| b.target.ends_with(":other"))
        .unwrap();
    assert_eq!(other.successes, 1000);
}
