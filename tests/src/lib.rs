//! Shared helpers for Switchyard's integration tests: a mock TaskChain hook server and process
//! harnesses. The mock upstream is the `switchyard-mock` crate.

pub mod harness;
pub mod hook;
