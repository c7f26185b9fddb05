//! Circuit reports end to end: an operator channel (static token, self-signed TLS) and a real
//! data plane started with `--operator`. A breaker of the data plane is driven open and closed
//! again; the operator's circuit board, the RouterPolicy status it projects and the Events it
//! raises follow within seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use switchyard_crds::circuits::CircuitStateName;
use switchyard_crds::compile::{Inventory, Severity, compile};
use switchyard_crds::record::Interception;
use switchyard_crds::snapshot::Snapshot;
use switchyard_dataplane::breaker::CallOutcome;
use switchyard_dataplane::config::{Config, LogFormat};
use switchyard_operator::channel::{
    Channel, ChannelOptions, IngestReport, RecordSink, SnapshotHub, StaticTokenAuthenticator,
    TlsMaterial, serve_tls,
};
use switchyard_operator::circuits::{Merged, notifying_policies, policy_circuits};
use switchyard_operator::events::CircuitNotifier;
use switchyard_tests::harness::TempDir;

const TOKEN: &str = "e2e-circuits-token";
const POLICY: &str = "default/to-primary";
const TARGET: &str = "provider/primary:demo-fast";

const MANIFESTS: &str = r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata:
  name: primary
spec:
  type: openai
  endpoint: http://127.0.0.1:9/v1
  auth:
    type: none
  models:
    - name: demo-fast
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata:
  name: spare
spec:
  type: openai
  endpoint: http://127.0.0.1:9/v1
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
kind: RouterPolicy
metadata:
  name: to-primary
spec:
  routeTo:
    providerRef: primary
    model: demo-fast
  fallback:
    - providerRef: spare
  circuitBreaker:
    consecutiveFailures: 2
    cooldownSeconds: 1
    halfOpenRequests: 1
    notifyOnOpen: true
"#;

fn snapshot() -> Snapshot {
    let mut inventory = Inventory::default();
    switchyard_crds::manifest::add_yaml(&mut inventory, "e2e.yaml", MANIFESTS).unwrap();
    let compiled = compile(&inventory);
    for d in &compiled.diagnostics {
        assert!(
            d.issues.iter().all(|i| i.severity != Severity::Error),
            "{d:?}"
        );
    }
    compiled.snapshot
}

/// Records are not the subject here.
struct Discard;

impl RecordSink for Discard {
    fn ingest(&self, batch: Vec<Interception>) -> BoxFuture<'_, Result<IngestReport, String>> {
        Box::pin(async move {
            Ok(IngestReport {
                inserted: batch.len() as u64,
                duplicates: 0,
            })
        })
    }
}

async fn wait_for(
    channel: &Channel,
    what: &str,
    within: Duration,
    ok: impl Fn(&Merged) -> bool,
) -> Merged {
    let started = Instant::now();
    loop {
        let merged = channel.circuits().merged(Instant::now());
        if ok(&merged) {
            return merged;
        }
        assert!(
            started.elapsed() < within,
            "{what} not seen within {within:?}; the board has {merged:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sees_a_data_plane_circuit_open_and_close() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let hub = SnapshotHub::new();
    let channel = Channel::new(
        hub.clone(),
        Arc::new(StaticTokenAuthenticator::new(TOKEN)),
        Arc::new(Discard),
        ChannelOptions::default(),
    );
    let material =
        TlsMaterial::self_signed(&["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_tls(listener, channel.router(), &material).unwrap();
    let v1 = snapshot();
    assert!(hub.publish(v1.clone()));

    let dir = TempDir::new("switchyard-circuits-e2e").unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, material.ca_pem().unwrap()).unwrap();
    let mut config = <Config as clap::Parser>::try_parse_from(["switchyard-dataplane"]).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.operator = Some(format!("https://{addr}"));
    config.operator_token_file = token_file;
    config.operator_ca_file = Some(ca_file);
    config.spool_dir = Some(dir.path().join("spool"));
    config.drain_timeout_ms = 1_000;
    config.log_format = LogFormat::Plain;
    let dp = switchyard_dataplane::start(config).await.unwrap();

    // The data plane takes the snapshot and says hello with an (empty) report.
    let started = Instant::now();
    while !(dp.state.is_ready() && dp.state.table().version() == v1.version) {
        assert!(started.elapsed() < Duration::from_secs(10), "no snapshot");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for(&channel, "the first report", Duration::from_secs(5), |m| {
        m.data_planes == 1
    })
    .await;

    // Drive the policy's breaker for its primary target open: two failures in a row.
    let table = dp.state.table();
    let policy = table
        .snapshot
        .router_policies
        .iter()
        .find(|p| p.key == POLICY)
        .unwrap()
        .clone();
    let breaker = dp
        .state
        .breakers
        .breaker(Some(&policy), TARGET, Instant::now());
    for _ in 0..2 {
        let permit = breaker.try_acquire(Instant::now()).unwrap();
        permit.finish(
            CallOutcome::Failure,
            Duration::from_millis(3),
            Instant::now(),
        );
    }
    // Well before the next heartbeat (10 s): the transition itself is reported.
    let open = wait_for(&channel, "the open circuit", Duration::from_secs(5), |m| {
        m.get(POLICY, TARGET)
            .is_some_and(|c| c.state == CircuitStateName::Open)
    })
    .await;
    let circuit = open.get(POLICY, TARGET).unwrap();
    assert_eq!((circuit.open_on, circuit.data_planes), (1, 1));
    assert_eq!(circuit.error_rate_percent, 100.0);
    assert!(circuit.opened_at.is_some());
    let planes = channel.circuits().data_planes(Instant::now());
    assert_eq!(
        planes,
        [(
            switchyard_dataplane::circuit_report::data_plane_name(),
            v1.version.clone()
        )]
    );

    // What the leader makes of it: status and one Warning Event.
    let (state, targets) = policy_circuits(&policy, &v1, &open);
    assert_eq!(state, Some(CircuitStateName::Open));
    let listed: Vec<(&str, &str)> = targets
        .iter()
        .map(|t| (t.target.as_str(), t.state.as_str()))
        .collect();
    assert_eq!(listed, [(TARGET, "Open"), ("provider/spare", "Closed")]);
    let notifying = notifying_policies(&v1);
    let mut notifier = CircuitNotifier::default();
    let events = notifier.step(&open, &notifying);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].policy, POLICY);
    assert_eq!(events[0].event.reason, "CircuitOpened");
    assert_eq!(
        events[0].event.note.as_deref(),
        Some("circuit of provider/primary:demo-fast opened on 1 of 1 data plane, error rate 100%")
    );

    // After the cooldown a probe succeeds and the circuit closes.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let probe = breaker.try_acquire(Instant::now()).unwrap();
    assert!(probe.is_probe());
    probe.finish(
        CallOutcome::Success,
        Duration::from_millis(3),
        Instant::now(),
    );
    let closed = wait_for(
        &channel,
        "the closed circuit",
        Duration::from_secs(5),
        |m| {
            m.get(POLICY, TARGET)
                .is_some_and(|c| c.state == CircuitStateName::Closed)
        },
    )
    .await;
    assert_eq!(policy_circuits(&policy, &v1, &closed).0, None);
    let events = notifier.step(&closed, &notifying);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.reason, "CircuitClosed");
    assert!(notifier.step(&closed, &notifying).is_empty());

    dp.shutdown().await;
    server.shutdown(Duration::ZERO).await;
}
