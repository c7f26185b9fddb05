//! Prices by pattern ("Coding agents", point 6) and agent caller identity (point 5): a call is
//! priced by the most specific declaration of the Provider that served it (exact, dated alias,
//! longest prefix glob), a call nothing prices is recorded `cost_source: unpriced` and counted
//! in `switchyard_unpriced_requests_total`, and Claude Code's `metadata.user_id` gives a stable
//! initiator (its account) while its session id still names the session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_dataplane::record::{CostSource, Interception, Outcome};
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::Gateway;
use switchyard_tests::harness::manifests::{priced, provider, workspace};

const ANTHROPIC: (&str, &str) = ("anthropic-version", "2023-06-01");

/// One Anthropic provider declaring four models: one priced exactly in `models`, the others
/// priced (or not) by `spec.pricing` patterns.
async fn setup() -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut claude = priced(
        provider(
            "claude",
            "anthropic",
            &mock.base_url(),
            &[
                "claude-haiku-4-5",
                "claude-opus-4-1",
                "claude-sonnet-4-5-20250929",
                "mystery-model",
            ],
        ),
        "claude-haiku-4-5",
        json!({"input": 1.0, "output": 5.0}),
    );
    claude["spec"]["pricing"] = json!([
        {"model": "claude-*", "input": 100.0, "output": 100.0},
        {"model": "claude-opus-4-*", "input": 15.0, "output": 75.0},
        {"model": "claude-sonnet-4-5", "input": 3.0, "output": 15.0},
    ]);
    let gw = Gateway::start_objects(&[workspace("default", true), claude])
        .await
        .unwrap();
    (mock, gw)
}

fn messages(model: &str, metadata: Value) -> Value {
    json!({"model": model, "max_tokens": 50, "metadata": metadata,
        "messages": [{"role": "user", "content": "hello"}]})
}

async fn call(gw: &Gateway, body: &Value) -> Interception {
    let a = gw
        .post_with("/v1/messages", body, &[ANTHROPIC])
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Success);
    r
}

fn assert_cost(r: &Interception, input: f64, output: f64) {
    assert!(
        r.usage.input_tokens > 0 && r.usage.output_tokens > 0,
        "{r:?}"
    );
    let want_in = r.usage.input_tokens as f64 * input / 1e6;
    let want_out = r.usage.output_tokens as f64 * output / 1e6;
    assert!((r.cost.input - want_in).abs() < 1e-12, "{:?}", r.cost);
    assert!((r.cost.output - want_out).abs() < 1e-12, "{:?}", r.cost);
    assert_eq!(r.cost_source, Some(CostSource::Declared));
}

fn unpriced_count(gw: &Gateway, model: &str) -> u64 {
    let want = format!(
        "switchyard_unpriced_requests_total{{gen_ai_provider_name=\"default/claude\",gen_ai_request_model=\"{model}\"}} "
    );
    gw.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn the_most_specific_price_prices_each_call() {
    let (_mock, gw) = setup().await;
    let none = json!({});
    // Exact (spec.models[].pricing) before the `claude-*` glob.
    assert_cost(
        &call(&gw, &messages("claude-haiku-4-5", none.clone())).await,
        1.0,
        5.0,
    );
    // The longer prefix glob before the shorter.
    assert_cost(
        &call(&gw, &messages("claude-opus-4-1", none.clone())).await,
        15.0,
        75.0,
    );
    // The dated snapshot is priced by its alias, before any glob.
    let dated = call(&gw, &messages("claude-sonnet-4-5-20250929", none.clone())).await;
    assert_cost(&dated, 3.0, 15.0);
    assert_eq!(unpriced_count(&gw, "claude-opus-4-1"), 0);
}

#[tokio::test]
async fn a_call_nothing_prices_is_recorded_unpriced_and_counted() {
    let (_mock, gw) = setup().await;
    assert_eq!(unpriced_count(&gw, "mystery-model"), 0);
    for n in 1..=2 {
        let r = call(&gw, &messages("mystery-model", json!({}))).await;
        assert_eq!(r.cost_source, Some(CostSource::Unpriced), "{r:?}");
        assert_eq!((r.cost.input, r.cost.output), (0.0, 0.0));
        assert!(r.usage.input_tokens > 0, "usage is still recorded: {r:?}");
        assert_eq!(unpriced_count(&gw, "mystery-model"), n);
    }
    // The record as shipped says so too.
    let shipped = serde_json::to_value(gw.unique_records().await.unwrap().pop().unwrap()).unwrap();
    assert_eq!(shipped["cost_source"], "unpriced");
}

#[tokio::test]
async fn claude_code_callers_keep_one_initiator_across_sessions() {
    let (_mock, gw) = setup().await;
    let device = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let account = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
    for session in [
        "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "cccccccc-cccc-4ccc-8ccc-cccccccccccc",
    ] {
        // Current Claude Code: a JSON object in a string.
        let user_id = json!({"device_id": device, "account_uuid": account, "session_id": session});
        let body = messages("claude-haiku-4-5", json!({"user_id": user_id.to_string()}));
        let r = call(&gw, &body).await;
        assert_eq!(r.initiator.as_deref(), Some(account));
        assert_eq!(r.session_id.as_deref(), Some(session));
    }
    // Older Claude Code without a login: the device.
    let legacy = format!("user_{device}_account__session_dddd");
    let r = call(
        &gw,
        &messages("claude-haiku-4-5", json!({"user_id": legacy})),
    )
    .await;
    assert_eq!(r.initiator.as_deref(), Some(device));
    assert_eq!(r.session_id.as_deref(), Some("dddd"));
}
