//! The operator side of the data-plane channel: snapshot stream, long-poll, record ingestion,
//! authentication (static token and TokenReview against a mocked API server), authorization
//! (SubjectAccessReview against a mocked API server), TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchyard_crds::channel::Frame;
use switchyard_crds::circuits::{CircuitStateName, MAX_CIRCUITS};
use switchyard_crds::record::Interception;
use switchyard_crds::snapshot::{ClientKeySnapshot, SCHEMA_VERSION, Snapshot};
use switchyard_operator::channel::{
    Action, AllowList, Authenticator, Authorizer, Channel, ChannelOptions, ChannelServer,
    FollowMode, Identity, IngestReport, RecordSink, SnapshotHub, StaticTokenAuthenticator,
    SubjectAccessReviewAuthorizer, TlsMaterial, TokenReviewAuthenticator, publish_ca, serve_tls,
};

const TOKEN: &str = "local-test-token";

fn snapshot(n: u32) -> Snapshot {
    Snapshot {
        schema_version: SCHEMA_VERSION,
        default_workspace: Some(format!("ns/workspace-{n}")),
        ..Default::default()
    }
    .seal()
}

/// A snapshot of about `keys` × 150 bytes.
fn big_snapshot(n: u32, keys: usize) -> Snapshot {
    let client_keys = (0..keys)
        .map(|i| ClientKeySnapshot {
            sha256: format!("{i:064x}"),
            name: format!("caller-{i}"),
            workspace: "ns/default-workspace".into(),
        })
        .collect();
    Snapshot {
        schema_version: SCHEMA_VERSION,
        default_workspace: Some(format!("ns/workspace-{n}")),
        client_keys,
        ..Default::default()
    }
    .seal()
}

fn record(id: uuid::Uuid, request_id: &str) -> Value {
    json!({
        "id": id,
        "request_id": request_id,
        "started_at": "2025-01-01T00:00:00Z",
        "ended_at": "2025-01-01T00:00:01Z",
        "endpoint": "/v1/chat/completions",
        "credential_kind": "none",
        "client": "test",
        "model_requested": "demo-fast",
        "status": 200,
        "outcome": "success",
        "stream": false,
        "latency_ms": 1000,
        "usage": {"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": 0, "cache_write_input_tokens": 0},
        "usage_estimated": false,
        "cost": {"input": 0.0, "output": 0.0},
        "snapshot_version": "v",
    })
}

/// An in-memory record store, idempotent by id, that can be told to fail.
#[derive(Default)]
struct MemorySink {
    records: Mutex<BTreeMap<uuid::Uuid, Interception>>,
    calls: AtomicUsize,
    fail: AtomicBool,
}

impl RecordSink for MemorySink {
    fn ingest(&self, batch: Vec<Interception>) -> BoxFuture<'_, Result<IngestReport, String>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err("database is locked".into());
            }
            let mut records = self.records.lock().unwrap();
            let mut report = IngestReport::default();
            for r in batch {
                if records.insert(r.id, r).is_some() {
                    report.duplicates += 1;
                } else {
                    report.inserted += 1;
                }
            }
            Ok(report)
        })
    }
}

struct Fixture {
    hub: SnapshotHub,
    channel: Channel,
    sink: Arc<MemorySink>,
    server: Option<ChannelServer>,
    material: TlsMaterial,
    url: String,
    client: reqwest::Client,
}

fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client_trusting(ca_pem: &str) -> reqwest::ClientBuilder {
    install_provider();
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap();
    reqwest::Client::builder().no_proxy().tls_certs_only(certs)
}

impl Fixture {
    async fn start() -> Self {
        Self::start_with(
            Arc::new(StaticTokenAuthenticator::new(TOKEN)),
            ChannelOptions::default(),
        )
        .await
    }

