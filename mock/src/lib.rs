//! The mock LLM upstream: OpenAI, Anthropic and Ollama dialects with deterministic replies and
//! token usage, plus scripted latency, errors, resets, mid-stream cuts and error events. It drives
//! the integration tests, is the baseline of the benchmarks (the `switchyard-mock-upstream`
//! binary, [`cli`]) and backs the local quickstart (`switchyard-dataplane --demo`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
//! let mock = MockUpstream::start("127.0.0.1:0".parse()?).await?;
//! // The next request for a `demo-*` model gets a 503 (with `Retry-After: 1`).
//! mock.script(
//!     ScriptRule::new(Behavior { status: Some(503), ..Default::default() })
//!         .model("demo-*")
//!         .times(1),
//! );
//! let chat_url = format!("{}/v1/chat/completions", mock.base_url());
//! # let _ = chat_url;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! | method and path | dialect |
//! |---|---|
//! | `POST /v1/chat/completions` | OpenAI chat (stream and non-stream, tool calls) |
//! | `POST /v1/completions` | OpenAI legacy completions; FIM when `suffix` is present |
//! | `POST /v1/embeddings` | OpenAI embeddings (`encoding_format: "base64"` supported) |
//! | `GET /v1/models`, `GET /v1/models/{id}` | OpenAI model list (Anthropic shape when the request has `anthropic-version`) |
//! | `POST /v1/messages` | Anthropic messages (stream and non-stream, tool use, thinking, cache tokens) |
//! | `POST /v1/messages/count_tokens` | Anthropic token count `{"input_tokens": N}`: N is what `/v1/messages` reports for the body as `input_tokens` + both cache numbers (needs `model` and `messages`) |
//! | `POST /v1/responses` | OpenAI Responses API (stream and non-stream, function calls, reasoning items, `previous_response_id`); rules in `responses.rs` |
//! | `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}` | the responses the mock stored (the last [`MockConfig::response_capacity`], default 256) |
//! | `GET /api/tags`, `POST /api/show`, `POST /api/chat`, `GET /api/version` | Ollama (its OpenAI-compatible `/v1/...` is the OpenAI dialect above) |
//! | `GET /`, `GET /health` | `mock upstream is running` |
//! | `/_mock/...` | control API, see below |
//!
//! Malformed JSON, a missing `model`/`messages` (Anthropic: also `max_tokens`) get a 400 in the
//! dialect's error shape; unknown paths a 404 and wrong methods a 405, also in the dialect's
//! shape (`/v1/messages*` Anthropic, `/api/*` Ollama, everything else OpenAI).
//!
//! Authentication: with [`MockConfig::require_key`] (`--require-key`) the OpenAI dialect needs
//! `Authorization: Bearer KEY`, else 401 `{"error":{"message":…,"type":"invalid_request_error",
//! "param":null,"code":"invalid_api_key"}}`. Anthropic endpoints always need an
//! `anthropic-version` header (else 400 `invalid_request_error`) and, with
//! [`MockConfig::anthropic_key`] (`--anthropic-key`), `x-api-key: KEY` (else 401
//! `{"type":"error","error":{"type":"authentication_error","message":…}}`). Ollama endpoints
//! and `/_mock/*` need nothing. The key check comes before the version check.
//!
//! # Deterministic replies and usage
//!
//! - **Words** are `str::split_whitespace` words.
//! - **Message text** is a string `content`, or the `text` of every part/block of an array
//!   `content` (images, `tool_use` blocks and OpenAI `tool_calls` count nothing). Anthropic
//!   `tool_result` blocks count their own content the same way.
//! - **Input tokens** = words of the text of every message (all roles) plus the system prompt
//!   (Anthropic `system`). Legacy completions: words of `prompt` (string or array) plus `suffix`.
//!   Embeddings: words of each input (a token array counts its length). Anthropic: minus the
//!   cache tokens (below), as Anthropic reports them. OpenAI `prompt_tokens` includes
//!   `cached_tokens`, as OpenAI does.
//! - **Reply text** = `mock reply: ` + the first 8 words of the last message with role `user`
//!   (Anthropic: tool_result content included; OpenAI chat: when the conversation ends with
//!   `tool` messages, system messages after them passed over, their content instead; legacy
//!   completions: the prompt), or just
//!   `mock reply:` when it has no text. Fill-in-the-middle (`suffix` present): `<fim>`. The
//!   `reply` behaviour replaces the text.
//! - **Padding**: with `chunks=N` the reply is padded with `lorem` words to at least N words.
//! - **Max tokens** (`max_tokens`, `max_completion_tokens`, Ollama `options.num_predict`)
//!   truncate the reply to that many words: finish reason `length` / stop reason `max_tokens` /
//!   Ollama `done_reason: "length"`.
//! - **Stop sequences** (`stop`, Anthropic `stop_sequences`, Ollama `options.stop`) cut the text
//!   before their first occurrence: `stop` / `stop_sequence` (with `stop_sequence` set).
//! - **Output tokens** = words of the reply text (+ words of the tool-call arguments when there
//!   is a tool call, + words of the thinking text for Anthropic thinking). An OpenAI/Ollama tool
//!   call has no text, so its output tokens are the argument words only.
//! - **Stream deltas**: one word per delta (the first without a leading space, the others with
//!   one); with `chunks=N` the words are grouped into exactly N deltas (as even as possible).
//!   Concatenating the deltas gives the non-stream text.
//! - **Tool calls**: when the request has a non-empty `tools` array and its *last* message
//!   (`system`/`developer` messages after it passed over) is a `user` message whose text (tool results excluded) contains `call tool NAME`, or when the
//!   `tool_call` behaviour (`x-mock-tool-call: NAME`) is set, the reply calls `NAME` with
//!   arguments `{"q":"<first 8 words of the last user message>"}` (compact JSON), or, when the
//!   trigger reads `call tool NAME with {JSON object}`, that object (compact; so a real agent's
//!   built-in tool can be driven, e.g. `call tool Bash with {"command":"echo hi"}`). OpenAI: content
//!   `null`, `tool_calls[0]` with id `call_mock_<request id>`, finish reason `tool_calls`;
//!   streamed as a first delta with role, index 0, id, type and function name (arguments `""`),
//!   then argument fragments (about 8 bytes each, or `chunks` fragments). Anthropic: the text
//!   block, then a `tool_use` block `toolu_mock_<request id>` (streamed as `input_json_delta`
//!   fragments), stop reason `tool_use`. Ollama: `message.tool_calls[0].function`
//!   `{name, arguments: {"q": …}}`.
//! - **Anthropic thinking** (`thinking: {"type": "enabled"}`): a first `thinking` block with text
//!   `mock thinking: ` + the first 8 words of the last user message and signature
//!   `mock-signature-<16 hex digits>`; streamed as one `thinking_delta` per word and a
//!   `signature_delta`.
//! - **Anthropic cache tokens**: when any `system` block, message content block or tool has
//!   `cache_control`, the cached prefix is the words of the system blocks and message blocks up
//!   to and including the last block with `cache_control` (tools count no words). The first
//!   request whose system prompt text has a given hash reports that many
//!   `cache_creation_input_tokens`; later ones report them as `cache_read_input_tokens`.
//!   `input_tokens` excludes both. The `cache_read`/`cache_write` behaviours override the numbers
//!   (and also set OpenAI `prompt_tokens_details.cached_tokens` = `cache_read`).
//! - **Embeddings**: 8 floats, the unit vector of `splitmix64(fnv1a(text) ^ i·φ)` mapped to
//!   \[-1, 1), per input; `usage.prompt_tokens = total_tokens` = input words.
//! - **Ids and times**: response ids are `chatcmpl-mock-<id>`, `cmpl-mock-<id>`, `msg_mock_<id>`,
//!   `resp_mock_<id>` (its items `msg_mock_<id>`, `fc_mock_<id>`/`call_mock_<id>`, `rs_mock_<id>`)
//!   where `<id>` is the request id (also sent as the `x-mock-request-id` response header and in
//!   [`RecordedRequest::id`]); `created` is the current Unix time; Ollama timestamps are fixed
//!   (`2025-01-01T00:00:00Z`).
//!
//! # Scripted behaviour
//!
//! A [`Behavior`] comes from, lowest precedence first: the first matching programmed
//! [`ScriptRule`] that is not used up, directives appended to the model name, `x-mock-*`
//! request headers. The model is echoed without directives.
//!
//! | [`Behavior`] field | header | model directive | effect |
//! |---|---|---|---|
//! | `status` | `x-mock-status` | `+status=503` | answer with this status (>= 400) and the dialect's error body |
//! | `retry_after` | `x-mock-retry-after` | `+retry_after=7` | `Retry-After` seconds on the error (default 1 on 429/503) |
//! | `message` | `x-mock-message` | `+message=text` | the error message |
//! | `latency_ms` | `x-mock-latency-ms` | `+latency=200` | sleep before the response headers |
//! | `chunk_delay_ms` | `x-mock-chunk-delay-ms` | `+chunk_delay=20` | sleep before each streamed delta |
//! | `chunks` | `x-mock-chunks` | `+chunks=20` | number of content deltas |
//! | `cut_after_chunks` | `x-mock-cut-after` | `+cut=3` | stream: abort the connection after N deltas (no final chunk, no `[DONE]`/`message_stop`); non-stream: send half the body, then abort |
//! | `reset_before` | `x-mock-reset` | `+reset` | close the connection without any response byte (after `latency_ms`) |
//! | `error_event` | `x-mock-error-event` | `+error_event` | stream: after `cut_after_chunks` deltas (default 1) send the dialect's error event and end the stream cleanly (Anthropic `event: error` `overloaded_error`; OpenAI `data: {"error":{…"type":"server_error"…}}`; Responses `event: error` then `event: response.failed` with `error.code` `server_error`; Ollama `{"error":…}`); ignored without streaming |
//! | `bytes` | `x-mock-bytes` | `+bytes=50M` | reply with `lorem ` filler of about this many bytes (12 KiB per delta; suffixes k/M/G) |
//! | `cache_read`, `cache_write` | `x-mock-cache-read`, `x-mock-cache-write` | `+cache_read=N`, `+cache_write=N` | cache token numbers |
//! | `tool_call` | `x-mock-tool-call` | `+tool=NAME` | answer with a call to this tool |
//! | `reply` | `x-mock-reply` | `+reply=text` | reply text instead of `mock reply: …` |
//! | `echo_key` | `x-mock-echo-key` | `+echo_key` | the scripted error message (status, error event, error body) ends with `Incorrect API key provided: <the credential received>` |
//! | `error_body` | `x-mock-error-body` | `+error_body` | answer HTTP 200 with the dialect's error body (as OpenRouter and some proxies do) |
//! | `raw_body` | `x-mock-raw-body` | `+raw_body=text` | answer HTTP 200 with exactly this body (`text/event-stream` for stream requests) |
//! | `inject` | `x-mock-inject` | `+inject=text` | stream: send this raw text after the first delta, then go on |
//! | `stall` | `x-mock-stall` | `+stall` | send the 200 head (non-stream: `Content-Length: 1024`), then nothing until the client leaves |
//!
//! Flags (`x-mock-reset`, `x-mock-error-event`, `x-mock-echo-key`, `x-mock-error-body`,
//! `x-mock-stall`) are on for any value except `0`, `false`, `no`,
//! `off`. Directive segments that are not known directives stay part of the model name.
//!
//! Request processing order: record, route (404/405), authentication (401), Anthropic version
//! (400), JSON parse (400), behaviour, `latency_ms`, `reset_before`, `status`, `error_body`,
//! `raw_body`, `stall`, validation (400), answer.
//!
//! # Cancellation
//!
//! When the client goes away while the mock sleeps for `latency_ms` or while it streams (before
//! the last frame was taken), the mock records a [`CancelledRequest`] with the time it noticed
//! ([`MockUpstream::cancelled`], `GET /_mock/cancelled`). Scripted cuts are not cancellations.
//!
//! # Control API
//!
//! `GET /_mock/requests` (recorded requests, oldest first), `DELETE /_mock/requests`,
//! `POST /_mock/script` (a [`ScriptRule`] as JSON, answers `{"id": N}`), `GET /_mock/script`,
//! `DELETE /_mock/script`, `GET /_mock/cancelled`, `DELETE /_mock/cancelled`, `POST /_mock/reset`
//! (everything, including the cache memory and the stored responses), `GET /_mock/health`.
//!
//! The request log keeps the last [`MockConfig::log_capacity`] requests (default 1,000);
//! recording can be switched off ([`MockConfig::record`], `--no-record`) for benchmarks.
//! Connections are HTTP/1.1.

