//! Shared helpers for Switchyard's integration tests: the mock upstream (also the
//! `switchyard-mock-upstream` binary), a mock TaskChain hook server and process harnesses.

pub mod harness;
pub mod hook;
pub mod mock;
