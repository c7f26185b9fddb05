//! Shared helpers for Switchyard's integration tests: the mock upstream (also the
//! `switchyard-mock-upstream` binary) and process harnesses.

pub mod harness;
pub mod mock;
