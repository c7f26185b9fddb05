//! Switchyard's cross-crate integration tests, one module per topic, in one test binary (each
//! binary links the whole workspace; on a small machine linking dominates `cargo test`).
//! Run one topic with `cargo test -p switchyard-tests --test integration dataplane_auth::`.
//! `dataplane_sentinels` and `e2e` are targets of their own (see Cargo.toml).

mod channel_e2e;
mod circuit_reports;
mod dataplane_agent_endpoints;
mod dataplane_auth;
mod dataplane_balancing;
mod dataplane_caller_limits;
mod dataplane_chains;
mod dataplane_egress;
mod dataplane_endpoints;
mod dataplane_errors;
mod dataplane_guardrails;
mod dataplane_hardening;
mod dataplane_hotswap;
mod dataplane_instructions;
mod dataplane_labels;
mod dataplane_pricing;
mod dataplane_providers;
mod dataplane_resilience;
mod dataplane_responses;
mod dataplane_routing;
mod dataplane_translation;
mod dataplane_upstream_answers;
mod deploy_manifests;
mod mock_responses;
mod mock_upstream;
mod operator_processes;
