//! The data planes' HTTP API: the snapshot stream, the long-poll and record ingestion, all
//! behind bearer-token authentication.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use switchyard_crds::circuits::{CircuitReport, ReportError};
use switchyard_crds::record::Interception;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::auth::{AuthError, Authenticator, Identity};
use super::hub::{Published, SnapshotHub};
use super::tracking::{
    self, ChannelMetrics, DataPlaneInfo, DataPlanes, FollowMode, ReasonLabel, ResultLabel,
    StreamGuard,
};
use crate::circuits::CircuitBoard;
use switchyard_crds::channel::{
    CIRCUITS_PATH, FrameRef, HAVE_HEADER, INSTANCE_HEADER, NDJSON, RECORDS_PATH, SNAPSHOT_PATH,
    STREAM_PATH, VERSION_HEADER,
};

/// What the record store reports for one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Records stored now.
    pub inserted: u64,
    /// Records already stored (same interception id): shipping is at-least-once.
    pub duplicates: u64,
}

/// Where received interception records go (the record store).
pub trait RecordSink: Send + Sync + 'static {
    /// Stores a batch, idempotently by interception id. An error makes the channel answer 503,
    /// and the data plane keeps the batch in its spool and retries.
    fn ingest(&self, batch: Vec<Interception>) -> BoxFuture<'_, Result<IngestReport, String>>;
}

/// Tunables of the channel.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// Heartbeat interval of the stream.
    pub heartbeat: Duration,
    /// Longest long-poll wait (`wait_ms` is capped to it).
    pub max_wait: Duration,
    /// Largest record batch body.
    pub max_records_bytes: usize,
    /// Largest circuit report body.
    pub max_circuits_bytes: usize,
    /// How long a data plane's circuit report counts after it was received.
    pub circuit_ttl: Duration,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            max_wait: Duration::from_secs(60),
            max_records_bytes: 16 << 20,
            max_circuits_bytes: 4 << 20,
            circuit_ttl: Duration::from_secs(switchyard_crds::circuits::REPORT_TTL_SECS),
        }
    }
}

/// The peer address of a connection, put in request extensions by [`super::serve_tls`].
pub use switchyard_runtime::serve::RemoteAddr;

/// The authenticated caller, in request extensions after the auth layer.
#[derive(Clone, Debug)]
struct Caller {
    identity: Identity,
    remote: Option<SocketAddr>,
}

struct Inner {
    hub: SnapshotHub,
    auth: Arc<dyn Authenticator>,
    sink: Arc<dyn RecordSink>,
    options: ChannelOptions,
    planes: Arc<DataPlanes>,
    metrics: ChannelMetrics,
    circuits: CircuitBoard,
}

/// The operator side of the channel: build it once, serve [`Channel::router`] on its own TLS
/// listener (see [`super::serve_tls`]), and publish snapshots through its [`SnapshotHub`].
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("version", &self.inner.hub.version())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel serving `hub`'s snapshots to callers `auth` accepts, handing records to `sink`.
    pub fn new(
        hub: SnapshotHub,
        auth: Arc<dyn Authenticator>,
        sink: Arc<dyn RecordSink>,
        options: ChannelOptions,
    ) -> Self {
        let poll_ttl = options.max_wait + Duration::from_secs(30);
        let circuits = CircuitBoard::new(options.circuit_ttl);
        Self {
            inner: Arc::new(Inner {
                hub,
                auth,
                sink,
                options,
                planes: Arc::new(DataPlanes::new(poll_ttl)),
                metrics: ChannelMetrics::default(),
                circuits,
            }),
        }
    }

    /// The hub whose snapshots are served.
    pub fn hub(&self) -> &SnapshotHub {
        &self.inner.hub
    }

    /// The data planes connected now.
    pub fn dataplanes(&self) -> Vec<DataPlaneInfo> {
        self.inner.planes.list()
    }

    /// The circuit reports received (`POST /v1/circuits`).
    pub fn circuits(&self) -> &CircuitBoard {
        &self.inner.circuits
    }

    /// The channel counters.
    pub fn metrics(&self) -> &ChannelMetrics {
        &self.inner.metrics
    }

    /// Registers `switchyard_operator_dataplanes_connected`,
    /// `switchyard_operator_dataplanes_by_version{version}`,
    /// `switchyard_operator_snapshots_sent_total`,
    /// `switchyard_operator_records_received_total{result}`,
    /// `switchyard_operator_record_ingest_failures_total`,
    /// `switchyard_operator_channel_refused_total{reason}` and the circuit board's metrics
    /// (see [`CircuitBoard::register_metrics`]).
    pub fn register_metrics(&self, registry: &mut Registry) {
        tracking::register(&self.inner.metrics, self.inner.planes.clone(), registry);
        self.inner.circuits.register_metrics(registry);
    }

    /// The routes: `GET /v1/snapshots/stream`, `GET /v1/snapshot`, `POST /v1/records`,
    /// `POST /v1/circuits`, each requiring `Authorization: Bearer <token>`. Other paths answer
    /// 404.
    pub fn router(&self) -> Router {
        Router::new()
            .route(STREAM_PATH, get(stream))
            .route(SNAPSHOT_PATH, get(long_poll))
            .route(RECORDS_PATH, post(records))
            .route(CIRCUITS_PATH, post(circuits))
            .route_layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .with_state(self.clone())
    }
}

