//! Putting the operator together: the record store, the data-plane channel (TLS), the health
//! and metrics endpoint, and either the cluster control loop (watches, leader election, status,
//! probes, usage write-back) or local mode (a folder of manifests).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use switchyard_crds::compile::{Compiled, Kind, Severity, compile};
use switchyard_crds::record::Interception;
use tokio::sync::watch;

use crate::channel::{
    AllowAll, AllowList, Authenticator, Authorizer, Channel, ChannelOptions, ChannelServer,
    IngestReport, RecordSink, SnapshotHub, StaticTokenAuthenticator, SubjectAccessReviewAuthorizer,
    TlsMaterial, TokenReviewAuthenticator, publish_ca, serve_tls,
};
use crate::circuits::CircuitBoard;
use crate::config::{Config, LogFormat};
use crate::controller::{self, Stores, WatchConfig};
use crate::events::CircuitNotifier;
use crate::facade::Facade;
use crate::facade::source::{Objects, SharedObjects, ViewSource};
use crate::probes::{Flavor, Prober, Target};
use crate::status::{Counters, Probes};
use crate::status_writer::StatusWriter;
use crate::store::Store;

/// Operator metrics (the channel registers its own).
#[derive(Debug)]
pub struct Metrics {
    /// Compiles.
    pub compiles: Counter,
    /// Compile duration, seconds.
    pub compile_seconds: Histogram,
    /// Objects not ready in the last compile.
    pub not_ready: Gauge,
    /// Status patches sent, by kind of result.
    pub status_writes: Family<Vec<(String, String)>, Counter>,
    /// Seconds since the last successful usage aggregation.
    pub aggregation_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// 1 while this replica holds the lease.
    pub leader: Gauge,
    /// The snapshot version published (value 1).
    pub snapshot: Family<Vec<(String, String)>, Gauge>,
}

impl Metrics {
    fn new(r: &mut Registry) -> Self {
        let m = Self {
            compiles: Counter::default(),
            compile_seconds: Histogram::new(exponential_buckets(0.0001, 3.0, 12)),
            not_ready: Gauge::default(),
            status_writes: Family::default(),
            aggregation_lag: Gauge::default(),
            leader: Gauge::default(),
            snapshot: Family::default(),
        };
        let r = r.sub_registry_with_prefix("switchyard_operator");
        r.register(
            "compiles",
            "Compiles of the routing snapshot",
            m.compiles.clone(),
        );
        r.register(
            "compile_seconds",
            "Compile duration",
            m.compile_seconds.clone(),
        );
        r.register(
            "objects_not_ready",
            "Objects not Ready in the last compile",
            m.not_ready.clone(),
        );
        r.register(
            "status_writes",
            "Status writes by result",
            m.status_writes.clone(),
        );
        r.register(
            "ingestion_lag_seconds",
            "Seconds since usage was last aggregated into status",
            m.aggregation_lag.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the lease",
            m.leader.clone(),
        );
        m
    }

    fn published(&self, version: &str) {
        self.snapshot.clear();
        self.snapshot
            .get_or_create(&vec![("version".to_owned(), version.to_owned())])
            .set(1);
    }

    fn compiled(&self, c: &Compiled, took: Duration) {
        self.compiles.inc();
        self.compile_seconds.observe(took.as_secs_f64());
        self.not_ready
            .set(c.diagnostics.iter().filter(|d| !d.ready()).count() as i64);
    }
}

/// The store as the channel's record sink.
#[derive(Debug)]
struct StoreSink(Store);

impl RecordSink for StoreSink {
    fn ingest(&self, batch: Vec<Interception>) -> BoxFuture<'_, Result<IngestReport, String>> {
        Box::pin(async move {
            let r = self.0.insert(&batch).await.map_err(|e| e.to_string())?;
            Ok(IngestReport {
                inserted: r.inserted as u64,
                duplicates: r.duplicates as u64,
            })
        })
    }
}

#[derive(Clone)]
struct Health {
    ready: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced or no snapshot compiled yet\n",
        )
    }
}

async fn metrics_text(State(h): State<Health>) -> impl IntoResponse {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &h.registry);
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}

