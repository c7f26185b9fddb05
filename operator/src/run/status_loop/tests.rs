//! The status writer does not wait for probes: with a backend probe hanging (its server
//! accepted the connection and never answers, the probe's timeout is 300 s), a compile is
//! still written at once. No timing decides the outcome: the test waits for the probe to be in
//! flight (the server saw the connection), then for the status patch; the probe cannot finish
//! before the 300 s timeout. The failed write is then logged inside the status pass's
//! `reconcile` span, with its id.

use std::sync::Arc;

use http::{Request, Response};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use switchyard_crds::compile::{Inventory, compile};
use tokio::sync::{oneshot, watch};
use tower_test::mock;

use super::super::probing::{Schedule, probe_loop};
use super::*;
use crate::probes::Prober;

fn store_of<K>(objects: &[K]) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
{
    let (reader, mut writer) = reflector::store();
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(o.clone()));
    }
    reader
}

fn stores(inv: &Inventory) -> Stores {
    Stores {
        providers: store_of(&inv.providers),
        backends: store_of(&inv.backends),
        affinity_groups: store_of(&inv.affinity_groups),
        workspaces: store_of(&inv.workspaces),
        mux_rules: store_of(&inv.mux_rules),
        router_policies: store_of(&inv.router_policies),
        task_chains: store_of(&inv.task_chains),
        secrets: store_of::<Secret>(&[]),
        services: store_of::<Service>(&[]),
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_hanging_probe_does_not_hold_up_a_status_write() {
    // A current-thread test: every task logs here. The status pass's callsites are reached by
    // this test only (so no other test thread caches them as disabled).
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A backend server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted) = oneshot::channel();
    let hanging = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let _ = accepted_tx.send(());
        std::future::pending::<()>().await;
        drop(socket);
    });
    let yaml = format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: Backend\nmetadata: {{name: slow, namespace: ns}}\n\
         spec: {{type: vllm, baseUrl: 'http://{addr}/v1', models: [{{name: m}}], healthCheck: {{timeoutSeconds: 300}}}}\n"
    );
    let mut inv = Inventory::default();
    switchyard_crds::manifest::add_yaml(&mut inv, "b.yaml", &yaml).unwrap();
    let compiled = Arc::new(compile(&inv));
    let stores = stores(&inv);
    let (_latest_tx, latest) = watch::channel(Some(compiled));
    let (_leader_tx, leader) = watch::channel(true);
    let hour = Duration::from_secs(3600);

    // The probe task starts probing at once and hangs.
    let (probes_tx, probes) = watch::channel(Probes::default());
    let prober = tokio::spawn(probe_loop(
        stores.clone(),
        (latest.clone(), leader.clone()),
        Prober::new(reqwest::Client::new()),
        Schedule {
            every: hour,
            discovery_s: 3600,
        },
        probes_tx,
    ));
    tokio::time::timeout(Duration::from_secs(30), accepted)
        .await
        .expect("the probe reached the backend")
        .unwrap();

    // The status writer, with usage aggregated and no circuit view yet.
    let (svc, mut api) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let recorder = Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "test".into(),
            instance: None,
        },
    );
    let (_usage_tx, usage) = watch::channel(Some(Counters::default()));
    let (_circuits_tx, circuits) = watch::channel(None);
    let inputs = Inputs {
        latest,
        leader,
        usage,
        probes: probes.clone(),
        circuits,
    };
    let metrics = Arc::new(Metrics::new(&mut Registry::default()));
    let writer = tokio::spawn(status_loop(
        stores,
        inputs,
        (StatusWriter::new(client), recorder),
        hour,
        metrics.clone(),
    ));

    let (req, send) = tokio::time::timeout(Duration::from_secs(30), api.next_request())
        .await
        .expect("a status write while the probe hangs")
        .unwrap();
    assert_eq!(req.method(), http::Method::PATCH);
    let uri = req.uri().to_string();
    assert!(
        uri.starts_with("/apis/switchyard.dev/v1alpha1/namespaces/ns/backends/slow/status?"),
        "{uri}"
    );
    // The probe is still in flight: no result yet.
    assert!(probes.borrow().backends.is_empty());
    assert!(!hanging.is_finished());
    send.send_response(Response::builder().status(500).body(Body::empty()).unwrap());
    let failed = || {
        metrics
            .status_writes
            .get_or_create(&vec![("result".to_owned(), "failed".to_owned())])
            .get()
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while failed() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the pass ends");
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = logs.lines().find(|l| l.contains("status write failed"));
    let line = line.unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("reconcile{id="), "{line}");
    assert!(line.contains("pass=\"status\""), "{line}");
    writer.abort();
    prober.abort();
    hanging.abort();
}
