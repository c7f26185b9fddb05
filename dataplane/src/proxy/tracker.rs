//! The interception record of one request: built along the pipeline from what happened to it
//! (the methods are named after those events), finished exactly once (answered, stream ended,
//! failed) or, when dropped unfinished because the caller went away, recorded as cancelled with
//! estimated usage. The outcome, status, error and usage of the record are decided here, from
//! the event that finished it. Finishing also charges the workspace and caller token limits
//! with the actual usage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use switchyard_crds::snapshot::WorkspaceSnapshot;
use switchyard_crds::workspace::GuardrailAction;
use switchyard_routing::route::Route;
use switchyard_routing::{Endpoint, RequestInfo};

use super::answer::Summary;
use crate::classify;
use crate::errors::{ApiError, ErrorKind};
use crate::guardrails;
use crate::identity::Caller;
use crate::limits::Admission;
use crate::record::{Alert, Attempt, Cost, Interception, Outcome, RouteRecord};
use crate::state::AppState;
use crate::upstream::Upstream;
use crate::upstream_failure::UpstreamFailure;
use crate::usage::Usage;

/// The endpoint a token count is recorded under.
pub(crate) const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";

/// Builds and ships the interception of one request; on drop without finishing (the caller
/// went away) it records a cancelled interception with estimated usage.
pub(crate) struct Tracker {
    state: Arc<AppState>,
    rec: Interception,
    start: Instant,
    first_token: Option<Duration>,
    spend: Spend,
    /// An upstream sent a response head (any status).
    upstream_answered: bool,
    /// Categories (secrets, PII) still to redact from the recorded prompt at `finish`, for a
    /// request refused before the workspace's guardrails ran; `None` once they ran.
    prompt_redaction: Option<(bool, bool)>,
    route_header: Option<String>,
    pricing: Option<switchyard_crds::common::ModelPricing>,
    model_declared: bool,
    /// The request's place in its workspace's and caller's limits, charged at `finish`.
    admission: Option<Admission>,
    /// The usage recorded is the sum of calls that count their own tokens (a chain run): the
    /// token metrics are not counted again.
    usage_counted_elsewhere: bool,
    /// A token count (`/v1/messages/count_tokens`): nothing is generated, so the record carries
    /// no usage and no cost whatever happens, and no token limit is charged.
    unbilled: bool,
    done: bool,
}

/// What the request spent, for the usage recorded when the upstream reported none (or not all).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Spend {
    /// Input tokens estimated from the request body.
    input_estimate: u64,
    /// Bytes of generated content relayed.
    content_bytes: usize,
    /// An upstream accepted the request (2xx): from here on tokens are spent.
    generating: bool,
    /// The usage reported so far is not final (the stream broke before its end).
    usage_incomplete: bool,
}

impl Spend {
    /// The usage to record and whether it is estimated, from the usage the upstream `reported`;
    /// `None`: nothing was spent (keep the record's usage).
    fn recorded(self, reported: Option<Usage>) -> Option<(Usage, bool)> {
        match reported {
            Some(mut u) if self.usage_incomplete => {
                // Reported before the break (Anthropic's message_start carries a placeholder
                // output count): keep what was reported, count at least what was relayed.
                u.output_tokens = u.output_tokens.max((self.content_bytes / 4) as u64);
                Some((u, true))
            }
            Some(u) => Some((u, false)),
            // Only a call an upstream accepted spends tokens; a refused one (4xx, 5xx) costs
            // nothing.
            None if self.generating => {
                // The upstream never reported usage (the caller left, or the stream broke).
                Some((
                    Usage {
                        input_tokens: self.input_estimate,
                        output_tokens: (self.content_bytes / 4) as u64,
                        cache_read_input_tokens: 0,
                        cache_write_input_tokens: 0,
                    },
                    true,
                ))
            }
            None => None,
        }
    }
}

