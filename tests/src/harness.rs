//! Starting a real data plane for a test: the same `start()` the binary runs, on port 0, over a
//! temporary manifests folder, with a spool and a local record store in the same folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use switchyard_dataplane::config::{Config, LogFormat};
use switchyard_dataplane::record::Interception;

/// A temporary folder removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder under the system temp dir.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running data plane.
#[derive(Debug)]
pub struct Gateway {
    running: Option<switchyard_dataplane::Running>,
    /// Listening address (the API).
    pub addr: SocketAddr,
    /// Address of health and metrics (`--admin-listen`).
    pub admin_addr: SocketAddr,
    dir: TempDir,
    http: reqwest::Client,
}

/// Options for [`Gateway::start_with`].
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Largest request body.
    pub max_body_bytes: Option<usize>,
    /// Require gateway keys.
    pub require_client_key: bool,
    /// Largest body kept for retries.
    pub retry_buffer_bytes: Option<usize>,
    /// Backend wait queue length.
    pub queue_length: Option<u32>,
    /// Backend wait queue timeout, ms.
    pub queue_timeout_ms: Option<u64>,
    /// Time to send a request head, ms.
    pub header_timeout_ms: Option<u64>,
    /// Time to send a request body, ms.
    pub body_timeout_ms: Option<u64>,
    /// Responses kept per workspace by the Responses API store.
    pub response_store_entries: Option<usize>,
}

impl Gateway {
    /// Starts a data plane over `manifests` (file name, YAML text) and waits until it is ready.
    pub async fn start(manifests: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_with(manifests, GatewayOptions::default()).await
    }

