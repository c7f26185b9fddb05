//! Query parameters: the `q=key:value …` filter language (seed 004), page parameters, and
//! strictness: an unknown parameter or filter key, a repeated one or a bad value is a 400 that
//! names it.

use std::collections::BTreeMap;

use crate::store::{Filter, MAX_PAGE_LIMIT, Page};

use super::error::ApiError;

/// Default page size of interceptions, sessions, messages and alerts.
pub const DEFAULT_LIMIT: u32 = 100;

/// The filter keys of `q`, in documentation order.
pub const FILTER_KEYS: &[&str] = &[
    "initiator",
    "provider",
    "provider_name",
    "model",
    "client",
    "workspace",
    "session_id",
    "started_after",
    "started_before",
];

/// The query string of a request, parsed: each name at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parses `a=1&b=2` (URL-encoded), accepting only the names in `allowed`.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
            .map_err(|e| ApiError::invalid("query", format!("malformed query string: {e}")))?;
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    name.clone(),
                    if allowed.is_empty() {
                        format!("unknown query parameter {name:?}: this endpoint takes none")
                    } else {
                        format!(
                            "unknown query parameter {name:?} (known: {})",
                            allowed.join(", ")
                        )
                    },
                ));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(ApiError::invalid(
                    name.clone(),
                    format!("query parameter {name:?} given more than once"),
                ));
            }
        }
        Ok(Params { values })
    }

    /// A parameter's value, if given (empty counts as not given).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An unsigned integer parameter.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::invalid(
                        name,
                        format!("{name} must be a non-negative integer, got {v:?}"),
                    )
                })
            })
            .transpose()
    }

    /// A UUID parameter.
    pub fn uuid(&self, name: &str) -> Result<Option<uuid::Uuid>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<uuid::Uuid>().map_err(|_| {
                    ApiError::invalid(
                        name,
                        format!("{name} must be an interception id (UUID), got {v:?}"),
                    )
                })
            })
            .transpose()
    }

    /// `limit` in `1..=max`, `default` when absent.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.number("limit")? {
            None => Ok(default),
            Some(n) if (1..=u64::from(max)).contains(&n) => Ok(n as u32),
            Some(n) => Err(ApiError::invalid(
                "limit",
                format!("limit must be in 1..={max}, got {n}"),
            )),
        }
    }

    /// `limit` plus at most one of `after_id` and `offset`.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit(DEFAULT_LIMIT, MAX_PAGE_LIMIT)?;
        let after_id = self.uuid("after_id")?;
        let offset = self.number("offset")?;
        if after_id.is_some() && offset.is_some() {
            return Err(ApiError::invalid(
                "offset",
                "after_id and offset cannot be used together",
            ));
        }
        Ok(Page {
            limit,
            after_id,
            offset,
        })
    }

    /// The `q` filter, restricted to `keys` (a subset of [`FILTER_KEYS`]).
    pub fn filter(&self, keys: &[&str]) -> Result<Filter, ApiError> {
        parse_filter(self.get("q").unwrap_or_default(), keys)
    }
}

/// Parses `q`: space-separated `key:value` terms (the value runs to the next space, so
/// timestamps keep their colons), each key at most once. Timestamps are RFC 3339.
pub fn parse_filter(q: &str, keys: &[&str]) -> Result<Filter, ApiError> {
    let mut filter = Filter::default();
    let mut seen: Vec<&str> = Vec::new();
    for term in q.split_whitespace() {
        let Some((key, value)) = term.split_once(':') else {
            return Err(ApiError::invalid(
                "q",
                format!("filter term {term:?} is not key:value"),
            ));
        };
        if !keys.contains(&key) {
            return Err(ApiError::invalid(
                key,
                format!(
                    "unknown filter key {key:?} in q (known: {})",
                    keys.join(", ")
                ),
            ));
        }
        if seen.contains(&key) {
            return Err(ApiError::invalid(
                key,
                format!("filter key {key:?} given more than once in q"),
            ));
        }
        seen.push(key);
        if value.is_empty() {
            return Err(ApiError::invalid(
                key,
                format!("filter key {key:?} has an empty value"),
            ));
        }
        let text = Some(value.to_owned());
        match key {
            "initiator" => filter.initiator = text,
            "provider" => filter.provider = text,
            "provider_name" => filter.provider_name = text,
            "model" => filter.model = text,
            "client" => filter.client = text,
            "workspace" => filter.workspace = text,
            "session_id" => filter.session_id = text,
            "started_after" => filter.started_after = Some(timestamp(key, value)?),
            "started_before" => filter.started_before = Some(timestamp(key, value)?),
            _ => {
                return Err(ApiError::invalid(
                    key,
                    format!("filter key {key:?} is not supported here"),
                ));
            }
        }
    }
    Ok(filter)
}