mod answer;
mod anthropic;
mod behavior;
pub mod cli;
mod control;
mod ollama;
mod openai;
mod reply;
mod responses;
mod server;
mod stream;

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::http::{HeaderMap, Method, Uri};
use bytes::Bytes;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use behavior::{Behavior, RuleMatch, ScriptRule};

/// Models listed by default.
pub const DEFAULT_MODELS: [&str; 3] = ["demo-fast", "demo-smart", "mock-model"];

/// Responses API responses kept by default (see [`MockConfig::response_capacity`]).
pub const DEFAULT_RESPONSE_CAPACITY: usize = 256;

/// How a [`MockUpstream`] behaves beyond the per-request scripts.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// OpenAI dialect: require `Authorization: Bearer KEY`.
    pub require_key: Option<String>,
    /// Anthropic dialect: require `x-api-key: KEY`.
    pub anthropic_key: Option<String>,
    /// Record requests (see [`MockUpstream::requests`]).
    pub record: bool,
    /// How many requests the log keeps.
    pub log_capacity: usize,
    /// Model ids listed by `/v1/models` and `/api/tags`.
    pub models: Vec<String>,
    /// How many Responses API responses are kept for `GET /v1/responses/{id}` and
    /// `previous_response_id` (oldest evicted first).
    pub response_capacity: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            require_key: None,
            anthropic_key: None,
            record: true,
            log_capacity: 1000,
            models: DEFAULT_MODELS.iter().map(|m| (*m).to_owned()).collect(),
            response_capacity: DEFAULT_RESPONSE_CAPACITY,
        }
    }
}

