//! The integration tests of switchyard-crds, one module per topic, in one test binary (each
//! binary links the whole crate; on a small machine linking dominates `cargo test`).
//! Run one topic with `cargo test -p switchyard-crds --test integration crd_schema::`.

mod crd_schema;
mod diagnostics;
mod samples;
