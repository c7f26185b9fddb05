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
pub trait Shipper: Send + Sync + 'static {
    /// Ships one batch. An error keeps the batch for a later try.
    fn ship<'a>(&'a self, batch: &'a [Interception]) -> BoxFuture<'a, Result<(), String>>;
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
    fn ship<'a>(&'a self, batch: &'a [Interception]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut text = String::new();
            for r in batch {
                text.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
                text.push('\n');
            }
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            f.write_all(text.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
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
        let Ok(bytes) = tokio::fs::read(&path).await else {
            continue;
        };
        let records: Vec<Interception> = bytes
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        for batch in records.chunks(config.batch_size.max(1)) {
            if let Err(e) = shipper.ship(batch).await {
                metrics.ship_failures.inc();
                tracing::warn!(error = %e, segment = seq, "spool: shipping failed; will retry");
                return false;
            }
        }
        if tokio::fs::remove_file(&path).await.is_ok() {
            metrics.records_shipped.inc_by(records.len() as u64);
            metrics.spool_records.dec_by(records.len() as i64);
        }
    }
    true
}
