//! Why an upstream call failed: the closed set of `kind` values of
//! `switchyard_upstream_errors_total`, and what each one means for the target's circuit breaker,
//! a retry on the same target ([`crate::retry::retryable`]) and the next target.
//!
//! | kind | failure | breaker | retry on the target |
//! |---|---|---|---|
//! | `connect` | the connection could not be made | counts | yes |
//! | `request` | the request failed after connecting, with no answer (reset, TLS, protocol) | counts | yes |
//! | `timeout` | no answer head in time, or an answer (body, stream) idle or past the request's total timeout | counts | yes |
//! | `status_4xx` | a non-2xx status other than 5xx (a redirect too: none is followed) | 429 and 408 count | 429 |
//! | `status_5xx` | a 5xx status | counts | 502, 503, 504, 529 |
//! | `too_large` | a non-streamed answer over the gateway's limit | counts | yes |
//! | `body_cut` | a non-streamed answer broken off while read | counts | yes |
//! | `invalid_answer` | a 2xx non-streamed answer that is not one of the dialect | counts | yes |
//! | `error_body` | a 2xx non-streamed answer that is an error | counts | no |
//! | `stream_cut` | a stream broken off, or ended before its end | counts | yes |
//! | `invalid_stream` | a stream that is not one of the dialect | counts | yes |
//! | `error_event` | the upstream's own error event inside a 2xx stream | counts | no |
//!
//! A retry or another target is only tried before anything reached the caller; a stream that
//! fails later ends with an error event (and its breaker counts the failure).

use std::fmt;

use axum::http::StatusCode;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

use crate::breaker::CallOutcome;

/// Why an upstream call failed (see the module docs for each value's label and meaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamFailure {
    /// `connect`: the connection could not be made.
    Connect,
    /// `request`: the request failed after connecting, before any answer came back.
    Request,
    /// `timeout`: the answer head, or the rest of the answer, did not come in time.
    Timeout,
    /// `status_4xx`: a non-2xx status other than 5xx.
    Status4xx,
    /// `status_5xx`: a 5xx status.
    Status5xx,
    /// `too_large`: a non-streamed answer larger than the gateway's limit.
    TooLarge,
    /// `body_cut`: a non-streamed answer broken off while it was read.
    BodyCut,
    /// `invalid_answer`: a 2xx non-streamed answer that is not an answer of the dialect.
    InvalidAnswer,
    /// `error_body`: a 2xx non-streamed answer that is an error.
    ErrorBody,
    /// `stream_cut`: a stream broken off, or ended before its proper end.
    StreamCut,
    /// `invalid_stream`: a stream that is not one of the dialect.
    InvalidStream,
    /// `error_event`: the upstream's own error event inside a 2xx stream.
    ErrorEvent,
}

impl UpstreamFailure {
    /// Every value, in the order of the module docs.
    pub const ALL: [Self; 12] = [
        Self::Connect,
        Self::Request,
        Self::Timeout,
        Self::Status4xx,
        Self::Status5xx,
        Self::TooLarge,
        Self::BodyCut,
        Self::InvalidAnswer,
        Self::ErrorBody,
        Self::StreamCut,
        Self::InvalidStream,
        Self::ErrorEvent,
    ];