/// A request the mock received (control requests under `/_mock/` are not recorded).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The request id, counting from 1 (also the `x-mock-request-id` response header).
    pub id: u64,
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: Option<String>,
    /// Header names are lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The JSON body; `Value::String` with the raw text when it is not JSON; `Null` when empty.
    pub body: Value,
    /// The body as received.
    pub raw_body: Bytes,
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `model` field of the body, as sent (directives included).
    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }
}

/// When the mock noticed that the client went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelPhase {
    /// While sleeping for `latency_ms`, before the response headers.
    Latency,
    /// While streaming the body (headers sent, last frame not yet taken).
    Streaming,
}

/// A request whose client went away before the mock finished answering.
#[derive(Debug, Clone)]
pub struct CancelledRequest {
    /// The request id (see [`RecordedRequest::id`]).
    pub id: u64,
    /// The endpoint, e.g. `/v1/chat/completions`.
    pub path: String,
    pub phase: CancelPhase,
    /// Frames the body stream handed to the server before the client went away.
    pub frames_sent: u64,
    /// When the mock noticed.
    pub at: Instant,
    /// `at` minus when the request was received.
    pub elapsed: Duration,
}

/// A running mock upstream. Dropping it stops the server at once; [`MockUpstream::shutdown`]
/// lets open connections finish (up to 2 s).
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockUpstream {
    /// Starts the mock on `addr` (port 0 picks a free port) with the default config.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<MockUpstream> {
        Self::start_with(addr, MockConfig::default()).await
    }

    /// Starts the mock on `addr` with `config`.
    pub async fn start_with(addr: SocketAddr, config: MockConfig) -> anyhow::Result<MockUpstream> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the mock upstream to {addr}"))?;
        let addr = listener
            .local_addr()
            .context("reading the mock upstream's address")?;
        let state = Arc::new(State::new(config));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, Arc::clone(&state), stopped));
        Ok(MockUpstream {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (a wildcard bind address is replaced by loopback).
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The recorded requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Forgets the recorded requests and cancellations.
    pub fn clear(&self) {
        lock(&self.state.log).clear();
        lock(&self.state.cancelled).clear();
    }

    /// Forgets requests, cancellations, scripts, the Anthropic cache memory and the stored
    /// Responses API responses.
    pub fn reset(&self) {
        self.clear();
        self.state.clear_rules();
        lock(&self.state.cache_seen).clear();
        lock(&self.state.responses).clear();
    }

    /// A Responses API response the mock stored (`resp_mock_<request id>`), as `GET
    /// /v1/responses/{id}` answers it.
    pub fn stored_response(&self, id: &str) -> Option<Value> {
        responses::stored(&self.state, id)
    }

    /// Switches request recording on or off.
    pub fn set_recording(&self, on: bool) {
        self.state.record.store(on, Ordering::Relaxed);
    }

    /// Installs a rule (tried after the ones installed before it). Returns its id.
    pub fn script(&self, rule: ScriptRule) -> u64 {
        self.state.add_rule(rule)
    }

    /// Removes all rules.
    pub fn clear_scripts(&self) {
        self.state.clear_rules();
    }

    /// Requests whose client went away before the mock finished, in the order noticed.
    pub fn cancelled(&self) -> Vec<CancelledRequest> {
        lock(&self.state.cancelled).iter().cloned().collect()
    }

    /// Waits until at least `n` requests were recorded (or `timeout` passed) and returns them.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        while lock(&self.state.log).len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.requests()
    }

    /// Waits until at least `n` cancellations were noticed (or `timeout` passed) and returns
    /// them. The times in them are taken by the server, not by this poll.
    pub async fn wait_for_cancelled(&self, n: usize, timeout: Duration) -> Vec<CancelledRequest> {
        let deadline = Instant::now() + timeout;
        while lock(&self.state.cancelled).len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.cancelled()
    }

    /// Stops accepting connections and lets open ones finish (up to 2 s).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request as stored in the log; turned into a [`RecordedRequest`] when asked for.
#[derive(Debug)]
struct Recorded {
    id: u64,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Recorded {
    fn to_public(&self) -> RecordedRequest {
        let body = if self.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
        };
        RecordedRequest {
            id: self.id,
            method: self.method.as_str().to_owned(),
            path: self.uri.path().to_owned(),
            query: self.uri.query().map(str::to_owned),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
            raw_body: self.body.clone(),
            received_at: self.at,
        }
    }
}

/// Shared by the server and the handle.
pub(crate) struct State {
    config: MockConfig,
    record: AtomicBool,
    next_id: AtomicU64,
    log: Mutex<VecDeque<Arc<Recorded>>>,
    cancelled: Mutex<VecDeque<CancelledRequest>>,
    rules: RwLock<Vec<Arc<behavior::Rule>>>,
    rule_count: AtomicUsize,
    next_rule_id: AtomicU64,
    cache_seen: Mutex<HashSet<u64>>,
    responses: Mutex<responses::ResponseStore>,
}

impl State {
    fn new(config: MockConfig) -> Self {
        State {
            record: AtomicBool::new(config.record),
            responses: Mutex::new(responses::ResponseStore::new(config.response_capacity)),
            config,
            next_id: AtomicU64::new(1),
            log: Mutex::new(VecDeque::new()),
            cancelled: Mutex::new(VecDeque::new()),
            rules: RwLock::new(Vec::new()),
            rule_count: AtomicUsize::new(0),
            next_rule_id: AtomicU64::new(1),
            cache_seen: Mutex::new(HashSet::new()),
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn record(&self, id: u64, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
        let capacity = self.config.log_capacity;
        if capacity == 0 || !self.record.load(Ordering::Relaxed) {
            return;
        }
        let entry = Arc::new(Recorded {
            id,
            method: method.clone(),
            uri: uri.clone(),
            headers: headers.clone(),
            body: body.clone(),
            at: Instant::now(),
        });
        let mut log = lock(&self.log);
        while log.len() >= capacity {
            log.pop_front();
        }
        log.push_back(entry);
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        let entries: Vec<Arc<Recorded>> = lock(&self.log).iter().cloned().collect();
        entries.iter().map(|e| e.to_public()).collect()
    }

    fn record_cancel(&self, cancelled: CancelledRequest) {
        let capacity = self.config.log_capacity.max(1);
        let mut log = lock(&self.cancelled);
        while log.len() >= capacity {
            log.pop_front();
        }
        log.push_back(cancelled);
    }

    fn add_rule(&self, rule: ScriptRule) -> u64 {
        let id = self.next_rule_id.fetch_add(1, Ordering::Relaxed);
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        rules.push(Arc::new(behavior::Rule::new(id, rule)));
        self.rule_count.store(rules.len(), Ordering::Release);
        id
    }

    fn clear_rules(&self) {
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        rules.clear();
        self.rule_count.store(0, Ordering::Release);
    }

    fn rules(&self) -> Vec<Arc<behavior::Rule>> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The behaviour for a request and its model name without directives.
    fn behavior(
        &self,
        raw_model: Option<&str>,
        path: &str,
        headers: &HeaderMap,
    ) -> (Option<String>, Behavior) {
        let (clean, directives) = match raw_model {
            Some(raw) => {
                let (clean, b) = behavior::split_model(raw);
                (Some(clean), b)
            }
            None => (None, Behavior::default()),
        };
        let mut result = Behavior::default();
        if self.rule_count.load(Ordering::Acquire) > 0 {
            let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
            let model = clean.as_deref().zip(raw_model);
            if let Some(rule) = rules
                .iter()
                .find(|rule| rule.matches(model, path) && rule.take())
            {
                result.clone_from(&rule.spec.behavior);
            }
        }
        result.overlay(&directives);
        result.overlay(&Behavior::from_headers(headers));
        (clean.map(std::borrow::Cow::into_owned), result)
    }

    /// True the first time the cache key is seen.
    fn cache_first_seen(&self, key: u64) -> bool {
        lock(&self.cache_seen).insert(key)
    }
}
