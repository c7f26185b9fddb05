//! The operator ⇄ data-plane channel: snapshot streaming and record ingestion over authenticated
//! TLS, served on its own listener (separate from the REST facade and the probes).
//!
//! # Routes
//!
//! Every route requires `Authorization: Bearer <token>` (401 without or with a bad token, 403
//! for a caller not allowed, 503 when the decision cannot be made now). Errors have the shape
//! `{"error":{"code":"…","message":"…"}}`. Data planes send `x-switchyard-have: <version>` (the
//! snapshot version they serve, omitted before their first) and `x-switchyard-instance: <pod
//! name>`; the operator lists them in [`Channel::dataplanes`] and in metrics.
//!
//! - `GET /v1/snapshots/stream[?have=VERSION]`: a long-lived `application/x-ndjson` response,
//!   one JSON object per line:
//!   - `{"type":"snapshot","snapshot":{…}}`: a sealed snapshot to apply. The current one is
//!     sent at once unless its version equals `have` (or, without `have`, the
//!     `x-switchyard-have` header); then every newly published version.
//!   - `{"type":"heartbeat","version":"…"|null}`: sent at once when there is nothing to send
//!     (no snapshot yet, or the caller has it), then after 15 s without a frame; `version` is
//!     the operator's current one. A client that sees nothing for ~45 s should reconnect.
//!
//!   A slow reader is never queued for: when it reads again it gets the latest version only.
//! - `GET /v1/snapshot?after=VERSION&wait_ms=N`: long-poll. 200 with the snapshot JSON as soon
//!   as the current version differs from `after` (at once if it already does); otherwise
//!   after `N` ms (default 0, at most 60 000) 304 without a body. Both carry
//!   `x-switchyard-version` when the operator has a snapshot.
//! - `POST /v1/records`: a JSON array of interception records (at most 16 MiB). 200
//!   `{"inserted":N,"duplicates":M}`; 400 naming the problem for a body that is not such an
//!   array; 413 for a larger body; 503 when the record store fails (the data plane keeps the
//!   batch and retries; the store deduplicates by interception id).
//! - `POST /v1/circuits`: a data plane's circuit report
//!   (`{"dataPlane","snapshotVersion","at","circuits":[…]}`, see
//!   [`switchyard_crds::circuits`]; at most 4 MiB). 204 when taken into the
//!   [`crate::circuits::CircuitBoard`] ([`Channel::circuits`]); 400 naming the problem for a body
//!   that is not such a report or has no data-plane name; 413 for a larger body
//!   (`too_large`) or more than `MAX_CIRCUITS` entries (`too_many_circuits`).

mod auth;
mod authz;
mod hub;
mod server;
mod tls;
mod tracking;

pub use auth::{
    AllowList, AuthError, Authenticator, Identity, StaticTokenAuthenticator,
    TokenReviewAuthenticator,
};
pub use authz::{Action, AllowAll, Authorizer, SubjectAccessReviewAuthorizer};
pub use hub::{SnapshotHub, Subscription};
pub use server::{Channel, ChannelOptions, IngestReport, RecordSink, RemoteAddr};
pub use tls::{CA_KEY, ChannelServer, FIELD_MANAGER, TlsError, TlsMaterial, publish_ca, serve_tls};
pub use tracking::{ChannelMetrics, DataPlaneInfo, FollowMode};
