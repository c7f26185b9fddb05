//! Where snapshots come from in this process: a folder of CR manifests compiled in-process
//! (local mode), or a snapshot JSON file. Both are polled cheaply (file metadata only) and
//! reloaded on change; a folder mounted from a ConfigMap (`..data` symlink swaps) works because
//! metadata is read through the links. A bad load is reported and the last good snapshot kept.
//! (The operator's snapshot stream is the third source; see the operator.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchyard_crds::compile::compile;
use switchyard_crds::snapshot::Snapshot;

use crate::state::AppState;

/// Every manifest file below `dir` (see [`switchyard_crds::manifest::files`]).
pub fn manifest_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    switchyard_crds::manifest::files(dir)
}

/// Reads and compiles a manifests folder. Errors name the file; object problems are logged
/// (those objects are left out of the snapshot, as the operator would).
pub fn compile_dir(dir: &Path) -> Result<Snapshot, String> {
    let (inventory, _) = switchyard_crds::manifest::load(dir)?;
    let compiled = compile(&inventory);
    compiled.log_issues();
    Ok(compiled.snapshot)
}

/// Reads a snapshot JSON file.
pub fn read_snapshot_file(path: &Path) -> Result<Snapshot, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a snapshot: {e}", path.display()))
}

/// A cheap fingerprint of files: (path, length, modification time).
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok();
            (
                p.clone(),
                m.as_ref().map_or(0, |m| m.len()),
                m.and_then(|m| m.modified().ok()),
            )
        })
        .collect()
}

/// Watches a manifests folder (or a snapshot file) and applies every change. Runs until the
/// task is dropped.
pub async fn watch(state: Arc<AppState>, source: Source, interval: Duration) {
    let mut last = None;
    loop {
        let files = match &source {
            Source::Manifests(dir) => manifest_files(dir).unwrap_or_default(),
            Source::SnapshotFile(f) => vec![f.clone()],
        };
        let fp = fingerprint(&files);
        if last.as_ref() != Some(&fp) {
            last = Some(fp);
            let dir_or_file = source.clone();
            let loaded = tokio::task::spawn_blocking(move || match &dir_or_file {
                Source::Manifests(dir) => compile_dir(dir),
                Source::SnapshotFile(f) => read_snapshot_file(f),
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match loaded {
                Ok(snapshot) => {
                    let _ = state.apply(snapshot);
                }
                Err(e) => {
                    state.metrics.snapshots_rejected.inc();
                    tracing::error!(error = %e, "could not load the configuration; keeping the last good snapshot");
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// A snapshot source.
#[derive(Clone, Debug)]
pub enum Source {
    /// A folder of CR manifests.
    Manifests(PathBuf),
    /// A snapshot JSON file.
    SnapshotFile(PathBuf),
}