/// The one error shape: `{"error":{"code","message"}}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message.into()}});
    (status, axum::Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

async fn authenticate(State(ch): State<Channel>, mut req: Request, next: Next) -> Response {
    let remote = req.extensions().get::<RemoteAddr>().map(|r| r.0);
    let Some(token) = bearer(req.headers()) else {
        ch.inner
            .metrics
            .refused
            .get_or_create(&ReasonLabel {
                reason: "unauthenticated",
            })
            .inc();
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "an Authorization: Bearer token is required",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    match ch.inner.auth.authenticate(&token).await {
        Ok(identity) => {
            req.extensions_mut().insert(Caller { identity, remote });
            next.run(req).await
        }
        Err(e) => {
            let (status, reason) = match &e {
                AuthError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
                AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
                AuthError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            };
            ch.inner
                .metrics
                .refused
                .get_or_create(&ReasonLabel { reason })
                .inc();
            tracing::info!(remote = ?remote, path = %req.uri().path(), error = %e, "channel request refused");
            let message = match e {
                AuthError::Unauthenticated(m)
                | AuthError::Forbidden(m)
                | AuthError::Unavailable(m) => m,
            };
            let mut r = error(status, reason, message);
            match status {
                StatusCode::UNAUTHORIZED => {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                _ => {}
            }
            r
        }
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned)
}

fn info(caller: &Caller, headers: &HeaderMap, mode: FollowMode) -> DataPlaneInfo {
    let now = jiff::Timestamp::now();
    DataPlaneInfo {
        identity: caller.identity.username.clone(),
        instance: header_str(headers, INSTANCE_HEADER),
        remote: caller.remote,
        mode,
        reported_version: header_str(headers, HAVE_HEADER),
        sent_version: None,
        connected_at: now,
        last_seen: now,
    }
}

fn version_header(version: Option<&str>) -> Option<HeaderValue> {
    HeaderValue::from_str(version?).ok()
}

/// Query of the stream.
#[derive(Debug, Deserialize)]
struct StreamQuery {
    /// Version the caller has: not sent again.
    have: Option<String>,
}

struct StreamState {
    rx: watch::Receiver<Option<Published>>,
    /// The version the caller has (told or sent).
    have: Option<String>,
    started: bool,
    heartbeat: tokio::time::Interval,
    guard: StreamGuard,
    ch: Channel,
}

impl StreamState {
    fn snapshot_frame(&mut self, p: &Published) -> Bytes {
        const PREFIX: &[u8] = br#"{"type":"snapshot","snapshot":"#;
        let mut line = BytesMut::with_capacity(PREFIX.len() + p.json.len() + 2);
        line.extend_from_slice(PREFIX);
        line.extend_from_slice(&p.json);
        line.extend_from_slice(b"}\n");
        let version = p.snapshot.version.as_str();
        self.have = Some(version.to_owned());
        self.guard.sent(version);
        self.ch.inner.metrics.snapshots_sent.inc();
        self.heartbeat.reset();
        tracing::debug!(%version, "snapshot streamed to a data plane");
        line.freeze()
    }

    fn heartbeat_frame(&mut self) -> Bytes {
        let current = self
            .rx
            .borrow()
            .as_ref()
            .map(|p| p.snapshot.version.clone());
        self.guard.seen();
        self.heartbeat.reset();
        Bytes::from(
            FrameRef::Heartbeat {
                version: current.as_deref(),
            }
            .to_line(),
        )
    }

    /// The next frame; `None` ends the stream (the hub is gone).
    async fn next(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            let current = self.rx.borrow_and_update().clone();
            return Some(match current {
                Some(p) if self.have.as_deref() != Some(p.snapshot.version.as_str()) => {
                    self.snapshot_frame(&p)
                }
                // Nothing to send yet: a heartbeat confirms the subscription at once.
                _ => self.heartbeat_frame(),
            });
        }
        loop {
            tokio::select! {
                changed = self.rx.changed() => {
                    changed.ok()?;
                    // Only the latest: versions published while this consumer was slow are
                    // skipped.
                    let current = self.rx.borrow_and_update().clone();
                    if let Some(p) = current
                        && self.have.as_deref() != Some(p.snapshot.version.as_str())
                    {
                        return Some(self.snapshot_frame(&p));
                    }
                }
                _ = self.heartbeat.tick() => return Some(self.heartbeat_frame()),
            }
        }
    }
}

async fn stream(
    State(ch): State<Channel>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let info = info(&caller, &headers, FollowMode::Stream);
    let have = q
        .have
        .filter(|h| !h.is_empty())
        .or_else(|| info.reported_version.clone());
    tracing::info!(
        identity = %info.identity,
        instance = info.instance.as_deref().unwrap_or("-"),
        remote = ?info.remote,
        have = have.as_deref().unwrap_or("-"),
        "data plane connected to the snapshot stream"
    );
    let guard = ch.inner.planes.open_stream(info);
    let period = ch.inner.options.heartbeat.max(Duration::from_millis(10));
    let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let current = ch.inner.hub.version();
    let state = StreamState {
        rx: ch.inner.hub.receiver(),
        have,
        started: false,
        heartbeat,
        guard,
        ch,
    };
    let frames = futures_util::stream::unfold(state, |mut st| async move {
        let frame = st.next().await?;
        Some((Ok::<_, Infallible>(frame), st))
    });
    let mut r = Response::new(Body::from_stream(frames));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(v) = version_header(current.as_deref()) {
        h.insert(VERSION_HEADER, v);
    }
    r
}

/// Query of the long-poll.
#[derive(Debug, Deserialize)]
struct PollQuery {
    /// Version the caller has.
    after: Option<String>,
    /// How long to wait for a newer one, ms (capped at `max_wait`; default 0).
    wait_ms: Option<u64>,
}

async fn long_poll(
    State(ch): State<Channel>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(q): Query<PollQuery>,
    headers: HeaderMap,
) -> Response {
    let mut info = info(&caller, &headers, FollowMode::Poll);
    let after = q.after.filter(|a| !a.is_empty());
    if info.reported_version.is_none() {
        info.reported_version = after.clone();
    }
    let key = info.instance.clone().unwrap_or_else(|| {
        format!(
            "{}@{}",
            info.identity,
            info.remote.map(|r| r.ip().to_string()).unwrap_or_default()
        )
    });
    ch.inner.planes.poll_seen(key.clone(), info);
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0)).min(ch.inner.options.max_wait);
    let deadline = Instant::now() + wait;
    let mut rx = ch.inner.hub.receiver();
    loop {
        let current = rx.borrow_and_update().clone();
        if let Some(p) = current
            && after.as_deref() != Some(p.snapshot.version.as_str())
        {
            ch.inner.metrics.snapshots_sent.inc();
            ch.inner.planes.poll_sent(&key, &p.snapshot.version);
            let mut r = Response::new(Body::from(p.json.clone()));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Some(v) = version_header(Some(&p.snapshot.version)) {
                h.insert(VERSION_HEADER, v);
            }
            return r;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => break,
        }
    }
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Some(v) = version_header(ch.inner.hub.version().as_deref()) {
        r.headers_mut().insert(VERSION_HEADER, v);
    }
    r
}