    /// Like [`Gateway::start`], with options.
    pub async fn start_with(
        manifests: &[(&str, &str)],
        options: GatewayOptions,
    ) -> anyhow::Result<Self> {
        // The data plane's upstream client uses rustls without a built-in provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = TempDir::new("switchyard-gw")?;
        let mdir = dir.path().join("manifests");
        std::fs::create_dir_all(&mdir)?;
        for (name, text) in manifests {
            std::fs::write(mdir.join(name), text)?;
        }
        // Every flag at its default (as the binary would have it), then the test's choices.
        let mut config = <Config as clap::Parser>::try_parse_from(["switchyard-dataplane"])?;
        config.listen = "127.0.0.1:0".parse()?;
        config.admin_listen = "127.0.0.1:0".parse()?;
        config.manifests = Some(mdir);
        config.watch_interval_ms = 20;
        config.spool_dir = Some(dir.path().join("spool"));
        config.spool_max_bytes = 64 << 20;
        config.records_file = Some(dir.path().join("records.jsonl"));
        config.max_body_bytes = options.max_body_bytes.unwrap_or(32 << 20);
        config.require_client_key = options.require_client_key;
        config.connect_timeout_ms = 2_000;
        config.drain_timeout_ms = 5_000;
        config.log_format = LogFormat::Plain;
        if let Some(n) = options.retry_buffer_bytes {
            config.retry_buffer_bytes = n;
        }
        config.queue_length = options.queue_length;
        if let Some(ms) = options.queue_timeout_ms {
            config.queue_timeout_ms = ms;
        }
        if let Some(ms) = options.header_timeout_ms {
            config.header_timeout_ms = ms;
        }
        if let Some(ms) = options.body_timeout_ms {
            config.body_timeout_ms = ms;
        }
        if let Some(n) = options.response_store_entries {
            config.response_store_entries = n;
        }
        let running = switchyard_dataplane::start(config).await?;
        let (addr, admin_addr) = (running.addr, running.admin_addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !running.state.is_ready() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "data plane not ready within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Self {
            running: Some(running),
            addr,
            admin_addr,
            dir,
            http: client(),
        })
    }

    /// The HTTP client the harness uses (for calls made from spawned tasks).
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://ADMIN_ADDR/PATH`: health and metrics.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    /// The running data plane.
    pub fn running(&self) -> &switchyard_dataplane::Running {
        // Present until `stop` consumes self.
        self.running
            .as_ref()
            .unwrap_or_else(|| unreachable!("gateway already stopped"))
    }

    /// The snapshot version in force.
    pub fn version(&self) -> String {
        self.running().state.table().version().to_owned()
    }

    /// Writes (or replaces) a manifest file and waits until a new snapshot is in force.
    pub async fn write_manifest(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let before = self.version();
        let path = self.dir.path().join("manifests").join(name);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.version() == before {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no new snapshot within 10 s after writing {name}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Records shipped to the local record store so far.
    pub fn records(&self) -> anyhow::Result<Vec<Interception>> {
        let path = self.dir.path().join("records.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).context("reading records"),
        };
        complete_lines(&text)
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).context("parsing a record"))
            .collect()
    }

    /// Waits until at least `n` records were shipped.
    pub async fn wait_records(&self, n: usize) -> anyhow::Result<Vec<Interception>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.records()?;
            if r.len() >= n {
                return Ok(r);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {n} records after 10 s",
                r.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The record of one request, by `x-request-id`.
    pub async fn record_of(&self, request_id: &str) -> anyhow::Result<Interception> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self
                .records()?
                .into_iter()
                .find(|r| r.request_id == request_id)
            {
                return Ok(r);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no record for request {request_id} after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> String {
        switchyard_dataplane::metrics::encode(&self.running().state.registry)
    }

    /// Graceful shutdown (drain, flush the spool), keeping the records readable.
    pub async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Graceful shutdown (drain, flush the spool).
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

impl Gateway {
    /// Starts a data plane over one manifest file holding `objects` (see [`manifests`]).
    pub async fn start_objects(objects: &[Value]) -> anyhow::Result<Self> {
        Self::start_objects_with(objects, GatewayOptions::default()).await
    }

    /// Like [`Gateway::start_objects`], with options.
    pub async fn start_objects_with(
        objects: &[Value],
        options: GatewayOptions,
    ) -> anyhow::Result<Self> {
        let text = manifests::documents(objects);
        Self::start_with(&[(manifests::FILE, text.as_str())], options).await
    }

    /// Replaces the manifest file written by [`Gateway::start_objects`] and waits for the new
    /// snapshot.
    pub async fn replace_objects(&self, objects: &[Value]) -> anyhow::Result<()> {
        self.write_manifest(manifests::FILE, &manifests::documents(objects))
            .await
    }

    /// Snapshots (or manifest folders) refused so far.
    pub fn rejected_snapshots(&self) -> u64 {
        self.running().state.metrics.snapshots_rejected.get()
    }

    /// Writes a manifest file that must be refused, and waits until the data plane refused it
    /// (the refusal counter moved). Fails if a new snapshot was applied instead.
    pub async fn write_bad_manifest(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let before = self.rejected_snapshots();
        let version = self.version();
        let path = self.dir.path().join("manifests").join(name);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.rejected_snapshots() == before {
            anyhow::ensure!(
                self.version() == version,
                "{name} was accepted: a new snapshot is in force"
            );
            anyhow::ensure!(
                Instant::now() < deadline,
                "{name} was not refused within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// The spool folder (segments waiting to be shipped).
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// The local record store (JSON lines).
    pub fn records_path(&self) -> PathBuf {
        self.dir.path().join("records.jsonl")
    }

    /// The text of every spool segment present now.
    pub fn spool_text(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.spool_dir()) {
            for e in entries.flatten() {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    out.push_str(&t);
                }
            }
        }
        out
    }

    /// Waits for the record of `request_id`, then a little longer, and returns every record of
    /// that request (to check that there is exactly one).
    pub async fn records_of(&self, request_id: &str) -> anyhow::Result<Vec<Interception>> {
        self.record_of(request_id).await?;
        // The spool writes a segment and ships every 200 ms: past one more round of both, a
        // duplicate finished together with this record would have arrived.
        tokio::time::sleep(Duration::from_millis(450)).await;
        Ok(self
            .records()?
            .into_iter()
            .filter(|r| r.request_id == request_id)
            .collect())
    }

    /// Waits one shipping round, then returns every record, failing if a request id appears
    /// more than once (each request must have exactly one record; check that each has one with
    /// [`Gateway::record_of`]).
    pub async fn unique_records(&self) -> anyhow::Result<Vec<Interception>> {
        tokio::time::sleep(Duration::from_millis(450)).await;
        let records = self.records()?;
        let mut seen = std::collections::BTreeSet::new();
        for r in &records {
            anyhow::ensure!(
                seen.insert(r.request_id.as_str()),
                "request {} has several records",
                r.request_id
            );
        }
        Ok(records)
    }

    /// `POST path` with a JSON body and a fresh `x-request-id`.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.post_with(path, body, &[]).await
    }

    /// `POST path` with a JSON body and extra headers (a fresh `x-request-id` unless given).
    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        self.post_raw(path, serde_json::to_vec(body)?, headers)
            .await
    }

    /// `POST path` with raw bytes (sent as `application/json`).
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        req = with_headers(req, headers);
        Answer::read(req.send().await?).await
    }

    /// `GET path` with extra headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Answer> {
        let req = with_headers(self.http.get(self.url(path)), headers);
        Answer::read(req.send().await?).await
    }

    /// `GET path` on the admin listener (health and metrics).
    pub async fn get_admin(&self, path: &str) -> anyhow::Result<Answer> {
        Answer::read(self.http.get(self.admin_url(path)).send().await?).await
    }

    /// `POST path` returning the response unread (for reading a stream piece by piece).
    pub async fn open(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        let req = with_headers(self.http.post(self.url(path)).json(body), headers);
        Ok(req.send().await?)
    }
}

