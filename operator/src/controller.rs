//! The control loop: watches the seven kinds plus the Secrets and Services they may reference,
//! recompiles (debounced) on any change, publishes the snapshot to every connected data plane,
//! and — on the leader only — writes status for every object.
//!
//! Memory stays flat in big clusters: Secrets are watched only when they carry the Switchyard
//! label (`--secret-label-selector`, default `switchyard.dev/secret=true`), and Services are
//! stripped to their ports before they enter the cache.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use switchyard_crds::compile::{Compiled, Diagnostic, Inventory, Kind, ServiceInfo, compile};
use switchyard_crds::snapshot::SecretValue;
use switchyard_crds::{
    AffinityGroup, Backend, MuxRule, Provider, RouterPolicy, TaskChain, Workspace,
};
use tokio::sync::{mpsc, watch};

use crate::status::{self, Counters, Probes};
use crate::status_writer::{StatusWriter, Written};

/// The watch caches.
#[derive(Clone)]
pub struct Stores {
    /// Providers.
    pub providers: Store<Provider>,
    /// Backends.
    pub backends: Store<Backend>,
    /// AffinityGroups.
    pub affinity_groups: Store<AffinityGroup>,
    /// Workspaces.
    pub workspaces: Store<Workspace>,
    /// MuxRules.
    pub mux_rules: Store<MuxRule>,
    /// RouterPolicies.
    pub router_policies: Store<RouterPolicy>,
    /// TaskChains.
    pub task_chains: Store<TaskChain>,
    /// Labelled Secrets.
    pub secrets: Store<Secret>,
    /// Services (ports only).
    pub services: Store<Service>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

fn objects<K: Resource<DynamicType = ()> + Clone>(s: &Store<K>) -> Vec<K> {
    s.state().iter().map(|o| (**o).clone()).collect()
}

impl Stores {
    /// The compiler's input from the caches.
    pub fn inventory(&self) -> Inventory {
        let mut secrets = BTreeMap::new();
        for s in self.secrets.state() {
            let key = format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any());
            let mut values = BTreeMap::new();
            for (k, v) in s.data.iter().flatten() {
                // Non-UTF-8 values cannot be API keys; they are skipped (and reported as a
                // missing key by the compiler if referenced).
                if let Ok(text) = String::from_utf8(v.0.clone()) {
                    values.insert(k.clone(), SecretValue::new(text));
                }
            }
            secrets.insert(key, values);
        }
        let services = self
            .services
            .state()
            .iter()
            .map(|s| {
                let ports = s
                    .spec
                    .iter()
                    .flat_map(|spec| spec.ports.iter().flatten())
                    .map(|p| (p.name.clone(), p.port))
                    .collect();
                (
                    format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()),
                    ServiceInfo { ports },
                )
            })
            .collect();
        Inventory {
            providers: objects(&self.providers),
            backends: objects(&self.backends),
            affinity_groups: objects(&self.affinity_groups),
            workspaces: objects(&self.workspaces),
            mux_rules: objects(&self.mux_rules),
            router_policies: objects(&self.router_policies),
            task_chains: objects(&self.task_chains),
            secrets,
            services: Some(services),
        }
    }
}

/// Watch settings.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Namespace to watch; `None`: all namespaces.
    pub namespace: Option<String>,
    /// Label selector for Secrets.
    pub secret_selector: String,
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts one reflector; every event signals `changed`. Watch errors (API server restarts, 410
/// Gone) are retried with backoff by the watcher, which relists.
fn spawn_watch<K>(
    api: Api<K>,
    cfg: watcher::Config,
    changed: mpsc::Sender<()>,
    modify: impl FnMut(&mut K) + Send + 'static,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, cfg).modify(modify).default_backoff());
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => {
                    let _ = changed.try_send(());
                }
                Err(e) => tracing::warn!(kind = %K::kind(&()), error = %e, "watch error; retrying"),
            }
        }
    });
    (reader, task)
}

