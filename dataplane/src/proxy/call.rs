//! What one upstream call is made with: the request it serves ([`Call`]) and what it holds
//! while it runs ([`CallGuard`]). Used by the attempt that makes the call and by the stream
//! that outlives it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::Value;
use switchyard_routing::balance::InFlight;
use switchyard_routing::{Endpoint, RequestInfo};

use crate::breaker::{CallOutcome, Permit};
use crate::identity::Caller;
use crate::limits::ConcurrencyPermit;
use crate::state::AppState;

/// Everything one attempt needs besides the upstream.
pub(crate) struct Call<'a> {
    pub(crate) state: &'a Arc<AppState>,
    pub(crate) endpoint: Endpoint,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a Value,
    pub(crate) info: &'a RequestInfo,
    pub(crate) caller: &'a Caller,
    /// A Responses API request (`/v1/responses`): its id and stored state.
    pub(crate) responses: Option<&'a super::responses::ResponsesCall<'a>>,
}

/// What an upstream call holds while it runs. Finished with the call's outcome; dropped
/// unfinished (the caller went away, the gateway refused), the breaker ignores the call.
pub(crate) struct CallGuard {
    pub(crate) permit: Permit,
    /// The backend slot, held (not read) until the call ends.
    pub(crate) _slot: ConcurrencyPermit,
    /// The balancer's count of outstanding calls, held until the call ends.
    pub(crate) _in_flight: Option<InFlight>,
}

impl CallGuard {
    /// Reports the call to the target's breaker and frees the backend slot.
    pub(crate) fn finish(self, outcome: CallOutcome, latency: Duration) {
        self.permit.finish(outcome, latency, Instant::now());
    }
}