fn with_headers(
    mut req: reqwest::RequestBuilder,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
    {
        req = req.header("x-request-id", uuid::Uuid::new_v4().to_string());
    }
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req
}

/// A data plane as a process of its own (for resident-memory measurements), over one
/// manifest file holding `objects`; killed on drop.
#[derive(Debug)]
pub struct DataplaneProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `http://127.0.0.1:PORT` of health and metrics.
    pub admin_url: String,
    _dir: TempDir,
}

impl DataplaneProcess {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_run-dataplane")`) and waits until it is
    /// ready.
    pub async fn start(binary: &str, objects: &[Value]) -> anyhow::Result<Self> {
        let dir = TempDir::new("switchyard-dp-process")?;
        let mdir = dir.path().join("manifests");
        std::fs::create_dir_all(&mdir)?;
        std::fs::write(mdir.join("s.yaml"), manifests::documents(objects))?;
        let log_path = dir.path().join("dataplane.log");
        let log = std::fs::File::create(&log_path)?;
        // Port 0 and the addresses read from the log: a port picked here and bound by the child
        // later could be taken in between (by a connection of a test running beside this one).
        let child = std::process::Command::new(binary)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--manifests",
                &mdir.display().to_string(),
                "--spool-dir",
                &dir.path().join("spool").display().to_string(),
            ])
            .stdout(std::process::Stdio::from(log.try_clone()?))
            .stderr(std::process::Stdio::from(log))
            .spawn()?;
        let mut me = Self {
            child,
            base_url: String::new(),
            admin_url: String::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let [addr, admin] = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(found) = logged_addrs(&text, "data plane listening", ["addr", "admin_addr"])
            {
                break found;
            }
            if let Some(status) = me.child.try_wait()? {
                anyhow::bail!("the data plane exited ({status}): {text}");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "data plane not listening in 20 s: {text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        me.base_url = format!("http://{addr}");
        me.admin_url = format!("http://{admin}");
        let client = client();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", me.admin_url)).send().await
                && r.status().is_success()
            {
                return Ok(me);
            }
            anyhow::ensure!(Instant::now() < deadline, "data plane not ready in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for DataplaneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The socket addresses in fields `keys` of the first JSON log line (`--log-format json`) whose
/// message starts with `message`: how a test learns the ports a process bound to port 0.
pub fn logged_addrs<const N: usize>(
    log: &str,
    message: &str,
    keys: [&str; N],
) -> Option<[std::net::SocketAddr; N]> {
    complete_lines(log).find_map(|line| {
        let v: Value = serde_json::from_str(line).ok()?;
        let fields = v.get("fields")?;
        if !fields.get("message")?.as_str()?.starts_with(message) {
            return None;
        }
        let mut out = [std::net::SocketAddr::from(([0, 0, 0, 0], 0)); N];
        for (slot, key) in out.iter_mut().zip(keys) {
            *slot = fields.get(key)?.as_str()?.parse().ok()?;
        }
        Some(out)
    })
}

/// Starts the mock upstream binary (`env!("CARGO_BIN_EXE_run-mock-upstream")` of a test) on a
/// port of its choosing with `args` added, and returns it and its base URL (`http://…`), read
/// from the line it prints once it listens.
pub fn spawn_mock_upstream(binary: &str, args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(binary)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap_or_else(|| unreachable!("piped"));
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("reading the mock's first line: {e}"));
    let url = line
        .trim()
        .strip_prefix("switchyard-mock-upstream listening on ")
        .unwrap_or_else(|| panic!("unexpected first line of the mock: {line:?}"))
        .to_owned();
    (child, url)
}

/// Resident memory of a process, KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The complete lines of a file another process appends to: an unterminated last line is
/// a write still under way (read on the next look), not a damaged record.
pub fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end].lines()
}