/// Logs every issue of a compile once per distinct set.
fn log_issues(c: &Compiled) {
    for d in &c.diagnostics {
        for i in &d.issues {
            match i.severity {
                Severity::Error => {
                    tracing::warn!(object = %d.object, reason = %i.reason, "{}", i.message)
                }
                Severity::Warning => {
                    tracing::info!(object = %d.object, reason = %i.reason, "{}", i.message)
                }
            }
        }
    }
}

/// The registry `/metrics` serves: the operator's own metrics (returned) and the channel's
/// (`docs/reference/metrics.md` is generated from it).
pub fn metrics_registry(channel: &Channel) -> (Registry, Metrics) {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    channel.register_metrics(&mut registry);
    (registry, metrics)
}

/// Runs the operator until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.store)
        .await
        .context("connecting the record store")?;
    tracing::info!(backend = store.backend(), "record store ready");
    let hub = SnapshotHub::new();
    let ready = Arc::new(AtomicBool::new(false));

    let client = if config.manifests.is_none() {
        Some(
            kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API")?,
        )
    } else {
        None
    };

    if client.is_some() && config.facade_token_file.is_some() {
        anyhow::bail!(
            "--facade-token-file is for local mode only: in a cluster the facade takes \
             Kubernetes bearer tokens"
        );
    }

    // Channel: authentication and TLS.
    let auth: Arc<dyn Authenticator> = match (&client, &config.local_token_file) {
        (_, Some(f)) => Arc::new(
            StaticTokenAuthenticator::from_file(f)
                .with_context(|| format!("reading {}", f.display()))?,
        ),
        (Some(c), None) => {
            let mut allow = AllowList::new();
            for sa in &config.dataplane_service_accounts {
                allow = allow.service_account(sa.clone());
            }
            for ns in &config.dataplane_namespaces {
                allow = allow.namespace(ns.clone());
            }
            Arc::new(TokenReviewAuthenticator::new(c.clone(), allow))
        }
        (None, None) => {
            anyhow::bail!("local mode needs --local-token-file for the data planes' token")
        }
    };
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(c), Some(k)) => TlsMaterial::from_pem_files(c, k)?,
        _ => TlsMaterial::self_signed(&config.tls_names)?,
    };
    if let Some(ca) = tls.ca_pem() {
        if let Some(path) = &config.ca_out {
            std::fs::write(path, ca).with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(c) = &client
            && let Err(e) =
                publish_ca(c.clone(), &config.pod_namespace, &config.ca_configmap, ca).await
        {
            tracing::warn!(error = %e, "could not publish the CA ConfigMap; data planes cannot verify the channel");
        }
    }
    let channel = Channel::new(
        hub.clone(),
        auth,
        Arc::new(StoreSink(store.clone())),
        ChannelOptions::default(),
    );
    let (registry, metrics) = metrics_registry(&channel);
    let metrics = Arc::new(metrics);
    let listener = tokio::net::TcpListener::bind(config.channel_listen)
        .await
        .with_context(|| format!("binding {}", config.channel_listen))?;
    let channel_server = serve_tls(listener, channel.router(), &tls)?;
    let board = channel.circuits().clone();
    let expiry_task = tokio::spawn(board.clone().run_expiry(Duration::from_secs(1)));
    tracing::info!(addr = %channel_server.local_addr(), "data-plane channel listening (TLS)");

    let health = Health {
        ready: ready.clone(),
        registry: Arc::new(registry),
    };
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding {}", config.http_listen))?;
    tracing::info!(addr = %http.local_addr()?, "health and metrics listening");
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(health);
    let http_task = tokio::spawn(async move {
        let _ = axum::serve(http, app).await;
    });

    // Where the facade's object views come from, and the mode's work.
    let (source, work): (Arc<dyn ViewSource>, _) = match &client {
        None => {
            let objects = Arc::new(SharedObjects::default());
            let work = tokio::spawn(local_mode(
                config.clone(),
                hub.clone(),
                store.clone(),
                objects.clone(),
                ready,
                metrics,
            ));
            (objects, work)
        }
        Some(c) => {
            let watches = controller::start_watches(
                c,
                &WatchConfig {
                    namespace: config.namespace.clone(),
                    secret_selector: config.secret_label_selector.clone(),
                },
            );
            let stores = watches.0.clone();
            let work = tokio::spawn(cluster_mode(
                config.clone(),
                c.clone(),
                watches,
                hub.clone(),
                (store.clone(), board),
                ready,
                metrics,
            ));
            (Arc::new(stores), work)
        }
    };
    let facade_server = start_facade(&config, client.as_ref(), store, source, hub, &tls).await?;

    let stop = |grace| async move {
        if let Some(f) = facade_server {
            f.shutdown(grace).await;
        }
        channel_server.shutdown(grace).await;
    };
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        r = work => {
            if let Ok(Err(e)) = r {
                stop(Duration::from_secs(1)).await;
                return Err(e);
            }
        }
    }
    stop(Duration::from_secs(5)).await;
    http_task.abort();
    expiry_task.abort();
    Ok(())
}

