//! The integration tests of switchyard-dataplane, one module per topic, in one test binary
//! (each binary links the whole crate; on a small machine linking dominates `cargo test`).
//! Run one topic with `cargo test -p switchyard-dataplane --test integration guardrails::`.

mod demo;
mod egress;
mod guardrails;
mod responses_golden;
mod translate_golden;