/// The outcome of a request that failed with an error of `kind`: the gateway's own fault, an
/// upstream's, or else a refusal (which is the upstream's when one answered).
fn failure_outcome(kind: ErrorKind, upstream_answered: bool) -> Outcome {
    match kind {
        ErrorKind::Internal => Outcome::GatewayError,
        ErrorKind::Upstream | ErrorKind::Timeout => Outcome::UpstreamError,
        _ if upstream_answered => Outcome::UpstreamError,
        _ => Outcome::Rejected,
    }
}

/// The outcome of a TaskChain run that failed with an error of `kind` (its calls' own records
/// say which upstream failed).
fn run_failure_outcome(kind: ErrorKind) -> Outcome {
    match kind {
        ErrorKind::Internal => Outcome::GatewayError,
        ErrorKind::InvalidRequest => Outcome::Rejected,
        _ => Outcome::UpstreamError,
    }
}

/// The outcome of a stream that ended after the caller's response started (`failure`: how it
/// failed), and whether the usage it reported is incomplete (it broke before its end; an error
/// event is the upstream's own end).
fn stream_outcome(failure: Option<UpstreamFailure>) -> (Outcome, bool) {
    match failure {
        None => (Outcome::Success, false),
        Some(f) => (Outcome::UpstreamError, !f.is_upstream_error()),
    }
}

impl Tracker {
    pub(crate) fn new(
        state: Arc<AppState>,
        endpoint: Endpoint,
        headers: &HeaderMap,
        request_id: &str,
        version: &str,
    ) -> Self {
        state.metrics.in_flight.inc();
        let now = jiff::Timestamp::now();
        Self {
            state,
            rec: Interception {
                id: uuid::Uuid::now_v7(),
                request_id: request_id.to_owned(),
                started_at: now,
                ended_at: now,
                endpoint: endpoint.path().to_owned(),
                workspace: None,
                initiator: None,
                credential_kind: "none".into(),
                client: classify::client_name(headers),
                session_id: None,
                provider: None,
                provider_name: None,
                model_requested: String::new(),
                model_served: None,
                route: None,
                attempts: Vec::new(),
                status: 0,
                outcome: Outcome::Success,
                error: None,
                stream: false,
                latency_ms: 0,
                ttft_ms: None,
                usage: Usage::default(),
                usage_estimated: false,
                cost: Cost::default(),
                cost_source: None,
                tool_usages: Vec::new(),
                finish_reason: None,
                user_prompt: None,
                tags: Default::default(),
                metadata: None,
                alerts: Vec::new(),
                snapshot_version: version.to_owned(),
                chain: None,
                thread_root_id: None,
            },
            start: Instant::now(),
            first_token: None,
            spend: Spend::default(),
            upstream_answered: false,
            // Until the workspace is known, both: nothing detected is ever recorded.
            prompt_redaction: Some((true, true)),
            route_header: None,
            pricing: None,
            model_declared: false,
            admission: None,
            usage_counted_elsewhere: false,
            unbilled: false,
            done: false,
        }
    }

    /// Moves the tracker out (into a streaming body), leaving a finished husk behind.
    pub(crate) fn take(&mut self) -> Tracker {
        let husk = Tracker {
            state: self.state.clone(),
            rec: self.rec.clone(),
            start: self.start,
            first_token: None,
            spend: Spend {
                generating: self.spend.generating,
                ..Spend::default()
            },
            upstream_answered: self.upstream_answered,
            prompt_redaction: None,
            route_header: self.route_header.clone(),
            pricing: None,
            model_declared: false,
            admission: None,
            usage_counted_elsewhere: self.usage_counted_elsewhere,
            unbilled: self.unbilled,
            done: true,
        };
        std::mem::replace(self, husk)
    }

    /// The interception's id.
    pub(crate) fn id(&self) -> uuid::Uuid {
        self.rec.id
    }

    /// The request id (sent upstream with every attempt).
    pub(crate) fn request_id(&self) -> &str {
        &self.rec.request_id
    }

    /// The usage recorded so far.
    pub(crate) fn usage(&self) -> Usage {
        self.rec.usage
    }

    /// The cost recorded so far.
    pub(crate) fn cost(&self) -> Cost {
        self.rec.cost
    }

