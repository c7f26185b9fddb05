//! Command-line flags (each also readable from a `SWITCHYARD_*` environment variable).
//!
//! A leaf module: it imports nothing from the crate. The modules that own the settings build
//! them from these flags (`OperatorClientConfig::from_flags`, `EgressPolicy::from_config`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;

/// Where Kubernetes mounts the pod's ServiceAccount token (default of `--operator-token-file`).
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Where `--demo` alone starts the mock upstream (the quickstart samples' providers point here).
pub const DEMO_MOCK_ADDR: &str = "127.0.0.1:8081";

/// The Switchyard data plane.
#[derive(Parser, Debug, Clone)]
#[command(name = "switchyard-dataplane", version, about)]
pub struct Config {
    /// Address to serve the API on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of health (`/healthz`, `/readyz`) and metrics (`/metrics`), kept off the API
    /// port so callers of the API cannot read them.
    #[arg(long, env = "SWITCHYARD_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,
    /// Local mode: a folder of Switchyard manifests (and Secrets) compiled in-process and
    /// reloaded on change.
    #[arg(long, env = "SWITCHYARD_MANIFESTS", conflicts_with = "snapshot_file")]
    pub manifests: Option<PathBuf>,
    /// A snapshot JSON file (as the operator serves), reloaded on change.
    #[arg(long, env = "SWITCHYARD_SNAPSHOT_FILE")]
    pub snapshot_file: Option<PathBuf>,
    /// Cluster mode: the operator's channel, e.g.
    /// `https://switchyard-operator.switchyard-system.svc:8443`. Snapshots are streamed from it
    /// and interception records shipped to it (instead of `--records-file`).
    #[arg(long, env = "SWITCHYARD_OPERATOR", conflicts_with_all = ["manifests", "snapshot_file"])]
    pub operator: Option<String>,
    /// Bearer token presented to the operator, re-read on every connection (projected
    /// ServiceAccount tokens rotate).
    #[arg(long, env = "SWITCHYARD_OPERATOR_TOKEN_FILE", default_value = DEFAULT_TOKEN_FILE)]
    pub operator_token_file: PathBuf,
    /// CA certificates (PEM) to trust for the operator instead of the system roots (the
    /// operator publishes its CA in a ConfigMap, key `ca.crt`).
    #[arg(long, env = "SWITCHYARD_OPERATOR_CA_FILE")]
    pub operator_ca_file: Option<PathBuf>,
    /// How often the manifests folder or snapshot file is checked for changes.
    #[arg(long, env = "SWITCHYARD_WATCH_INTERVAL_MS", default_value_t = 100)]
    pub watch_interval_ms: u64,
    /// Folder of the interception spool.
    #[arg(long, env = "SWITCHYARD_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool keeps before dropping the oldest records.
    #[arg(long, env = "SWITCHYARD_SPOOL_MAX_BYTES", default_value_t = 256 << 20)]
    pub spool_max_bytes: u64,
    /// Local record store: shipped interceptions are appended to this JSON-lines file.
    #[arg(long, env = "SWITCHYARD_RECORDS_FILE")]
    pub records_file: Option<PathBuf>,
    /// Largest request body, bytes.
    #[arg(long, env = "SWITCHYARD_MAX_BODY_BYTES", default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// All non-streamed upstream answers the data plane holds at once, bytes (each is read
    /// whole to be validated and translated; the first 256 KiB of each are not counted). An
    /// answer that declares its length waits for room while its request has time left; one
    /// that does not is refused when the budget is full: 503 with `Retry-After`.
    #[arg(long, env = "SWITCHYARD_ANSWER_BUFFER_BYTES", default_value_t = 256 << 20)]
    pub answer_buffer_bytes: usize,
    /// Largest request body kept for retries and fallbacks, bytes: a larger body is forwarded
    /// to the first target once and never retried.
    #[arg(long, env = "SWITCHYARD_RETRY_BUFFER_BYTES", default_value_t = 4 << 20)]
    pub retry_buffer_bytes: usize,
    /// Responses API state (`previous_response_id`, `GET /v1/responses/{id}`): most responses
    /// kept per workspace, in memory and per replica (0: none; least recently used evicted).
    #[arg(
        long,
        env = "SWITCHYARD_RESPONSE_STORE_ENTRIES",
        default_value_t = 4096
    )]
    pub response_store_entries: usize,
    /// Most bytes of responses (with their whole input) kept per workspace.
    #[arg(long, env = "SWITCHYARD_RESPONSE_STORE_BYTES", default_value_t = 64 << 20)]
    pub response_store_bytes: usize,
    /// Requests that may wait for a slot of a Backend at its `maxConcurrency` (default: as many
    /// as the limit); beyond that the answer is 503.
    #[arg(long, env = "SWITCHYARD_QUEUE_LENGTH")]
    pub queue_length: Option<u32>,
    /// Longest wait for a Backend slot, ms; then 503.
    #[arg(long, env = "SWITCHYARD_QUEUE_TIMEOUT_MS", default_value_t = 5_000)]
    pub queue_timeout_ms: u64,
    /// Largest request head (request line and headers), bytes; larger: 431.
    #[arg(long, env = "SWITCHYARD_MAX_HEADER_BYTES", default_value_t = 64 << 10)]
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head, ms (slow-loris protection); the
    /// connection is closed after it.
    #[arg(long, env = "SWITCHYARD_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Time a client has to send a whole request body once its head has arrived, ms; after it
    /// the request gets 408 and the connection is closed (slow-body protection: a body
    /// trickled a byte at a time cannot hold a connection longer than this). A body declared
    /// larger than `--max-body-bytes` by its `Content-Length` is refused (413) before it is read.
    #[arg(long, env = "SWITCHYARD_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// Refuse requests without a gateway API key bound to a Workspace.
    #[arg(long, env = "SWITCHYARD_REQUIRE_CLIENT_KEY")]
    pub require_client_key: bool,
    /// Upstream connect timeout, ms.
    #[arg(long, env = "SWITCHYARD_CONNECT_TIMEOUT_MS", default_value_t = 10_000)]
    pub connect_timeout_ms: u64,
    /// Upstream egress allow list: when set, Provider and Backend endpoints may only resolve to
    /// addresses inside these CIDRs (repeatable or comma-separated; a bare address is a /32 or
    /// /128). Empty: any address not refused otherwise.
    #[arg(
        long,
        env = "SWITCHYARD_EGRESS_ALLOW_CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub egress_allow_cidr: Vec<IpNet>,
    /// Upstream egress deny list (repeatable or comma-separated): wins over the allow list and
    /// `--egress-allow-link-local`; loopback and private ranges are allowed unless listed here.
    #[arg(
        long,
        env = "SWITCHYARD_EGRESS_DENY_CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub egress_deny_cidr: Vec<IpNet>,
    /// Let upstream connections reach link-local and cloud metadata addresses (169.254.0.0/16,
    /// fe80::/10, fd00:ec2::254), refused by default.
    #[arg(long, env = "SWITCHYARD_EGRESS_ALLOW_LINK_LOCAL")]
    pub egress_allow_link_local: bool,
    /// How long in-flight requests may finish after SIGTERM, ms.
    #[arg(long, env = "SWITCHYARD_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,
    /// Log format.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Demo mode (the local quickstart): start the bundled mock upstream on this address
    /// (`--demo` alone: 127.0.0.1:8081) and serve the quickstart samples, written to
    /// `$TMPDIR/switchyard-demo/manifests` unless `--manifests` is given, on 127.0.0.1:8080 (health
    /// and metrics on 127.0.0.1:9090) unless `--listen` (`--admin-listen`) is given. Prints what
    /// to try.
    #[arg(
        long,
        env = "SWITCHYARD_DEMO",
        value_name = "MOCK_ADDR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = DEMO_MOCK_ADDR,
        conflicts_with_all = ["snapshot_file", "operator"]
    )]
    pub demo: Option<SocketAddr>,
}

pub use switchyard_runtime::telemetry::LogFormat;

impl Config {
    /// The watch interval.
    pub fn watch_interval(&self) -> Duration {
        Duration::from_millis(self.watch_interval_ms.max(10))
    }
}

/// Parses a CIDR (`10.0.0.0/8`, `fd00::/8`) or a bare address (taken as `/32` or `/128`).
/// Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`). Used as the clap value parser of the
/// `--egress-*-cidr` flags.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty CIDR".to_owned());
    }
    if s.contains('/') {
        s.parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| format!("`{s}` is not a CIDR (like 10.0.0.0/8 or fd00::/8)"))
    } else {
        s.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
    }
}
