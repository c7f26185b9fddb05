//! The data plane's side of the operator channel: follows the operator's snapshot stream and
//! ships interception records to it.
//!
//! - [`run_snapshot_client`] keeps `GET /v1/snapshots/stream` open (newline-delimited JSON
//!   frames `{"type":"snapshot","snapshot":{…}}` and `{"type":"heartbeat","version":…}`),
//!   applies every snapshot whose content hash matches its version, and reconnects with
//!   exponential backoff and jitter (100 ms … 10 s) on any error, end of stream or 45 s of
//!   silence. The snapshot in force stays in force meanwhile.
//! - [`HttpShipper`] posts spool batches to `POST /v1/records`.
//! - [`crate::circuit_report`] posts the circuit breakers' states to `POST /v1/circuits`.
//!
//! All authenticate with `Authorization: Bearer <token>`, the token read from
//! `--operator-token-file` on every connection and batch (projected ServiceAccount tokens
//! rotate), and trust only the CA of `--operator-ca-file` when given (re-read on every
//! connection, so a new operator CA is picked up without a restart). Proxies from the
//! environment are not used for the operator.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use switchyard_crds::channel::{
    Frame, HAVE_HEADER, INSTANCE_HEADER, MAX_FRAME_BYTES, NDJSON, RECORDS_PATH, STREAM_PATH,
};

use crate::config::Config;
use crate::spool::Shipper;
use crate::state::AppState;

/// How to reach the operator.
#[derive(Clone, Debug)]
pub struct OperatorClientConfig {
    /// Base URL, e.g. `https://switchyard-operator.switchyard-system.svc:8443`.
    pub url: String,
    /// Bearer token file, re-read on every connection and batch.
    pub token_file: PathBuf,
    /// CA certificates (PEM) to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Sent as `x-switchyard-instance` (default: `$POD_NAME`, else `$HOSTNAME`).
    pub instance: Option<String>,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// The stream is taken for dead after this long without a frame (heartbeats come every
    /// 15 s).
    pub idle_timeout: Duration,
    /// Whole-request timeout of a record batch.
    pub request_timeout: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
}

impl OperatorClientConfig {
    /// Defaults for everything but the URL and the files.
    pub fn new(url: impl Into<String>, token_file: PathBuf, ca_file: Option<PathBuf>) -> Self {
        let instance = ["POD_NAME", "HOSTNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
        Self {
            url: url.into().trim_end_matches('/').to_owned(),
            token_file,
            ca_file,
            instance,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(45),
            request_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }

    /// The operator channel settings the flags describe, when `--operator` is set.
    pub fn from_flags(config: &Config) -> Option<Self> {
        config.operator.as_ref().map(|url| {
            Self::new(
                url.as_str(),
                config.operator_token_file.clone(),
                config.operator_ca_file.clone(),
            )
        })
    }

    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }
}

/// Reads a bearer token file (surrounding whitespace trimmed).
pub(crate) fn read_token(path: &Path) -> Result<HeaderValue, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the operator token {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "the operator token file {} is empty",
            path.display()
        ));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        format!(
            "the operator token in {} is not a valid header value",
            path.display()
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The HTTP client for the operator, rebuilt when the CA file's content changes.
#[derive(Debug, Default)]
pub(crate) struct ClientCache {
    built: Option<(Option<Vec<u8>>, reqwest::Client)>,
}

impl ClientCache {
    pub(crate) fn get(&mut self, cfg: &OperatorClientConfig) -> Result<reqwest::Client, String> {
        let ca = match &cfg.ca_file {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| format!("reading the operator CA {}: {e}", p.display()))?,
            ),
            None => None,
        };
        if let Some((built_ca, client)) = &self.built
            && *built_ca == ca
        {
            return Ok(client.clone());
        }
        // reqwest is built without a default rustls provider; make sure one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("switchyard-dataplane/", env!("CARGO_PKG_VERSION")));
        if let (Some(pem), Some(path)) = (&ca, &cfg.ca_file) {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the operator CA {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "no certificate in the operator CA {}",
                    path.display()
                ));
            }
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .build()
            .map_err(|e| format!("building the operator client: {e}"))?;
        self.built = Some((ca, client.clone()));
        Ok(client)
    }
}

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling from `min`
/// to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    pub(crate) fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d.as_millis() as u64 / 2;
        let jitter = (uuid::Uuid::new_v4().as_u128() as u64) % (half + 1);
        Duration::from_millis(half + jitter).max(self.min)
    }
}

/// Why following the stream stopped.
#[derive(Debug)]
struct Failure {
    /// A short class ("connect", "http 401", "stream ended", …): a change of class is logged.
    kind: String,
    message: String,
}

