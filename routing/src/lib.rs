//! Switchyard routing: the snapshot evaluator. The data plane routes live requests with it and
//! the operator's facade answers test-match with it, so both share one implementation.
//!
//! - [`table`]: a snapshot prepared for lookups ([`RoutingTable`]);
//! - [`workspace`]: which workspace a request belongs to;
//! - [`route`]: RouterPolicies, MuxRules and declared models → ordered targets;
//! - [`balance`]: which AffinityGroup member serves;
//! - [`models`]: the models a workspace can reach;
//! - [`request`]: what routing knows about a request;
//! - [`error`]: why a request cannot be routed.
//!
//! Pure code: no I/O, no HTTP.

pub mod balance;
pub mod error;
pub mod models;
pub mod request;
pub mod route;
pub mod table;
pub mod workspace;

pub use error::{RoutingError, WORKSPACE_HEADER};
pub use request::{Dialect, Endpoint, RequestInfo};
pub use table::RoutingTable;
