//! Acceptance point 9: a snapshot swap while a stream is open leaves that stream on its old
//! route while new requests take the new one; a broken manifest (invalid YAML, a schema error)
//! is refused and the last good snapshot keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_dataplane::record::Outcome;
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::manifests::{mux_rule, provider, to_provider, workspace};
use switchyard_tests::harness::{Gateway, openai_stream_text, sse_data};

async fn two_mocks() -> (MockUpstream, MockUpstream) {
    let a = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (a, b)
}

/// Providers `old` (mock a) and `new` (mock b); the catch-all rule sends to `to`.
fn objects(a: &MockUpstream, b: &MockUpstream, to: &str) -> Vec<Value> {
    vec![
        workspace("default", true),
        provider("old", "openai", &format!("{}/v1", a.base_url()), &[]),
        provider("new", "openai", &format!("{}/v1", b.base_url()), &[]),
        mux_rule(
            "all",
            "default",
            100,
            "catch_all",
            None,
            to_provider(to, None),
        ),
    ]
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "which route"}]})
}

#[tokio::test]
async fn an_open_stream_finishes_on_its_old_route_while_new_requests_take_the_new_one() {
    let (a, b) = two_mocks().await;
    let gw = Gateway::start_objects(&objects(&a, &b, "old"))
        .await
        .unwrap();
    let old_version = gw.version();
    let mut stream = gw
        .open(
            "/v1/chat/completions",
            &json!({"model": "demo-fast+chunks=20+chunk_delay=50", "stream": true, "messages": [{"role": "user", "content": "tell a long story"}]}),
            &[("x-request-id", "the-open-stream")],
        )
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let route = stream.headers()["x-switchyard-route"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        route,
        "muxrule=default/all; target=provider/old; model=demo-fast+chunks=20+chunk_delay=50"
    );
    let mut text = String::from_utf8(stream.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(!text.contains("[DONE]"));

    gw.replace_objects(&objects(&a, &b, "new")).await.unwrap();
    let new_version = gw.version();
    assert_ne!(new_version, old_version);
    let n = gw
        .post("/v1/chat/completions", &chat("demo-fast"))
        .await
        .unwrap();
    assert_eq!(n.status, 200, "{}", n.text);
    assert_eq!(
        n.route(),
        "muxrule=default/all; target=provider/new; model=demo-fast"
    );
    assert_eq!(b.requests().len(), 1, "the new request took the new route");

    let mut still_open = false;
    while let Some(c) = stream.chunk().await.unwrap() {
        still_open = true;
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert!(still_open, "the stream was still open after the swap");
    let (chunks, done) = sse_data(&text).unwrap();
    assert!(done, "{text}");
    let content: Vec<&str> = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(content.len(), 20, "every delta arrived: {text}");
    assert!(openai_stream_text(&chunks).starts_with("mock reply: tell a long story lorem"));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(
        a.requests().len(),
        1,
        "the old route served only the open stream"
    );

    let s = gw.record_of("the-open-stream").await.unwrap();
    assert_eq!(s.outcome, Outcome::Success);
    assert_eq!(s.provider_name.as_deref(), Some("default/old"));
    assert_eq!(s.snapshot_version, old_version);
    assert_eq!(s.usage.output_tokens, 20);
    let r = gw.record_of(&n.request_id()).await.unwrap();
    assert_eq!(r.provider_name.as_deref(), Some("default/new"));
    assert_eq!(r.snapshot_version, new_version);
}

#[tokio::test]
async fn a_broken_manifest_leaves_the_last_good_snapshot_serving() {
    let (a, b) = two_mocks().await;
    let gw = Gateway::start_objects(&objects(&a, &b, "old"))
        .await
        .unwrap();
    let version = gw.version();
    let broken_rule = |matcher: Value, priority: Value| {
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "MuxRule", "metadata": {"name": "first"},
               "spec": {"workspaceRef": "default", "priority": priority, "matcher": matcher, "target": {"providerRef": "new"}}})
        .to_string()
    };
    for (what, text) in [
        ("invalid YAML", "kind: [unclosed\n  spec: {".to_owned()),
        ("an unknown matcher type", broken_rule(json!({"type": "regex"}), json!(1))),
        ("a string where a number belongs", broken_rule(json!({"type": "catch_all"}), json!("high"))),
        ("an unknown kind of the API group", r#"{"apiVersion": "switchyard.dev/v1alpha1", "kind": "Router", "metadata": {"name": "x"}, "spec": {}}"#.to_owned()),
    ] {
        gw.write_bad_manifest("broken.yaml", &text).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(gw.version(), version, "{what}: the last good snapshot stays");
        let r = gw.post("/v1/chat/completions", &chat("demo-fast")).await.unwrap();
        assert_eq!(r.status, 200, "{what}: {}", r.text);
        assert_eq!(r.route(), "muxrule=default/all; target=provider/old; model=demo-fast", "{what}");
        let rec = gw.record_of(&r.request_id()).await.unwrap();
        assert_eq!(rec.snapshot_version, version);
    }
    assert!(b.requests().is_empty());
    let metrics = gw.metrics_text();
    assert!(
        metrics.contains(&format!("switchyard_snapshot{{version=\"{version}\"}} 1")),
        "{metrics}"
    );

    // Repairing the file applies it.
    gw.write_manifest(
        "broken.yaml",
        &broken_rule(json!({"type": "catch_all"}), json!(1)),
    )
    .await
    .unwrap();
    assert_ne!(gw.version(), version);
    let r = gw
        .post("/v1/chat/completions", &chat("demo-fast"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.route(),
        "muxrule=default/first; target=provider/new; model=demo-fast"
    );
    assert_eq!(b.requests().len(), 1);
}