    /// The `x-switchyard-route` value: the route (target, model) taken, or the chain.
    pub(crate) fn route_header(&self) -> Option<&str> {
        self.route_header.as_deref()
    }

    /// The request body was read (`bytes` long): the input tokens are estimated from it.
    pub(crate) fn body_read(&mut self, bytes: usize) {
        self.spend.input_estimate = (bytes / 4) as u64;
    }

    /// The request was classified.
    pub(crate) fn classified(&mut self, info: &RequestInfo) {
        self.rec.model_requested = info.model.clone();
        self.rec.stream = info.stream;
        self.rec.session_id = info.session_id.clone();
        self.rec.tags = info.tags.clone();
        self.rec.metadata = info.metadata.clone();
        self.rec.user_prompt = info.user_prompt.clone();
        self.rec.initiator = info.user.clone();
    }

    /// The caller was identified, in `workspace`.
    pub(crate) fn identified(&mut self, caller: &Caller, workspace: &WorkspaceSnapshot) {
        self.rec.workspace = Some(workspace.key.clone());
        self.prompt_redaction = Some((
            workspace.guardrail_secrets != GuardrailAction::Off,
            workspace.guardrail_pii != GuardrailAction::Off,
        ));
        self.rec.credential_kind = caller.credential_kind.as_str().to_owned();
        if caller.initiator.is_some() {
            self.rec.initiator = caller.initiator.clone();
        }
    }

    /// The request was admitted by the limits (charged when the record is finished).
    pub(crate) fn admitted(&mut self, admission: Admission) {
        self.admission = Some(admission);
    }

    /// The workspace's guardrails ran and found `alerts`. The record store never keeps a
    /// finding, whatever the action: the recorded caller text is redacted of the categories
    /// the workspace checks (`secrets`, `pii`) even when the request went upstream unchanged
    /// (`alert`).
    pub(crate) fn guardrails_ran(&mut self, alerts: Vec<Alert>, secrets: bool, pii: bool) {
        self.prompt_redaction = None;
        if !alerts.is_empty() {
            redact_recorded_text(&self.state.scanner, &mut self.rec, secrets, pii);
        }
        self.rec.alerts = alerts;
    }

    /// The request is served by the TaskChain `chain` (asked for as `model`, or by its path):
    /// its usage is the sum of its calls, which count their own tokens.
    pub(crate) fn chain_run(&mut self, chain: &str, model: String, by_path: bool) {
        self.rec.chain = Some(chain.to_owned());
        self.rec.model_requested = model;
        self.usage_counted_elsewhere = true;
        self.route_header = Some(format!("chain={chain}"));
        if by_path {
            self.rec.endpoint = "/v1/chains/{name}/chat/completions".into();
        }
    }

    /// The request counts tokens (`POST /v1/messages/count_tokens`): recorded under that
    /// endpoint, unbilled (no usage, no cost, nothing charged to the token limits).
    pub(crate) fn token_count(&mut self) {
        self.rec.endpoint = COUNT_TOKENS_PATH.into();
        self.unbilled = true;
    }

    /// The request is a call of the TaskChain `chain`'s run `run_id`.
    pub(crate) fn call_of_run(&mut self, chain: &str, run_id: uuid::Uuid) {
        self.rec.chain = Some(chain.to_owned());
        self.rec.thread_root_id = Some(run_id);
    }

    /// A call of the run spent `usage` and `cost` (added as they come, so a run the caller
    /// abandons is still recorded with what it spent).
    pub(crate) fn run_spent(&mut self, usage: Usage, cost: Cost) {
        let u = &mut self.rec.usage;
        u.input_tokens += usage.input_tokens;
        u.output_tokens += usage.output_tokens;
        u.cache_read_input_tokens += usage.cache_read_input_tokens;
        u.cache_write_input_tokens += usage.cache_write_input_tokens;
        self.rec.cost.input += cost.input;
        self.rec.cost.output += cost.output;
    }

