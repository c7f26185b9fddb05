//! What travels on the channel: paths, headers and stream frames.

use serde::{Deserialize, Serialize};
use switchyard_crds::snapshot::Snapshot;

/// The snapshot stream (newline-delimited JSON frames).
pub const STREAM_PATH: &str = "/v1/snapshots/stream";
/// The long-poll alternative.
pub const SNAPSHOT_PATH: &str = "/v1/snapshot";
/// Record ingestion.
pub const RECORDS_PATH: &str = "/v1/records";
/// Circuit reports.
pub const CIRCUITS_PATH: &str = switchyard_crds::circuits::REPORT_PATH;
/// Request header: the snapshot version the data plane serves (omitted before its first).
pub const HAVE_HEADER: &str = "x-switchyard-have";
/// Request header: the data plane instance (its pod name), for the connected list.
pub const INSTANCE_HEADER: &str = "x-switchyard-instance";
/// Response header: the operator's current snapshot version (stream and long-poll answers).
pub const VERSION_HEADER: &str = "x-switchyard-version";
/// Content type of the stream.
pub const NDJSON: &str = "application/x-ndjson";

/// One line of the stream, as sent (borrowing the snapshot).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FrameRef<'a> {
    /// A snapshot to apply.
    Snapshot {
        /// The snapshot, sealed.
        snapshot: &'a Snapshot,
    },
    /// Nothing new; the operator's current version (`null` before its first snapshot).
    Heartbeat {
        /// Current version.
        version: Option<&'a str>,
    },
}

/// One line of the stream, as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// A snapshot to apply.
    Snapshot {
        /// The snapshot, sealed.
        snapshot: Box<Snapshot>,
    },
    /// Nothing new; the operator's current version (`null` before its first snapshot).
    Heartbeat {
        /// Current version.
        version: Option<String>,
    },
}

impl FrameRef<'_> {
    /// The frame as one JSON line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // Plain data structures always serialize.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}
