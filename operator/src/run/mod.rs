//! Putting the operator together: the record store, the data-plane channel (TLS), the health
//! and metrics endpoint, the REST facade, and either the cluster control loop
//! ([`cluster`]: watches, leader election, compile, probes, usage, circuit view and the status
//! writer) or local mode ([`local`]: a folder of manifests).
//!
//! Supervision: every long-running task runs in a [`Supervisor`]. None is meant to end, so one
//! that returns, fails or panics is logged with its name and stops the process (exit code 1),
//! and Kubernetes restarts the pod. Stopping rather than restarting the task in place: the
//! tasks share channels and caches (a restarted probe task would need the receivers the dead
//! one consumed, a restarted watch a fresh cache and resync), a fresh process rebuilds all of
//! it consistently, and a panic that happened once would likely happen again in a loop no one
//! sees. The lease task already had that rule (a replica that lost its lease task must not
//! keep writing); now every task has it.

mod circuit_view;
mod cluster;
mod health;
mod leader_clock;
mod local;
mod metrics;
mod probing;
mod status_loop;
mod usage;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use prometheus_client::registry::Registry;
use switchyard_crds::record::Interception;
use switchyard_runtime::serve::{Options, serve};
use switchyard_runtime::signal::shutdown_signal;
use switchyard_runtime::supervise::Supervisor;

use crate::channel::{
    AllowAll, AllowList, Authenticator, Authorizer, Channel, ChannelOptions, ChannelServer,
    IngestReport, RecordSink, SnapshotHub, StaticTokenAuthenticator, SubjectAccessReviewAuthorizer,
    TlsMaterial, TokenReviewAuthenticator, publish_ca, serve_tls,
};
use crate::config::Config;
use crate::controller::{self, WatchConfig};
use crate::facade::Facade;
use crate::facade::source::{SharedObjects, ViewSource};
use crate::store::Store;

pub use self::metrics::Metrics;
/// Installs the tracing subscriber (plain or JSON), filtered by `RUST_LOG` (default `info`).
pub use switchyard_runtime::telemetry::init_tracing;

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
    tracing::info!(addr = %channel_server.local_addr(), "data-plane channel listening (TLS)");
    let mut tasks = Supervisor::new();
    tasks.spawn_unit(
        "circuit expiry",
        board.clone().run_expiry(Duration::from_secs(1)),
    );

    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding {}", config.http_listen))?;
    let http_server = serve(
        http,
        health::router(ready.clone(), registry),
        Options {
            name: "health",
            ..Options::default()
        },
    )?;
    tracing::info!(addr = %http_server.local_addr(), "health and metrics listening");

    // Where the facade's object views come from, and the mode's work.
    let source: Arc<dyn ViewSource> = match &client {
        None => {
            let objects = Arc::new(SharedObjects::default());
            tasks.spawn(
                "local mode",
                local::local_mode(
                    config.clone(),
                    hub.clone(),
                    store.clone(),
                    objects.clone(),
                    ready,
                    metrics,
                ),
            );
            objects
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
            cluster::start(
                &mut tasks,
                &config,
                c.clone(),
                watches,
                hub.clone(),
                (store.clone(), board),
                ready,
                metrics,
            )
            .await?;
            Arc::new(stores)
        }
    };
    let facade_server = start_facade(&config, client.as_ref(), store, source, hub, &tls).await?;

    let stop = |grace| async move {
        if let Some(f) = facade_server {
            f.shutdown(grace).await;
        }
        channel_server.shutdown(grace).await;
        http_server.shutdown(grace).await;
    };
    let outcome = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
        exit = tasks.exited() => {
            tracing::error!(task = exit.task, reason = %exit.reason, "a task ended unexpectedly; stopping the operator");
            Err(anyhow::Error::new(exit))
        }
    };
    tasks.shutdown().await;
    let grace = if outcome.is_ok() { 5 } else { 1 };
    stop(Duration::from_secs(grace)).await;
    outcome
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
