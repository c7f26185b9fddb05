//! The interception record of one request: built along the pipeline, finished exactly once
//! (success, upstream error, local refusal) or, when dropped unfinished because the caller went
//! away, recorded as cancelled with estimated usage. Finishing also charges the workspace and
//! caller token limits with the actual usage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use switchyard_crds::snapshot::WorkspaceSnapshot;
use switchyard_crds::workspace::GuardrailAction;
use switchyard_routing::{Endpoint, RequestInfo};

use crate::classify;
use crate::guardrails;
use crate::identity::Caller;
use crate::limits::Admission;
use crate::record::{Cost, Interception, Outcome};
use crate::state::AppState;
use crate::upstream::Upstream;
use crate::usage::Usage;

/// Builds and ships the interception of one request; on drop without `finish` (the caller
/// went away) it records a cancelled interception with estimated usage.
pub(crate) struct Tracker {
    state: Arc<AppState>,
    pub(crate) rec: Interception,
    start: Instant,
    first_token: Option<Duration>,
    pub(crate) input_estimate: u64,
    pub(crate) content_bytes: usize,
    pub(crate) upstream_answered: bool,
    /// An upstream accepted the request (2xx): from here on tokens are spent.
    pub(crate) generating: bool,
    /// The usage reported so far is not final (the stream broke before its end).
    pub(crate) usage_incomplete: bool,
    /// Categories (secrets, PII) still to redact from the recorded prompt at `finish`, for a
    /// request refused before the workspace's guardrails ran; `None` once they ran.
    pub(crate) prompt_redaction: Option<(bool, bool)>,
    pub(crate) route_header: Option<String>,
    pricing: Option<switchyard_crds::common::ModelPricing>,
    model_declared: bool,
    /// The request's place in its workspace's and caller's limits, charged at `finish`.
    pub(crate) admission: Option<Admission>,
    /// The usage recorded is the sum of calls that count their own tokens (a chain run): the
    /// token metrics are not counted again.
    pub(crate) usage_counted_elsewhere: bool,
    done: bool,
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
            input_estimate: 0,
            content_bytes: 0,
            upstream_answered: false,
            generating: false,
            usage_incomplete: false,
            // Until the workspace is known, both: nothing detected is ever recorded.
            prompt_redaction: Some((true, true)),
            route_header: None,
            pricing: None,
            model_declared: false,
            admission: None,
            usage_counted_elsewhere: false,
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
            input_estimate: 0,
            content_bytes: 0,
            upstream_answered: self.upstream_answered,
            generating: self.generating,
            usage_incomplete: false,
            prompt_redaction: None,
            route_header: self.route_header.clone(),
            pricing: None,
            model_declared: false,
            admission: None,
            usage_counted_elsewhere: self.usage_counted_elsewhere,
            done: true,
        };
        std::mem::replace(self, husk)
    }

    pub(crate) fn note_request(&mut self, info: &RequestInfo) {
        self.rec.model_requested = info.model.clone();
        self.rec.stream = info.stream;
        self.rec.session_id = info.session_id.clone();
        self.rec.tags = info.tags.clone();
        self.rec.metadata = info.metadata.clone();
        self.rec.user_prompt = info.user_prompt.clone();
        self.rec.initiator = info.user.clone();
    }

    pub(crate) fn note_caller(&mut self, caller: &Caller, workspace: &WorkspaceSnapshot) {
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

    /// Redacts what the guardrails would find (`secrets`, `pii`) from the caller text the
    /// record keeps: the user prompt, the initiator (`user`) and the metadata values.
    pub(crate) fn redact_recorded(&mut self, secrets: bool, pii: bool) {
        redact_recorded_text(&self.state.scanner, &mut self.rec, secrets, pii);
    }

    pub(crate) fn served_by(&mut self, up: &Upstream) {
        self.generating = true;
        self.rec.provider = Some(up.kind.to_owned());
        self.rec.provider_name = Some(up.name.clone());
        self.rec.model_served = Some(up.model.clone());
        if let Some(r) = &mut self.rec.route {
            r.target = up.target_label.clone();
        }
        self.pricing = up.pricing.clone();
        self.model_declared = up.declared;
    }

    pub(crate) fn mark_first_token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.start.elapsed());
        }
    }

    /// Finishes the record of a request that failed with `e` (the outcome follows from the
    /// error's kind and whether an upstream answered).
    pub(crate) fn fail(&mut self, e: &crate::errors::ApiError) {
        use crate::errors::ErrorKind;
        let outcome = match e.kind {
            ErrorKind::Internal => Outcome::GatewayError,
            ErrorKind::Upstream | ErrorKind::Timeout => Outcome::UpstreamError,
            _ if self.upstream_answered => Outcome::UpstreamError,
            _ => Outcome::Rejected,
        };
        self.finish(
            e.kind.status().as_u16(),
            outcome,
            Some(e.message.clone()),
            None,
        );
    }

    /// Finalizes and ships the record (once).
    pub(crate) fn finish(
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
        match usage {
            Some(mut u) if self.usage_incomplete => {
                // Reported before the break (Anthropic's message_start carries a placeholder
                // output count): keep what was reported, count at least what was relayed.
                u.output_tokens = u.output_tokens.max((self.content_bytes / 4) as u64);
                rec.usage = u;
                rec.usage_estimated = true;
            }
            Some(u) => rec.usage = u,
            // Only a call an upstream accepted spends tokens; a refused one (4xx, 5xx) costs
            // nothing.
            None if self.generating => {
                // The upstream never reported usage (the caller left, or the stream broke).
                rec.usage = Usage {
                    input_tokens: self.input_estimate,
                    output_tokens: (self.content_bytes / 4) as u64,
                    cache_read_input_tokens: 0,
                    cache_write_input_tokens: 0,
                };
                rec.usage_estimated = true;
            }
            None => {}
        }
        if let Some(p) = &self.pricing {
            rec.cost = Cost::of(&rec.usage, p);
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
