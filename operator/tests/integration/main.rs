//! The integration tests of switchyard-operator, one module per topic, in one test binary (each
//! binary links the whole crate; on a small machine linking dominates `cargo test`).
//! Run one topic with `cargo test -p switchyard-operator --test integration store::`.

mod channel;
mod facade;
mod store;
