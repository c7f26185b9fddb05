//! Command-line flags (each also readable from a `SWITCHYARD_*` environment variable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The Switchyard data plane.
#[derive(Parser, Debug, Clone)]
#[command(name = "switchyard-dataplane", version, about)]
pub struct Config {
    /// Address to serve the API, health and metrics on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
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
    #[arg(long, env = "SWITCHYARD_OPERATOR_TOKEN_FILE", default_value = crate::operator_client::DEFAULT_TOKEN_FILE)]
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
        value_parser = crate::egress::parse_cidr
    )]
    pub egress_allow_cidr: Vec<crate::egress::IpNet>,
    /// Upstream egress deny list (repeatable or comma-separated): wins over the allow list and
    /// `--egress-allow-link-local`; loopback and private ranges are allowed unless listed here.
    #[arg(
        long,
        env = "SWITCHYARD_EGRESS_DENY_CIDR",
        value_delimiter = ',',
        value_parser = crate::egress::parse_cidr
    )]
    pub egress_deny_cidr: Vec<crate::egress::IpNet>,
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
    /// `$TMPDIR/switchyard-demo/manifests` unless `--manifests` is given, on 127.0.0.1:8080 unless
    /// `--listen` is given. Prints what to try.
    #[arg(
        long,
        env = "SWITCHYARD_DEMO",
        value_name = "MOCK_ADDR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = crate::demo::DEFAULT_MOCK_ADDR,
        conflicts_with_all = ["snapshot_file", "operator"]
    )]
    pub demo: Option<SocketAddr>,
}

/// Log formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Plain,
    /// One JSON object per line (for clusters).
    Json,
}

impl Config {
    /// The operator channel settings, when `--operator` is set.
    pub fn operator_client(&self) -> Option<crate::operator_client::OperatorClientConfig> {
        self.operator.as_ref().map(|url| {
            crate::operator_client::OperatorClientConfig::new(
                url.as_str(),
                self.operator_token_file.clone(),
                self.operator_ca_file.clone(),
            )
        })
    }

    /// The watch interval.
    pub fn watch_interval(&self) -> Duration {
        Duration::from_millis(self.watch_interval_ms.max(10))
    }
}
