//! The operator ⇄ data-plane channel end to end: an operator channel server (static token,
//! self-signed TLS) and a real data plane started with `--operator`, routing to the mock
//! upstream. Snapshots flow over the stream, records come back through the sink, and the data
//! plane rides out the operator going away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::json;
use switchyard_crds::compile::{Inventory, Severity, compile};
use switchyard_crds::record::Interception;
use switchyard_crds::snapshot::Snapshot;
use switchyard_dataplane::config::{Config, LogFormat};
use switchyard_mock::MockUpstream;
use switchyard_operator::channel::{
    Channel, ChannelOptions, ChannelServer, IngestReport, RecordSink, SnapshotHub,
    StaticTokenAuthenticator, TlsMaterial, serve_tls,
};
use switchyard_tests::harness::TempDir;

const TOKEN: &str = "e2e-channel-token";

/// Providers `old` and `new` on the mock, a default workspace, and a catch-all rule to `to`.
fn manifests(mock: &MockUpstream, to: &str) -> String {
    let base = mock.base_url();
    format!(
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata:
  name: old
spec:
  type: openai
  endpoint: {base}/v1
  auth:
    type: none
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata:
  name: new
spec:
  type: openai
  endpoint: {base}/v1
  auth:
    type: none
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata:
  name: default
spec:
  default: true
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata:
  name: all
spec:
  workspaceRef: default
  priority: 100
  matcher:
    type: catch_all
  target:
    providerRef: {to}
"#
    )
}

/// What the operator compiles from the manifests.
fn snapshot(mock: &MockUpstream, to: &str) -> Snapshot {
    let mut inventory = Inventory::default();
    switchyard_crds::manifest::add_yaml(&mut inventory, "e2e.yaml", &manifests(mock, to)).unwrap();
    let compiled = compile(&inventory);
    for d in &compiled.diagnostics {
        assert!(
            d.issues.iter().all(|i| i.severity != Severity::Error),
            "{d:?}"
        );
    }
    assert!(compiled.snapshot.verify());
    compiled.snapshot
}

/// The record store: every delivery counted by interception id.
#[derive(Default)]
struct Sink {
    deliveries: Mutex<BTreeMap<uuid::Uuid, (usize, Interception)>>,
}

impl RecordSink for Sink {
    fn ingest(&self, batch: Vec<Interception>) -> BoxFuture<'_, Result<IngestReport, String>> {
        Box::pin(async move {
            let mut d = self.deliveries.lock().unwrap();
            let mut report = IngestReport::default();
            for r in batch {
                let e = d.entry(r.id).or_insert((0, r));
                e.0 += 1;
                if e.0 == 1 {
                    report.inserted += 1;
                } else {
                    report.duplicates += 1;
                }
            }
            Ok(report)
        })
    }
}

impl Sink {
    fn by_request(&self, request_id: &str) -> Vec<(usize, Interception)> {
        self.deliveries
            .lock()
            .unwrap()
            .values()
            .filter(|(_, r)| r.request_id == request_id)
            .cloned()
            .collect()
    }