/// Serves the REST facade on `--facade-listen` (TLS, the channel's certificate): in a cluster
/// with TokenReview and SubjectAccessReview, in local mode with the static admin token (and
/// not at all without one).
async fn start_facade(
    config: &Config,
    client: Option<&kube::Client>,
    store: Store,
    source: Arc<dyn ViewSource>,
    hub: SnapshotHub,
    tls: &TlsMaterial,
) -> anyhow::Result<Option<ChannelServer>> {
    let (authn, authz): (Arc<dyn Authenticator>, Arc<dyn Authorizer>) =
        match (client, &config.facade_token_file) {
            (Some(c), _) => (
                Arc::new(TokenReviewAuthenticator::any_user(c.clone())),
                Arc::new(SubjectAccessReviewAuthorizer::new(c.clone())),
            ),
            (None, Some(f)) => {
                let read = |p: &std::path::Path| {
                    std::fs::read_to_string(p).map(|t| t.trim().to_owned()).ok()
                };
                let admin = read(f);
                if admin.is_some() && config.local_token_file.as_deref().and_then(read) == admin {
                    anyhow::bail!(
                        "--facade-token-file holds the data planes' token: use another token, \
                         or every data plane could read the records"
                    );
                }
                (
                    Arc::new(
                        StaticTokenAuthenticator::from_file(f)
                            .with_context(|| format!("reading {}", f.display()))?,
                    ),
                    Arc::new(AllowAll),
                )
            }
            (None, None) => {
                tracing::warn!("local mode without --facade-token-file: the REST facade is off");
                return Ok(None);
            }
        };
    let facade = Arc::new(Facade::new(store, source, hub, authn, authz));
    let listener = tokio::net::TcpListener::bind(config.facade_listen)
        .await
        .with_context(|| format!("binding {}", config.facade_listen))?;
    let server = serve_tls(listener, facade.router(), tls)?;
    tracing::info!(addr = %server.local_addr(), "REST facade listening (TLS) on /api/v1");
    Ok(Some(server))
}

/// Local mode: watches the folder, compiles and publishes on every change, and keeps the
/// facade's objects up to date with the status the operator computes for them (refreshed with
/// the usage counters every `--aggregate-interval-ms`).
async fn local_mode(
    config: Config,
    hub: SnapshotHub,
    store: Store,
    objects: Arc<SharedObjects>,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let Some(dir) = config.manifests.clone() else {
        return Ok(());
    };
    let interval = Duration::from_millis(config.watch_interval_ms.max(10));
    let aggregate_every = Duration::from_millis(config.aggregate_interval_ms.max(500));
    let mut last = None;
    // The objects as loaded with their last computed status, and the compile they came from.
    let mut shown: Option<(Objects, Arc<Compiled>)> = None;
    let mut next_aggregate = Instant::now();
    loop {
        let files = switchyard_crds::manifest::files(&dir).unwrap_or_default();
        let fp: Vec<_> = files
            .iter()
            .map(|f| {
                let m = std::fs::metadata(f).ok();
                (
                    f.clone(),
                    m.as_ref().map(|m| m.len()),
                    m.and_then(|m| m.modified().ok()),
                )
            })
            .collect();
        if last.as_ref() != Some(&fp) {
            last = Some(fp);
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || switchyard_crds::manifest::load(&d)).await? {
                Ok((inventory, _)) => {
                    let started = Instant::now();
                    let compiled = compile(&inventory);
                    metrics.compiled(&compiled, started.elapsed());
                    log_issues(&compiled);
                    if hub.publish(compiled.snapshot.clone()) {
                        metrics.published(&compiled.snapshot.version);
                        tracing::info!(version = %compiled.snapshot.version, "snapshot published");
                    }
                    shown = Some((Objects::from_inventory(&inventory), Arc::new(compiled)));
                    next_aggregate = Instant::now();
                    ready.store(true, Ordering::Release);
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not load the manifests; keeping the last snapshot")
                }
            }
        }
        if let Some((current, compiled)) = &mut shown
            && Instant::now() >= next_aggregate
        {
            next_aggregate = Instant::now() + aggregate_every;
            let workspaces: Vec<String> = compiled
                .diagnostics
                .iter()
                .filter(|d| d.object.kind == Kind::Workspace)
                .map(|d| d.object.key())
                .collect();
            let counters = match crate::aggregate::counters(&store, &workspaces).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "usage aggregation failed");
                    Counters::default()
                }
            };
            *current = current.with_status(
                compiled,
                &counters,
                &Probes::default(),
                jiff::Timestamp::now(),
            );
            objects.set(current.clone());
        }
        tokio::time::sleep(interval).await;
    }
}

