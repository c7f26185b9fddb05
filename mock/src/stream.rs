//! Streaming bodies: frames sent in order with scripted delays, cuts and error events, and a
//! guard that records a cancellation when the client goes away first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;

use super::reply::Content;
use super::{CancelPhase, CancelledRequest, State};

/// How long a cut waits for the server to flush the bytes sent so far.
const FLUSH_PAUSE: Duration = Duration::from_millis(2);

/// The frames of one streamed response. Delta frames carry content and are subject to
/// `chunk_delay_ms`, `cut_after_chunks` and `error_event`.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    list: Vec<(Bytes, bool)>,
    content_start: Option<usize>,
}

impl Frames {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Frames {
            list: Vec::with_capacity(n),
            content_start: None,
        }
    }

    pub(crate) fn push(&mut self, frame: impl Into<Bytes>) {
        self.list.push((frame.into(), false));
    }

    pub(crate) fn delta(&mut self, frame: impl Into<Bytes>) {
        self.mark_content();
        self.list.push((frame.into(), true));
    }

    /// Marks where the content starts (where a cut after 0 deltas happens).
    pub(crate) fn mark_content(&mut self) {
        if self.content_start.is_none() {
            self.content_start = Some(self.list.len());
        }
    }

    /// One delta per content piece; `make` turns a piece into a frame. Filler content is framed
    /// once and the frame shared.
    pub(crate) fn content(&mut self, content: &Content, mut make: impl FnMut(&str) -> Bytes) {
        match content {
            Content::Pieces(pieces) => {
                self.list.reserve(pieces.len());
                for piece in pieces {
                    self.delta(make(piece));
                }
            }
            Content::Filler(blocks) => {
                let frame = make(super::reply::filler());
                self.list.reserve(*blocks);
                for _ in 0..*blocks {
                    self.delta(frame.clone());
                }
            }
        }
    }

    /// The frame index at which to stop after `n` deltas.
    pub(crate) fn stop_index(&self, n: u32) -> usize {
        let start = self.content_start.unwrap_or(self.list.len());
        if n == 0 {
            return start;
        }
        let mut seen = 0;
        let mut last = None;
        for (i, (_, is_delta)) in self.list.iter().enumerate() {
            if *is_delta {
                seen += 1;
                last = Some(i + 1);
                if seen == n {
                    break;
                }
            }
        }
        last.unwrap_or(start)
    }
}

/// Records a [`CancelledRequest`] when dropped while armed.
pub(crate) struct CancelGuard {
    state: Arc<State>,
    id: u64,
    path: &'static str,
    received: Instant,
    phase: CancelPhase,
    frames: u64,
    armed: bool,
}

impl CancelGuard {
    pub(crate) fn new(
        state: Arc<State>,
        id: u64,
        path: &'static str,
        received: Instant,
        phase: CancelPhase,
    ) -> Self {
        CancelGuard {
            state,
            id,
            path,
            received,
            phase,
            frames: 0,
            armed: true,
        }
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.armed {
            let at = Instant::now();
            self.state.record_cancel(CancelledRequest {
                id: self.id,
                path: self.path.to_owned(),
                phase: self.phase,
                frames_sent: self.frames,
                at,
                elapsed: at.saturating_duration_since(self.received),
            });
        }
    }
}

/// How to play the frames.
#[derive(Debug, Default)]
pub(crate) struct Playback {
    pub chunk_delay: Option<Duration>,
    pub cut_after: Option<u32>,
    /// Sent instead of the rest of the stream (after `cut_after` deltas, default 1), which then
    /// ends cleanly.
    pub error_frame: Option<Bytes>,
    /// Raw bytes sent after the first delta.
    pub inject: Option<Bytes>,
}

/// A streaming body that plays `frames`.
pub(crate) fn body(mut guard: CancelGuard, frames: Frames, playback: Playback) -> Body {
    let Playback {
        chunk_delay,
        cut_after,
        error_frame,
        mut inject,
    } = playback;
    let stop = match (&error_frame, cut_after) {
        (Some(_), n) => Some(frames.stop_index(n.unwrap_or(1))),
        (None, Some(n)) => Some(frames.stop_index(n)),
        (None, None) => None,
    };
    let stream = async_stream::stream! {
        for (i, (frame, is_delta)) in frames.list.into_iter().enumerate() {
            if Some(i) == stop {
                break;
            }
            if is_delta && let Some(delay) = chunk_delay {
                tokio::time::sleep(delay).await;
            }
            yield Ok::<Bytes, std::io::Error>(frame);
            guard.frames += 1;
            if is_delta && let Some(raw) = inject.take() {
                yield Ok(raw);
            }
        }
        if stop.is_some() {
            if let Some(frame) = error_frame {
                yield Ok(frame);
                guard.frames += 1;
                guard.disarm();
            } else {
                guard.disarm();
                // Let the server flush what it buffered before the abort discards it.
                tokio::time::sleep(FLUSH_PAUSE).await;
                yield Err(std::io::Error::other("mock upstream: cut mid-stream"));
            }
        } else {
            guard.disarm();
        }
    };
    Body::from_stream(stream)
}

/// A body that sends the first half of `bytes` and then aborts (the declared length is the
/// full one, so the client sees a truncated body).
pub(crate) fn cut_body(bytes: Bytes) -> Body {
    let half = bytes.slice(..bytes.len() / 2);
    let stream = async_stream::stream! {
        if !half.is_empty() {
            yield Ok::<Bytes, std::io::Error>(half);
        }
        tokio::time::sleep(FLUSH_PAUSE).await;
        yield Err(std::io::Error::other("mock upstream: cut mid-body"));
    };
    Body::from_stream(stream)
}

/// A body that sends nothing until the client goes away (recorded as a cancellation then).
pub(crate) fn stalled(guard: CancelGuard) -> Body {
    let stream = async_stream::stream! {
        let _guard = guard;
        std::future::pending::<()>().await;
        yield Ok::<Bytes, std::io::Error>(Bytes::new());
    };
    Body::from_stream(stream)
}