    /// The `kind` label of `switchyard_upstream_errors_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Request => "request",
            Self::Timeout => "timeout",
            Self::Status4xx => "status_4xx",
            Self::Status5xx => "status_5xx",
            Self::TooLarge => "too_large",
            Self::BodyCut => "body_cut",
            Self::InvalidAnswer => "invalid_answer",
            Self::ErrorBody => "error_body",
            Self::StreamCut => "stream_cut",
            Self::InvalidStream => "invalid_stream",
            Self::ErrorEvent => "error_event",
        }
    }

    /// The failure of an answer with the non-2xx `status`.
    pub fn of_status(status: StatusCode) -> Self {
        if status.is_server_error() {
            Self::Status5xx
        } else {
            Self::Status4xx
        }
    }

    /// The upstream said the call failed (an error body or event), rather than the call or
    /// its answer breaking.
    pub fn is_upstream_error(self) -> bool {
        matches!(self, Self::ErrorBody | Self::ErrorEvent)
    }

    /// What the target's breaker learns. A status counts when it says something about the
    /// target's transient health: 5xx, 429 and 408. Other 4xx are about the request (400) or
    /// the configuration (401/403: a wrong key); a cooldown fixes neither, and the caller is
    /// better served by the upstream's own message than by `circuit_open`. `status` is the
    /// answer's status (used for the status kinds).
    pub fn breaker_outcome(self, status: Option<StatusCode>) -> CallOutcome {
        match (self, status) {
            (Self::Status4xx | Self::Status5xx, Some(s))
                if !(s.is_server_error()
                    || matches!(
                        s,
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
                    )) =>
            {
                CallOutcome::Ignored
            }
            _ => CallOutcome::Failure,
        }
    }

    /// Worth retrying on the same target, before anything reached the caller (see
    /// [`crate::retry::retryable`]); `status` is the answer's status (used for the status
    /// kinds). An answer the upstream said was an error is not retried.
    pub fn retryable(self, status: Option<StatusCode>) -> bool {
        match self {
            Self::Connect | Self::Request => crate::retry::retryable(None, true, false),
            Self::Timeout => crate::retry::retryable(None, false, true),
            Self::Status4xx | Self::Status5xx => {
                crate::retry::retryable(status.map(|s| s.as_u16()), false, false)
            }
            Self::ErrorBody | Self::ErrorEvent => false,
            Self::TooLarge
            | Self::BodyCut
            | Self::InvalidAnswer
            | Self::StreamCut
            | Self::InvalidStream => true,
        }
    }

    /// Another target may serve the request (nothing reached the caller yet): every failure
    /// but a status other than 429 and 5xx, which is the caller's answer.
    pub fn next_target(self, status: Option<StatusCode>) -> bool {
        match (self, status) {
            (Self::Status4xx | Self::Status5xx, Some(s)) => {
                s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
            }
            _ => true,
        }
    }
}

impl fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EncodeLabelValue for UpstreamFailure {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_documented() {
        let docs = include_str!("upstream_failure.rs");
        let mut seen = std::collections::HashSet::new();
        for f in UpstreamFailure::ALL {
            assert!(seen.insert(f.as_str()), "{f} twice");
            assert!(
                docs.contains(&format!("//! | `{f}` |")),
                "{f} not in the table"
            );
        }
    }

    #[test]
    fn statuses() {
        let s = |c: u16| StatusCode::from_u16(c).unwrap();
        for (code, kind) in [
            (500, UpstreamFailure::Status5xx),
            (529, UpstreamFailure::Status5xx),
            (429, UpstreamFailure::Status4xx),
            (302, UpstreamFailure::Status4xx),
        ] {
            assert_eq!(UpstreamFailure::of_status(s(code)), kind, "{code}");
        }
        for (code, breaker, retry, next) in [
            (400, CallOutcome::Ignored, false, false),
            (401, CallOutcome::Ignored, false, false),
            (408, CallOutcome::Failure, false, false),
            (429, CallOutcome::Failure, true, true),
            (500, CallOutcome::Failure, false, true),
            (502, CallOutcome::Failure, true, true),
            (503, CallOutcome::Failure, true, true),
            (529, CallOutcome::Failure, true, true),
        ] {
            let f = UpstreamFailure::of_status(s(code));
            assert_eq!(f.breaker_outcome(Some(s(code))), breaker, "{code}");
            assert_eq!(f.retryable(Some(s(code))), retry, "{code}");
            assert_eq!(f.next_target(Some(s(code))), next, "{code}");
        }
    }

    #[test]
    fn answers_the_upstream_called_errors_are_not_retried() {
        for f in UpstreamFailure::ALL {
            if matches!(f, UpstreamFailure::Status4xx | UpstreamFailure::Status5xx) {
                continue;
            }
            assert_eq!(f.breaker_outcome(None), CallOutcome::Failure, "{f}");
            assert!(f.next_target(None), "{f}");
            assert_eq!(f.retryable(None), !f.is_upstream_error(), "{f}");
        }
    }
}