impl Failure {
    fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// Logs link state changes once, not every retry.
#[derive(Debug, Default)]
struct Link {
    connected: bool,
    failing_kind: Option<String>,
    failures: u64,
}

impl Link {
    fn connected(&mut self, url: &str) {
        if !self.connected {
            tracing::info!(operator = %url, failed_attempts = self.failures, "following the operator's snapshot stream");
        }
        self.connected = true;
        self.failing_kind = None;
        self.failures = 0;
    }

    fn failed(&mut self, f: &Failure, state: &AppState) {
        self.failures += 1;
        let was_connected = std::mem::take(&mut self.connected);
        if was_connected || self.failing_kind.as_deref() != Some(f.kind.as_str()) {
            let table = state.table();
            let serving = if state.is_ready() {
                table.version()
            } else {
                "none"
            };
            tracing::warn!(
                error = %f.message,
                serving = %serving,
                "operator snapshot stream unavailable; retrying with backoff and keeping the snapshot in force"
            );
            // After losing the stream, failing to connect is the expected next state: only
            // another kind of failure (a refusal, a TLS problem) is worth a new line.
            self.failing_kind = Some(if was_connected {
                "connect".into()
            } else {
                f.kind.clone()
            });
        } else {
            tracing::debug!(error = %f.message, attempt = self.failures, "operator snapshot stream still unavailable");
        }
    }
}

/// Follows the operator's snapshot stream until the task is dropped: applies each verified
/// snapshot, reconnects on any failure with backoff (100 ms … 10 s, jittered), and never drops
/// the snapshot in force.
pub async fn run_snapshot_client(state: Arc<AppState>, cfg: OperatorClientConfig) {
    let mut clients = ClientCache::default();
    let mut link = Link::default();
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    loop {
        let mut got_frame = false;
        let f = follow(&state, &cfg, &mut clients, &mut link, &mut got_frame).await;
        if got_frame {
            backoff.reset();
        }
        link.failed(&f, &state);
        tokio::time::sleep(backoff.delay()).await;
    }
}

/// One connection: returns why it ended.
async fn follow(
    state: &Arc<AppState>,
    cfg: &OperatorClientConfig,
    clients: &mut ClientCache,
    link: &mut Link,
    got_frame: &mut bool,
) -> Failure {
    let client = match clients.get(cfg) {
        Ok(c) => c,
        Err(e) => return Failure::new("setup", e),
    };
    let auth = match read_token(&cfg.token_file) {
        Ok(t) => t,
        Err(e) => return Failure::new("token", e),
    };
    let url = cfg.endpoint(STREAM_PATH);
    let mut target = match reqwest::Url::parse(&url) {
        Ok(u) => u,
        Err(e) => return Failure::new("setup", format!("--operator {}: {e}", cfg.url)),
    };
    let have = state.is_ready().then(|| state.table().version().to_owned());
    if let Some(v) = &have {
        target.query_pairs_mut().append_pair("have", v);
    }
    let mut req = client
        .get(target)
        .header(AUTHORIZATION, auth)
        .header(ACCEPT, NDJSON);
    if let Some(v) = have.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        req = req.header(HAVE_HEADER, v);
    }
    if let Some(i) = &cfg.instance {
        req = req.header(INSTANCE_HEADER, i.as_str());
    }
    let mut resp = match tokio::time::timeout(cfg.idle_timeout, req.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Failure::new(
                "connect",
                format!("connecting to {url}: {}", error_chain(&e)),
            );
        }
        Err(_) => return Failure::new("connect", format!("connecting to {url}: timed out")),
    };
    let status = resp.status();
    if !status.is_success() {
        let body = tokio::time::timeout(Duration::from_secs(5), resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return Failure::new(
            format!("http {}", status.as_u16()),
            format!("{url} answered {status}: {}", excerpt(&body)),
        );
    }
    link.connected(&cfg.url);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(cfg.idle_timeout, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => {
                return Failure::new("stream ended", "the operator closed the snapshot stream");
            }
            Ok(Err(e)) => {
                return Failure::new(
                    "stream broken",
                    format!("reading the snapshot stream: {}", error_chain(&e)),
                );
            }
            Err(_) => {
                return Failure::new(
                    "idle",
                    format!(
                        "nothing from the operator for {} s",
                        cfg.idle_timeout.as_secs()
                    ),
                );
            }
        };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            *got_frame = true;
            handle_frame(state, line).await;
        }
        if buf.len() > MAX_FRAME_BYTES {
            return Failure::new(
                "frame too large",
                format!("a snapshot stream frame exceeds {MAX_FRAME_BYTES} bytes"),
            );
        }
    }
}

