//! Switchyard data plane: an OpenAI- and Anthropic-compatible proxy that routes by workspace,
//! mux rules, router policies and affinity groups, and records every call.

pub mod breaker;
pub mod chain;
pub mod circuit_report;
pub mod classify;
pub mod clients;
pub mod config;
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
pub mod retry;
pub mod serve;
pub mod server;
pub mod source;
pub mod spool;
pub mod sse;
pub mod state;
pub mod translate;
pub mod upstream;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;

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
    /// Address it listens on.
    pub addr: std::net::SocketAddr,
    /// Its state (routing table, metrics, …).
    pub state: Arc<AppState>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    circuit_reporter: Option<tokio::task::JoinHandle<()>>,
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
        config.operator_client(),
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
    // With an operator, circuit states are reported to it too.
    let circuit_reporter = operator.as_ref().map(|op| {
        tokio::spawn(circuit_report::run(
            state.clone(),
            op.clone(),
            circuit_report::data_plane_name(),
        ))
    });
    let watcher = match (source, operator) {
        (Some(source), _) => tokio::spawn(source::watch(
            state.clone(),
            source,
            config.watch_interval(),
        )),
        (None, Some(op)) => tokio::spawn(operator_client::run_snapshot_client(state.clone(), op)),
        (None, None) => anyhow::bail!("no snapshot source"),
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "data plane listening");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let app = server::router(state.clone());
    let limits = serve::Limits {
        max_header_bytes: config.max_header_bytes,
        header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
    };
    let server = tokio::spawn(serve::serve(listener, app, limits, stop_rx));
    Ok(Running {
        addr,
        state,
        stop,
        server,
        watcher,
        circuit_reporter,
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
        let _ = self.stop.send(true);
        let mut server = self.server;
        if tokio::time::timeout(self.drain, &mut server).await.is_err() {
            tracing::warn!("drain deadline passed with requests still open; closing them");
            server.abort();
            let _ = server.await;
        }
        self.watcher.abort();
        if let Some(reporter) = self.circuit_reporter {
            reporter.abort();
        }
        drop(self.state);
        self.spool_tasks
            .shutdown(self.spool, Duration::from_secs(5))
            .await;
    }
}

/// Runs the data plane until SIGINT/SIGTERM, then drains.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    shutdown_signal().await;
    running.shutdown().await;
    Ok(())
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

/// Installs the tracing subscriber (plain or JSON), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        config::LogFormat::Plain => builder.try_init(),
        config::LogFormat::Json => builder.json().try_init(),
    };
}
