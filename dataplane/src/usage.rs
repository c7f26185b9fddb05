//! Token usage (the type lives in `switchyard_crds::usage`, shared with the operator).

pub use switchyard_crds::usage::Usage;
