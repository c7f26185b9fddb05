//! Egress safety end to end: a Provider whose endpoint is the cloud metadata address is refused
//! before any traffic, with a clear error in the caller's dialect and one record; the fallback
//! target of the route still serves the request.

use serde_json::json;
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::Gateway;

fn manifests(mock: &str) -> String {
    format!(
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {{name: metadata}}
spec: {{type: openai, endpoint: "http://169.254.169.254/v1", models: [{{name: m}}]}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {{name: good}}
spec: {{type: openai, endpoint: "{mock}/v1", models: [{{name: m}}]}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {{name: default}}
spec: {{default: true}}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {{name: only-metadata}}
spec: {{match: {{model: "blocked"}}, routeTo: {{providerRef: metadata, model: m}}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {{name: with-fallback}}
spec: {{match: {{model: "fallback"}}, routeTo: {{providerRef: metadata, model: m}}, fallback: [{{providerRef: good, model: m}}]}}
"#
    )
}

#[tokio::test]
async fn metadata_endpoints_are_refused_before_any_traffic() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = manifests(&mock.base_url());
    let gw = Gateway::start(&[("all.yaml", text.as_str())])
        .await
        .unwrap();

    let body = json!({"model": "blocked", "messages": [{"role": "user", "content": "hi"}]});
    let a = gw.post("/v1/chat/completions", &body).await.unwrap();
    assert_eq!(a.status, 502, "{}", a.text);
    let msg = a.json().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("169.254.169.254") && msg.contains("169.254.0.0/16"),
        "{msg}"
    );

    // The fallback target serves the request; the refused attempt is recorded first.
    let body = json!({"model": "fallback", "messages": [{"role": "user", "content": "hi"}]});
    let ok = gw.post("/v1/chat/completions", &body).await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
    let rec = gw.record_of(&ok.request_id()).await.unwrap();
    assert_eq!(rec.attempts.len(), 2);
    assert!(
        rec.attempts[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("refused"),
        "{:?}",
        rec.attempts[0]
    );
    assert_eq!(rec.attempts[1].status, Some(200));
    assert_eq!(
        mock.requests().len(),
        1,
        "only the fallback reached an upstream"
    );
    gw.stop().await;
}
