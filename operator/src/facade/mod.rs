//! The admin REST facade under `/api/v1`: read views of the seven kinds with status, backend
//! runtime state, workspace usage, alerts and messages, interceptions and their summary,
//! sessions and threads, clients and models seen, and routing dry runs — JSON, one error shape
//! ([`error`]), an OpenAPI 3.1 document at `/api/v1/openapi.json` built from the endpoint table
//! below ([`openapi`]).
//!
//! The router is built from [`endpoints`]: one entry per route with its handler, its
//! authorization and its documentation, so the document lists every route by construction.
//! Layers, outermost first: panic → 500 in the error shape; `Authorization` marked sensitive;
//! the request id (`x-request-id`, kept or made, echoed in the answer) and request tracing in a
//! `request` span carrying it (`switchyard_runtime::request_id`); then, on every route but `openapi.json`, authentication ([`auth`]); the
//! handlers authorize (SubjectAccessReview) and answer. Unknown paths and methods get 404/405
//! in the error shape.

pub mod auth;
pub mod error;
pub mod interceptions;
pub mod openapi;
pub mod query;
pub mod sessions;
pub mod source;
pub mod test_match;
pub mod views;
pub mod workspaces;

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router, middleware};
use serde_json::Value;
use switchyard_crds::{
    AffinityGroup, Backend, MuxRule, Provider, RouterPolicy, TaskChain, Workspace,
};
use switchyard_routing::table::RoutingTable;
use switchyard_runtime::request_id::{self, Events};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::channel::{Authenticator, Authorizer, Identity, SnapshotHub};
use crate::store::Store;

use self::auth::Access;
use self::error::{ApiError, ErrorBody};
use self::openapi::{SchemaFn, schema};
use self::source::ViewSource;
use self::views::{ObjectList, ViewKind};

/// Where the facade is mounted.
pub const BASE: &str = "/api/v1";

/// The facade's state: where it reads from and how it authenticates and authorizes.
pub struct Facade {
    store: Store,
    source: Arc<dyn ViewSource>,
    hub: SnapshotHub,
    authn: Arc<dyn Authenticator>,
    authz: Arc<dyn Authorizer>,
    table: Mutex<Option<Arc<RoutingTable>>>,
    openapi: OnceLock<Arc<Value>>,
}

impl fmt::Debug for Facade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Facade")
            .field("store", &self.store.backend())
            .field("source", &self.source)
            .field("authn", &self.authn)
            .field("authz", &self.authz)
            .finish_non_exhaustive()
    }
}

impl Facade {
    /// A facade over `store` (records), `source` (objects) and `hub` (the snapshot in force).
    pub fn new(
        store: Store,
        source: Arc<dyn ViewSource>,
        hub: SnapshotHub,
        authn: Arc<dyn Authenticator>,
        authz: Arc<dyn Authorizer>,
    ) -> Self {
        Self {
            store,
            source,
            hub,
            authn,
            authz,
            table: Mutex::new(None),
            openapi: OnceLock::new(),
        }
    }

    /// The router serving `/api/v1/…`.
    pub fn router(self: Arc<Self>) -> Router {
        let mut api = Router::new();
        for e in endpoints() {
            let handler = if e.public {
                e.handler
            } else {
                e.handler.route_layer(middleware::from_fn_with_state(
                    self.clone(),
                    auth::authenticate,
                ))
            };
            api = api.route(e.path, handler);
        }
        let api = api
            .fallback(|| async { ApiError::not_found("no such route") })
            .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
            .with_state(self);
        let routes = Router::new()
            .nest(BASE, api)
            .fallback(|| async { ApiError::not_found("no such route") });
        request_id::traced(routes, Events::Default)
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
            ]))
            .layer(CatchPanicLayer::custom(|_| panicked()))
    }

    /// The OpenAPI document.
    pub fn openapi(&self) -> Arc<Value> {
        self.openapi
            .get_or_init(|| Arc::new(openapi::document(BASE, &endpoints())))
            .clone()
    }

    pub(crate) fn access<'a>(&'a self, who: &'a Identity) -> Access<'a> {
        Access { facade: self, who }
    }

    /// The routing table of the snapshot in force (rebuilt when the version changes).
    pub(crate) fn table(&self) -> Result<Arc<RoutingTable>, ApiError> {
        let snapshot = self
            .hub
            .current()
            .ok_or_else(|| ApiError::unavailable("no routing snapshot compiled yet"))?;
        let mut cached = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cached.as_ref()
            && t.version() == snapshot.version
        {
            return Ok(t.clone());
        }
        let table = Arc::new(RoutingTable::build((*snapshot).clone()).map_err(|e| {
            tracing::error!(error = %e, "the snapshot in force does not build a routing table");
            ApiError::unavailable("the routing snapshot in force is unusable; see the operator log")
        })?);
        *cached = Some(table.clone());
        Ok(table)
    }
}