fn timestamp(key: &str, value: &str) -> Result<jiff::Timestamp, ApiError> {
    value.parse::<jiff::Timestamp>().map_err(|_| {
        ApiError::invalid(
            key,
            format!(
                "{key} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z, got {value:?}"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_q() {
        let f = parse_filter(
            "initiator:alice provider:openai provider_name:ns/p model:gpt-4o client:cursor \
             workspace:ns/w session_id:s-1 started_after:2026-01-01T00:00:00Z \
             started_before:2026-01-02T00:00:00+01:00",
            FILTER_KEYS,
        )
        .unwrap_or_default();
        assert_eq!(f.initiator.as_deref(), Some("alice"));
        assert_eq!(f.provider.as_deref(), Some("openai"));
        assert_eq!(f.provider_name.as_deref(), Some("ns/p"));
        assert_eq!(f.model.as_deref(), Some("gpt-4o"));
        assert_eq!(f.client.as_deref(), Some("cursor"));
        assert_eq!(f.workspace.as_deref(), Some("ns/w"));
        assert_eq!(f.session_id.as_deref(), Some("s-1"));
        assert_eq!(
            f.started_after.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            f.started_before.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T23:00:00Z")
        );
    }

    fn err(q: &str) -> (u16, Option<String>, String) {
        match parse_filter(q, FILTER_KEYS) {
            Ok(f) => panic!("{q:?} parsed as {f:?}"),
            Err(e) => {
                let b = e.body().error;
                (b.status, b.param, b.message)
            }
        }
    }

    #[test]
    fn bad_filters_name_the_key() {
        let (status, param, msg) = err("colour:blue");
        assert_eq!((status, param.as_deref()), (400, Some("colour")));
        assert!(msg.contains("unknown filter key \"colour\""), "{msg}");
        let (_, param, msg) = err("started_after:yesterday");
        assert_eq!(param.as_deref(), Some("started_after"));
        assert!(msg.contains("RFC 3339"), "{msg}");
        let (_, param, _) = err("started_before:2026-13-01T00:00:00Z");
        assert_eq!(param.as_deref(), Some("started_before"));
        let (_, param, _) = err("model:a model:b");
        assert_eq!(param.as_deref(), Some("model"));
        let (_, param, _) = err("model:");
        assert_eq!(param.as_deref(), Some("model"));
        let (_, param, _) = err("justaword");
        assert_eq!(param.as_deref(), Some("q"));
        match parse_filter("workspace:ns/w", &["model"]) {
            Err(e) => assert_eq!(e.body().error.param.as_deref(), Some("workspace")),
            Ok(f) => panic!("{f:?}"),
        }
    }

    #[test]
    fn params_are_strict_and_pages_checked() {
        let p = |q: &str| Params::parse(Some(q), &["q", "limit", "after_id", "offset"]);
        assert_eq!(
            p("limit=5&offset=10").and_then(|p| p.page()),
            Ok(Page::offset(10, 5))
        );
        let id = uuid::Uuid::now_v7();
        assert_eq!(
            p(&format!("after_id={id}")).and_then(|p| p.page()),
            Ok(Page::after(id, DEFAULT_LIMIT))
        );
        let param_of = |r: Result<Page, ApiError>| r.err().and_then(|e| e.body().error.param);
        assert_eq!(
            param_of(p(&format!("after_id={id}&offset=1")).and_then(|p| p.page())).as_deref(),
            Some("offset")
        );
        assert_eq!(
            param_of(p("limit=0").and_then(|p| p.page())).as_deref(),
            Some("limit")
        );
        assert_eq!(
            param_of(p("limit=1001").and_then(|p| p.page())).as_deref(),
            Some("limit")
        );
        assert_eq!(
            param_of(p("after_id=nope").and_then(|p| p.page())).as_deref(),
            Some("after_id")
        );
        assert_eq!(
            param_of(p("offset=-1").and_then(|p| p.page())).as_deref(),
            Some("offset")
        );
        assert_eq!(
            p("colour=blue")
                .err()
                .and_then(|e| e.body().error.param)
                .as_deref(),
            Some("colour")
        );
        assert_eq!(
            p("limit=1&limit=2")
                .err()
                .and_then(|e| e.body().error.param)
                .as_deref(),
            Some("limit")
        );
        assert_eq!(
            p("q=model%3Agpt-4o%20client%3Acursor")
                .and_then(|p| p.filter(FILTER_KEYS))
                .map(|f| (f.model, f.client)),
            Ok((Some("gpt-4o".into()), Some("cursor".into())))
        );
    }
}