/// Starts every watch. Returns the caches, the tasks, and the change signal.
pub fn start_watches(
    client: &Client,
    cfg: &WatchConfig,
) -> (Stores, Vec<tokio::task::JoinHandle<()>>, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel(1);
    let mut tasks = Vec::new();
    let ns = &cfg.namespace;
    let plain = watcher::Config::default;
    macro_rules! watch_kind {
        ($k:ty) => {{
            let (store, task) =
                spawn_watch(api::<$k>(client, ns), plain(), tx.clone(), |o: &mut $k| {
                    o.metadata.managed_fields = None;
                });
            tasks.push(task);
            store
        }};
    }
    let providers = watch_kind!(Provider);
    let backends = watch_kind!(Backend);
    let affinity_groups = watch_kind!(AffinityGroup);
    let workspaces = watch_kind!(Workspace);
    let mux_rules = watch_kind!(MuxRule);
    let router_policies = watch_kind!(RouterPolicy);
    let task_chains = watch_kind!(TaskChain);
    let (secrets, t) = spawn_watch(
        api::<Secret>(client, ns),
        plain().labels(&cfg.secret_selector),
        tx.clone(),
        |s: &mut Secret| {
            s.metadata.managed_fields = None;
            s.metadata.annotations = None;
        },
    );
    tasks.push(t);
    let (services, t) = spawn_watch(
        api::<Service>(client, ns),
        plain(),
        tx,
        |s: &mut Service| {
            // Keep only what routing needs: name, namespace and ports.
            s.metadata.managed_fields = None;
            s.metadata.annotations = None;
            s.metadata.labels = None;
            s.status = None;
            if let Some(spec) = &mut s.spec {
                let ports = spec.ports.take();
                *spec = Default::default();
                spec.ports = ports;
            }
        },
    );
    tasks.push(t);
    let stores = Stores {
        providers,
        backends,
        affinity_groups,
        workspaces,
        mux_rules,
        router_policies,
        task_chains,
        secrets,
        services,
    };
    (stores, tasks, rx)
}

impl Stores {
    /// Waits until every cache has done its initial list (so the first compile never sees a
    /// partial cluster and flaps statuses).
    pub async fn wait_ready(&self) {
        let _ = futures_util::join!(
            self.providers.wait_until_ready(),
            self.backends.wait_until_ready(),
            self.affinity_groups.wait_until_ready(),
            self.workspaces.wait_until_ready(),
            self.mux_rules.wait_until_ready(),
            self.router_policies.wait_until_ready(),
            self.task_chains.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.services.wait_until_ready(),
        );
    }
}

/// What the status pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatusReport {
    /// Patches sent.
    pub patched: usize,
    /// Objects already up to date.
    pub unchanged: usize,
    /// Failed writes (retried with backoff).
    pub failed: usize,
}

impl StatusReport {
    fn add(&mut self, r: Result<Written, kube::Error>, what: &Diagnostic) {
        match r {
            Ok(Written::Patched) => self.patched += 1,
            Ok(Written::Unchanged | Written::BackingOff) => self.unchanged += 1,
            Err(e) => {
                self.failed += 1;
                tracing::warn!(object = %what.object, error = %e, "status write failed; will retry with backoff");
            }
        }
    }
}

fn get<K: Resource<DynamicType = ()> + Clone>(s: &Store<K>, d: &Diagnostic) -> Option<Arc<K>> {
    s.get(&ObjectRef::new(&d.object.name).within(&d.object.namespace))
}