/// An HTTP client for tests (installs the ring TLS provider once).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub text: String,
}

impl Answer {
    /// Reads a response whole.
    pub async fn read(resp: reqwest::Response) -> anyhow::Result<Self> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        Ok(Self {
            status,
            headers,
            text,
        })
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `x-request-id`.
    pub fn request_id(&self) -> String {
        self.header("x-request-id").unwrap_or_default().to_owned()
    }

    /// `x-switchyard-route`.
    pub fn route(&self) -> String {
        self.header("x-switchyard-route")
            .unwrap_or_default()
            .to_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.text)
            .with_context(|| format!("body is not JSON (status {}): {}", self.status, self.text))
    }

    /// The OpenAI-style stream: JSON payloads of `data:` lines and whether `[DONE]` ended it.
    pub fn sse_data(&self) -> anyhow::Result<(Vec<Value>, bool)> {
        sse_data(&self.text)
    }

    /// The Anthropic-style stream: `(event name, data)` of each frame.
    pub fn sse_events(&self) -> anyhow::Result<Vec<(String, Value)>> {
        sse_events(&self.text)
    }
}

/// JSON payloads of the `data:` lines of an SSE text and whether it ended with `[DONE]` (which
/// must be the last frame). Frames must be separated by blank lines.
pub fn sse_data(text: &str) -> anyhow::Result<(Vec<Value>, bool)> {
    let mut out = Vec::new();
    let mut done = false;
    for frame in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        anyhow::ensure!(!done, "a frame after [DONE]: {frame:?}");
        let data = frame
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .with_context(|| format!("frame without data: {frame:?}"))?;
        if data == "[DONE]" {
            done = true;
        } else {
            out.push(serde_json::from_str(data).with_context(|| format!("frame data: {data}"))?);
        }
    }
    Ok((out, done))
}

/// `(event name, data)` of each frame of an Anthropic-style SSE text.
pub fn sse_events(text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    anyhow::ensure!(
        text.ends_with("\n\n"),
        "stream does not end with a blank line: {text:?}"
    );
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let event = frame
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(str::trim)
                .with_context(|| format!("frame without event: {frame:?}"))?;
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .with_context(|| format!("frame without data: {frame:?}"))?;
            Ok((event.to_owned(), serde_json::from_str(data)?))
        })
        .collect()
}

/// The text of an OpenAI chat stream (concatenated `delta.content`).
pub fn openai_stream_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}

/// The text of an Anthropic stream (concatenated `text_delta`s).
pub fn anthropic_stream_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .filter_map(|(_, v)| v.pointer("/delta/text").and_then(Value::as_str))
        .collect()
}

/// Builders of Switchyard manifests as JSON values (JSON is YAML, so the files the data plane
/// reads are the JSON documents separated by `---`). Every object lands in the `default`
/// namespace. Change any field afterwards with `v["spec"]["…"] = json!(…)`.
pub mod manifests {
    use serde_json::{Value, json};

    /// File name used by [`super::Gateway::start_objects`].
    pub const FILE: &str = "switchyard.yaml";

    const API: &str = "switchyard.dev/v1alpha1";

