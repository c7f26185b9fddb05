//! The interception spool: records are appended to segment files in a local folder and shipped
//! in batches by a separate task, so a slow or absent receiver never blocks requests.
//!
//! - at-least-once: a segment is deleted only after its records were shipped; segments left by
//!   a crash are shipped on the next start; receivers deduplicate by interception id;
//! - bounded: past `max_bytes` the oldest segments are dropped, counted in
//!   `switchyard_spool_dropped_records_total` and logged — requests never wait on the spool.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::record::Interception;

/// Where shipped records go (the operator, a file, a test sink).
///
/// A batch holds records as the spool stored them: each item is one [`Interception`] as a JSON
/// object (checked to be well-formed JSON). Shipping never parses and re-serializes records:
/// that work ran on the request threads and stalled requests for milliseconds per segment.
pub trait Shipper: Send + Sync + 'static {
    /// Ships one batch. An error keeps the batch for a later try.
    fn ship<'a>(&'a self, batch: &'a [&'a [u8]]) -> BoxFuture<'a, Result<(), String>>;
}

/// Appends shipped records as JSON lines to a file (the local record store in local mode).
#[derive(Debug)]
pub struct FileShipper {
    path: PathBuf,
}

impl FileShipper {
    /// A shipper writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl Shipper for FileShipper {
    fn ship<'a>(&'a self, batch: &'a [&'a [u8]]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut text = Vec::with_capacity(batch.iter().map(|r| r.len() + 1).sum());
            for r in batch {
                text.extend_from_slice(r);
                text.push(b'\n');
            }
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            f.write_all(&text).await.map_err(|e| e.to_string())?;
            f.flush().await.map_err(|e| e.to_string())
        })
    }
}

/// Spool settings.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// Folder of segment files.
    pub dir: PathBuf,
    /// Most bytes kept on disk.
    pub max_bytes: u64,
    /// How often the open segment is closed and shipping is attempted.
    pub flush_interval: Duration,
    /// Most records per shipped batch.
    pub batch_size: usize,
}

/// Handle used by request handlers.
#[derive(Clone, Debug)]
pub struct Spool {
    tx: mpsc::Sender<Interception>,
    metrics: Arc<Metrics>,
}

/// Running spool tasks; [`SpoolTasks::shutdown`] flushes and ships what it can.
#[derive(Debug)]
pub struct SpoolTasks {
    writer: tokio::task::JoinHandle<()>,
    shipper: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    stop_shipping: watch::Sender<bool>,
}

const CHANNEL: usize = 65_536;

impl Spool {
    /// Starts the writer and the shipper.
    pub async fn start(
        config: SpoolConfig,
        shipper: Option<Arc<dyn Shipper>>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Spool, SpoolTasks)> {
        tokio::fs::create_dir_all(&config.dir).await?;
        let next = Arc::new(AtomicU64::new(
            max_segment(&config.dir).await?.map_or(1, |m| m + 1),
        ));
        let (tx, rx) = mpsc::channel(CHANNEL);
        // Two stop signals: the shipper's last pass must come after the writer's last segment.
        let (stop, stop_rx) = watch::channel(false);
        let (stop_shipping, stop_shipping_rx) = watch::channel(false);
        let writer = tokio::spawn(write_loop(
            config.clone(),
            rx,
            next.clone(),
            stop_rx,
            metrics.clone(),
        ));
        let shipper = tokio::spawn(ship_loop(
            config,
            shipper,
            next,
            stop_shipping_rx,
            metrics.clone(),
        ));
        Ok((
            Spool { tx, metrics },
            SpoolTasks {
                writer,
                shipper,
                stop,
                stop_shipping,
            },
        ))
    }

    /// Hands a record to the spool without waiting. If the writer is more than 65,536 records
    /// behind, the record is dropped and counted.
    pub fn record(&self, record: Interception) {
        if self.tx.try_send(record).is_err() {
            self.metrics.spool_dropped.inc();
            tracing::warn!("interception spool is full; a record was dropped");
        }
    }
}