    /// `route` is tried: the record names it, with its first target until one is called.
    pub(crate) fn routed(&mut self, route: &Route) {
        self.rec.route = Some(RouteRecord {
            source: route.source.kind().to_owned(),
            rule: route.source.key().map(str::to_owned),
            target: route
                .targets
                .first()
                .map(ToString::to_string)
                .unwrap_or_default(),
        });
    }

    /// The target of `up` is tried (`route_header` names it): the record names the target
    /// that answered, or else the last one tried.
    pub(crate) fn trying(&mut self, up: &Upstream, route_header: String) {
        self.route_header = Some(route_header);
        if let Some(r) = &mut self.rec.route {
            r.target.clone_from(&up.target_label);
        }
    }

    /// A target was skipped without a call: nothing of it could serve `model` (`why`).
    pub(crate) fn target_skipped(&mut self, target: String, model: String, why: &str) {
        self.rec.attempts.push(Attempt {
            target,
            backend: None,
            model,
            status: None,
            error: Some(why.into()),
            latency_ms: 0,
        });
    }

    /// The gateway did not call `up` (`why`: an open circuit, a full queue), after `waited`.
    pub(crate) fn not_called(&mut self, up: &Upstream, why: String, waited: Duration) {
        self.push_attempt(up, None, Some(why), waited);
    }

    /// A call to `up` failed after `latency` (`status`: the answer's, if one came).
    pub(crate) fn attempt_failed(
        &mut self,
        up: &Upstream,
        status: Option<u16>,
        error: String,
        latency: Duration,
    ) {
        self.push_attempt(up, status, Some(error), latency);
    }

    /// A call to `up` succeeded (its answer is being relayed) after `latency`.
    pub(crate) fn attempt_succeeded(&mut self, up: &Upstream, status: u16, latency: Duration) {
        self.push_attempt(up, Some(status), None, latency);
    }

    fn push_attempt(
        &mut self,
        up: &Upstream,
        status: Option<u16>,
        error: Option<String>,
        latency: Duration,
    ) {
        self.rec.attempts.push(Attempt {
            target: up.target_label.clone(),
            backend: up.backend.clone(),
            model: up.model.clone(),
            status,
            error,
            latency_ms: latency.as_millis() as u64,
        });
    }

    /// An upstream sent a response head (whatever its status): a refusal from here on is the
    /// upstream's.
    pub(crate) fn upstream_responded(&mut self) {
        self.upstream_answered = true;
    }

    /// `up` accepted the request (2xx): it serves it, and tokens are spent from here on.
    pub(crate) fn served_by(&mut self, up: &Upstream) {
        self.spend.generating = true;
        self.rec.provider = Some(up.kind.to_owned());
        self.rec.provider_name = Some(up.name.clone());
        self.rec.model_served = Some(up.model.clone());
        if let Some(r) = &mut self.rec.route {
            r.target = up.target_label.clone();
        }
        self.pricing = up.pricing.clone();
        self.model_declared = up.declared;
    }