type Watches = (
    Stores,
    Vec<tokio::task::JoinHandle<()>>,
    tokio::sync::mpsc::Receiver<()>,
);

async fn cluster_mode(
    config: Config,
    client: kube::Client,
    (stores, _watch_tasks, changed): Watches,
    hub: SnapshotHub,
    (store, board): (Store, CircuitBoard),
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    // Leader election: every replica watches, compiles and serves snapshots; only the lease
    // holder writes status. If the lease task dies, the process exits (and restarts).
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.pod_namespace)
        .build()
        .await
        .context("creating the lease manager")?;
    let (leader, lease_task) = lease.watch().await;

    let (latest_tx, latest) = watch::channel::<Option<Arc<Compiled>>>(None);
    let compile_metrics = metrics.clone();
    let compile_ready = ready.clone();
    let compile_hub = hub.clone();
    let compile_task = tokio::spawn(controller::compile_loop(
        stores.clone(),
        changed,
        config.debounce(),
        latest_tx,
        move |c| {
            compile_metrics.compiled(c, Duration::ZERO);
            if compile_hub.publish(c.snapshot.clone()) {
                compile_metrics.published(&c.snapshot.version);
                tracing::info!(version = %c.snapshot.version, objects = c.diagnostics.len(), "snapshot published");
                log_issues(c);
            }
            compile_ready.store(true, Ordering::Release);
        },
    ));

    let writer = StatusWriter::new(client.clone());
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: crate::status_writer::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let status_task = tokio::spawn(status_loop(
        config.clone(),
        stores,
        latest,
        leader,
        (writer, recorder),
        (store, board),
        Prober::new(http),
        metrics,
    ));
    tokio::select! {
        r = lease_task => anyhow::bail!("leader election stopped: {r:?}"),
        _ = compile_task => anyhow::bail!("compile loop stopped"),
        r = status_task => anyhow::bail!("status loop stopped: {r:?}"),
    }
}

