//! Command-line flags of the operator (each also readable from a `SWITCHYARD_*` variable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The Switchyard operator.
#[derive(Parser, Debug, Clone)]
#[command(name = "switchyard-operator", version, about)]
pub struct Config {
    /// Local mode: read CRs (and Secrets) from this folder instead of a cluster, watch it, and
    /// serve snapshots and store records the same way (no status is written).
    #[arg(long, env = "SWITCHYARD_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// Namespace to watch (default: all namespaces).
    #[arg(long, env = "SWITCHYARD_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Only Secrets matching this label selector are watched (keeps memory flat); label the
    /// Secrets your Providers, Backends, Workspaces and TaskChains reference.
    #[arg(
        long,
        env = "SWITCHYARD_SECRET_SELECTOR",
        default_value = "switchyard.dev/secret=true"
    )]
    pub secret_label_selector: String,
    /// Record store: `sqlite://PATH` or `postgres://…` (use the env var for credentials).
    #[arg(
        long,
        env = "SWITCHYARD_STORE",
        default_value = "sqlite://switchyard-records.db",
        hide_env_values = true
    )]
    pub store: String,
    /// Address of health, readiness and metrics.
    #[arg(long, env = "SWITCHYARD_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    pub http_listen: SocketAddr,
    /// Address of the data-plane channel (TLS): snapshot stream and record ingestion.
    #[arg(
        long,
        env = "SWITCHYARD_CHANNEL_LISTEN",
        default_value = "0.0.0.0:8443"
    )]
    pub channel_listen: SocketAddr,
    /// Serving certificate of the channel (PEM); without it a self-signed CA is generated.
    #[arg(long, env = "SWITCHYARD_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Key of `--tls-cert-file` (PEM).
    #[arg(long, env = "SWITCHYARD_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// DNS names of the generated serving certificate.
    #[arg(
        long,
        env = "SWITCHYARD_TLS_NAMES",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,switchyard-operator"
    )]
    pub tls_names: Vec<String>,
    /// In a cluster: ConfigMap (in the operator's namespace) that receives the generated CA as
    /// `ca.crt`, for data planes to mount.
    #[arg(long, env = "SWITCHYARD_CA_CONFIGMAP", default_value = "switchyard-ca")]
    pub ca_configmap: String,
    /// Write the channel's CA certificate (PEM) to this file (local mode and tests).
    #[arg(long, env = "SWITCHYARD_CA_OUT")]
    pub ca_out: Option<PathBuf>,
    /// ServiceAccounts (`namespace/name`) allowed to connect as data planes.
    #[arg(
        long,
        env = "SWITCHYARD_DATAPLANE_SERVICE_ACCOUNTS",
        value_delimiter = ','
    )]
    pub dataplane_service_accounts: Vec<String>,
    /// Namespaces whose ServiceAccounts may connect as data planes.
    #[arg(long, env = "SWITCHYARD_DATAPLANE_NAMESPACES", value_delimiter = ',')]
    pub dataplane_namespaces: Vec<String>,
    /// Local mode: file holding the token data planes present (a static token).
    #[arg(long, env = "SWITCHYARD_LOCAL_TOKEN_FILE")]
    pub local_token_file: Option<PathBuf>,
    /// Address of the admin REST facade (`/api/v1`; TLS with the channel's certificate).
    #[arg(long, env = "SWITCHYARD_FACADE_LISTEN", default_value = "0.0.0.0:8444")]
    pub facade_listen: SocketAddr,
    /// Local mode only: file holding the facade's static admin token (full access). Without
    /// it, local mode serves no facade. In a cluster the facade takes Kubernetes bearer tokens
    /// (TokenReview) and authorizes with SubjectAccessReview; this flag is refused there.
    #[arg(long, env = "SWITCHYARD_FACADE_TOKEN_FILE")]
    pub facade_token_file: Option<PathBuf>,
    /// Name of the coordination.k8s.io Lease for leader election.
    #[arg(
        long,
        env = "SWITCHYARD_LEASE_NAME",
        default_value = "switchyard-operator"
    )]
    pub lease_name: String,
    /// Namespace of the Lease and the CA ConfigMap (default: `POD_NAMESPACE`, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub pod_namespace: String,
    /// Quiet time after a change before recompiling, ms.
    #[arg(long, env = "SWITCHYARD_DEBOUNCE_MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// How often usage is aggregated into status, ms.
    #[arg(long, env = "SWITCHYARD_AGGREGATE_INTERVAL_MS", default_value_t = 5000)]
    pub aggregate_interval_ms: u64,
    /// How often Providers with `discoverModels` are listed, s.
    #[arg(long, env = "SWITCHYARD_DISCOVERY_INTERVAL_S", default_value_t = 300)]
    pub discovery_interval_s: u64,
    /// How often the manifests folder is checked in local mode, ms.
    #[arg(long, env = "SWITCHYARD_WATCH_INTERVAL_MS", default_value_t = 100)]
    pub watch_interval_ms: u64,
    /// Log format.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

pub use switchyard_runtime::telemetry::LogFormat;

impl Config {
    /// Debounce.
    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms)
    }
}