impl SpoolTasks {
    /// Writes what is queued, then ships for at most `deadline`; what is not shipped stays on
    /// disk for the next start.
    pub async fn shutdown(self, spool: Spool, deadline: Duration) {
        drop(spool);
        let _ = self.stop.send(true);
        let _ = self.writer.await;
        // Only now: the shipper's last pass then sees the writer's last segment.
        let _ = self.stop_shipping.send(true);
        if tokio::time::timeout(deadline, self.shipper).await.is_err() {
            tracing::warn!(
                "spool: shipping did not finish before the drain deadline; records stay on disk"
            );
        }
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.jsonl"))
}

async fn max_segment(dir: &Path) -> std::io::Result<Option<u64>> {
    Ok(segments(dir).await?.into_iter().map(|(s, _)| s).max())
}

/// Segment files by sequence number, oldest first, with their sizes.
async fn segments(dir: &Path) -> std::io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut rd = tokio::fs::read_dir(dir).await?;
    while let Some(e) = rd.next_entry().await? {
        let name = e.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let len = e.metadata().await.map(|m| m.len()).unwrap_or(0);
        out.push((seq, len));
    }
    out.sort_unstable();
    Ok(out)
}

async fn write_loop(
    config: SpoolConfig,
    mut rx: mpsc::Receiver<Interception>,
    next: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut count = 0u64;
    let mut tick = tokio::time::interval(config.flush_interval);
    let push = |rec: &Interception, buf: &mut Vec<u8>, count: &mut u64| {
        if let Ok(line) = serde_json::to_vec(rec) {
            buf.extend_from_slice(&line);
            buf.push(b'\n');
            *count += 1;
        }
    };
    loop {
        let (closed, ticked) = tokio::select! {
            r = rx.recv() => match r {
                Some(rec) => {
                    push(&rec, &mut buf, &mut count);
                    (false, false)
                }
                None => (true, false),
            },
            _ = tick.tick() => (false, true),
            _ = stop.changed() => {
                // Shutting down: take what is already queued, then write it.
                while let Ok(rec) = rx.try_recv() {
                    push(&rec, &mut buf, &mut count);
                }
                (true, false)
            }
        };
        // Write a segment on every tick with records pending, when a lot is pending, and at
        // shutdown. Each segment is written whole, then renamed into place.
        let due = closed || ticked || buf.len() >= 1 << 20;
        if due && !buf.is_empty() {
            let seq = next.fetch_add(1, Ordering::SeqCst);
            let path = segment_path(&config.dir, seq);
            let tmp = path.with_extension("tmp");
            let written = async {
                tokio::fs::write(&tmp, &buf).await?;
                tokio::fs::rename(&tmp, &path).await
            }
            .await;
            match written {
                Ok(()) => {
                    metrics.spool_records.inc_by(count as i64);
                }
                Err(e) => {
                    metrics.spool_dropped.inc_by(count);
                    tracing::error!(error = %e, records = count, "spool: could not write a segment; records dropped");
                }
            }
            buf.clear();
            count = 0;
            enforce_bound(&config, &metrics).await;
        }
        if closed {
            return;
        }
    }
}

async fn enforce_bound(config: &SpoolConfig, metrics: &Metrics) {
    let Ok(segs) = segments(&config.dir).await else {
        return;
    };
    let mut total: u64 = segs.iter().map(|(_, l)| l).sum();
    for (seq, len) in segs {
        if total <= config.max_bytes {
            break;
        }
        let path = segment_path(&config.dir, seq);
        let lines = tokio::fs::read(&path)
            .await
            .map(|b| b.iter().filter(|c| **c == b'\n').count())
            .unwrap_or(0);
        if tokio::fs::remove_file(&path).await.is_ok() {
            total -= len;
            metrics.spool_dropped.inc_by(lines as u64);
            metrics.spool_records.dec_by(lines as i64);
            tracing::warn!(
                segment = seq,
                records = lines,
                "spool is over its size bound; the oldest records were dropped"
            );
        }
    }
}

async fn ship_loop(
    config: SpoolConfig,
    shipper: Option<Arc<dyn Shipper>>,
    next: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let Some(shipper) = shipper else { return };
    let mut backoff = config.flush_interval;
    loop {
        let stopping = *stop.borrow();
        let ok = ship_ready(
            &config,
            shipper.as_ref(),
            next.load(Ordering::SeqCst),
            &metrics,
        )
        .await;
        if stopping {
            return;
        }
        backoff = if ok {
            config.flush_interval
        } else {
            (backoff * 2).min(Duration::from_secs(5))
        };
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
    }
}

/// A segment's bytes, the byte ranges of its records, and how many lines were damaged. Each
/// line is one record; a line that is not JSON (a damaged file) is dropped and counted rather
/// than blocking the spool behind a batch the receiver refuses forever.
fn read_segment(path: &Path) -> std::io::Result<(Vec<u8>, Vec<std::ops::Range<usize>>, u64)> {
    let bytes = std::fs::read(path)?;
    let mut lines = Vec::new();
    let mut damaged = 0u64;
    let mut start = 0;
    for line in bytes.split_inclusive(|c| *c == b'\n') {
        let end = start + line.len();
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        if !body.is_empty() {
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                lines.push(start..start + body.len());
            } else {
                damaged += 1;
            }
        }
        start = end;
    }
    Ok((bytes, lines, damaged))
}