fn panicked() -> Response {
    tracing::error!("facade handler panicked");
    let e = ErrorBody {
        error: error::ErrorDetail {
            status: 500,
            code: "internal".into(),
            message: "internal error; see the operator log".into(),
            param: None,
        },
    };
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(e)).into_response()
}

/// One route of the facade.
pub(crate) struct Endpoint {
    /// Method.
    pub(crate) method: Method,
    /// Path under [`BASE`], axum syntax (`{param}`).
    pub(crate) path: &'static str,
    /// One line.
    pub(crate) summary: &'static str,
    /// What the caller needs (documentation).
    pub(crate) authz: &'static str,
    /// Query parameters taken.
    pub(crate) query: &'static [&'static str],
    /// Request body type.
    pub(crate) body: Option<SchemaFn>,
    /// Response body type.
    pub(crate) response: SchemaFn,
    /// No authentication.
    pub(crate) public: bool,
    /// The handler.
    pub(crate) handler: MethodRouter<Arc<Facade>>,
}

fn endpoint(
    method: Method,
    path: &'static str,
    summary: &'static str,
    authz: &'static str,
    query: &'static [&'static str],
    response: SchemaFn,
    handler: MethodRouter<Arc<Facade>>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        authz,
        query,
        body: None,
        response,
        public: false,
        handler,
    }
}

