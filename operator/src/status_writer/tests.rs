//! Reconciler-level tests against a scripted mock API server (kube's tower-test pattern): the
//! exact status patch for the ready, broken-reference and missing-secret cases, and no call at
//! all for an unchanged object.

use http::{Request, Response};
use jiff::Timestamp;
use kube::client::Body;
use switchyard_crds::compile::{Inventory, Kind, compile};
use switchyard_crds::{MuxRule, Provider};
use tower_test::mock;

use super::*;
use crate::status::{self, Counters, Probes};

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn client() -> (Client, Handle) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Serves one request: asserts method, path and body, answers with `response`.
async fn expect_patch(handle: &mut Handle, path: &str, body: Value) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(1), handle.next_request())
        .await
        .expect("a request within 1 s")
        .expect("service not closed");
    assert_eq!(req.method(), http::Method::PATCH);
    let uri = req.uri().to_string();
    assert!(uri.starts_with(path), "{uri}");
    assert!(
        uri.contains("fieldManager=switchyard-operator") && uri.contains("force=true"),
        "{uri}"
    );
    assert_eq!(
        req.headers()["content-type"],
        "application/apply-patch+yaml"
    );
    let bytes = http_body_util::BodyExt::collect(req.into_body())
        .await
        .unwrap()
        .to_bytes();
    let sent: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(sent, body);
    let mut obj = sent.clone();
    obj["metadata"] = json!({"name": "x", "namespace": "ns"});
    obj["spec"] = json!({});
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&obj).unwrap()))
            .unwrap(),
    );
}

const SET: &str = r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: openai, namespace: ns, generation: 2}
spec: {type: openai, auth: {type: api_key, secretRef: {name: keys, key: openai}}}
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: ns}
stringData: {openai: sk-live-abcdefghijklmnop}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: anthropic, namespace: ns, generation: 1}
spec: {type: anthropic, auth: {type: api_key, secretRef: {name: missing, key: api-key}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {name: w, namespace: ns}
spec: {}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {name: py, namespace: ns, generation: 5}
spec: {workspaceRef: w, matcher: {type: catch_all}, target: {providerRef: openai-main}}
"#;

fn now() -> Timestamp {
    "2026-03-04T05:06:07Z".parse().unwrap()
}

fn compiled() -> switchyard_crds::compile::Compiled {
    let mut inv = Inventory::default();
    switchyard_crds::manifest::add_yaml(&mut inv, "s.yaml", SET).unwrap();
    compile(&inv)
}

#[tokio::test]
async fn ready_provider_patch_is_exact() {
    let c = compiled();
    let s = status::provider(
        c.diagnostic(Kind::Provider, "ns", "openai").unwrap(),
        None,
        &[],
        &Counters::default(),
        &Probes::default(),
        now(),
    );
    let (client, mut handle) = client();
    let writer = StatusWriter::new(client);
    let server = tokio::spawn(async move {
        expect_patch(
            &mut handle,
            "/apis/switchyard.dev/v1alpha1/namespaces/ns/providers/openai/status?",
            json!({
                "apiVersion": "switchyard.dev/v1alpha1",
                "kind": "Provider",
                "status": {
                    "observedGeneration": 2,
                    "endpoint": "https://api.openai.com/v1",
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "Ready", "message": "Provider ns/openai is ready", "observedGeneration": 2, "lastTransitionTime": "2026-03-04T05:06:07Z"},
                        {"type": "SecretResolved", "status": "True", "reason": "SecretResolved", "message": "all Secret keys resolved", "observedGeneration": 2, "lastTransitionTime": "2026-03-04T05:06:07Z"}
                    ]
                }
            }),
        )
        .await;
        handle
    });
    assert_eq!(
        writer
            .write::<Provider, _>("ns", "openai", None, &s)
            .await
            .unwrap(),
        Written::Patched
    );
    let mut handle = server.await.unwrap();
    // Same status again: no call at all (the mock would otherwise get a request).
    assert_eq!(
        writer
            .write::<Provider, _>("ns", "openai", None, &s)
            .await
            .unwrap(),
        Written::Unchanged
    );
    assert_eq!(
        writer
            .write::<Provider, _>("ns", "openai", Some(&s), &s)
            .await
            .unwrap(),
        Written::Unchanged
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), handle.next_request())
            .await
            .is_err(),
        "no write for an unchanged object"
    );
}

