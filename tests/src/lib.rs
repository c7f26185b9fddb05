//! Shared helpers for Switchyard's integration tests: a mock TaskChain hook server and process
//! harnesses (the mock upstream is the `switchyard-mock` crate); and the generators of the flags
//! and metrics references ([`reference`]).

pub mod harness;
pub mod hook;
pub mod reference;
