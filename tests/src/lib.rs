//! Shared helpers for Switchyard's integration tests: the mock upstream (also the
//! `switchyard-mock-upstream` binary), a mock TaskChain hook server, process harnesses, and the
//! check that no crate has an import cycle between its modules ([`module_graph`]).

pub mod harness;
pub mod hook;
pub mod mock;
pub mod module_graph;
