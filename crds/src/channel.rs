//! The data-plane channel protocol, one definition for both ends (the operator's channel
//! server and the data plane's operator client): paths, headers and stream frames.

use crate::snapshot::Snapshot;
use serde::{Deserialize, Serialize};

/// The snapshot stream (newline-delimited JSON frames).
pub const STREAM_PATH: &str = "/v1/snapshots/stream";
/// The long-poll alternative.
pub const SNAPSHOT_PATH: &str = "/v1/snapshot";
/// Record ingestion.
pub const RECORDS_PATH: &str = "/v1/records";
/// Circuit reports (a [`CircuitReport`](crate::circuits::CircuitReport) per data plane).
pub const CIRCUITS_PATH: &str = "/v1/circuits";
/// Request header: the snapshot version the data plane serves (omitted before its first).
pub const HAVE_HEADER: &str = "x-switchyard-have";
/// Request header: the data plane instance (its pod name), for the connected list.
pub const INSTANCE_HEADER: &str = "x-switchyard-instance";
/// Response header: the operator's current snapshot version (stream and long-poll answers).
pub const VERSION_HEADER: &str = "x-switchyard-version";
/// Content type of the stream.
pub const NDJSON: &str = "application/x-ndjson";
/// Longest stream line a reader accepts (a snapshot frame).
pub const MAX_FRAME_BYTES: usize = 256 << 20;

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

/// One line of the stream, as read. A frame type this reader does not know is [`Frame::Unknown`]
/// (ignored), so a newer operator can add frames.
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
    /// A frame type this reader does not know.
    #[serde(other)]
    Unknown,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_unknown_types_are_tolerated() {
        let line = FrameRef::Heartbeat {
            version: Some("v1"),
        }
        .to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        let f: Result<Frame, _> = serde_json::from_slice(&line);
        assert_eq!(
            f.ok(),
            Some(Frame::Heartbeat {
                version: Some("v1".to_owned())
            })
        );
        let f: Result<Frame, _> = serde_json::from_str(r#"{"type":"heartbeat","version":null}"#);
        assert_eq!(f.ok(), Some(Frame::Heartbeat { version: None }));
        let f: Result<Frame, _> = serde_json::from_str(r#"{"type":"hello","x":1}"#);
        assert_eq!(f.ok(), Some(Frame::Unknown));
    }
}