    /// The first of the answer reached the caller (later calls change nothing).
    pub(crate) fn mark_first_token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.start.elapsed());
        }
    }

    /// A stream relayed `content_bytes` of generated content so far.
    pub(crate) fn relayed(&mut self, content_bytes: usize) {
        self.spend.content_bytes = content_bytes;
    }

    /// A whole answer (`summary`) is given to the caller: a success.
    pub(crate) fn answered(&mut self, summary: Summary) {
        self.rec.finish_reason = summary.finish_reason;
        self.rec.tool_usages = summary.tools;
        self.mark_first_token();
        self.finish(200, Outcome::Success, None, summary.usage);
    }

    /// A stream relayed to the caller ended, after `content_bytes` of generated content,
    /// having told `summary`; `failure`: it failed so (and the message the caller got). The
    /// caller's status was 200 whatever followed.
    pub(crate) fn stream_ended(
        &mut self,
        summary: Summary,
        content_bytes: usize,
        failure: Option<(UpstreamFailure, String)>,
    ) {
        self.rec.finish_reason = summary.finish_reason;
        self.rec.tool_usages = summary.tools;
        self.spend.content_bytes = content_bytes;
        let (failure, error) = failure.unzip();
        let (outcome, usage_incomplete) = stream_outcome(failure);
        self.spend.usage_incomplete = usage_incomplete;
        self.finish(200, outcome, error, summary.usage);
    }

    /// The request failed with `e` (refused by the gateway, or by the upstream, or the
    /// upstream failed): the outcome follows from the error's kind and whether an upstream
    /// answered.
    pub(crate) fn failed(&mut self, e: &ApiError) {
        let outcome = failure_outcome(e.kind, self.upstream_answered);
        self.finish(
            e.kind.status().as_u16(),
            outcome,
            Some(e.message.clone()),
            None,
        );
    }

    /// The TaskChain run failed with `e`, having spent what its calls spent.
    pub(crate) fn run_failed(&mut self, e: &ApiError) {
        let usage = self.rec.usage;
        self.finish(
            e.kind.status().as_u16(),
            run_failure_outcome(e.kind),
            Some(e.message.clone()),
            Some(usage),
        );
    }

    /// Finalizes and ships the record (once).
    fn finish(
        &mut self,
        status: u16,
        outcome: Outcome,
        error: Option<String>,
        usage: Option<Usage>,
    ) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.start.elapsed();
        let rec = &mut self.rec;
        // Refused before the guardrails ran (no workspace, identity, route): the recorded
        // prompt still never keeps a finding.
        if let Some((secrets, pii)) = self.prompt_redaction.take() {
            redact_recorded_text(&self.state.scanner, rec, secrets, pii);
        }
        rec.ended_at = jiff::Timestamp::now();
        rec.status = status;
        rec.outcome = outcome;
        rec.error = error;
        rec.latency_ms = elapsed.as_millis() as u64;
        rec.ttft_ms = self.first_token.map(|d| d.as_millis() as u64);
        if let Some((u, estimated)) = self.spend.recorded(usage) {
            rec.usage = u;
            if estimated {
                rec.usage_estimated = true;
            }
        }
        if self.unbilled {
            rec.usage = Usage::default();
            rec.usage_estimated = false;
            rec.cost = Cost::default();
        } else if rec.model_served.is_some() {
            crate::record::price(rec, self.pricing.as_ref());
        }
        if let Some(admission) = self.admission.take() {
            admission.charge(rec.usage.total(), Instant::now());
        }
        let m = &self.state.metrics;
        m.in_flight.dec();
        let provider = rec.provider_name.clone().unwrap_or_else(|| "-".into());
        let model = match (&rec.model_served, self.model_declared) {
            (Some(m), true) => m.clone(),
            (Some(_), false) => crate::upstream::OTHER_MODEL.into(),
            (None, _) => "-".into(),
        };
        m.requests
            .get_or_create(&crate::metrics::RequestLabels {
                endpoint: rec.endpoint.clone(),
                gen_ai_provider_name: provider.clone(),
                gen_ai_request_model: model.clone(),
                outcome: serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            })
            .inc();
        let lat = crate::metrics::LatencyLabels {
            endpoint: rec.endpoint.clone(),
            gen_ai_provider_name: provider.clone(),
        };
        m.duration
            .get_or_create(&lat)
            .observe(elapsed.as_secs_f64());
        if let Some(t) = self.first_token {
            m.ttft.get_or_create(&lat).observe(t.as_secs_f64());
        }
        if rec.cost_source == Some(crate::record::CostSource::Unpriced) {
            m.count_unpriced(&provider, &model);
        }
        for (kind, n) in [
            ("input", rec.usage.input_tokens),
            ("output", rec.usage.output_tokens),
            ("cache_read", rec.usage.cache_read_input_tokens),
            ("cache_write", rec.usage.cache_write_input_tokens),
        ] {
            if n > 0 && !self.usage_counted_elsewhere {
                m.tokens
                    .get_or_create(&crate::metrics::TokenLabels {
                        gen_ai_provider_name: provider.clone(),
                        gen_ai_request_model: model.clone(),
                        gen_ai_token_type: kind.to_owned(),
                    })
                    .inc_by(n);
            }
        }
        self.state.spool.record(rec.clone());
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.done {
            self.finish(
                499,
                Outcome::Cancelled,
                Some("the caller went away before the response was complete".into()),
                None,
            );
        }
    }
}