    async fn wait_for(&self, request_id: &str) -> Interception {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((_, r)) = self.by_request(request_id).into_iter().next() {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no record of {request_id} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The operator side: hub, sink, TLS material, and the server (restartable on the same port).
struct Operator {
    hub: SnapshotHub,
    sink: Arc<Sink>,
    channel: Channel,
    material: TlsMaterial,
    server: Option<ChannelServer>,
    addr: SocketAddr,
}

impl Operator {
    async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let hub = SnapshotHub::new();
        let sink = Arc::new(Sink::default());
        let channel = Channel::new(
            hub.clone(),
            Arc::new(StaticTokenAuthenticator::new(TOKEN)),
            sink.clone(),
            ChannelOptions::default(),
        );
        let material =
            TlsMaterial::self_signed(&["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve_tls(listener, channel.router(), &material).unwrap();
        Self {
            hub,
            sink,
            channel,
            material,
            server: Some(server),
            addr,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::ZERO).await;
        }
    }

    async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.server = Some(serve_tls(listener, self.channel.router(), &self.material).unwrap());
    }
}

/// A data plane following `op`, with the token and CA in files under `dir`.
async fn data_plane(op: &Operator, dir: &TempDir, token: &str) -> switchyard_dataplane::Running {
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, op.material.ca_pem().unwrap()).unwrap();
    let mut config = <Config as clap::Parser>::try_parse_from(["switchyard-dataplane"]).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.operator = Some(op.url());
    config.operator_token_file = token_file;
    config.operator_ca_file = Some(ca_file);
    config.watch_interval_ms = 20;
    config.spool_dir = Some(dir.path().join("spool"));
    config.spool_max_bytes = 64 << 20;
    config.connect_timeout_ms = 2_000;
    config.drain_timeout_ms = 2_000;
    config.log_format = LogFormat::Plain;
    switchyard_dataplane::start(config).await.unwrap()
}

async fn wait_version(
    dp: &switchyard_dataplane::Running,
    version: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    while !(dp.state.is_ready() && dp.state.table().version() == version) {
        assert!(
            started.elapsed() < within,
            "the data plane did not take {version} within {within:?} (serving {:?})",
            dp.state
                .is_ready()
                .then(|| dp.state.table().version().to_owned())
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// A chat request through the data plane: its `x-switchyard-route`.
async fn route(dp: &switchyard_dataplane::Running, request_id: &str) -> String {
    let r = switchyard_tests::harness::client()
        .post(format!("http://{}/v1/chat/completions", dp.addr))
        .header("x-request-id", request_id)
        .json(&json!({"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{request_id}");
    r.headers()["x-switchyard-route"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_follows_the_operator_and_rides_out_its_absence() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut op = Operator::start().await;
    let v1 = snapshot(&mock, "old");
    assert!(op.hub.publish(v1.clone()));

    let dir = TempDir::new("switchyard-channel-e2e").unwrap();
    let dp = data_plane(&op, &dir, TOKEN).await;

    // Ready with the published snapshot, routing to the mock.
    wait_version(&dp, &v1.version, Duration::from_secs(10)).await;
    assert!(route(&dp, "r1").await.contains("target=provider/old"));
    assert_eq!(mock.requests().len(), 1);
    let planes = op.channel.dataplanes();
    assert_eq!(planes.len(), 1);
    assert_eq!(planes[0].sent_version.as_deref(), Some(v1.version.as_str()));

    // A new snapshot changes the routing (how fast is measured by the benchmarks; the bound
    // here only guards against a hang on a loaded machine).
    let v2 = snapshot(&mock, "new");
    assert!(op.hub.publish(v2.clone()));
    let took = wait_version(&dp, &v2.version, Duration::from_secs(10)).await;
    eprintln!("snapshot v2 served after {took:?}");
    assert!(route(&dp, "r2").await.contains("target=provider/new"));

    // Records of r1 and r2 arrive before the operator goes away.
    assert_eq!(op.sink.wait_for("r1").await.snapshot_version, v1.version);
    assert_eq!(op.sink.wait_for("r2").await.snapshot_version, v2.version);

    // The operator goes away: the data plane keeps serving the last snapshot.
    op.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(dp.state.is_ready());
    assert_eq!(dp.state.table().version(), v2.version);
    assert!(route(&dp, "r3").await.contains("target=provider/new"));
    assert!(op.channel.dataplanes().is_empty());

    // A newer snapshot compiled meanwhile arrives once the operator is back on the same port,
    // and the record kept in the spool while it was away is delivered.
    let v3 = snapshot(&mock, "old");
    let v3 = Snapshot {
        default_workspace: None,
        ..v3
    }
    .seal();
    assert_ne!(v3.version, v1.version);
    op.hub.publish(v3.clone());
    op.restart().await;
    wait_version(&dp, &v3.version, Duration::from_secs(15)).await;
    assert_eq!(
        op.channel.dataplanes()[0].reported_version.as_deref(),
        Some(v2.version.as_str()),
        "it reconnected saying what it served"
    );
    assert_eq!(op.sink.wait_for("r3").await.snapshot_version, v2.version);

    // Exactly one record per request, each delivered once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for id in ["r1", "r2", "r3"] {
        let delivered = op.sink.by_request(id);
        assert_eq!(delivered.len(), 1, "one record for {id}");
        assert_eq!(delivered[0].0, 1, "{id} delivered once");
    }

    dp.shutdown().await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_keeps_the_data_plane_waiting_until_the_token_file_is_fixed() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut op = Operator::start().await;
    let v1 = snapshot(&mock, "old");
    op.hub.publish(v1.clone());
    let dir = TempDir::new("switchyard-channel-e2e").unwrap();
    let dp = data_plane(&op, &dir, "not-the-token").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!dp.state.is_ready(), "refused: no snapshot");
    assert!(op.channel.metrics().refused("unauthenticated") >= 1);

    // The token file is rotated: the next connection reads it.
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    wait_version(&dp, &v1.version, Duration::from_secs(10)).await;
    dp.shutdown().await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_fails_verification_is_refused_and_the_last_good_one_kept() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut op = Operator::start().await;
    let v1 = snapshot(&mock, "old");
    op.hub.publish(v1.clone());
    let dir = TempDir::new("switchyard-channel-e2e").unwrap();
    let dp = data_plane(&op, &dir, TOKEN).await;
    wait_version(&dp, &v1.version, Duration::from_secs(10)).await;

    // Content edited after sealing: the version no longer matches.
    let mut tampered = snapshot(&mock, "new");
    tampered.version = format!("{:064x}", 1);
    let rejected = dp.state.metrics.snapshots_rejected.get();
    op.hub.publish(tampered);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dp.state.metrics.snapshots_rejected.get() == rejected {
        assert!(
            Instant::now() < deadline,
            "the tampered snapshot was not refused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dp.state.table().version(), v1.version);
    assert!(
        route(&dp, "after-tamper")
            .await
            .contains("target=provider/old")
    );

    // The stream stays usable: the next good snapshot is applied.
    let v2 = snapshot(&mock, "new");
    op.hub.publish(v2.clone());
    wait_version(&dp, &v2.version, Duration::from_secs(2)).await;
    dp.shutdown().await;
    op.stop().await;
}