/// The three routes of a kind: list in all namespaces, list in one, get one.
fn kind_endpoints<K: ViewKind>(
    all: &'static str,
    namespaced: &'static str,
    one: &'static str,
    summary: [&'static str; 3],
    authz: [&'static str; 3],
) -> [Endpoint; 3] {
    [
        endpoint(
            Method::GET,
            all,
            summary[0],
            authz[0],
            &[],
            schema::<ObjectList<K>>,
            get(views::list_all::<K>),
        ),
        endpoint(
            Method::GET,
            namespaced,
            summary[1],
            authz[1],
            &[],
            schema::<ObjectList<K>>,
            get(views::list_namespaced::<K>),
        ),
        endpoint(
            Method::GET,
            one,
            summary[2],
            authz[2],
            &[],
            schema::<K>,
            get(views::get_one::<K>),
        ),
    ]
}

/// Declares the three routes of each kind with literal paths.
macro_rules! kinds {
    ($($kind:ty => $plural:literal),* $(,)?) => {{
        let mut v: Vec<Endpoint> = Vec::new();
        $(
            v.extend(kind_endpoints::<$kind>(
                concat!("/", $plural),
                concat!("/namespaces/{namespace}/", $plural),
                concat!("/namespaces/{namespace}/", $plural, "/{name}"),
                [
                    concat!("List ", $plural, " with status in all namespaces"),
                    concat!("List ", $plural, " with status in a namespace"),
                    concat!("Get one of the ", $plural, " with status"),
                ],
                [
                    concat!("list ", $plural, " (cluster scope; otherwise the list is filtered to the namespaces where the caller may list them)"),
                    concat!("list ", $plural, " in the namespace"),
                    concat!("get ", $plural, " NAME in the namespace"),
                ],
            ));
        )*
        v
    }};
}

const RECORDS_AUTHZ: &str = "get workspaces in the namespace of each record's workspace \
    (cluster scope sees everything, including records without a workspace; a \
    `workspace:NS/NAME` filter needs get workspaces NAME in NS, else 403)";

/// Every route of the facade.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    let mut v = kinds!(
        Provider => "providers",
        Backend => "backends",
        AffinityGroup => "affinitygroups",
        MuxRule => "muxrules",
        RouterPolicy => "routerpolicies",
        TaskChain => "taskchains",
    );
    // Workspaces take `provider_name`.
    v.push(endpoint(
        Method::GET,
        "/workspaces",
        "List workspaces with status in all namespaces, optionally those whose mux rules use a provider",
        "list workspaces (cluster scope; otherwise filtered to the namespaces where the caller may list them)",
        &["provider_name"],
        schema::<ObjectList<Workspace>>,
        get(views::list_workspaces),
    ));
    v.push(endpoint(
        Method::GET,
        "/namespaces/{namespace}/workspaces",
        "List workspaces with status in a namespace, optionally those whose mux rules use a provider",
        "list workspaces in the namespace",
        &["provider_name"],
        schema::<ObjectList<Workspace>>,
        get(views::list_namespaced_workspaces),
    ));
    v.push(endpoint(
        Method::GET,
        "/namespaces/{namespace}/workspaces/{name}",
        "Get a workspace with status",
        "get workspaces NAME in the namespace",
        &[],
        schema::<Workspace>,
        get(views::get_one::<Workspace>),
    ));
    v.extend([
        endpoint(
            Method::GET,
            "/namespaces/{namespace}/workspaces/{name}/muxes",
            "A workspace's mux rules in evaluation order",
            "list muxrules in the namespace",
            &[],
            schema::<views::MuxList>,
            get(views::muxes),
        ),
        endpoint(
            Method::GET,
            "/namespaces/{namespace}/workspaces/{name}/usage",
            "A workspace's token usage and cost by model, and totals",
            "get workspaces NAME in the namespace",
            &[],
            schema::<workspaces::TokenUsageAggregate>,
            get(workspaces::usage),
        ),
        endpoint(
            Method::GET,
            "/namespaces/{namespace}/workspaces/{name}/alerts",
            "A workspace's guardrail alerts: totals and the findings, newest first",
            "get workspaces NAME in the namespace",
            workspaces::PAGE_PARAMS,
            schema::<workspaces::WorkspaceAlerts>,
            get(workspaces::alerts),
        ),
        endpoint(
            Method::GET,
            "/namespaces/{namespace}/workspaces/{name}/messages",
            "A workspace's prompts and answers with alert summary and token usage, newest first",
            "get workspaces NAME in the namespace",
            workspaces::PAGE_PARAMS,
            schema::<workspaces::MessageList>,
            get(workspaces::messages),
        ),
        endpoint(
            Method::GET,
            "/state",
            "Runtime state of every backend",
            "list backends (cluster scope; otherwise filtered to the namespaces where the caller may list them)",
            &[],
            schema::<views::RuntimeStateList>,
            get(views::state_all),
        ),
        endpoint(
            Method::GET,
            "/namespaces/{namespace}/state",
            "Runtime state of the backends of a namespace",
            "list backends in the namespace",
            &[],
            schema::<views::RuntimeStateList>,
            get(views::state_namespaced),
        ),
        endpoint(
            Method::GET,
            "/interceptions",
            "Interceptions, newest first",
            RECORDS_AUTHZ,
            interceptions::LIST_PARAMS,
            schema::<interceptions::InterceptionList>,
            get(interceptions::list),
        ),
        endpoint(
            Method::GET,
            "/interceptions/summary",
            "Calls, success rate, latency, tokens and cost of the matching interceptions",
            RECORDS_AUTHZ,
            &["q"],
            schema::<interceptions::InterceptionSummary>,
            get(interceptions::summary),
        ),
        endpoint(
            Method::GET,
            "/sessions",
            "Sessions, newest first",
            RECORDS_AUTHZ,
            sessions::LIST_PARAMS,
            schema::<sessions::SessionList>,
            get(sessions::list),
        ),
        endpoint(
            Method::GET,
            "/sessions/{id}",
            "A session with a page of its threads",
            RECORDS_AUTHZ,
            sessions::GET_PARAMS,
            schema::<sessions::SessionThreads>,
            get(sessions::get),
        ),
        endpoint(
            Method::GET,
            "/clients",
            "Client names seen",
            RECORDS_AUTHZ,
            &["q"],
            schema::<Vec<String>>,
            get(interceptions::clients),
        ),
        endpoint(
            Method::GET,
            "/models",
            "Models requested or served",
            RECORDS_AUTHZ,
            &["q"],
            schema::<Vec<String>>,
            get(interceptions::models),
        ),
        Endpoint {
            body: Some(schema::<test_match::TestMatchRequest>),
            ..endpoint(
                Method::POST,
                "/routerpolicies/test-match",
                "Dry-run routing: matched and selected policy, logical model and concrete target",
                "list routerpolicies in the namespace of the workspace the request lands in",
                &[],
                schema::<test_match::TestMatchResponse>,
                post(test_match::handler),
            )
        },
        Endpoint {
            public: true,
            ..endpoint(
                Method::GET,
                "/openapi.json",
                "This document",
                "none (public)",
                &[],
                schema::<Value>,
                get(openapi_json),
            )
        },
    ]);
    v
}

async fn openapi_json(State(facade): State<Arc<Facade>>) -> Json<Value> {
    Json((*facade.openapi()).clone())
}
