//! Shared helpers for Switchyard's integration tests: a mock TaskChain hook server and process
//! harnesses (the mock upstream is the `switchyard-mock` crate); the check that no crate has an
//! import cycle between its modules ([`module_graph`]); and the generators of the flags and
//! metrics references ([`reference`]).

pub mod harness;
pub mod hook;
pub mod module_graph;
pub mod reference;