fn too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

async fn records(
    State(ch): State<Channel>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Body,
) -> Response {
    let limit = ch.inner.options.max_records_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) if too_large(&e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("record batches are limited to {limit} bytes; send smaller batches"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("could not read the body: {e}"),
            );
        }
    };
    let batch: Vec<Interception> = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body must be a JSON array of interception records: {e}"),
            );
        }
    };
    if batch.is_empty() {
        return axum::Json(IngestReport::default()).into_response();
    }
    let n = batch.len();
    match ch.inner.sink.ingest(batch).await {
        Ok(report) => {
            let m = &ch.inner.metrics;
            m.records
                .get_or_create(&ResultLabel { result: "inserted" })
                .inc_by(report.inserted);
            m.records
                .get_or_create(&ResultLabel {
                    result: "duplicate",
                })
                .inc_by(report.duplicates);
            tracing::debug!(
                identity = %caller.identity.username,
                records = n,
                inserted = report.inserted,
                duplicates = report.duplicates,
                "records ingested"
            );
            axum::Json(report).into_response()
        }
        Err(e) => {
            ch.inner.metrics.ingest_failures.inc();
            tracing::warn!(error = %e, records = n, "record store refused a batch; the data plane will retry");
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the record store is unavailable; retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

async fn circuits(
    State(ch): State<Channel>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Body,
) -> Response {
    let board = &ch.inner.circuits;
    let limit = ch.inner.options.max_circuits_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) if too_large(&e) => {
            board.count("too_large");
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("circuit reports are limited to {limit} bytes"),
            );
        }
        Err(e) => {
            board.count("invalid");
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("could not read the body: {e}"),
            );
        }
    };
    let report: CircuitReport = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            board.count("invalid");
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "the body must be a circuit report {{dataPlane, snapshotVersion, at, circuits: [...]}}: {e}"
                ),
            );
        }
    };
    if let Err(e) = report.validate() {
        let (status, code, result) = match e {
            ReportError::TooManyCircuits(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_circuits",
                "too_large",
            ),
            ReportError::DataPlaneName => (StatusCode::BAD_REQUEST, "bad_request", "invalid"),
        };
        board.count(result);
        return error(status, code, e.to_string());
    }
    board.count("accepted");
    tracing::debug!(
        identity = %caller.identity.username,
        data_plane = %report.data_plane,
        circuits = report.circuits.len(),
        "circuit report received"
    );
    board.record(report, std::time::Instant::now());
    StatusCode::NO_CONTENT.into_response()
}
