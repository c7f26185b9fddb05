//! Switchyard data plane: an OpenAI- and Anthropic-compatible proxy that routes by workspace,
//! mux rules, router policies and affinity groups, and records every call.

pub mod breaker;
pub mod chain;
pub mod circuit_report;
pub mod classify;
pub mod clients;
pub mod config;
pub mod count_tokens;
pub mod demo;
pub mod egress;
pub mod errors;
pub mod guardrails;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod operator_client;
pub mod proxy;
pub mod record;
pub mod relay;
pub mod request_shape;
pub mod response_store;
pub mod retry;
pub mod server;
pub mod source;
pub mod spool;
pub mod sse;
pub mod state;
pub mod translate;
pub mod upstream;
pub mod upstream_failure;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use switchyard_runtime::serve::{Limits, Options, Server, serve};
use switchyard_runtime::signal::shutdown_signal;
use switchyard_runtime::supervise::{Exit, Supervisor};

use crate::config::Config;
use crate::spool::{FileShipper, Shipper, Spool, SpoolConfig};
use crate::state::{AppState, Settings};

/// Builds the upstream HTTP client: no redirects followed (a provider redirect could send the
/// credential elsewhere), bounded connect time, Nagle off, and every connection checked
/// against the egress policy (see [`egress`]; IP-literal URLs are also worth checking up front
/// with [`egress::EgressPolicy::check_url`], which sends nothing).
pub fn http_client(
    connect_timeout: Duration,
    egress: Arc<egress::EgressPolicy>,
) -> anyhow::Result<reqwest::Client> {
    http_client_with_resolver(connect_timeout, egress::EgressResolver::new(egress))
}

/// [`http_client`] with a given egress resolver (tests inject fake DNS answers through it).
pub fn http_client_with_resolver(
    connect_timeout: Duration,
    resolver: egress::EgressResolver,
) -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")));
    egress::install(builder, resolver)
        .build()
        .context("building the upstream HTTP client")
}

/// A running data plane (see [`start`]).
#[derive(Debug)]
pub struct Running {
    /// Address of the API.
    pub addr: std::net::SocketAddr,
    /// Address of health and metrics (`--admin-listen`).
    pub admin_addr: std::net::SocketAddr,
    /// Its state (routing table, metrics, …).
    pub state: Arc<AppState>,
    server: Server,
    admin: Server,
    /// The snapshot watcher (or the operator's snapshot client) and the circuit reporter.
    tasks: Supervisor,
    spool: Spool,
    spool_tasks: spool::SpoolTasks,
    drain: Duration,
}