/// On the leader: writes status after every compile, every aggregation tick (usage), every
/// probe round and every change of the merged circuit view, and publishes circuit Events.
#[allow(clippy::too_many_arguments)]
async fn status_loop(
    config: Config,
    stores: Stores,
    mut latest: watch::Receiver<Option<Arc<Compiled>>>,
    mut leader: watch::Receiver<bool>,
    (writer, recorder): (StatusWriter, kube::runtime::events::Recorder),
    (store, board): (Store, CircuitBoard),
    mut prober: Prober,
    metrics: Arc<Metrics>,
) {
    let mut circuits_changed = board.subscribe();
    let mut notifier = CircuitNotifier::default();
    let mut tick =
        tokio::time::interval(Duration::from_millis(config.aggregate_interval_ms.max(500)));
    let mut counters = Counters::default();
    let mut probes = Probes::default();
    let mut next_probe: HashMap<String, Instant> = HashMap::new();
    let mut last_aggregate = Instant::now();
    loop {
        tokio::select! {
            r = latest.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            r = circuits_changed.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let is_leader = *leader.borrow();
        metrics.leader.set(i64::from(is_leader));
        let Some(compiled) = latest.borrow().clone() else {
            continue;
        };
        if !is_leader {
            // A new term starts from what the board says then.
            notifier.reset();
            continue;
        }
        // Usage.
        let workspaces: Vec<String> = compiled
            .diagnostics
            .iter()
            .filter(|d| d.object.kind == Kind::Workspace)
            .map(|d| d.object.key())
            .collect();
        match crate::aggregate::counters(&store, &workspaces).await {
            Ok(c) => {
                counters = c;
                last_aggregate = Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "usage aggregation failed"),
        }
        metrics
            .aggregation_lag
            .set(last_aggregate.elapsed().as_secs_f64());
        // Circuits: once every data plane has had the time to report (until then status keeps
        // the circuit state it shows and no Event is raised).
        let now = Instant::now();
        let circuit_events = if board.is_warm(now) {
            let merged = board.merged(now);
            crate::circuits::apply(&mut counters, &compiled.snapshot, &merged);
            notifier.step(
                &merged,
                &crate::circuits::notifying_policies(&compiled.snapshot),
            )
        } else {
            Vec::new()
        };
        // Probes that are due.
        let now = Instant::now();
        for t in probe_targets(&compiled, &stores, config.discovery_interval_s) {
            let (target, every, is_backend) = t;
            if next_probe.get(&target.key).is_some_and(|at| now < *at) {
                continue;
            }
            next_probe.insert(target.key.clone(), now + every);
            let result = prober.probe(&target).await;
            if is_backend {
                probes.backends.insert(target.key.clone(), result);
            } else {
                probes.providers.insert(target.key.clone(), result);
            }
        }
        controller::publish_policy_events(&recorder, &stores, circuit_events).await;
        let report = controller::write_statuses(
            &writer,
            Some(&recorder),
            &stores,
            &compiled,
            &counters,
            &probes,
            jiff::Timestamp::now(),
        )
        .await;
        for (what, n) in [
            ("patched", report.patched),
            ("unchanged", report.unchanged),
            ("failed", report.failed),
        ] {
            metrics
                .status_writes
                .get_or_create(&vec![("result".to_owned(), what.to_owned())])
                .inc_by(n as u64);
        }
    }
}

/// Backends (every `healthCheck.intervalSeconds`) and Providers with `discoverModels`.
fn probe_targets(
    compiled: &Compiled,
    stores: &Stores,
    discovery_s: u64,
) -> Vec<(Target, Duration, bool)> {
    let snap = &compiled.snapshot;
    let mut out = Vec::new();
    for b in stores.backends.state() {
        let key = format!(
            "{}/{}",
            kube::ResourceExt::namespace(&*b).unwrap_or_default(),
            kube::ResourceExt::name_any(&*b)
        );
        let hc = &b.spec.health_check;
        if !hc.enabled {
            continue;
        }
        // Only backends that compiled (URL and credential resolved).
        let Some(s) = snap.backend(&key) else {
            continue;
        };
        out.push((
            Target {
                key,
                flavor: Flavor::of_backend(b.spec.type_),
                url: s.url.clone(),
                api_key: s.api_key.as_ref().map(|k| k.expose().to_owned()),
                timeout: Duration::from_secs(u64::from(hc.timeout_seconds)),
                failure_threshold: hc.failure_threshold,
            },
            Duration::from_secs(u64::from(hc.interval_seconds)),
            true,
        ));
    }
    for p in stores.providers.state() {
        if !p.spec.discover_models {
            continue;
        }
        let key = format!(
            "{}/{}",
            kube::ResourceExt::namespace(&*p).unwrap_or_default(),
            kube::ResourceExt::name_any(&*p)
        );
        let Some(s) = snap.provider(&key) else {
            continue;
        };
        out.push((
            Target {
                key,
                flavor: Flavor::of_provider(p.spec.type_),
                url: s.endpoint.clone(),
                api_key: s.api_key.as_ref().map(|k| k.expose().to_owned()),
                timeout: Duration::from_secs(10),
                failure_threshold: 3,
            },
            Duration::from_secs(discovery_s.max(10)),
            false,
        ));
    }
    out
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Installs the tracing subscriber.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Plain => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}