#[tokio::test]
async fn broken_reference_patch_is_exact() {
    let c = compiled();
    let s = status::mux_rule(
        c.diagnostic(Kind::MuxRule, "ns", "py").unwrap(),
        None,
        &Counters::default(),
        now(),
    );
    let (client, mut handle) = client();
    let writer = StatusWriter::new(client);
    let msg = "MuxRule ns/py: spec.target: provider \"openai-main\" not found";
    let server = tokio::spawn(async move {
        expect_patch(
            &mut handle,
            "/apis/switchyard.dev/v1alpha1/namespaces/ns/muxrules/py/status?",
            json!({
                "apiVersion": "switchyard.dev/v1alpha1",
                "kind": "MuxRule",
                "status": {
                    "observedGeneration": 5,
                    "target": "provider/openai-main",
                    "matchCount": 0,
                    "conditions": [
                        {"type": "Ready", "status": "False", "reason": "ProviderNotFound", "message": msg, "observedGeneration": 5, "lastTransitionTime": "2026-03-04T05:06:07Z"},
                        {"type": "ResolvedRefs", "status": "False", "reason": "ProviderNotFound", "message": msg, "observedGeneration": 5, "lastTransitionTime": "2026-03-04T05:06:07Z"},
                        {"type": "Conflicted", "status": "False", "reason": "NoConflicts", "message": "no conflicts", "observedGeneration": 5, "lastTransitionTime": "2026-03-04T05:06:07Z"}
                    ]
                }
            }),
        )
        .await;
    });
    assert_eq!(
        writer
            .write::<MuxRule, _>("ns", "py", None, &s)
            .await
            .unwrap(),
        Written::Patched
    );
    server.await.unwrap();
}

#[tokio::test]
async fn missing_secret_patch_names_secret_and_key() {
    let c = compiled();
    let s = status::provider(
        c.diagnostic(Kind::Provider, "ns", "anthropic").unwrap(),
        None,
        &[],
        &Counters::default(),
        &Probes::default(),
        now(),
    );
    let (client, mut handle) = client();
    let writer = StatusWriter::new(client);
    let msg = "Provider ns/anthropic: API key: Secret \"missing\" not found (key \"api-key\"); \
               in a cluster the operator only sees Secrets labelled switchyard.dev/secret=true";
    let server = tokio::spawn(async move {
        expect_patch(
            &mut handle,
            "/apis/switchyard.dev/v1alpha1/namespaces/ns/providers/anthropic/status?",
            json!({
                "apiVersion": "switchyard.dev/v1alpha1",
                "kind": "Provider",
                "status": {
                    "observedGeneration": 1,
                    "endpoint": "https://api.anthropic.com",
                    "conditions": [
                        {"type": "Ready", "status": "False", "reason": "SecretNotFound", "message": msg, "observedGeneration": 1, "lastTransitionTime": "2026-03-04T05:06:07Z"},
                        {"type": "SecretResolved", "status": "False", "reason": "SecretNotFound", "message": msg, "observedGeneration": 1, "lastTransitionTime": "2026-03-04T05:06:07Z"}
                    ]
                }
            }),
        )
        .await;
    });
    assert_eq!(
        writer
            .write::<Provider, _>("ns", "anthropic", None, &s)
            .await
            .unwrap(),
        Written::Patched
    );
    server.await.unwrap();
}

#[tokio::test]
async fn failures_back_off_per_object() {
    let c = compiled();
    let s = status::mux_rule(
        c.diagnostic(Kind::MuxRule, "ns", "py").unwrap(),
        None,
        &Counters::default(),
        now(),
    );
    let (client, mut handle) = client();
    let writer = StatusWriter::new(client);
    let server = tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "conflict", "reason": "Conflict", "code": 409});
        send.send_response(
            Response::builder()
                .status(409)
                .body(Body::from(serde_json::to_vec(&status).unwrap()))
                .unwrap(),
        );
        handle
    });
    assert!(
        writer
            .write::<MuxRule, _>("ns", "py", None, &s)
            .await
            .is_err()
    );
    let mut handle = server.await.unwrap();
    assert_eq!(writer.backing_off(), 1);
    assert_eq!(
        writer
            .write::<MuxRule, _>("ns", "py", None, &s)
            .await
            .unwrap(),
        Written::BackingOff
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), handle.next_request())
            .await
            .is_err()
    );
    assert_eq!(backoff(1), Duration::from_secs(1));
    assert_eq!(backoff(3), Duration::from_secs(4));
    assert_eq!(backoff(30), Duration::from_secs(256));
}
