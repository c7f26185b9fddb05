//! `limits.perCaller` applies to callers without a gateway key too (hardening issue, defect 9a):
//! every such caller of a workspace (no credential, its own provider key, whatever body `user`
//! it claims) shares the workspace's one anonymous per-caller bucket; a gateway key's binding
//! has a bucket of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::Gateway;
use switchyard_tests::harness::manifests::{client_key, provider, secret, workspace};

const ALICE_KEY: &str = "sk-gw-alice-0123456789";

fn chat(user: Option<&str>) -> Value {
    let mut b = json!({"model": "gpt-mock", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]});
    if let Some(u) = user {
        b["user"] = json!(u);
    }
    b
}

async fn status(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> u16 {
    let a = gw
        .post_with("/v1/chat/completions", body, headers)
        .await
        .unwrap();
    if a.status == 429 {
        assert!(a.text.contains("caller requests per minute"), "{}", a.text);
    }
    a.status
}

#[tokio::test]
async fn callers_without_a_key_share_one_anonymous_per_caller_bucket() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut ws = client_key(workspace("default", true), "alice", "gw-keys", "alice");
    ws["spec"]["limits"] = json!({"perCaller": {"requestsPerMinute": 2}});
    let gw = Gateway::start_objects(&[
        ws,
        secret("gw-keys", &[("alice", ALICE_KEY)]),
        provider(
            "gpt",
            "openai",
            &format!("{}/v1", mock.base_url()),
            &["gpt-mock"],
        ),
    ])
    .await
    .unwrap();

    // Two keyless requests fill the anonymous bucket.
    assert_eq!(status(&gw, &chat(None), &[]).await, 200);
    assert_eq!(status(&gw, &chat(Some("u-1")), &[]).await, 200);
    // The third is refused, however the caller presents itself without a gateway key.
    assert_eq!(status(&gw, &chat(None), &[]).await, 429);
    assert_eq!(status(&gw, &chat(Some("someone-new")), &[]).await, 429);
    let own_key = [("authorization", "Bearer sk-its-own-provider-key")];
    assert_eq!(status(&gw, &chat(Some("another")), &own_key).await, 429);
    assert!(
        gw.metrics_text()
            .contains("switchyard_refusals_total{reason=\"caller_requests_per_minute\"} 3"),
        "{}",
        gw.metrics_text()
    );

    // A keyed caller has its own bucket.
    let bearer = format!("Bearer {ALICE_KEY}");
    let alice = [("authorization", bearer.as_str())];
    assert_eq!(status(&gw, &chat(None), &alice).await, 200);
    assert_eq!(status(&gw, &chat(None), &alice).await, 200);
    assert_eq!(status(&gw, &chat(None), &alice).await, 429);
}