    /// The text of a manifest file holding `objects`.
    pub fn documents(objects: &[Value]) -> String {
        objects
            .iter()
            .map(|o| serde_json::to_string_pretty(o).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    fn object(kind: &str, name: &str, spec: Value) -> Value {
        json!({"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec})
    }

    /// A Secret with string data.
    pub fn secret(name: &str, data: &[(&str, &str)]) -> Value {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "stringData": data})
    }

    fn models(models: &[&str]) -> Value {
        Value::Array(
            models
                .iter()
                .map(|m| json!({"name": m, "capabilities": {"chat": true, "completions": true, "embeddings": true, "streaming": true, "tools": true, "vision": true}}))
                .collect(),
        )
    }

    /// A Provider with `auth: none`.
    pub fn provider(name: &str, type_: &str, endpoint: &str, declared: &[&str]) -> Value {
        object(
            "Provider",
            name,
            json!({"type": type_, "endpoint": endpoint, "auth": {"type": "none"}, "models": models(declared)}),
        )
    }

    /// `auth: api_key` from a Secret key.
    pub fn api_key(mut provider: Value, secret: &str, key: &str) -> Value {
        provider["spec"]["auth"] =
            json!({"type": "api_key", "secretRef": {"name": secret, "key": key}});
        provider
    }

    /// `auth: passthrough`.
    pub fn passthrough(mut provider: Value) -> Value {
        provider["spec"]["auth"] = json!({"type": "passthrough"});
        provider
    }

    /// Prices of a declared model (per 1M tokens).
    pub fn priced(mut provider: Value, model: &str, pricing: Value) -> Value {
        if let Some(list) = provider["spec"]["models"].as_array_mut() {
            for m in list.iter_mut().filter(|m| m["name"] == model) {
                m["pricing"] = pricing.clone();
            }
        }
        provider
    }

    /// A Backend by URL.
    pub fn backend(name: &str, type_: &str, base_url: &str, declared: &[&str]) -> Value {
        object(
            "Backend",
            name,
            json!({"type": type_, "baseUrl": base_url, "models": models(declared)}),
        )
    }

    /// An AffinityGroup listing its backends.
    pub fn affinity_group(
        name: &str,
        strategy: &str,
        backends: &[&str],
        group_models: &[&str],
    ) -> Value {
        object(
            "AffinityGroup",
            name,
            json!({"purpose": "chat", "backends": backends, "models": group_models, "loadBalancing": {"strategy": strategy}}),
        )
    }

    /// A Workspace.
    pub fn workspace(name: &str, default: bool) -> Value {
        object("Workspace", name, json!({"default": default}))
    }

    /// Binds a gateway API key (from a Secret) to a workspace.
    pub fn client_key(mut workspace: Value, caller: &str, secret: &str, key: &str) -> Value {
        let entry = json!({"name": caller, "secretRef": {"name": secret, "key": key}});
        match workspace["spec"]["clients"]["apiKeys"].as_array_mut() {
            Some(list) => list.push(entry),
            None => workspace["spec"]["clients"] = json!({"apiKeys": [entry]}),
        }
        workspace
    }

    /// Guardrail actions of a workspace.
    pub fn guardrails(mut workspace: Value, secrets: &str, pii: &str) -> Value {
        workspace["spec"]["guardrails"] = json!({"secrets": secrets, "pii": pii});
        workspace
    }

    /// A route target: `providerRef`, `backendRef` or `affinityGroupRef`, with an optional model.
    pub fn target(kind: &str, name: &str, model: Option<&str>) -> Value {
        let mut t = json!({ kind: name });
        if let Some(m) = model {
            t["model"] = json!(m);
        }
        t
    }

    /// A provider target.
    pub fn to_provider(name: &str, model: Option<&str>) -> Value {
        target("providerRef", name, model)
    }

    /// A MuxRule.
    pub fn mux_rule(
        name: &str,
        workspace: &str,
        priority: i32,
        matcher: &str,
        pattern: Option<&str>,
        target: Value,
    ) -> Value {
        let mut m = json!({"type": matcher});
        if let Some(p) = pattern {
            m["pattern"] = json!(p);
        }
        object(
            "MuxRule",
            name,
            json!({"workspaceRef": workspace, "priority": priority, "matcher": m, "target": target}),
        )
    }

    /// A RouterPolicy.
    pub fn router_policy(
        name: &str,
        priority: i32,
        matching: Value,
        route_to: Value,
        fallback: Vec<Value>,
    ) -> Value {
        object(
            "RouterPolicy",
            name,
            json!({"priority": priority, "enabled": true, "match": matching, "routeTo": route_to, "fallback": fallback}),
        )
    }

    /// A TaskChain with this spec.
    pub fn task_chain_with(name: &str, spec: Value) -> Value {
        object("TaskChain", name, spec)
    }

    /// A one-step TaskChain (listed as `chain/NAME` by `/v1/models`).
    pub fn task_chain(name: &str, model: &str) -> Value {
        object(
            "TaskChain",
            name,
            json!({"tasks": [{"id": "ask", "handler": "model_execution", "execute": {"model": model}}]}),
        )
    }
}