fn redact_recorded_text(
    scanner: &guardrails::Scanner,
    rec: &mut Interception,
    secrets: bool,
    pii: bool,
) {
    if !(secrets || pii) {
        return;
    }
    let redact = |text: &mut String| {
        let findings = scanner.scan(text, secrets, pii);
        if !findings.is_empty() {
            *text = guardrails::redact(text, &findings);
        }
    };
    if let Some(p) = &mut rec.user_prompt {
        redact(p);
    }
    if let Some(i) = &mut rec.initiator {
        redact(i);
    }
    fn walk(v: &mut serde_json::Value, redact: &dyn Fn(&mut String)) {
        match v {
            serde_json::Value::String(s) => redact(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| walk(v, redact)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|v| walk(v, redact)),
            _ => {}
        }
    }
    if let Some(m) = &mut rec.metadata {
        walk(m, &redact);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_is_the_upstream_s_once_one_answered() {
        use ErrorKind::*;
        assert_eq!(failure_outcome(Internal, false), Outcome::GatewayError);
        assert_eq!(failure_outcome(Internal, true), Outcome::GatewayError);
        for kind in [Upstream, Timeout] {
            assert_eq!(failure_outcome(kind, false), Outcome::UpstreamError);
        }
        for kind in [
            InvalidRequest,
            RateLimit,
            Unavailable,
            Authentication,
            TooLarge,
        ] {
            assert_eq!(failure_outcome(kind, false), Outcome::Rejected, "{kind:?}");
            assert_eq!(
                failure_outcome(kind, true),
                Outcome::UpstreamError,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_failed_run_is_rejected_only_for_an_invalid_request() {
        use ErrorKind::*;
        assert_eq!(run_failure_outcome(Internal), Outcome::GatewayError);
        assert_eq!(run_failure_outcome(InvalidRequest), Outcome::Rejected);
        for kind in [Upstream, Timeout, Unavailable, RateLimit, NotFound] {
            assert_eq!(
                run_failure_outcome(kind),
                Outcome::UpstreamError,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_broken_stream_leaves_its_usage_incomplete_an_error_event_does_not() {
        assert_eq!(stream_outcome(None), (Outcome::Success, false));
        assert_eq!(
            stream_outcome(Some(UpstreamFailure::ErrorEvent)),
            (Outcome::UpstreamError, false)
        );
        for f in [
            UpstreamFailure::Timeout,
            UpstreamFailure::StreamCut,
            UpstreamFailure::InvalidStream,
        ] {
            assert_eq!(
                stream_outcome(Some(f)),
                (Outcome::UpstreamError, true),
                "{f}"
            );
        }
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    fn spend(content_bytes: usize, generating: bool, usage_incomplete: bool) -> Spend {
        Spend {
            input_estimate: 100,
            content_bytes,
            generating,
            usage_incomplete,
        }
    }

    #[test]
    fn reported_usage_is_kept_and_when_incomplete_counts_what_was_relayed() {
        for (incomplete, reported, recorded) in [
            (false, usage(7, 3), (usage(7, 3), false)),
            // A placeholder output count (message_start) is raised to the relayed content.
            (true, usage(7, 1), (usage(7, 100), true)),
            (true, usage(7, 500), (usage(7, 500), true)),
        ] {
            let spend = spend(400, true, incomplete);
            assert_eq!(
                spend.recorded(Some(reported)),
                Some(recorded),
                "{reported:?}"
            );
        }
    }

    #[test]
    fn unreported_usage_is_estimated_only_once_an_upstream_accepted() {
        // Refused (4xx, 5xx) or never sent: nothing spent.
        assert_eq!(spend(40, false, false).recorded(None), None);
        assert_eq!(
            spend(40, true, false).recorded(None),
            Some((usage(100, 10), true))
        );
    }
}
