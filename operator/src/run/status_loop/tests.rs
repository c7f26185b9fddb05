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

/// The caches holding the objects of `inv` (no Secrets or Services: none is needed here).
fn stores(inv: &Inventory) -> Stores {
    macro_rules! stores {
        ($($kind:ident),*) => {
            Stores {
                $($kind: store_of(&inv.$kind),)*
                secrets: store_of::<Secret>(&[]),
                services: store_of::<Service>(&[]),
            }
        };
    }
    #[rustfmt::skip]
    let stores = stores!(providers, backends, affinity_groups, workspaces, mux_rules, router_policies, task_chains);
    stores
}

#[tokio::test]
async fn a_hanging_probe_does_not_hold_up_a_status_write() {
    // A current-thread test: every task logs here. The status pass's callsites are reached by
    // this test only (so no other test thread caches them as disabled).
    let captured = switchyard_runtime::telemetry::Captured::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber(tracing::Level::INFO));
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
    let logs = captured.text();
    let line = logs.lines().find(|l| l.contains("status write failed"));
    let line = line.unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("reconcile{id="), "{line}");
    assert!(line.contains("pass=\"status\""), "{line}");
    writer.abort();
    prober.abort();
    hanging.abort();
}
