//! The interception record (types shared with the operator, in `switchyard_crds::record`).

pub use switchyard_crds::record::*;