/// Writes the status of every object of a compile (skipping unchanged ones) and, with a
/// recorder, publishes an Event for every notable condition transition it wrote.
pub async fn write_statuses(
    writer: &StatusWriter,
    recorder: Option<&Recorder>,
    stores: &Stores,
    compiled: &Compiled,
    counters: &Counters,
    probes: &Probes,
    now: Timestamp,
) -> StatusReport {
    let mut report = StatusReport::default();
    for d in &compiled.diagnostics {
        let (ns, name) = (d.object.namespace.as_str(), d.object.name.as_str());
        // Computes the status from the cached object, writes it, and reports transitions.
        macro_rules! write {
            ($store:expr, $kind:ty, |$o:ident| $make:expr) => {{
                let Some($o) = get(&$store, d) else { continue };
                let s = $make;
                let r = writer.write::<$kind, _>(ns, name, $o.status.as_ref(), &s).await;
                if let (Ok(Written::Patched), Some(rec)) = (&r, recorder) {
                    let old = $o.status.as_ref().map(|x| x.conditions.as_slice()).unwrap_or_default();
                    for ev in crate::events::transitions(old, &s.conditions) {
                        if let Err(e) = rec.publish(&ev, &$o.object_ref(&())).await {
                            tracing::warn!(object = %d.object, error = %e, "could not publish an Event");
                        }
                    }
                }
                r
            }};
        }
        let r = match d.object.kind {
            Kind::Provider => write!(stores.providers, Provider, |o| status::provider(
                d,
                o.status.as_ref(),
                &o.spec.models,
                counters,
                probes,
                now
            )),
            Kind::Backend => write!(stores.backends, Backend, |o| status::backend(
                d,
                o.status.as_ref(),
                counters,
                probes,
                now
            )),
            Kind::AffinityGroup => write!(stores.affinity_groups, AffinityGroup, |o| {
                status::affinity_group(d, o.status.as_ref(), now)
            }),
            Kind::Workspace => write!(stores.workspaces, Workspace, |o| status::workspace(
                d,
                o.status.as_ref(),
                counters,
                now
            )),
            Kind::MuxRule => write!(stores.mux_rules, MuxRule, |o| status::mux_rule(
                d,
                o.status.as_ref(),
                counters,
                now
            )),
            Kind::RouterPolicy => write!(stores.router_policies, RouterPolicy, |o| {
                status::router_policy(d, o.status.as_ref(), o.spec.enabled, counters, now)
            }),
            Kind::TaskChain => write!(stores.task_chains, TaskChain, |o| status::task_chain(
                d,
                o.status.as_ref(),
                counters,
                now
            )),
        };
        report.add(r, d);
    }
    report
}

/// Publishes circuit Events on their RouterPolicies (those no longer in the cache are skipped).
pub async fn publish_policy_events(
    recorder: &Recorder,
    stores: &Stores,
    events: Vec<crate::events::PolicyEvent>,
) {
    for e in events {
        let Some((ns, name)) = e.policy.split_once('/') else {
            continue;
        };
        let Some(o) = stores.router_policies.get(&ObjectRef::new(name).within(ns)) else {
            continue;
        };
        tracing::info!(policy = %e.policy, reason = %e.event.reason, note = e.event.note.as_deref().unwrap_or(""), "circuit Event");
        if let Err(err) = recorder.publish(&e.event, &o.object_ref(&())).await {
            tracing::warn!(policy = %e.policy, error = %err, "could not publish an Event");
        }
    }
}

/// The span of one reconcile pass, `reconcile{id, pass}`: a compile (`pass="compile"`: the
/// snapshot published and the issues logged) or a status pass (`pass="status"`: every status
/// write and Event). Every line logged during the pass carries its id.
pub fn reconcile_span(pass: &'static str) -> tracing::Span {
    tracing::info_span!("reconcile", id = %uuid::Uuid::now_v7(), pass)
}

/// The latest compile, shared with the status, probe and facade tasks.
pub type Latest = watch::Receiver<Option<Arc<Compiled>>>;

/// Runs the compile loop: waits for the caches, then recompiles after every burst of changes
/// (debounced) and hands the result to `publish`.
pub async fn compile_loop(
    stores: Stores,
    mut changed: mpsc::Receiver<()>,
    debounce: Duration,
    latest: watch::Sender<Option<Arc<Compiled>>>,
    mut publish: impl FnMut(&Compiled),
) {
    stores.wait_ready().await;
    tracing::info!("watch caches synced");
    loop {
        {
            let span = reconcile_span("compile");
            let _entered = span.enter();
            let started = std::time::Instant::now();
            let compiled = Arc::new(compile(&stores.inventory()));
            publish(&compiled);
            tracing::debug!(
                version = %compiled.snapshot.version,
                objects = compiled.diagnostics.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "compiled"
            );
            let _ = latest.send(Some(compiled));
        }
        if changed.recv().await.is_none() {
            return;
        }
        tokio::time::sleep(debounce).await;
        while changed.try_recv().is_ok() {}
    }
}