/// Ships every complete segment below `next`. False when a batch failed.
async fn ship_ready(
    config: &SpoolConfig,
    shipper: &dyn Shipper,
    next: u64,
    metrics: &Metrics,
) -> bool {
    let Ok(segs) = segments(&config.dir).await else {
        return false;
    };
    for (seq, _) in segs.into_iter().filter(|(s, _)| *s < next) {
        let path = segment_path(&config.dir, seq);
        // Reading and checking a segment (up to a few MB) runs on a blocking thread, not on
        // the threads that serve requests.
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_segment(&path)).await
        };
        let Ok(Ok((bytes, lines, damaged))) = read else {
            continue;
        };
        let records: Vec<&[u8]> = lines.iter().map(|r| &bytes[r.clone()]).collect();
        if damaged > 0 {
            metrics.spool_dropped.inc_by(damaged);
            metrics.spool_records.dec_by(damaged as i64);
            tracing::warn!(
                segment = seq,
                records = damaged,
                "spool: damaged records dropped"
            );
        }
        for batch in records.chunks(config.batch_size.max(1)) {
            if let Err(e) = shipper.ship(batch).await {
                metrics.ship_failures.inc();
                tracing::warn!(error = %e, segment = seq, "spool: shipping failed; will retry");
                return false;
            }
            // Requests share this thread: let them run between batches.
            tokio::task::yield_now().await;
        }
        if tokio::fs::remove_file(&path).await.is_ok() {
            metrics.records_shipped.inc_by(records.len() as u64);
            metrics.spool_records.dec_by(records.len() as i64);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Mutex;

    /// Collects what it is given.
    #[derive(Default)]
    struct Sink(Mutex<Vec<Vec<u8>>>);

    impl Shipper for Sink {
        fn ship<'a>(&'a self, batch: &'a [&'a [u8]]) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .unwrap()
                    .extend(batch.iter().map(|r| r.to_vec()));
                Ok(())
            })
        }
    }

    fn record(n: u128) -> Interception {
        serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::from_u128(n), "request_id": format!("r{n}"),
            "started_at": "2025-01-01T00:00:00Z", "ended_at": "2025-01-01T00:00:01Z",
            "endpoint": "/v1/chat/completions", "credential_kind": "none", "client": "c",
            "model_requested": "m", "status": 200, "outcome": "success",
            "stream": false, "latency_ms": 1,
            "usage": {"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": 0, "cache_write_input_tokens": 0},
            "usage_estimated": false, "cost": {"input": 0.0, "output": 0.0},
            "snapshot_version": "v"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn records_are_shipped_as_stored_and_a_damaged_line_is_dropped() {
        let spool_dir = std::env::temp_dir().join(format!("spool-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&spool_dir).unwrap();
        // A segment left by an earlier run, with one damaged line between two good ones.
        let good = serde_json::to_string(&record(1)).unwrap();
        std::fs::write(
            segment_path(&spool_dir, 1),
            format!("{good}\n{{\"id\": \"torn\n{good}\n"),
        )
        .unwrap();
        let metrics = Arc::new(Metrics::new(&mut Default::default()));
        let sink = Arc::new(Sink::default());
        let (spool, tasks) = Spool::start(
            SpoolConfig {
                dir: spool_dir.clone(),
                max_bytes: 1 << 20,
                flush_interval: Duration::from_millis(20),
                batch_size: 2,
            },
            Some(sink.clone()),
            metrics.clone(),
        )
        .await
        .unwrap();
        for n in 2..=4 {
            spool.record(record(n));
        }
        tasks.shutdown(spool, Duration::from_secs(5)).await;

        let shipped: Vec<Interception> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect();
        let ids: Vec<u128> = shipped.iter().map(|r| r.id.as_u128()).collect();
        assert_eq!(ids, [1, 1, 2, 3, 4], "every good record, in order");
        assert_eq!(shipped[3], record(3), "shipped unchanged");
        assert_eq!(
            metrics.spool_dropped.get(),
            1,
            "the damaged line is counted"
        );
        assert_eq!(
            std::fs::read_dir(&spool_dir).unwrap().count(),
            0,
            "shipped segments are deleted"
        );
        let _ = std::fs::remove_dir_all(&spool_dir);
    }
}
