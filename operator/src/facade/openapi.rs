//! The OpenAPI 3.1 document of the facade, built from the same endpoint table as the router
//! (so every route is in it) and from the handlers' request and response types with schemars
//! (JSON Schema 2020-12, which OpenAPI 3.1 uses as is).

use axum::http::Method;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::Endpoint;
use super::error::ErrorBody;

/// Writes the schema of a type into the generator and returns a reference to it.
pub(crate) type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The [`SchemaFn`] of `T`.
pub(crate) fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// Description and type of each query parameter the facade takes.
fn query_param(name: &str) -> (&'static str, Value) {
    match name {
        "q" => (
            "Filter: space-separated `key:value` terms, all of which must hold. Keys: initiator, \
             provider, provider_name, model, client, workspace (a key namespace/name), \
             session_id, started_after, started_before (RFC 3339; after is inclusive, before \
             exclusive). An unknown key, a repeated one or a bad timestamp is a 400 naming it.",
            json!({"type": "string"}),
        ),
        "limit" => (
            "Page size: 1..=1000 (default 100); 1..=200 for the threads of a session (default 50).",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        "after_id" => (
            "Cursor: the page after this interception (or thread root) id, as given in \
             `next_after_id`. Cannot be combined with `offset` (or `before_id`).",
            json!({"type": "string", "format": "uuid"}),
        ),
        "offset" => (
            "Skip this many. Cannot be combined with a cursor.",
            json!({"type": "integer", "minimum": 0}),
        ),
        "after" => (
            "Cursor: the page after this session, as given in `next_cursor` (or a session's \
             `cursor`). Cannot be combined with `offset`.",
            json!({"type": "string"}),
        ),
        "before_id" => (
            "Cursor: the threads just before this thread root id (still in start order). \
             Cannot be combined with `after_id`.",
            json!({"type": "string", "format": "uuid"}),
        ),
        "provider_name" => (
            "Only workspaces with a MuxRule targeting this Provider or Backend (`name` in the \
             workspace's namespace, or `namespace/name`).",
            json!({"type": "string"}),
        ),
        _ => ("", json!({"type": "string"})),
    }
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let description = match name {
                "namespace" => "Namespace.",
                "name" => "Object name.",
                "id" => "Session id (the client's session id, or an interception id).",
                _ => "",
            };
            json!({"name": name, "in": "path", "required": true, "description": description,
                   "schema": {"type": "string"}})
        })
        .collect()
}

fn error_response(g: &mut SchemaGenerator, description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema::<ErrorBody>(g)}}
    })
}

fn operation(g: &mut SchemaGenerator, e: &Endpoint) -> Value {
    let mut params = path_params(e.path);
    for name in e.query {
        let (description, schema) = query_param(name);
        params.push(json!({"name": name, "in": "query", "required": false,
                           "description": description, "schema": schema}));
    }
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "OK", "content": {"application/json": {"schema": (e.response)(g)}}}),
    );
    let mut errors = vec![(
        "503",
        "The API server, record store or snapshot is unavailable.",
    )];
    if !e.public {
        errors.push(("401", "Missing or rejected bearer token."));
        errors.push(("403", "Not allowed (SubjectAccessReview)."));
    }
    if !e.query.is_empty() || e.body.is_some() {
        errors.push(("400", "Bad parameter, filter or body; `param` names it."));
    }
    if e.path.contains('{') || e.body.is_some() {
        errors.push(("404", "No such object."));
    }
    for (code, description) in errors {
        responses.insert(code.into(), error_response(g, description));
    }
    let mut op = json!({
        "operationId": operation_id(&e.method, e.path),
        "summary": e.summary,
        "description": format!("Authorization: {}.", e.authz),
        "parameters": params,
        "responses": responses,
    });
    if e.public {
        op["security"] = json!([]);
    }
    if let Some(body) = e.body {
        op["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": body(g)}}
        });
    }
    op
}

/// `get_namespaces_namespace_workspaces_name_usage` and the like.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.trim_matches(|c| c == '{' || c == '}')
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

/// The document for `endpoints`, served under `base` (e.g. `/api/v1`).
pub(crate) fn document(base: &str, endpoints: &[Endpoint]) -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = Map::new();
    for e in endpoints {
        let op = operation(&mut g, e);
        let entry = paths
            .entry(format!("{base}{}", e.path))
            .or_insert_with(|| json!({}));
        entry[e.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchyard admin facade",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Read views of the switchyard.dev resources with status, usage, \
                interceptions, sessions and routing dry runs. Every error has the shape \
                {\"error\": {\"status\", \"code\", \"message\", \"param\"?}}."
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": g.take_definitions(true),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "A Kubernetes bearer token (TokenReview), or the \
                                           static admin token in local mode."}
            }
        },
        "security": [{"bearer": []}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_stable() {
        assert_eq!(
            operation_id(
                &Method::GET,
                "/namespaces/{namespace}/workspaces/{name}/usage"
            ),
            "get_namespaces_namespace_workspaces_name_usage"
        );
        assert_eq!(
            operation_id(&Method::POST, "/routerpolicies/test-match"),
            "post_routerpolicies_test_match"
        );
    }
}