/// Starts the data plane: binds, starts the snapshot watcher and the spool, and serves.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    // Where snapshots come from: a local source, or the operator's channel (which then also
    // receives the interception records).
    let (source, operator) = match (
        &config.manifests,
        &config.snapshot_file,
        operator_client::OperatorClientConfig::from_flags(&config),
    ) {
        (None, None, Some(op)) => (None, Some(op)),
        (Some(dir), _, None) => (Some(source::Source::Manifests(dir.clone())), None),
        (None, Some(file), None) => (Some(source::Source::SnapshotFile(file.clone())), None),
        (_, _, Some(_)) => {
            anyhow::bail!("--operator cannot be combined with --manifests or --snapshot-file")
        }
        (None, None, None) => {
            anyhow::bail!("one of --manifests, --snapshot-file or --operator is required")
        }
    };
    let mut registry = Registry::default();
    let metrics = Arc::new(metrics::Metrics::new(&mut registry));
    let spool_dir = config
        .spool_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("switchyard-spool"));
    let shipper: Option<Arc<dyn Shipper>> = match &operator {
        Some(op) => {
            if config.records_file.is_some() {
                tracing::warn!("--records-file is ignored: records are shipped to the operator");
            }
            Some(Arc::new(operator_client::HttpShipper::new(op.clone())))
        }
        None => config
            .records_file
            .as_ref()
            .map(|p| Arc::new(FileShipper::new(p.clone())) as Arc<dyn Shipper>),
    };
    let (spool, spool_tasks) = Spool::start(
        SpoolConfig {
            dir: spool_dir.clone(),
            max_bytes: config.spool_max_bytes,
            flush_interval: Duration::from_millis(200),
            batch_size: 500,
        },
        shipper,
        metrics.clone(),
    )
    .await
    .with_context(|| format!("starting the spool in {}", spool_dir.display()))?;
    let egress = Arc::new(egress::EgressPolicy::from_config(&config));
    let settings = Settings {
        max_body_bytes: config.max_body_bytes,
        body_timeout: Duration::from_millis(config.body_timeout_ms.max(1)),
        require_client_key: config.require_client_key,
        egress: egress.clone(),
        retry_buffer_bytes: config.retry_buffer_bytes,
        answer_buffer_bytes: config.answer_buffer_bytes,
        response_store: response_store::StoreLimits {
            max_entries: config.response_store_entries,
            max_bytes: config.response_store_bytes,
        },
        queue: limits::ConcurrencyConfig {
            queue_len: config.queue_length,
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
        },
        ..Settings::default()
    };
    let client = clients::Clients::new(
        Duration::from_millis(config.connect_timeout_ms),
        egress::EgressResolver::new(egress),
    )?;
    let state = Arc::new(AppState::new(
        client,
        spool.clone(),
        metrics,
        registry,
        settings,
    ));
    // Tasks that run as long as the process: none is meant to end (see `Running::task_ended`).
    let mut tasks = Supervisor::new();
    // With an operator, circuit states are reported to it too.
    if let Some(op) = &operator {
        tasks.spawn_unit(
            "circuit reporter",
            circuit_report::run(state.clone(), op.clone(), circuit_report::data_plane_name()),
        );
    }
    match (source, operator) {
        (Some(source), _) => tasks.spawn_unit(
            "snapshot watcher",
            source::watch(state.clone(), source, config.watch_interval()),
        ),
        (None, Some(op)) => tasks.spawn_unit(
            "snapshot client",
            operator_client::run_snapshot_client(state.clone(), op),
        ),
        (None, None) => anyhow::bail!("no snapshot source"),
    }

    let bind = |addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))
    };
    let (listener, admin_listener) = (bind(config.listen).await?, bind(config.admin_listen).await?);
    // The API: the limits every pod-facing listener needs (see `switchyard_runtime::serve`).
    let limits = Limits {
        max_header_bytes: Some(config.max_header_bytes),
        header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
    };
    let plain = |name| Options {
        name,
        limits,
        tls: None,
    };
    let server = serve(listener, server::router(state.clone()), plain("api"))?;
    let admin = serve(
        admin_listener,
        server::admin_router(state.clone()),
        plain("admin"),
    )?;
    let (addr, admin_addr) = (server.local_addr(), admin.local_addr());
    tracing::info!(%addr, %admin_addr, "data plane listening (API on addr; health and metrics on admin_addr)");
    Ok(Running {
        addr,
        admin_addr,
        state,
        server,
        admin,
        tasks,
        spool,
        spool_tasks,
        drain: Duration::from_millis(config.drain_timeout_ms),
    })
}

impl Running {
    /// Stops accepting connections, lets in-flight requests and streams finish up to the drain
    /// deadline, then flushes the interception spool.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        if !self.server.shutdown(self.drain).await {
            tracing::warn!("drain deadline passed with requests still open; closed them");
        }
        // Health and metrics stay up while the API drains, then go.
        let _ = self.admin.shutdown(Duration::from_secs(1)).await;
        self.tasks.shutdown().await;
        drop(self.state);
        self.spool_tasks
            .shutdown(self.spool, Duration::from_secs(5))
            .await;
    }
}

impl Running {
    /// Waits until one of the background tasks ends (they run as long as the process: one that
    /// returns or panics has ended unexpectedly) and says which and why. Never resolves while
    /// they run.
    pub async fn task_ended(&mut self) -> Exit {
        self.tasks.exited().await
    }

    /// The names of the background tasks that run.
    pub fn task_names(&self) -> Vec<&'static str> {
        self.tasks.names()
    }
}

/// Runs the data plane until SIGINT/SIGTERM, then drains. A background task that ends (the
/// snapshot watcher or client, the circuit reporter) is logged by name and stops the process
/// with an error, after the same drain, for the Deployment to restart it: a data plane whose
/// snapshot source has died would otherwise serve a stale routing table while looking healthy.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut running = start(config).await?;
    let outcome = tokio::select! {
        () = shutdown_signal() => Ok(()),
        exit = running.task_ended() => {
            tracing::error!(task = exit.task, reason = %exit.reason, "a task ended unexpectedly; stopping the data plane");
            Err(anyhow::Error::new(exit))
        }
    };
    running.shutdown().await;
    outcome
}

/// Installs the tracing subscriber (plain or JSON), filtered by `RUST_LOG` (default `info`).
pub use switchyard_runtime::telemetry::init_tracing;
