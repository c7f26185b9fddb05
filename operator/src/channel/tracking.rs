//! Which data planes are connected, the snapshot version each serves, and the channel metrics.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// How a data plane follows the snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowMode {
    /// An open `GET /v1/snapshots/stream`.
    Stream,
    /// `GET /v1/snapshot` long-polls.
    Poll,
}

/// A connected data plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataPlaneInfo {
    /// Authenticated user, e.g. `system:serviceaccount:ns:switchyard-dataplane`.
    pub identity: String,
    /// `x-switchyard-instance` (the pod name), when sent.
    pub instance: Option<String>,
    /// Peer address.
    pub remote: Option<SocketAddr>,
    /// Stream or long-poll.
    pub mode: FollowMode,
    /// The version it said it serves (`x-switchyard-have`) when it connected or last polled.
    pub reported_version: Option<String>,
    /// The last version sent to it.
    pub sent_version: Option<String>,
    /// When it connected (stream) or first polled.
    pub connected_at: jiff::Timestamp,
    /// Last request or frame.
    pub last_seen: jiff::Timestamp,
}

impl DataPlaneInfo {
    /// The version it is taken to serve: the last one sent to it, else the one it reported.
    pub fn version(&self) -> Option<&str> {
        self.sent_version
            .as_deref()
            .or(self.reported_version.as_deref())
    }
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    streams: HashMap<u64, DataPlaneInfo>,
    /// Long-pollers by key, with the instant of their last poll.
    pollers: HashMap<String, (Instant, DataPlaneInfo)>,
}

/// The connected data planes. Streams count while open; long-pollers for `poll_ttl` after
/// their last poll.
#[derive(Debug)]
pub(crate) struct DataPlanes {
    inner: Mutex<Inner>,
    poll_ttl: Duration,
}

impl DataPlanes {
    pub(crate) fn new(poll_ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            poll_ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an open stream; it is removed when the guard drops.
    pub(crate) fn open_stream(self: &Arc<Self>, info: DataPlaneInfo) -> StreamGuard {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        if let Some(instance) = &info.instance {
            // A reconnecting data plane replaces its poller entry, if it had one.
            inner.pollers.remove(instance);
        }
        inner.streams.insert(id, info);
        StreamGuard {
            planes: self.clone(),
            id,
        }
    }

    /// Notes a long-poll.
    pub(crate) fn poll_seen(&self, key: String, mut info: DataPlaneInfo) {
        let mut inner = self.lock();
        if let Some((_, old)) = inner.pollers.get(&key) {
            info.connected_at = old.connected_at;
            if info.sent_version.is_none() {
                info.sent_version = old.sent_version.clone();
            }
        }
        inner.pollers.insert(key, (Instant::now(), info));
    }

    /// Notes the version answered to a long-poll.
    pub(crate) fn poll_sent(&self, key: &str, version: &str) {
        if let Some((_, info)) = self.lock().pollers.get_mut(key) {
            info.sent_version = Some(version.to_owned());
            info.last_seen = jiff::Timestamp::now();
        }
    }

    /// Every connected data plane (streams first, then long-pollers), oldest first.
    pub(crate) fn list(&self) -> Vec<DataPlaneInfo> {
        let mut inner = self.lock();
        let ttl = self.poll_ttl;
        inner.pollers.retain(|_, (at, _)| at.elapsed() < ttl);
        let mut streams: Vec<_> = inner
            .streams
            .iter()
            .map(|(id, i)| (*id, i.clone()))
            .collect();
        streams.sort_by_key(|(id, _)| *id);
        let mut pollers: Vec<_> = inner.pollers.values().map(|(_, i)| i.clone()).collect();
        pollers.sort_by_key(|a| a.connected_at);
        streams.into_iter().map(|(_, i)| i).chain(pollers).collect()
    }
}

/// Keeps a stream in the connected list; removes it on drop (the client went away or the
/// server closed the connection).
#[derive(Debug)]
pub(crate) struct StreamGuard {
    planes: Arc<DataPlanes>,
    id: u64,
}

impl StreamGuard {
    pub(crate) fn sent(&self, version: &str) {
        if let Some(info) = self.planes.lock().streams.get_mut(&self.id) {
            info.sent_version = Some(version.to_owned());
            info.last_seen = jiff::Timestamp::now();
        }
    }

    pub(crate) fn seen(&self) {
        if let Some(info) = self.planes.lock().streams.get_mut(&self.id) {
            info.last_seen = jiff::Timestamp::now();
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.planes.lock().streams.remove(&self.id);
    }
}

/// Label of `switchyard_operator_dataplanes_by_version`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// Label of the refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

/// Label of the record counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub(crate) result: &'static str,
}

/// Counters of the channel (the connected gauges are computed at scrape time).
#[derive(Clone, Debug, Default)]
pub struct ChannelMetrics {
    /// Snapshots sent: stream frames and long-poll answers.
    pub snapshots_sent: Counter,
    /// Records received, by `result` (`inserted`, `duplicate`).
    pub(crate) records: Family<ResultLabel, Counter>,
    /// Requests refused, by `reason` (`unauthenticated`, `forbidden`, `unavailable`).
    pub(crate) refused: Family<ReasonLabel, Counter>,
    /// Record batches the sink failed to store.
    pub ingest_failures: Counter,
}

impl ChannelMetrics {
    /// Records received with `result` `inserted` or `duplicate`.
    pub fn records(&self, result: &'static str) -> u64 {
        self.records.get_or_create(&ResultLabel { result }).get()
    }

    /// Requests refused for `reason` (`unauthenticated`, `forbidden`, `unavailable`).
    pub fn refused(&self, reason: &'static str) -> u64 {
        self.refused.get_or_create(&ReasonLabel { reason }).get()
    }
}

/// Scrape-time gauges from the connected list.
#[derive(Debug)]
struct ConnectedCollector {
    planes: Arc<DataPlanes>,
}

impl prometheus_client::collector::Collector for ConnectedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let planes = self.planes.list();
        let connected = ConstGauge::new(planes.len() as i64);
        let m = encoder.encode_descriptor(
            "switchyard_operator_dataplanes_connected",
            "Data planes following the snapshots (open streams, and long-pollers seen lately)",
            None,
            connected.metric_type(),
        )?;
        connected.encode(m)?;
        let mut by_version: BTreeMap<String, i64> = BTreeMap::new();
        for p in &planes {
            *by_version
                .entry(p.version().unwrap_or("none").to_owned())
                .or_default() += 1;
        }
        let mut family = encoder.encode_descriptor(
            "switchyard_operator_dataplanes_by_version",
            "Connected data planes by the snapshot version they serve (last sent, else reported)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (version, n) in by_version {
            let label = VersionLabel { version };
            ConstGauge::new(n).encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}

/// Registers the channel metrics.
pub(crate) fn register(metrics: &ChannelMetrics, planes: Arc<DataPlanes>, registry: &mut Registry) {
    registry.register(
        "switchyard_operator_snapshots_sent",
        "Snapshots sent to data planes (stream frames and long-poll answers)",
        metrics.snapshots_sent.clone(),
    );
    registry.register(
        "switchyard_operator_records_received",
        "Interception records received from data planes, by result",
        metrics.records.clone(),
    );
    registry.register(
        "switchyard_operator_record_ingest_failures",
        "Record batches the record store failed to take (answered 503)",
        metrics.ingest_failures.clone(),
    );
    registry.register(
        "switchyard_operator_channel_refused",
        "Channel requests refused, by reason",
        metrics.refused.clone(),
    );
    registry.register_collector(Box::new(ConnectedCollector { planes }));
}