    async fn start_with(auth: Arc<dyn Authenticator>, options: ChannelOptions) -> Self {
        install_provider();
        let hub = SnapshotHub::new();
        let sink = Arc::new(MemorySink::default());
        let channel = Channel::new(hub.clone(), auth, sink.clone(), options);
        let material =
            TlsMaterial::self_signed(&["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve_tls(listener, channel.router(), &material).unwrap();
        let url = format!("https://127.0.0.1:{}", server.local_addr().port());
        let client = client_trusting(material.ca_pem().unwrap()).build().unwrap();
        Self {
            hub,
            channel,
            sink,
            server: Some(server),
            material,
            url,
            client,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
    }

    fn post_records(&self, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/records", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
    }

    async fn open_stream(&self, query: &str, headers: &[(&str, &str)]) -> Frames {
        let mut req = self.get(&format!("/v1/snapshots/stream{query}"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
        Frames {
            resp,
            buf: Vec::new(),
        }
    }
}

/// Reads stream frames one line at a time.
struct Frames {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Frames {
    async fn next(&mut self) -> Frame {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("no frame within 5 s")
    }

    async fn next_within(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(c))) => self.buf.extend_from_slice(&c),
                Ok(Ok(None)) | Ok(Err(_)) => panic!("the stream ended"),
                Err(_) => return None,
            }
        }
    }

    /// The next frame, which must be a snapshot; its version.
    async fn snapshot(&mut self) -> Snapshot {
        match self.next().await {
            Frame::Snapshot { snapshot } => *snapshot,
            other => panic!("expected a snapshot frame, got {other:?}"),
        }
    }

    /// Reads until the stream ends (or 5 s pass): true when it ended.
    async fn ends(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshot stream
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stream_sends_the_current_snapshot_at_once_then_each_new_version() {
    let f = Fixture::start().await;
    let s1 = snapshot(1);
    assert!(f.hub.publish(s1.clone()));
    let mut frames = f.open_stream("", &[]).await;
    let got = frames.snapshot().await;
    assert_eq!(
        got, s1,
        "the whole snapshot, secrets and all, arrives intact"
    );
    assert!(got.verify());

    for n in 2..5 {
        let s = snapshot(n);
        assert!(f.hub.publish(s.clone()));
        assert_eq!(frames.snapshot().await.version, s.version);
    }
}

#[tokio::test]
async fn stream_with_have_does_not_resend_the_current_version() {
    let f = Fixture::start().await;
    let s1 = snapshot(1);
    f.hub.publish(s1.clone());
    let mut frames = f.open_stream(&format!("?have={}", s1.version), &[]).await;
    assert_eq!(
        frames.next().await,
        Frame::Heartbeat {
            version: Some(s1.version.clone())
        },
        "a heartbeat, not the snapshot it already has"
    );
    let s2 = snapshot(2);
    f.hub.publish(s2.clone());
    assert_eq!(frames.snapshot().await.version, s2.version);

    // The x-switchyard-have header does the same when the query is absent.
    let mut frames = f
        .open_stream("", &[("x-switchyard-have", s2.version.as_str())])
        .await;
    assert!(matches!(frames.next().await, Frame::Heartbeat { .. }));
    // And a stale `have` gets the current snapshot at once.
    let mut frames = f.open_stream(&format!("?have={}", s1.version), &[]).await;
    assert_eq!(frames.snapshot().await.version, s2.version);
}

#[tokio::test]
async fn stream_before_the_first_snapshot_sends_a_heartbeat_then_the_first_snapshot() {
    let f = Fixture::start().await;
    let mut frames = f.open_stream("", &[]).await;
    assert_eq!(frames.next().await, Frame::Heartbeat { version: None });
    let s1 = snapshot(1);
    f.hub.publish(s1.clone());
    assert_eq!(frames.snapshot().await.version, s1.version);
}

#[tokio::test]
async fn heartbeats_flow_while_nothing_changes_and_republishing_a_version_sends_nothing() {
    let f = Fixture::start_with(
        Arc::new(StaticTokenAuthenticator::new(TOKEN)),
        ChannelOptions {
            heartbeat: Duration::from_millis(100),
            ..ChannelOptions::default()
        },
    )
    .await;
    let s1 = snapshot(1);
    f.hub.publish(s1.clone());
    let mut frames = f.open_stream("", &[]).await;
    frames.snapshot().await;
    assert!(!f.hub.publish(s1.clone()), "same version: ignored");
    for _ in 0..3 {
        assert_eq!(
            frames.next().await,
            Frame::Heartbeat {
                version: Some(s1.version.clone())
            }
        );
    }
}

#[tokio::test]
async fn a_slow_consumer_gets_the_latest_version_only() {
    let f = Fixture::start().await;
    // ~0.9 MB per snapshot: a few fill the socket buffers, so the server has to wait.
    f.hub.publish(big_snapshot(0, 6_000));
    let mut frames = f.open_stream("", &[]).await;
    assert_eq!(
        frames.snapshot().await.default_workspace.as_deref(),
        Some("ns/workspace-0")
    );
    let published = 40;
    let mut last = String::new();
    for n in 1..=published {
        let s = big_snapshot(n, 6_000);
        last = s.version.clone();
        f.hub.publish(s);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Now read: versions arrive in order, end with the latest, and most were skipped.
    let mut received = Vec::new();
    loop {
        let s = frames.snapshot().await;
        let n: u32 = s
            .default_workspace
            .as_deref()
            .unwrap()
            .trim_start_matches("ns/workspace-")
            .parse()
            .unwrap();
        assert!(
            received.last().is_none_or(|p| *p < n),
            "in order: {received:?} then {n}"
        );
        received.push(n);
        if s.version == last {
            break;
        }
    }
    assert_eq!(*received.last().unwrap(), published);
    assert!(
        received.len() < (published as usize) / 2,
        "a slow consumer is not queued every version: got {received:?}"
    );
    assert!(
        frames
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing after the latest"
    );
}

#[tokio::test]
async fn subscriptions_skip_to_the_latest() {
    let hub = SnapshotHub::new();
    let mut sub = hub.subscribe();
    assert!(sub.latest().is_none());
    for n in 1..=5 {
        hub.publish(snapshot(n));
    }
    assert_eq!(sub.next().await.unwrap().version, snapshot(5).version);
    assert_eq!(hub.current().unwrap().version, snapshot(5).version);
    assert_eq!(hub.version(), Some(snapshot(5).version));
}

// ---------------------------------------------------------------------------------------------
// Long-poll
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn long_poll_answers_at_once_when_the_version_differs() {
    let f = Fixture::start().await;
    let s1 = snapshot(1);
    f.hub.publish(s1.clone());
    let started = std::time::Instant::now();
    let r = f
        .get("/v1/snapshot?after=something-else&wait_ms=10000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Answered at once, not after the 10 s wait (the margin is for a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(r.headers()["x-switchyard-version"], s1.version.as_str());
    let got: Snapshot = r.json().await.unwrap();
    assert_eq!(got, s1);
    // Without `after` too.
    let r = f.get("/v1/snapshot").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn long_poll_returns_when_a_new_version_is_published() {
    let f = Fixture::start().await;
    let s1 = snapshot(1);
    f.hub.publish(s1.clone());
    let hub = f.hub.clone();
    let s2 = snapshot(2);
    let publish = {
        let s2 = s2.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            hub.publish(s2);
        })
    };
    let started = std::time::Instant::now();
    let r = f
        .get(&format!("/v1/snapshot?after={}&wait_ms=10000", s1.version))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(r.json::<Snapshot>().await.unwrap().version, s2.version);
    publish.await.unwrap();
}

#[tokio::test]
async fn long_poll_answers_304_without_a_body_after_the_wait() {
    let f = Fixture::start().await;
    let s1 = snapshot(1);
    f.hub.publish(s1.clone());
    let started = std::time::Instant::now();
    let r = f
        .get(&format!("/v1/snapshot?after={}&wait_ms=300", s1.version))
        .header("x-switchyard-instance", "dp-poller")
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 304);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert_eq!(r.headers()["x-switchyard-version"], s1.version.as_str());
    assert!(r.bytes().await.unwrap().is_empty());
    // The poller counts as connected, with the version it reported.
    let planes = f.channel.dataplanes();
    assert_eq!(planes.len(), 1);
    assert_eq!(planes[0].mode, FollowMode::Poll);
    assert_eq!(planes[0].instance.as_deref(), Some("dp-poller"));
    assert_eq!(
        planes[0].reported_version.as_deref(),
        Some(s1.version.as_str())
    );
    // Before any snapshot: 304 too.
    let empty = Fixture::start().await;
    let r = empty.get("/v1/snapshot?wait_ms=50").send().await.unwrap();
    assert_eq!(r.status(), 304);
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn records_are_handed_to_the_sink_which_reports_duplicates() {
    let f = Fixture::start().await;
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let batch = json!([record(a, "r-a"), record(b, "r-b")]);
    let r = f
        .post_records(serde_json::to_vec(&batch).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<IngestReport>().await.unwrap(),
        IngestReport {
            inserted: 2,
            duplicates: 0
        }
    );
    // The same batch again (a retry after a lost answer): duplicates.
    let r = f
        .post_records(serde_json::to_vec(&batch).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<IngestReport>().await.unwrap(),
        IngestReport {
            inserted: 0,
            duplicates: 2
        }
    );
    let stored = f.sink.records.lock().unwrap().clone();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[&a].request_id, "r-a");
    assert_eq!(f.channel.metrics().records("inserted"), 2);
    assert_eq!(f.channel.metrics().records("duplicate"), 2);
    // An empty batch is fine and does not bother the store.
    let calls = f.sink.calls.load(Ordering::SeqCst);
    let r = f.post_records("[]").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(f.sink.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn bad_json_is_a_400_naming_the_problem() {
    let f = Fixture::start().await;
    let r = f.post_records("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "{body}"
    );

    let mut incomplete = record(uuid::Uuid::now_v7(), "r");
    incomplete.as_object_mut().unwrap().remove("outcome");
    let r = f
        .post_records(serde_json::to_vec(&json!([incomplete])).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `outcome`"),
        "{body}"
    );
    let r = f
        .post_records(serde_json::to_vec(&record(uuid::Uuid::now_v7(), "r")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an object, not an array");
    assert_eq!(f.sink.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_failing_sink_is_a_503_so_the_data_plane_retries() {
    let f = Fixture::start().await;
    f.sink.fail.store(true, Ordering::SeqCst);
    let batch = serde_json::to_vec(&json!([record(uuid::Uuid::now_v7(), "r")])).unwrap();
    let r = f.post_records(batch.clone()).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        !body.to_string().contains("database is locked"),
        "store internals stay in the operator's log"
    );
    assert_eq!(f.channel.metrics().ingest_failures.get(), 1);
    f.sink.fail.store(false, Ordering::SeqCst);
    let r = f.post_records(batch).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_oversized_batch_is_a_413() {
    let f = Fixture::start_with(
        Arc::new(StaticTokenAuthenticator::new(TOKEN)),
        ChannelOptions {
            max_records_bytes: 1024,
            ..ChannelOptions::default()
        },
    )
    .await;
    let batch: Vec<Value> = (0..10)
        .map(|i| record(uuid::Uuid::now_v7(), &format!("r{i}")))
        .collect();
    let r = f
        .post_records(serde_json::to_vec(&batch).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large");
}

// ---------------------------------------------------------------------------------------------
// Circuit reports
// ---------------------------------------------------------------------------------------------

fn circuit_report(data_plane: &str, circuits: usize, open: bool) -> Value {
    let circuits: Vec<Value> = (0..circuits)
        .map(|i| {
            json!({
                "policy": "ns/p",
                "target": format!("provider/openai:m{i}"),
                "state": if open && i == 0 { "Open" } else { "Closed" },
                "failures": 6,
                "successes": 4,
                "errorRatePercent": 60.0,
                "timesOpened": u64::from(open && i == 0),
            })
        })
        .collect();
    json!({
        "dataPlane": data_plane,
        "snapshotVersion": "v1",
        "at": "2026-01-01T00:00:00Z",
        "circuits": circuits,
    })
}

impl Fixture {
    fn post_circuits(&self, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/circuits", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
    }
}

#[tokio::test]
async fn an_accepted_circuit_report_is_on_the_board() {
    let f = Fixture::start().await;
    let changed = f.channel.circuits().subscribe();
    let body = serde_json::to_vec(&circuit_report("dp-0", 2, true)).unwrap();
    let r = f.post_circuits(body).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let merged = f.channel.circuits().merged(Instant::now());
    assert_eq!(merged.data_planes, 1);
    let open = merged.get("ns/p", "provider/openai:m0").unwrap();
    assert_eq!(open.state, CircuitStateName::Open);
    assert_eq!((open.open_on, open.data_planes), (1, 1));
    assert_eq!(
        merged.get("ns/p", "provider/openai:m1").unwrap().state,
        CircuitStateName::Closed
    );
    assert!(changed.has_changed().unwrap(), "the status loop is woken");
    assert_eq!(f.channel.circuits().reports("accepted"), 1);

    // The next report of the same data plane replaces it.
    let body = serde_json::to_vec(&circuit_report("dp-0", 1, false)).unwrap();
    let r = f.post_circuits(body).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let merged = f.channel.circuits().merged(Instant::now());
    assert_eq!(merged.circuits.len(), 1);
    assert_eq!(
        merged.get("ns/p", "provider/openai:m0").unwrap().state,
        CircuitStateName::Closed
    );
}

#[tokio::test]
async fn bad_circuit_reports_are_refused_with_the_channel_error_shape() {
    let f = Fixture::start().await;
    let cases: Vec<(Vec<u8>, u16, &str, &str)> = vec![
        (b"{not json".to_vec(), 400, "bad_request", "circuit report"),
        (
            serde_json::to_vec(&json!({"dataPlane": "dp", "circuits": []})).unwrap(),
            400,
            "bad_request",
            "snapshotVersion",
        ),
        (
            serde_json::to_vec(&circuit_report("", 1, false)).unwrap(),
            400,
            "bad_request",
            "dataPlane",
        ),
        (
            serde_json::to_vec(&circuit_report("dp", MAX_CIRCUITS + 1, false)).unwrap(),
            413,
            "too_many_circuits",
            "at most 4096 circuits",
        ),
    ];
    for (body, status, code, says) in cases {
        let r = f.post_circuits(body).send().await.unwrap();
        assert_eq!(r.status(), status, "{code}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    assert_eq!(f.channel.circuits().merged(Instant::now()).data_planes, 0);
    assert_eq!(f.channel.circuits().reports("invalid"), 3);
    assert_eq!(f.channel.circuits().reports("too_large"), 1);
}

#[tokio::test]
async fn an_oversized_circuit_report_is_a_413() {
    let f = Fixture::start_with(
        Arc::new(StaticTokenAuthenticator::new(TOKEN)),
        ChannelOptions {
            max_circuits_bytes: 1024,
            ..ChannelOptions::default()
        },
    )
    .await;
    let body = serde_json::to_vec(&circuit_report("dp", 20, false)).unwrap();
    assert!(body.len() > 1024);
    let r = f.post_circuits(body).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large");
    assert_eq!(f.channel.circuits().merged(Instant::now()).data_planes, 0);
}

#[tokio::test]
async fn circuit_metrics_count_circuits_by_state() {
    let f = Fixture::start().await;
    let mut registry = prometheus_client::registry::Registry::default();
    f.channel.register_metrics(&mut registry);
    let body = serde_json::to_vec(&circuit_report("dp-0", 3, true)).unwrap();
    assert_eq!(f.post_circuits(body).send().await.unwrap().status(), 204);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        r#"switchyard_operator_circuits{state="Open"} 1"#,
        r#"switchyard_operator_circuits{state="Closed"} 2"#,
        r#"switchyard_operator_circuits{state="HalfOpen"} 0"#,
        "switchyard_operator_circuit_dataplanes 1",
        r#"switchyard_operator_circuit_reports_total{result="accepted"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication and authorization
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_route_answers_401_without_a_token_or_with_a_bad_one() {
    let f = Fixture::start().await;
    f.hub.publish(snapshot(1));
    let routes = [
        ("GET", "/v1/snapshots/stream"),
        ("GET", "/v1/snapshot"),
        ("POST", "/v1/records"),
        ("POST", "/v1/circuits"),
    ];
    for (method, path) in routes {
        let url = format!("{}{path}", f.url);
        let method: reqwest::Method = method.parse().unwrap();
        let attempts = [
            f.client.request(method.clone(), &url),
            f.client.request(method.clone(), &url).bearer_auth("wrong"),
            f.client
                .request(method.clone(), &url)
                .header("authorization", format!("Basic {TOKEN}")),
            f.client
                .request(method.clone(), &url)
                .header("authorization", "Bearer "),
        ];
        for req in attempts {
            let r = req.body("[]").send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
            assert!(!body.to_string().contains(TOKEN));
        }
    }
    assert_eq!(f.channel.metrics().refused("unauthenticated"), 16);
    assert!(f.sink.calls.load(Ordering::SeqCst) == 0);
    assert_eq!(f.channel.circuits().merged(Instant::now()).data_planes, 0);
    // Unknown paths are 404 whatever the credentials.
    let r = f
        .client
        .get(format!("{}/nope", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// The requests a mocked API server saw: method, path, body.
type Reviews = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A mocked API server answering TokenReviews: `tokens` maps a token to the user it belongs to
/// (`None`: not authenticated). Returns the client, the reviews seen (request bodies), and the
/// requests' method and path.
fn mock_api_server(
    tokens: BTreeMap<&'static str, Option<&'static str>>,
) -> (kube::Client, Reviews) {
    let (service, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            let review: Value = serde_json::from_slice(&bytes).unwrap();
            log.lock().unwrap().push((
                parts.method.to_string(),
                parts.uri.path().to_owned(),
                review.clone(),
            ));
            let token = review["spec"]["token"].as_str().unwrap_or_default();
            let status = match tokens.get(token) {
                Some(Some(user)) => json!({
                    "authenticated": true,
                    "user": {"username": user, "uid": "u-1", "groups": ["system:serviceaccounts"]},
                    "audiences": review["spec"]["audiences"],
                }),
                _ => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            let answer = json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "metadata": {"creationTimestamp": null},
                "spec": review["spec"],
                "status": status,
            });
            send.send_response(
                http::Response::builder()
                    .status(201)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(
                        serde_json::to_vec(&answer).unwrap(),
                    ))
                    .unwrap(),
            );
        }
    });
    (kube::Client::new(service, "default"), seen)
}

#[tokio::test]
async fn token_review_sends_the_token_and_audiences_and_caches_the_answer() {
    let (client, seen) = mock_api_server(BTreeMap::from([(
        "dp-token",
        Some("system:serviceaccount:switchyard-system:switchyard-dataplane"),
    )]));
    let auth = TokenReviewAuthenticator::new(
        client,
        AllowList::new().service_account("switchyard-system/switchyard-dataplane"),
    )
    .with_audiences(vec!["switchyard".into()]);
    let id = auth.authenticate("dp-token").await.unwrap();
    assert_eq!(
        id.username,
        "system:serviceaccount:switchyard-system:switchyard-dataplane"
    );
    assert_eq!(
        id.service_account(),
        Some(("switchyard-system", "switchyard-dataplane"))
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (method, path, body) = &seen[0];
        assert_eq!(method, "POST");
        assert_eq!(path, "/apis/authentication.k8s.io/v1/tokenreviews");
        assert_eq!(body["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(body["kind"], "TokenReview");
        assert_eq!(body["spec"]["token"], "dp-token");
        assert_eq!(body["spec"]["audiences"], json!(["switchyard"]));
    }
    // Cached: the second use is not reviewed again.
    auth.authenticate("dp-token").await.unwrap();
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a cached token is not reviewed twice"
    );
    // Another token is.
    assert!(auth.authenticate("other").await.is_err());
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn token_review_cache_expires_and_stays_bounded() {
    let (client, seen) = mock_api_server(BTreeMap::from([
        ("a", Some("system:serviceaccount:ns:a")),
        ("b", Some("system:serviceaccount:ns:b")),
    ]));
    let auth = TokenReviewAuthenticator::new(client, AllowList::new().namespace("ns"))
        .with_cache(Duration::from_millis(200), 1);
    auth.authenticate("a").await.unwrap();
    auth.authenticate("b").await.unwrap(); // evicts a: capacity 1
    auth.authenticate("b").await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
    auth.authenticate("a").await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3, "a was evicted");
    tokio::time::sleep(Duration::from_millis(250)).await;
    auth.authenticate("a").await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 4, "expired after the TTL");
}

#[tokio::test]
async fn token_review_decides_401_403_and_200_over_http() {
    let (client, seen) = mock_api_server(BTreeMap::from([
        (
            "dp-token",
            Some("system:serviceaccount:switchyard-system:switchyard-dataplane"),
        ),
        (
            "intruder-token",
            Some("system:serviceaccount:default:intruder"),
        ),
        ("admin-token", Some("kubernetes-admin")),
        ("edge-token", Some("system:serviceaccount:edge:gateway")),
    ]));
    let auth = TokenReviewAuthenticator::new(
        client,
        AllowList::new()
            .service_account("switchyard-system/switchyard-dataplane")
            .namespace("edge"),
    );
    let f = Fixture::start_with(Arc::new(auth), ChannelOptions::default()).await;
    f.hub.publish(snapshot(1));
    let status_with = |token: &'static str| {
        let req = f
            .client
            .get(format!("{}/v1/snapshot", f.url))
            .bearer_auth(token);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    assert_eq!(status_with("dp-token").await.0, 200);
    assert_eq!(status_with("edge-token").await.0, 200);
    let (status, body) = status_with("intruder-token").await;
    assert_eq!(status, 403, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("system:serviceaccount:default:intruder")
    );
    assert_eq!(
        status_with("admin-token").await.0,
        403,
        "not a ServiceAccount"
    );
    let (status, body) = status_with("forged-token").await;
    assert_eq!(status, 401);
    assert!(body.contains("invalid bearer token"), "{body}");
    assert!(!body.contains("forged-token"));
    // Forbidden callers are cached too (the decision is on the cached identity).
    assert_eq!(status_with("intruder-token").await.0, 403);
    assert_eq!(seen.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn token_review_for_any_user_skips_the_allow_list() {
    let (client, _) = mock_api_server(BTreeMap::from([("admin-token", Some("kubernetes-admin"))]));
    let auth = TokenReviewAuthenticator::any_user(client);
    let id = auth.authenticate("admin-token").await.unwrap();
    assert_eq!(id.username, "kubernetes-admin");
    assert!(matches!(
        auth.authenticate("forged").await,
        Err(switchyard_operator::channel::AuthError::Unauthenticated(_))
    ));
}

/// A mocked API server answering SubjectAccessReviews: allowed when `rule` says so for the
/// request's spec. Returns the client and the review bodies seen.
fn mock_sar_server(
    rule: impl Fn(&Value) -> bool + Send + 'static,
) -> (kube::Client, Arc<Mutex<Vec<Value>>>) {
    let (service, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            assert_eq!(parts.method, "POST");
            assert_eq!(
                parts.uri.path(),
                "/apis/authorization.k8s.io/v1/subjectaccessreviews"
            );
            let bytes = body.collect().await.unwrap().to_bytes();
            let review: Value = serde_json::from_slice(&bytes).unwrap();
            log.lock().unwrap().push(review.clone());
            let allowed = rule(&review["spec"]);
            let answer = json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "metadata": {"creationTimestamp": null},
                "spec": review["spec"],
                "status": {"allowed": allowed, "reason": if allowed { "RBAC: allowed" } else { "" }},
            });
            send.send_response(
                http::Response::builder()
                    .status(201)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(
                        serde_json::to_vec(&answer).unwrap(),
                    ))
                    .unwrap(),
            );
        }
    });
    (kube::Client::new(service, "default"), seen)
}

#[tokio::test]
async fn subject_access_review_sends_user_groups_and_resource_and_caches() {
    let (client, seen) = mock_sar_server(|spec| {
        spec["user"] == "alice" && spec["resourceAttributes"]["namespace"] == "team-a"
    });
    let authz = SubjectAccessReviewAuthorizer::new(client);
    let alice = Identity {
        username: "alice".into(),
        groups: vec!["devs".into()],
    };
    let get_ws = Action::switchyard("get", "workspaces")
        .in_namespace("team-a")
        .named("research");
    assert!(authz.allowed(&alice, &get_ws).await.unwrap());
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let body = &seen[0];
        assert_eq!(body["apiVersion"], "authorization.k8s.io/v1");
        assert_eq!(body["kind"], "SubjectAccessReview");
        assert_eq!(body["spec"]["user"], "alice");
        assert_eq!(body["spec"]["groups"], json!(["devs"]));
        assert_eq!(
            body["spec"]["resourceAttributes"],
            json!({"verb": "get", "group": "switchyard.dev", "resource": "workspaces",
                   "namespace": "team-a", "name": "research"})
        );
    }
    // Cached: asked once.
    assert!(authz.allowed(&alice, &get_ws).await.unwrap());
    assert_eq!(seen.lock().unwrap().len(), 1);
    // Another namespace, and cluster scope, are separate questions (and denied).
    let list_all = Action::switchyard("list", "providers");
    assert!(!authz.allowed(&alice, &list_all).await.unwrap());
    assert!(
        seen.lock().unwrap()[1]["spec"]["resourceAttributes"]
            .get("namespace")
            .is_none()
    );
    let bob = Identity {
        username: "bob".into(),
        groups: vec![],
    };
    assert!(!authz.allowed(&bob, &get_ws).await.unwrap());
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn subject_access_review_cache_expires() {
    let (client, seen) = mock_sar_server(|_| true);
    let authz =
        SubjectAccessReviewAuthorizer::new(client).with_cache(Duration::from_millis(100), 1);
    let who = Identity {
        username: "u".into(),
        groups: vec![],
    };
    let a = Action::switchyard("list", "backends");
    let b = Action::switchyard("list", "providers");
    authz.allowed(&who, &a).await.unwrap();
    authz.allowed(&who, &b).await.unwrap(); // evicts a: capacity 1
    authz.allowed(&who, &a).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    tokio::time::sleep(Duration::from_millis(150)).await;
    authz.allowed(&who, &a).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 4, "expired after the TTL");
}

#[tokio::test]
async fn subject_access_review_unreachable_is_unavailable() {
    let (service, handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    drop(handle);
    let authz = SubjectAccessReviewAuthorizer::new(kube::Client::new(service, "default"));
    let who = Identity {
        username: "u".into(),
        groups: vec![],
    };
    assert!(matches!(
        authz
            .allowed(&who, &Action::switchyard("list", "backends"))
            .await,
        Err(switchyard_operator::channel::AuthError::Unavailable(_))
    ));
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_503_not_a_401() {
    let (service, handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    drop(handle); // every call fails
    let client = kube::Client::new(service, "default");
    let auth = TokenReviewAuthenticator::new(client, AllowList::new().namespace("ns"));
    let f = Fixture::start_with(Arc::new(auth), ChannelOptions::default()).await;
    let r = f
        .client
        .get(format!("{}/v1/snapshot", f.url))
        .bearer_auth("whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(f.channel.metrics().refused("unavailable"), 1);
}

// ---------------------------------------------------------------------------------------------
// Connected data planes and metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connected_data_planes_are_listed_and_counted_by_version() {
    let f = Fixture::start().await;
    let mut registry = prometheus_client::registry::Registry::default();
    f.channel.register_metrics(&mut registry);
    let s1 = snapshot(1);
    f.hub.publish(s1.clone());

    let mut a = f
        .open_stream(
            "",
            &[
                ("x-switchyard-have", "old-version"),
                ("x-switchyard-instance", "dp-a"),
            ],
        )
        .await;
    a.snapshot().await;
    let mut b = f
        .open_stream(
            "",
            &[
                ("x-switchyard-have", s1.version.as_str()),
                ("x-switchyard-instance", "dp-b"),
            ],
        )
        .await;
    b.next().await;
    let planes = f.channel.dataplanes();
    assert_eq!(planes.len(), 2);
    assert_eq!(planes[0].instance.as_deref(), Some("dp-a"));
    assert_eq!(planes[0].mode, FollowMode::Stream);
    assert_eq!(planes[0].identity, StaticTokenAuthenticator::USERNAME);
    assert_eq!(planes[0].reported_version.as_deref(), Some("old-version"));
    assert_eq!(planes[0].sent_version.as_deref(), Some(s1.version.as_str()));
    assert_eq!(planes[1].sent_version, None);
    assert_eq!(planes[1].version(), Some(s1.version.as_str()));
    assert!(planes[0].remote.unwrap().ip().is_loopback());

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("switchyard_operator_dataplanes_connected 2"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "switchyard_operator_dataplanes_by_version{{version=\"{}\"}} 2",
            s1.version
        )),
        "{text}"
    );
    assert!(
        text.contains("switchyard_operator_snapshots_sent_total 1"),
        "{text}"
    );

    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while f.channel.dataplanes().len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "a closed stream is forgotten"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(b);
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn only_clients_trusting_the_ca_connect() {
    let mut f = Fixture::start().await;
    f.hub.publish(snapshot(1));
    // Trusting the generated CA: works, over HTTP/2 by ALPN, and over HTTP/1.1.
    let r = f.get("/v1/snapshot").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let h1 = client_trusting(f.material.ca_pem().unwrap())
        .http1_only()
        .build()
        .unwrap();
    let r = h1
        .get(format!("{}/v1/snapshot", f.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // Trusting another CA: the handshake fails.
    let other = TlsMaterial::self_signed(&["127.0.0.1".to_owned()]).unwrap();
    let stranger = client_trusting(other.ca_pem().unwrap()).build().unwrap();
    let err = stranger
        .get(format!("{}/v1/snapshot", f.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // The CA is not a serving certificate for another name either.
    let wrong_name = TlsMaterial::self_signed(&["elsewhere.example".to_owned()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve_tls(listener, f.channel.router(), &wrong_name).unwrap();
    let c = client_trusting(wrong_name.ca_pem().unwrap())
        .build()
        .unwrap();
    assert!(
        c.get(format!(
            "https://127.0.0.1:{}/v1/snapshot",
            server.local_addr().port()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .is_err()
    );
    server.shutdown(Duration::ZERO).await;
    // Plain HTTP is not served.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = plain
        .get(format!(
            "http://127.0.0.1:{}/v1/snapshot",
            f.server.as_ref().unwrap().local_addr().port()
        ))
        .send()
        .await;
    assert!(r.is_err() || r.unwrap().status() != 200);
    f.server.take().unwrap().shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn pem_files_are_served() {
    install_provider();
    let generated = TlsMaterial::self_signed(&["127.0.0.1".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("sy-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, generated.cert_chain_pem()).unwrap();
    std::fs::write(&key, generated.key_pem()).unwrap();
    let material = TlsMaterial::from_pem_files(&cert, &key).unwrap();
    assert!(material.ca_pem().is_none());
    assert!(!format!("{material:?}").contains("PRIVATE KEY"));
    // Key and certificate swapped: refused at load.
    assert!(TlsMaterial::from_pem_files(&key, &cert).is_err());
    assert!(TlsMaterial::from_pem_files(&dir.join("missing"), &key).is_err());

    let hub = SnapshotHub::new();
    hub.publish(snapshot(7));
    let channel = Channel::new(
        hub,
        Arc::new(StaticTokenAuthenticator::new(TOKEN)),
        Arc::new(MemorySink::default()),
        ChannelOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve_tls(listener, channel.router(), &material).unwrap();
    let client = client_trusting(generated.ca_pem().unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!(
            "https://127.0.0.1:{}/v1/snapshot",
            server.local_addr().port()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shutdown_closes_open_streams() {
    let mut f = Fixture::start().await;
    f.hub.publish(snapshot(1));
    let mut frames = f.open_stream("", &[]).await;
    frames.snapshot().await;
    f.server
        .take()
        .unwrap()
        .shutdown(Duration::from_millis(100))
        .await;
    assert!(frames.ends().await, "the stream ends when the server stops");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f.channel.dataplanes().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn publish_ca_server_side_applies_the_configmap() {
    let (service, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let client = kube::Client::new(service, "default");
    let material = TlsMaterial::self_signed(&["switchyard-operator.sy.svc".to_owned()]).unwrap();
    let ca = material.ca_pem().unwrap().to_owned();
    let server = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.unwrap();
        let (parts, body) = req.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let cm: Value = serde_json::from_slice(&bytes).unwrap();
        send.send_response(
            http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(bytes.to_vec()))
                .unwrap(),
        );
        (parts, cm)
    });
    publish_ca(client, "sy", "switchyard-operator-ca", &ca)
        .await
        .unwrap();
    let (parts, cm) = server.await.unwrap();
    assert_eq!(parts.method, http::Method::PATCH);
    assert_eq!(
        parts.uri.path(),
        "/api/v1/namespaces/sy/configmaps/switchyard-operator-ca"
    );
    let query = parts.uri.query().unwrap();
    assert!(
        query.contains("fieldManager=switchyard-operator"),
        "{query}"
    );
    assert!(query.contains("force=true"), "{query}");
    assert_eq!(
        parts.headers["content-type"],
        "application/apply-patch+yaml"
    );
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "switchyard-operator-ca");
    assert_eq!(cm["data"]["ca.crt"], ca.as_str());
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
}