async fn handle_frame(state: &Arc<AppState>, line: &[u8]) {
    let frame: Frame = match serde_json::from_slice(line) {
        Ok(f) => f,
        Err(e) => {
            state.metrics.snapshots_rejected.inc();
            tracing::error!(error = %e, "unreadable frame on the snapshot stream; keeping the snapshot in force");
            return;
        }
    };
    match frame {
        Frame::Snapshot { snapshot } => {
            let state = state.clone();
            // Hashing and building the table are CPU work: off the async threads.
            let applied = tokio::task::spawn_blocking(move || {
                if !snapshot.verify() {
                    state.metrics.snapshots_rejected.inc();
                    tracing::error!(
                        version = %snapshot.version,
                        "snapshot from the operator does not match its version hash; keeping the previous one"
                    );
                    return;
                }
                // `apply` keeps the previous table (and logs) when the new one does not build.
                let _ = state.apply(*snapshot);
            })
            .await;
            if let Err(e) = applied {
                tracing::error!(error = %e, "applying a snapshot failed");
            }
        }
        Frame::Heartbeat { version } => {
            tracing::trace!(
                operator_version = version.as_deref().unwrap_or("none"),
                "operator heartbeat"
            );
        }
        Frame::Unknown => tracing::debug!("unknown frame type on the snapshot stream; ignored"),
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

pub(crate) fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_owned(),
    }
}

/// Ships spool batches to the operator's `POST /v1/records`. Non-2xx answers and transport
/// errors fail the batch (the spool keeps it and retries). A 413 splits the batch; a single
/// record the operator still refuses as too large is dropped with an error log rather than
/// blocking the spool forever.
#[derive(Debug)]
pub struct HttpShipper {
    cfg: OperatorClientConfig,
    clients: Mutex<ClientCache>,
}

impl HttpShipper {
    /// A shipper for the operator at `cfg.url`.
    pub fn new(cfg: OperatorClientConfig) -> Self {
        Self {
            cfg,
            clients: Mutex::new(ClientCache::default()),
        }
    }

    async fn post(&self, batch: &[&[u8]]) -> Result<(), (Option<StatusCode>, String)> {
        let client = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.cfg)
            .map_err(|e| (None, e))?;
        post_json(&client, &self.cfg, RECORDS_PATH, json_array(batch)).await
    }
}

/// POSTs a JSON body to the operator at `path` with the bearer token (read now) and the
/// instance header. A non-2xx answer is an error with its status and a body excerpt; the
/// token never appears in an error.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    cfg: &OperatorClientConfig,
    path: &str,
    body: Vec<u8>,
) -> Result<(), (Option<StatusCode>, String)> {
    let auth = read_token(&cfg.token_file).map_err(|e| (None, e))?;
    let url = cfg.endpoint(path);
    let mut req = client
        .post(&url)
        .timeout(cfg.request_timeout)
        .header(AUTHORIZATION, auth)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(i) = &cfg.instance {
        req = req.header(INSTANCE_HEADER, i.as_str());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| (None, format!("posting to {url}: {}", error_chain(&e))))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    Err((
        Some(status),
        format!("{url} answered {status}: {}", excerpt(&text)),
    ))
}

impl Shipper for HttpShipper {
    fn ship<'a>(&'a self, batch: &'a [&'a [u8]]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut pending: Vec<&[&[u8]]> = vec![batch];
            while let Some(part) = pending.pop() {
                if part.is_empty() {
                    continue;
                }
                match self.post(part).await {
                    Ok(()) => {}
                    Err((Some(StatusCode::PAYLOAD_TOO_LARGE), _)) if part.len() > 1 => {
                        let (a, b) = part.split_at(part.len() / 2);
                        pending.push(b);
                        pending.push(a);
                    }
                    Err((Some(StatusCode::PAYLOAD_TOO_LARGE), e)) => {
                        let id = part.first().map(|r| record_id(r)).unwrap_or_default();
                        tracing::error!(record = %id, error = %e, "the operator refuses this record as too large; dropping it");
                    }
                    Err((_, e)) => return Err(e),
                }
            }
            Ok(())
        })
    }
}

/// A JSON array of records that are each a JSON object already.
fn json_array(records: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(r);
    }
    body.push(b']');
    body
}

/// The id of a stored record, for a log line.
fn record_id(record: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(record)
        .map(|r| r.id)
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let delays: Vec<Duration> = (0..12).map(|_| b.delay()).collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(100));
        assert!(delays[1] >= Duration::from_millis(100) && delays[1] <= Duration::from_millis(200));
        assert!(delays[3] >= Duration::from_millis(400) && delays[3] <= Duration::from_millis(800));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(10)));
        assert!(delays[11] >= Duration::from_secs(5), "{delays:?}");
        b.reset();
        assert_eq!(b.delay(), Duration::from_millis(100));
    }

    #[test]
    fn token_files_are_trimmed_and_marked_sensitive() {
        let dir = std::env::temp_dir().join(format!("sy-token-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("token");
        std::fs::write(&p, "abc.def\n").unwrap();
        let v = read_token(&p).unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer abc.def");
        assert!(v.is_sensitive());
        std::fs::write(&p, "  \n").unwrap();
        assert!(read_token(&p).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
