//! Record store tests. Every test body runs on SQLite (module `sqlite`) and, when
//! `SWITCHYARD_TEST_POSTGRES_URL` is set, on PostgreSQL (module `postgres`) in a fresh schema.
//! `bash tests/with-postgres.sh cargo test -p switchyard-operator --test integration store::` provides one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use jiff::Timestamp;
use serde_json::json;
use switchyard_crds::record::{
    Alert, Attempt, Category, Cost, Interception, Outcome, RouteRecord, ToolUsage,
};
use switchyard_crds::usage::Usage;
use switchyard_crds::workspace::GuardrailAction;
use switchyard_operator::store::{
    AlertCounts, ChainRuns, Filter, InsertReport, ModelUsage, Page, PolicyCounters, ProviderUsage,
    RuleCounters, SCHEMA_VERSION, Session, SessionKey, SessionPage, Store, StoreError, ThreadPage,
    UsageCounters, WorkspaceAlerts, WorkspaceUsageTop,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Backends

/// A fresh store for one test, and how to reach its database again.
struct TestDb {
    store: Store,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// SQLite database file (and its -wal/-shm companions).
    File(PathBuf),
    /// PostgreSQL schema to drop, with the URL to reach the database.
    Schema { base: String, schema: String },
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("switchyard-store-{}.db", Uuid::new_v4()));
        let url = format!("sqlite://{}", path.display());
        let store = Store::connect(&url).await.expect("connect sqlite");
        TestDb {
            store,
            url,
            cleanup: Cleanup::File(path),
        }
    }

    async fn postgres() -> Option<TestDb> {
        let base = std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let schema = format!("store_test_{}", Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&base)
            .await
            .expect("connect postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let store = Store::connect(&url).await.expect("connect postgres store");
        Some(TestDb {
            store,
            url,
            cleanup: Cleanup::Schema { base, schema },
        })
    }

    async fn reconnect(&self) -> Store {
        Store::connect(&self.url).await.expect("reconnect")
    }

    async fn finish(self) {
        self.store.close().await;
        if let Cleanup::Schema { base, schema } = &self.cleanup {
            let admin = sqlx::PgPool::connect(base).await.expect("connect postgres");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .expect("drop schema");
            admin.close().await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::File(path) = &self.cleanup {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Declares each test body once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else {
                        eprintln!("SWITCHYARD_TEST_POSTGRES_URL is not set: PostgreSQL run skipped");
                        return;
                    };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

on_both_backends!(
    record_round_trips_field_for_field,
    reinsert_is_idempotent,
    rollups_match_naive_recomputation,
    workspace_usage_top_is_bounded_with_totals,
    filters_select_exactly_the_matching_records,
    cursor_pagination_walks_newest_first_with_ties_by_id,
    offset_pagination_matches_cursor_pagination,
    pagination_errors,
    summary_reports_totals_and_percentiles,
    sessions_group_by_session_and_initiator,
    session_threads_nest_calls_under_their_root,
    distinct_clients_and_models,
    prune_deletes_old_records_and_keeps_rollups,
    concurrent_inserts_count_each_record_once,
    connect_reapplies_schema_idempotently,
    schema_2_backfills_has_alerts,
    distinct_workspaces_and_session_counts,
);

// ---------------------------------------------------------------------------------------------
// Records

/// splitmix64: a small seeded generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn uuid(&mut self) -> Uuid {
        Uuid::from_u128((u128::from(self.next()) << 64) | u128::from(self.next()))
    }
}

/// 2026-01-01T00:00:00Z plus `ms`.
fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_767_225_600_000 + ms).expect("timestamp")
}

/// A plain successful record.
fn record(id: Uuid, started_ms: i64) -> Interception {
    Interception {
        id,
        request_id: format!("req-{id}"),
        started_at: at(started_ms),
        ended_at: at(started_ms + 100),
        endpoint: "/v1/chat/completions".into(),
        workspace: None,
        initiator: None,
        credential_kind: "none".into(),
        client: "curl".into(),
        session_id: None,
        provider: None,
        provider_name: None,
        model_requested: "gpt-4o".into(),
        model_served: None,
        route: None,
        attempts: Vec::new(),
        status: 200,
        outcome: Outcome::Success,
        error: None,
        stream: false,
        latency_ms: 100,
        ttft_ms: None,
        usage: Usage::default(),
        usage_estimated: false,
        cost: Cost::default(),
        cost_source: None,
        tool_usages: Vec::new(),
        finish_reason: None,
        user_prompt: None,
        tags: BTreeMap::new(),
        metadata: None,
        alerts: Vec::new(),
        snapshot_version: "v1".into(),
        chain: None,
        thread_root_id: None,
    }
}

const WORKSPACES: &[Option<&str>] = &[None, Some("team/a"), Some("team/b"), Some("team/c")];
const INITIATORS: &[Option<&str>] = &[None, Some("alice"), Some("bob"), Some("carol")];
const CLIENTS: &[&str] = &["claude-code", "cursor", "openai-python", ""];
const SESSIONS: &[Option<&str>] = &[None, Some("s-1"), Some("s-2"), Some("s-3"), Some("s-4")];
const PROVIDERS: &[(Option<&str>, Option<&str>)] = &[
    (None, None),
    (Some("openai"), Some("default/openai-main")),
    (Some("anthropic"), Some("default/claude")),
    (Some("ollama"), Some("default/gpu-backend")),
    (Some("openai"), Some("default/openai-backup")),
];
const MODELS: &[&str] = &["gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama3", ""];
const OUTCOMES: &[Outcome] = &[
    Outcome::Success,
    Outcome::Success,
    Outcome::Success,
    Outcome::UpstreamError,
    Outcome::Rejected,
    Outcome::GatewayError,
    Outcome::Cancelled,
];

/// A random record; `earlier` are ids a chain call may point at. Times are whole milliseconds
/// within `span_ms` (small spans give ties); costs are multiples of 1/64 so sums are exact.
fn random_record(rng: &mut Rng, span_ms: u64, earlier: &[Uuid]) -> Interception {
    let started = rng.below(span_ms) as i64;
    let mut r = record(rng.uuid(), started);
    r.ended_at = at(started + rng.below(5_000) as i64);
    r.workspace = rng.pick(WORKSPACES).map(str::to_owned);
    r.initiator = rng.pick(INITIATORS).map(str::to_owned);
    r.client = rng.pick(CLIENTS).to_owned();
    r.session_id = rng.pick(SESSIONS).map(str::to_owned);
    let (provider, provider_name) = rng.pick(PROVIDERS);
    r.provider = provider.map(str::to_owned);
    r.provider_name = provider_name.map(str::to_owned);
    r.model_requested = rng.pick(MODELS).to_owned();
    if provider.is_some() && rng.chance(80) {
        r.model_served = Some(rng.pick(&MODELS[..4]).to_owned());
    }
    r.route = match rng.below(6) {
        0 => None,
        1 => Some(RouteRecord {
            source: "policy".into(),
            rule: Some(rng.pick(&["default/p1", "default/p2"]).to_owned()),
            target: "provider/default/openai-main:gpt-4o".into(),
        }),
        2 | 3 => Some(RouteRecord {
            source: "muxrule".into(),
            rule: Some(
                rng.pick(&["team-a/m1", "team-a/m2", "team-b/m1"])
                    .to_owned(),
            ),
            target: "provider/default/claude:claude-sonnet".into(),
        }),
        4 => Some(RouteRecord {
            source: "muxrule".into(),
            rule: None,
            target: "x".into(),
        }),
        _ => Some(RouteRecord {
            source: "model".into(),
            rule: None,
            target: "y".into(),
        }),
    };
    r.outcome = rng.pick(OUTCOMES);
    r.status = if r.outcome == Outcome::Success {
        200
    } else {
        502
    };
    r.stream = rng.chance(50);
    r.latency_ms = 1 + rng.below(2_000);
    r.ttft_ms = rng.chance(50).then(|| rng.below(500));
    r.usage = Usage {
        input_tokens: rng.below(5_000),
        output_tokens: rng.below(2_000),
        cache_read_input_tokens: if rng.chance(30) { rng.below(10_000) } else { 0 },
        cache_write_input_tokens: if rng.chance(20) { rng.below(3_000) } else { 0 },
    };
    r.cost = Cost {
        input: rng.below(1_000) as f64 / 64.0,
        output: rng.below(1_000) as f64 / 64.0,
    };
    for _ in 0..rng.below(4).saturating_sub(1) {
        r.alerts.push(Alert {
            category: rng.pick(&[Category::Secrets, Category::Pii]),
            kind: "email".into(),
            action: GuardrailAction::Alert,
            snippet: "mail [REDACTED:email] now".into(),
            location: "/messages/0/content".into(),
        });
    }
    if rng.chance(20) {
        r.chain = Some(
            rng.pick(&["default/summarise", "default/triage"])
                .to_owned(),
        );
    }
    if !earlier.is_empty() && rng.chance(25) {
        r.thread_root_id = Some(rng.pick(earlier));
    }
    r
}

fn random_records(seed: u64, n: usize, span_ms: u64) -> Vec<Interception> {
    let mut rng = Rng(seed);
    let mut out: Vec<Interception> = Vec::with_capacity(n);
    for _ in 0..n {
        let earlier: Vec<Uuid> = out.iter().rev().take(10).map(|r| r.id).collect();
        out.push(random_record(&mut rng, span_ms, &earlier));
    }
    out
}

fn newest_first(records: &[Interception]) -> Vec<Uuid> {
    let mut v: Vec<&Interception> = records.iter().collect();
    v.sort_by_key(|r| std::cmp::Reverse((r.started_at, r.id)));
    v.into_iter().map(|r| r.id).collect()
}

fn ids(records: &[Interception]) -> Vec<Uuid> {
    records.iter().map(|r| r.id).collect()
}

async fn all(store: &Store, filter: &Filter) -> Vec<Interception> {
    let mut out = Vec::new();
    let mut page = Page::first(1000);
    loop {
        let batch = store.list(filter, &page).await.expect("list");
        let Some(last) = batch.last() else { break };
        page = Page::after(last.id, 1000);
        out.extend(batch);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Naive recomputation of the rollups

#[derive(Debug, PartialEq)]
struct Rollups {
    usage: Vec<ModelUsage>,
    alerts: Vec<WorkspaceAlerts>,
    providers: Vec<ProviderUsage>,
    rules: Vec<RuleCounters>,
    policies: Vec<PolicyCounters>,
    chains: Vec<ChainRuns>,
}

async fn rollups(store: &Store) -> Rollups {
    Rollups {
        usage: store.workspace_usage(None).await.expect("usage"),
        alerts: store.workspace_alerts(None).await.expect("alerts"),
        providers: store.provider_usage(None).await.expect("providers"),
        rules: store.rule_counters(None).await.expect("rules"),
        policies: store.policy_counters(None).await.expect("policies"),
        chains: store.chain_runs(None).await.expect("chains"),
    }
}

fn add(c: &mut UsageCounters, r: &Interception) {
    c.requests += 1;
    c.errors += u64::from(r.outcome != Outcome::Success);
    // A chain run's tokens are its calls' (counted there): the run counts as a request only.
    let (usage, cost) = if r.chain.is_some() && r.thread_root_id.is_none() {
        (Usage::default(), Cost::default())
    } else {
        (r.usage, r.cost)
    };
    c.usage.input_tokens += usage.input_tokens;
    c.usage.output_tokens += usage.output_tokens;
    c.usage.cache_read_input_tokens += usage.cache_read_input_tokens;
    c.usage.cache_write_input_tokens += usage.cache_write_input_tokens;
    c.cost.input += cost.input;
    c.cost.output += cost.output;
}

/// What the rollups must hold for these (distinct) records, computed the slow, obvious way.
fn naive(records: &[Interception]) -> Rollups {
    let latest = |a: Option<Timestamp>, b: Timestamp| Some(a.map_or(b, |a| a.max(b)));
    let mut usage: BTreeMap<(String, String, String), (UsageCounters, Option<Timestamp>)> =
        BTreeMap::new();
    let mut alerts: BTreeMap<String, (AlertCounts, Option<Timestamp>)> = BTreeMap::new();
    let mut providers: BTreeMap<String, (UsageCounters, Option<Timestamp>)> = BTreeMap::new();
    let mut rules: BTreeMap<String, (u64, Option<Timestamp>)> = BTreeMap::new();
    let mut policies: BTreeMap<String, (u64, u64, u64, Option<Timestamp>)> = BTreeMap::new();
    let mut chains: BTreeMap<String, (u64, u64, Option<Timestamp>)> = BTreeMap::new();
    for r in records {
        let ws = r.workspace.clone().unwrap_or_default();
        let model = r
            .model_served
            .clone()
            .unwrap_or_else(|| r.model_requested.clone());
        let e = usage
            .entry((ws.clone(), model, r.provider.clone().unwrap_or_default()))
            .or_default();
        add(&mut e.0, r);
        e.1 = latest(e.1, r.started_at);
        if !r.alerts.is_empty() {
            let e = alerts.entry(ws).or_default();
            for a in &r.alerts {
                match a.category {
                    Category::Secrets => e.0.secrets += 1,
                    Category::Pii => e.0.pii += 1,
                }
                e.0.total += 1;
            }
            e.1 = latest(e.1, r.started_at);
        }
        if let Some(p) = &r.provider_name {
            let e = providers.entry(p.clone()).or_default();
            add(&mut e.0, r);
            e.1 = latest(e.1, r.started_at);
        }
        if let Some(RouteRecord {
            source,
            rule: Some(rule),
            ..
        }) = &r.route
        {
            if source == "muxrule" {
                let e = rules.entry(rule.clone()).or_default();
                e.0 += 1;
                e.1 = latest(e.1, r.started_at);
            } else if source == "policy" {
                let e = policies.entry(rule.clone()).or_default();
                e.0 += 1;
                if r.outcome == Outcome::Success {
                    e.1 += 1;
                } else {
                    e.2 += 1;
                }
                e.3 = latest(e.3, r.started_at);
            }
        }
        if let (Some(chain), None) = (&r.chain, r.thread_root_id) {
            let e = chains.entry(chain.clone()).or_default();
            e.0 += 1;
            e.1 += u64::from(r.outcome != Outcome::Success);
            e.2 = latest(e.2, r.started_at);
        }
    }
    let t = |o: Option<Timestamp>| o.expect("set");
    Rollups {
        usage: usage
            .into_iter()
            .map(
                |((workspace, model, provider), (counters, last))| ModelUsage {
                    workspace,
                    model,
                    provider,
                    counters,
                    last_request_at: t(last),
                },
            )
            .collect(),
        alerts: alerts
            .into_iter()
            .map(|(workspace, (alerts, last))| WorkspaceAlerts {
                workspace,
                alerts,
                last_alert_at: t(last),
            })
            .collect(),
        providers: providers
            .into_iter()
            .map(|(provider_name, (counters, last))| ProviderUsage {
                provider_name,
                counters,
                last_request_at: t(last),
            })
            .collect(),
        rules: rules
            .into_iter()
            .map(|(rule, (match_count, last))| RuleCounters {
                rule,
                match_count,
                last_matched_at: t(last),
            })
            .collect(),
        policies: policies
            .into_iter()
            .map(
                |(policy, (match_count, success_count, error_count, last))| PolicyCounters {
                    policy,
                    match_count,
                    success_count,
                    error_count,
                    last_matched_at: t(last),
                },
            )
            .collect(),
        chains: chains
            .into_iter()
            .map(|(chain, (runs, failures, last))| ChainRuns {
                chain,
                runs,
                failures,
                last_run_at: t(last),
            })
            .collect(),
    }
}

fn distinct(records: &[Interception]) -> Vec<Interception> {
    let mut seen = BTreeSet::new();
    records
        .iter()
        .filter(|r| seen.insert(r.id))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn record_round_trips_field_for_field(db: &TestDb) {
    let store = &db.store;
    let root = Uuid::now_v7();
    let mut full = record(Uuid::now_v7(), 0);
    // Nanosecond precision survives (the JSON is the source of truth).
    full.started_at = Timestamp::new(1_767_225_600, 123_456_789).expect("ts");
    full.ended_at = Timestamp::new(1_767_225_601, 987_654_321).expect("ts");
    full.endpoint = "/v1/messages".into();
    full.workspace = Some("team/a".into());
    full.initiator = Some("system:serviceaccount:apps:bot".into());
    full.credential_kind = "gateway_key".into();
    full.client = "claude-code".into();
    full.session_id = Some("sess-42".into());
    full.provider = Some("anthropic".into());
    full.provider_name = Some("default/claude".into());
    full.model_requested = "claude-sonnet".into();
    full.model_served = Some("claude-sonnet-4-5".into());
    full.route = Some(RouteRecord {
        source: "muxrule".into(),
        rule: Some("team-a/py".into()),
        target: "provider/default/claude:claude-sonnet-4-5".into(),
    });
    full.attempts = vec![
        Attempt {
            target: "backend/default/gpu".into(),
            backend: Some("default/gpu-1".into()),
            model: "llama3".into(),
            status: Some(503),
            error: Some("overloaded".into()),
            latency_ms: 12,
        },
        Attempt {
            target: "provider/default/claude".into(),
            backend: None,
            model: "claude-sonnet-4-5".into(),
            status: Some(200),
            error: None,
            latency_ms: 340,
        },
    ];
    full.status = 200;
    full.outcome = Outcome::Success;
    full.error = Some("first attempt failed".into());
    full.stream = true;
    full.latency_ms = 1_234;
    full.ttft_ms = Some(345);
    full.usage = Usage {
        input_tokens: 10,
        output_tokens: 20,
        cache_read_input_tokens: 30,
        cache_write_input_tokens: 40,
    };
    full.usage_estimated = true;
    full.cost = Cost {
        input: 0.1 + 0.2,
        output: 1e-9,
    };
    full.tool_usages = vec![ToolUsage {
        id: "call_1".into(),
        name: "read_file".into(),
    }];
    full.finish_reason = Some("tool_use".into());
    full.user_prompt = Some("fix the [REDACTED:email] bug ünïcødé 🚀".into());
    full.tags = BTreeMap::from([("team".into(), "a".into()), ("env".into(), "prod".into())]);
    full.metadata = Some(json!({"trace": {"id": "abc", "n": [1, 2.5, null, true]}}));
    full.alerts = vec![Alert {
        category: Category::Pii,
        kind: "email".into(),
        action: GuardrailAction::Redact,
        snippet: "fix the [REDACTED:email] bug".into(),
        location: "/messages/0/content".into(),
    }];
    full.snapshot_version = "sha256:abc".into();
    full.chain = Some("default/summarise".into());
    full.thread_root_id = Some(root);
    let minimal = record(Uuid::now_v7(), 5);

    let report = store
        .insert(&[full.clone(), minimal.clone()])
        .await
        .expect("insert");
    assert_eq!(
        report,
        InsertReport {
            inserted: 2,
            duplicates: 0
        }
    );
    let got = store
        .list(&Filter::default(), &Page::default())
        .await
        .expect("list");
    assert_eq!(
        got,
        vec![full, minimal],
        "newest first, every field as inserted"
    );
    assert_eq!(store.count(&Filter::default()).await.expect("count"), 2);
}

async fn reinsert_is_idempotent(db: &TestDb) {
    let store = &db.store;
    let records = random_records(7, 60, 100_000);
    let report = store.insert(&records).await.expect("insert");
    assert_eq!(
        report,
        InsertReport {
            inserted: 60,
            duplicates: 0
        }
    );
    let before = rollups(store).await;
    let summary = store.summary(&Filter::default()).await.expect("summary");

    // The same batch again: nothing inserted, nothing counted.
    let report = store.insert(&records).await.expect("re-insert");
    assert_eq!(
        report,
        InsertReport {
            inserted: 0,
            duplicates: 60
        }
    );
    assert_eq!(rollups(store).await, before);
    assert_eq!(
        store.summary(&Filter::default()).await.expect("summary"),
        summary
    );
    assert_eq!(store.count(&Filter::default()).await.expect("count"), 60);

    // A partly new batch with a repeat inside it: only the new record counts, once.
    let fresh = random_records(8, 1, 100_000).remove(0);
    let batch = vec![
        records[3].clone(),
        fresh.clone(),
        fresh.clone(),
        records[9].clone(),
    ];
    let report = store.insert(&batch).await.expect("mixed");
    assert_eq!(
        report,
        InsertReport {
            inserted: 1,
            duplicates: 3
        }
    );
    let mut expected = records.clone();
    expected.push(fresh);
    assert_eq!(rollups(store).await, naive(&expected));
    assert_eq!(store.count(&Filter::default()).await.expect("count"), 61);

    // An empty batch is fine.
    assert_eq!(
        store.insert(&[]).await.expect("empty"),
        InsertReport::default()
    );
}

async fn rollups_match_naive_recomputation(db: &TestDb) {
    let store = &db.store;
    let mut inserted: Vec<Interception> = Vec::new();
    for seed in [11, 12, 13] {
        let records = random_records(seed, 150, 3_600_000);
        let mut rng = Rng(seed ^ 0xABCD);
        let mut i = 0;
        while i < records.len() {
            let n = 1 + rng.below(40) as usize;
            let mut batch: Vec<Interception> = records[i..(i + n).min(records.len())].to_vec();
            // At-least-once shipping: sometimes part of an earlier batch comes again.
            if i > 0 && rng.chance(40) {
                let from = rng.below(i as u64) as usize;
                batch.extend(records[from..(from + 5).min(i)].iter().cloned());
            }
            store.insert(&batch).await.expect("insert");
            i += n;
        }
        inserted.extend(records);
        let expected = naive(&inserted);
        let got = rollups(store).await;
        assert_eq!(
            got.usage, expected.usage,
            "usage by model after seed {seed}"
        );
        assert_eq!(got.alerts, expected.alerts, "alerts after seed {seed}");
        assert_eq!(
            got.providers, expected.providers,
            "providers after seed {seed}"
        );
        assert_eq!(got.rules, expected.rules, "mux rules after seed {seed}");
        assert_eq!(
            got.policies, expected.policies,
            "policies after seed {seed}"
        );
        assert_eq!(got.chains, expected.chains, "chains after seed {seed}");
    }

    // Filtered by keys (including unknown ones).
    let expected = naive(&inserted);
    let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ws = keys(&["team/a", "team/c", "team/zzz"]);
    assert_eq!(
        store.workspace_usage(Some(&ws)).await.expect("usage"),
        expected
            .usage
            .iter()
            .filter(|u| ws.contains(&u.workspace))
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.workspace_alerts(Some(&ws)).await.expect("alerts"),
        expected
            .alerts
            .iter()
            .filter(|a| ws.contains(&a.workspace))
            .cloned()
            .collect::<Vec<_>>()
    );
    let names = keys(&["default/claude", "default/nothing"]);
    assert_eq!(
        store.provider_usage(Some(&names)).await.expect("providers"),
        expected
            .providers
            .iter()
            .filter(|p| names.contains(&p.provider_name))
            .cloned()
            .collect::<Vec<_>>()
    );
    let rules = keys(&["team-a/m2"]);
    assert_eq!(
        store.rule_counters(Some(&rules)).await.expect("rules"),
        expected
            .rules
            .iter()
            .filter(|r| rules.contains(&r.rule))
            .cloned()
            .collect::<Vec<_>>()
    );
    let policies = keys(&["default/p1"]);
    assert_eq!(
        store
            .policy_counters(Some(&policies))
            .await
            .expect("policies"),
        expected
            .policies
            .iter()
            .filter(|p| policies.contains(&p.policy))
            .cloned()
            .collect::<Vec<_>>()
    );
    let chains = keys(&["default/triage"]);
    assert_eq!(
        store.chain_runs(Some(&chains)).await.expect("chains"),
        expected
            .chains
            .iter()
            .filter(|c| chains.contains(&c.chain))
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(
        store
            .chain_runs(Some(&[]))
            .await
            .expect("no keys")
            .is_empty()
    );
    // More keys than one IN list holds.
    let many: Vec<String> = (0..1_200)
        .map(|i| format!("ns/chain-{i}"))
        .chain(chains)
        .collect();
    assert_eq!(
        store
            .chain_runs(Some(&many))
            .await
            .expect("many keys")
            .len(),
        1
    );
}

async fn workspace_usage_top_is_bounded_with_totals(db: &TestDb) {
    let store = &db.store;
    let records = random_records(21, 300, 1_000_000);
    store.insert(&records).await.expect("insert");
    let expected = naive(&records);
    for ws in ["team/a", "team/b", "", "team/none"] {
        let mut rows: Vec<ModelUsage> = expected
            .usage
            .iter()
            .filter(|u| u.workspace == ws)
            .cloned()
            .collect();
        let mut totals = UsageCounters::default();
        for r in &rows {
            totals.requests += r.counters.requests;
            totals.errors += r.counters.errors;
            totals.usage.input_tokens += r.counters.usage.input_tokens;
            totals.usage.output_tokens += r.counters.usage.output_tokens;
            totals.usage.cache_read_input_tokens += r.counters.usage.cache_read_input_tokens;
            totals.usage.cache_write_input_tokens += r.counters.usage.cache_write_input_tokens;
            totals.cost.input += r.counters.cost.input;
            totals.cost.output += r.counters.cost.output;
        }
        let last = rows.iter().map(|r| r.last_request_at).max();
        let count = rows.len() as u64;
        rows.sort_by(|a, b| {
            b.counters
                .total_tokens()
                .cmp(&a.counters.total_tokens())
                .then_with(|| (&a.model, &a.provider).cmp(&(&b.model, &b.provider)))
        });
        rows.truncate(3);
        let got = store.workspace_usage_top(ws, 3).await.expect("top");
        assert_eq!(
            got,
            WorkspaceUsageTop {
                workspace: ws.to_owned(),
                models: rows,
                model_count: count,
                totals,
                last_request_at: last,
            },
            "workspace {ws:?}"
        );
    }
    assert!(
        store
            .workspace_usage_top("team/a", 0)
            .await
            .expect("zero")
            .models
            .is_empty()
    );
}

fn matches(f: &Filter, r: &Interception) -> bool {
    let eq =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let session = r.session_id.clone().unwrap_or_else(|| r.id.to_string());
    eq(&f.initiator, r.initiator.as_deref())
        && eq(&f.provider, r.provider.as_deref())
        && eq(&f.provider_name, r.provider_name.as_deref())
        && eq(&f.client, Some(&r.client))
        && eq(&f.workspace, r.workspace.as_deref())
        && eq(&f.session_id, Some(&session))
        && f.model
            .as_deref()
            .is_none_or(|m| r.model_requested == m || r.model_served.as_deref() == Some(m))
        && f.started_after.is_none_or(|t| r.started_at >= t)
        && f.started_before.is_none_or(|t| r.started_at < t)
        && (!f.with_alerts || !r.alerts.is_empty())
        && f.allowed_workspaces
            .as_ref()
            .is_none_or(|set| r.workspace.as_ref().is_some_and(|w| set.contains(w)))
}

async fn filters_select_exactly_the_matching_records(db: &TestDb) {
    let store = &db.store;
    let records = random_records(31, 250, 600_000);
    store.insert(&records).await.expect("insert");
    let s = |v: &str| Some(v.to_owned());
    let pivot = records[17].started_at;
    let no_session = records
        .iter()
        .find(|r| r.session_id.is_none())
        .expect("one without session");
    let served_only = records
        .iter()
        .find_map(|r| r.model_served.clone().filter(|m| *m != r.model_requested))
        .expect("a served model differing from the requested one");
    let filters = vec![
        Filter::default(),
        Filter {
            initiator: s("alice"),
            ..Default::default()
        },
        Filter {
            provider: s("openai"),
            ..Default::default()
        },
        Filter {
            provider_name: s("default/gpu-backend"),
            ..Default::default()
        },
        Filter {
            model: s("gpt-4o"),
            ..Default::default()
        },
        Filter {
            model: Some(served_only),
            ..Default::default()
        },
        Filter {
            model: s(""),
            ..Default::default()
        },
        Filter {
            client: s("cursor"),
            ..Default::default()
        },
        Filter {
            workspace: s("team/b"),
            ..Default::default()
        },
        Filter {
            session_id: s("s-2"),
            ..Default::default()
        },
        Filter {
            session_id: Some(no_session.id.to_string()),
            ..Default::default()
        },
        Filter {
            started_after: Some(pivot),
            ..Default::default()
        },
        Filter {
            started_before: Some(pivot),
            ..Default::default()
        },
        Filter {
            started_after: Some(at(100_000)),
            started_before: Some(at(400_000)),
            ..Default::default()
        },
        Filter {
            workspace: s("team/a"),
            initiator: s("bob"),
            model: s("claude-sonnet"),
            started_after: Some(at(50_000)),
            ..Default::default()
        },
        Filter {
            allowed_workspaces: Some(BTreeSet::from(["team/a".to_owned(), "team/c".to_owned()])),
            ..Default::default()
        },
        Filter {
            workspace: s("team/b"),
            allowed_workspaces: Some(BTreeSet::from(["team/a".to_owned()])),
            ..Default::default()
        },
        Filter {
            allowed_workspaces: Some(BTreeSet::new()),
            ..Default::default()
        },
        Filter {
            initiator: s("nobody"),
            ..Default::default()
        },
        Filter {
            with_alerts: true,
            ..Default::default()
        },
        Filter {
            workspace: s("team/a"),
            with_alerts: true,
            ..Default::default()
        },
    ];
    for f in &filters {
        let expected: Vec<Interception> =
            records.iter().filter(|r| matches(f, r)).cloned().collect();
        let got = all(store, f).await;
        assert_eq!(ids(&got), newest_first(&expected), "{f:?}");
        assert_eq!(
            store.count(f).await.expect("count"),
            expected.len() as u64,
            "{f:?}"
        );
    }
    // Sanity: the filters are not all trivially empty or full.
    let sizes: BTreeSet<usize> = filters
        .iter()
        .map(|f| records.iter().filter(|r| matches(f, r)).count())
        .collect();
    assert!(sizes.len() > 8, "{sizes:?}");
}

async fn cursor_pagination_walks_newest_first_with_ties_by_id(db: &TestDb) {
    let store = &db.store;
    // 10 distinct start times for 130 records: many ties.
    let mut records = random_records(41, 130, 10);
    for r in &mut records {
        r.started_at = at(r.started_at.as_millisecond() % 10 * 1_000);
    }
    store.insert(&records).await.expect("insert");
    for filter in [
        Filter::default(),
        Filter {
            workspace: Some("team/a".into()),
            ..Default::default()
        },
    ] {
        let expected = newest_first(
            &records
                .iter()
                .filter(|r| matches(&filter, r))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let mut got = Vec::new();
        let mut page = Page::first(7);
        loop {
            let batch = store.list(&filter, &page).await.expect("page");
            assert!(batch.len() <= 7);
            let Some(last) = batch.last() else { break };
            page = Page::after(last.id, 7);
            got.extend(ids(&batch));
        }
        assert_eq!(got, expected, "{filter:?}");
    }
}

async fn offset_pagination_matches_cursor_pagination(db: &TestDb) {
    let store = &db.store;
    let mut records = random_records(43, 95, 10);
    for r in &mut records {
        r.started_at = at(r.started_at.as_millisecond() % 4 * 1_000);
    }
    store.insert(&records).await.expect("insert");
    let expected = newest_first(&records);
    let mut got = Vec::new();
    for page in 0.. {
        let batch = store
            .list(&Filter::default(), &Page::offset(page * 10, 10))
            .await
            .expect("page");
        if batch.is_empty() {
            break;
        }
        got.extend(ids(&batch));
    }
    assert_eq!(got, expected);
    let tail = store
        .list(&Filter::default(), &Page::offset(90, 1000))
        .await
        .expect("tail");
    assert_eq!(ids(&tail), expected[90..]);
    assert!(
        store
            .list(&Filter::default(), &Page::offset(1_000, 10))
            .await
            .expect("past")
            .is_empty()
    );
}

async fn pagination_errors(db: &TestDb) {
    let store = &db.store;
    let records = random_records(47, 20, 1_000);
    store.insert(&records).await.expect("insert");
    let f = Filter::default();
    let invalid = |r: Result<Vec<Interception>, StoreError>| match r {
        Err(e @ StoreError::InvalidPage(_)) => assert!(e.is_invalid_request()),
        other => panic!("expected InvalidPage, got {other:?}"),
    };
    invalid(store.list(&f, &Page::first(0)).await);
    invalid(store.list(&f, &Page::first(1001)).await);
    invalid(
        store
            .list(
                &f,
                &Page {
                    limit: 10,
                    after_id: Some(records[0].id),
                    offset: Some(1),
                },
            )
            .await,
    );
    assert_eq!(
        store
            .list(&f, &Page::first(1000))
            .await
            .expect("max limit")
            .len(),
        20
    );
    assert_eq!(
        store
            .list(&f, &Page::first(1))
            .await
            .expect("min limit")
            .len(),
        1
    );

    let unknown = Uuid::now_v7();
    match store.list(&f, &Page::after(unknown, 10)).await {
        Err(e @ StoreError::UnknownCursor(_)) => assert!(e.is_invalid_request()),
        other => panic!("expected UnknownCursor, got {other:?}"),
    }
    // A cursor outside the filter is foreign.
    let outsider = records
        .iter()
        .find(|r| r.initiator.as_deref() != Some("alice"))
        .expect("x");
    let alice = Filter {
        initiator: Some("alice".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.list(&alice, &Page::after(outsider.id, 10)).await,
        Err(StoreError::UnknownCursor(_))
    ));

    // Sessions and threads.
    let bad = SessionPage {
        limit: 0,
        ..Default::default()
    };
    assert!(matches!(
        store.sessions(&f, &bad).await,
        Err(StoreError::InvalidPage(_))
    ));
    let both = SessionPage {
        limit: 5,
        after: Some(SessionKey {
            session_id: "s-1".into(),
            initiator: None,
        }),
        offset: Some(0),
    };
    assert!(matches!(
        store.sessions(&f, &both).await,
        Err(StoreError::InvalidPage(_))
    ));
    let nowhere = SessionPage {
        limit: 5,
        after: Some(SessionKey {
            session_id: "no-such".into(),
            initiator: None,
        }),
        offset: None,
    };
    assert!(matches!(
        store.sessions(&f, &nowhere).await,
        Err(StoreError::UnknownCursor(_))
    ));
    let big = ThreadPage {
        limit: 201,
        ..Default::default()
    };
    assert!(matches!(
        store.session_threads("s-1", &f, &big).await,
        Err(StoreError::InvalidPage(_))
    ));
    let two = ThreadPage {
        limit: 5,
        after_id: Some(unknown),
        before_id: Some(unknown),
    };
    assert!(matches!(
        store.session_threads("s-1", &f, &two).await,
        Err(StoreError::InvalidPage(_))
    ));
    let gone = ThreadPage {
        limit: 5,
        after_id: Some(unknown),
        before_id: None,
    };
    assert!(matches!(
        store.session_threads("s-1", &f, &gone).await,
        Err(StoreError::UnknownCursor(_))
    ));
}

async fn summary_reports_totals_and_percentiles(db: &TestDb) {
    let store = &db.store;
    let empty = store
        .summary(&Filter::default())
        .await
        .expect("empty summary");
    assert_eq!(empty.total_calls, 0);
    assert_eq!(
        (
            empty.p50_latency_ms,
            empty.p95_latency_ms,
            empty.avg_latency_ms
        ),
        (0, 0, 0.0)
    );
    assert_eq!(empty.success_rate, 0.0);
    assert_eq!((empty.period_start, empty.period_end), (None, None));
    assert!(empty.models.is_empty());

    // Latencies 1..=100 in scrambled order; every tenth fails.
    let mut records = Vec::new();
    for i in 0..100_u64 {
        let latency = (i * 37) % 100 + 1;
        let mut r = record(Uuid::now_v7(), i as i64 * 1_000);
        r.latency_ms = latency;
        r.outcome = if latency % 10 == 0 {
            Outcome::UpstreamError
        } else {
            Outcome::Success
        };
        r.model_served = Some(if i % 4 == 0 { "llama3" } else { "gpt-4o" }.to_owned());
        r.workspace = Some("team/a".into());
        r.usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_input_tokens: 2,
            cache_write_input_tokens: 1,
        };
        r.cost = Cost {
            input: 0.25,
            output: 0.5,
        };
        records.push(r);
    }
    store.insert(&records).await.expect("insert");
    let s = store.summary(&Filter::default()).await.expect("summary");
    assert_eq!(s.total_calls, 100);
    assert_eq!(s.p50_latency_ms, 50);
    assert_eq!(s.p95_latency_ms, 95);
    assert!(
        (s.avg_latency_ms - 50.5).abs() < 1e-9,
        "{}",
        s.avg_latency_ms
    );
    assert!((s.success_rate - 0.9).abs() < 1e-9, "{}", s.success_rate);
    assert_eq!(
        s.usage,
        Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_read_input_tokens: 200,
            cache_write_input_tokens: 100
        }
    );
    assert_eq!(s.total_tokens, 1_800);
    assert_eq!(
        s.cost,
        Cost {
            input: 25.0,
            output: 50.0
        }
    );
    assert_eq!(
        (s.period_start, s.period_end),
        (Some(at(0)), Some(at(99_000)))
    );
    let models: Vec<(&str, u64, u64)> = s
        .models
        .iter()
        .map(|m| {
            (
                m.model.as_str(),
                m.counters.requests,
                m.counters.usage.input_tokens,
            )
        })
        .collect();
    assert_eq!(models, vec![("gpt-4o", 75, 750), ("llama3", 25, 250)]);
    let errors: u64 = s.models.iter().map(|m| m.counters.errors).sum();
    assert_eq!(errors, 10);

    // A window: the filter's bounds are the period; percentiles over the 10 records inside.
    let window = Filter {
        started_after: Some(at(10_000)),
        started_before: Some(at(20_000)),
        ..Default::default()
    };
    let w = store.summary(&window).await.expect("window");
    let mut lat: Vec<u64> = records[10..20].iter().map(|r| r.latency_ms).collect();
    lat.sort();
    assert_eq!(w.total_calls, 10);
    assert_eq!((w.p50_latency_ms, w.p95_latency_ms), (lat[4], lat[9]));
    assert_eq!(
        (w.period_start, w.period_end),
        (Some(at(10_000)), Some(at(20_000)))
    );
    let one = Filter {
        started_before: Some(at(1)),
        ..Default::default()
    };
    let one = store.summary(&one).await.expect("one");
    assert_eq!(
        (one.total_calls, one.p50_latency_ms, one.p95_latency_ms),
        (1, 1, 1)
    );
}

async fn sessions_group_by_session_and_initiator(db: &TestDb) {
    let store = &db.store;
    let mk = |ms: i64, session: Option<&str>, initiator: Option<&str>, model: &str| {
        let mut r = record(Uuid::now_v7(), ms);
        r.session_id = session.map(str::to_owned);
        r.initiator = initiator.map(str::to_owned);
        r.model_served = Some(model.to_owned());
        r.provider = Some(
            if model.starts_with("claude") {
                "anthropic"
            } else {
                "openai"
            }
            .into(),
        );
        r.usage = Usage {
            input_tokens: 100,
            output_tokens: 10,
            ..Default::default()
        };
        r
    };
    // s-a/alice: a root and two calls of its thread, then a second root.
    let a_root = mk(1_000, Some("s-a"), Some("alice"), "claude-sonnet");
    let mut a1 = mk(2_000, Some("s-a"), Some("alice"), "gpt-4o");
    a1.thread_root_id = Some(a_root.id);
    a1.client = "cursor".into();
    let mut a2 = mk(3_000, Some("s-a"), Some("alice"), "gpt-4o");
    a2.thread_root_id = Some(a_root.id);
    a2.outcome = Outcome::Cancelled;
    let mut a_root2 = mk(9_000, Some("s-a"), Some("alice"), "gpt-4o");
    a_root2.user_prompt = Some("prompt at 9000".into());
    // s-a/bob also started at the instant s-b/alice was last active: its prompt is not s-b's.
    let mut b_early = mk(4_500, Some("s-a"), Some("bob"), "gpt-4o");
    b_early.user_prompt = Some("same instant, other session".into());
    // s-a/bob: same session id, other initiator.
    let b = mk(5_000, Some("s-a"), Some("bob"), "gpt-4o");
    // s-b/alice: a root, and a call whose root is not stored (a thread of its own).
    let c = mk(4_000, Some("s-b"), Some("alice"), "llama3");
    let mut orphan = mk(4_500, Some("s-b"), Some("alice"), "llama3");
    orphan.thread_root_id = Some(Uuid::now_v7());
    // No session id and no initiator: its own session, keyed by its id.
    let lone = mk(7_000, None, None, "gpt-4o");
    let all_records = vec![
        a_root.clone(),
        a1,
        a2,
        a_root2,
        b.clone(),
        c.clone(),
        orphan,
        b_early,
        lone.clone(),
    ];
    store.insert(&all_records).await.expect("insert");

    let sessions = store
        .sessions(&Filter::default(), &SessionPage::default())
        .await
        .expect("list");
    let keys: Vec<(String, Option<String>)> = sessions
        .iter()
        .map(|s| (s.session_id.clone(), s.initiator.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (lone.id.to_string(), None),
            ("s-a".into(), Some("bob".into())),
            ("s-b".into(), Some("alice".into())),
            ("s-a".into(), Some("alice".into())),
        ],
        "newest first by first start"
    );
    let alice_a = &sessions[3];
    assert_eq!(
        alice_a,
        &Session {
            session_id: "s-a".into(),
            initiator: Some("alice".into()),
            started_at: at(1_000),
            last_active_at: at(9_000),
            ended_at: at(9_100),
            interceptions: 4,
            threads: 2,
            errors: 1,
            usage: Usage {
                input_tokens: 400,
                output_tokens: 40,
                ..Default::default()
            },
            cost: Cost::default(),
            models: vec!["claude-sonnet".into(), "gpt-4o".into()],
            providers: vec!["anthropic".into(), "openai".into()],
            clients: vec!["curl".into(), "cursor".into()],
            last_prompt: Some("prompt at 9000".into()),
        }
    );
    assert_eq!(
        sessions[2].last_prompt, None,
        "the latest interception of s-b/alice recorded no prompt"
    );
    assert_eq!(
        store
            .count_sessions(&Filter::default())
            .await
            .expect("count"),
        4
    );
    assert_eq!((sessions[1].interceptions, sessions[1].threads), (2, 2));
    assert_eq!(
        sessions[1].last_prompt, None,
        "bob's latest call recorded no prompt"
    );
    assert_eq!((sessions[2].interceptions, sessions[2].threads), (2, 2));

    // Pagination: offset and cursor agree.
    let first = store
        .sessions(
            &Filter::default(),
            &SessionPage {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .expect("first");
    assert_eq!(first, sessions[..2]);
    let after = SessionPage {
        limit: 2,
        after: Some(first[1].key()),
        offset: None,
    };
    assert_eq!(
        store
            .sessions(&Filter::default(), &after)
            .await
            .expect("after"),
        sessions[2..]
    );
    let offset = SessionPage {
        limit: 2,
        after: None,
        offset: Some(2),
    };
    assert_eq!(
        store
            .sessions(&Filter::default(), &offset)
            .await
            .expect("offset"),
        sessions[2..]
    );
    let end = SessionPage {
        limit: 2,
        after: Some(sessions[3].key()),
        offset: None,
    };
    assert!(
        store
            .sessions(&Filter::default(), &end)
            .await
            .expect("end")
            .is_empty()
    );

    // Filters apply to the interceptions before grouping.
    let alice = Filter {
        initiator: Some("alice".into()),
        ..Default::default()
    };
    let got = store
        .sessions(&alice, &SessionPage::default())
        .await
        .expect("alice");
    assert_eq!(got.len(), 2);
    let llama = Filter {
        model: Some("llama3".into()),
        ..Default::default()
    };
    let got = store
        .sessions(&llama, &SessionPage::default())
        .await
        .expect("llama");
    assert_eq!(
        got.iter()
            .map(|s| s.session_id.as_str())
            .collect::<Vec<_>>(),
        vec!["s-b"]
    );
    let by_session = Filter {
        session_id: Some("s-a".into()),
        ..Default::default()
    };
    let got = store
        .sessions(&by_session, &SessionPage::default())
        .await
        .expect("s-a");
    assert_eq!(got.len(), 2);
    let nobody = Filter {
        allowed_workspaces: Some(BTreeSet::new()),
        ..Default::default()
    };
    assert!(
        store
            .sessions(&nobody, &SessionPage::default())
            .await
            .expect("none")
            .is_empty()
    );
}

async fn session_threads_nest_calls_under_their_root(db: &TestDb) {
    let store = &db.store;
    let mk = |ms: i64, session: Option<&str>, root: Option<Uuid>| {
        let mut r = record(Uuid::now_v7(), ms);
        r.session_id = session.map(str::to_owned);
        r.thread_root_id = root;
        r.workspace = Some("team/a".into());
        r.usage = Usage {
            input_tokens: 10,
            output_tokens: 1,
            ..Default::default()
        };
        r
    };
    let r1 = mk(1_000, Some("s"), None);
    let r2 = mk(2_000, Some("s"), None);
    let r3 = mk(3_000, Some("s"), None);
    // Calls of r1 (one in another session, e.g. a chain's model call), of r2, and one whose root
    // is not shipped yet.
    let c1a = mk(1_500, Some("s"), Some(r1.id));
    let c1b = mk(4_000, Some("other"), Some(r1.id));
    let c2 = mk(2_500, Some("s"), Some(r2.id));
    let late_root = mk(5_000, Some("s"), None);
    let waiting = mk(4_500, Some("s"), Some(late_root.id));
    store
        .insert(&[
            c1b.clone(),
            r3.clone(),
            c1a.clone(),
            r1.clone(),
            c2.clone(),
            r2.clone(),
            waiting.clone(),
        ])
        .await
        .expect("insert");

    let f = Filter::default();
    let threads = store
        .session_threads("s", &f, &ThreadPage::default())
        .await
        .expect("threads");
    let shape: Vec<(Uuid, Vec<Uuid>)> =
        threads.iter().map(|t| (t.root.id, ids(&t.calls))).collect();
    assert_eq!(
        shape,
        vec![
            (r1.id, vec![c1a.id, c1b.id]),
            (r2.id, vec![c2.id]),
            (r3.id, vec![]),
            // Its root is unknown so far: it stands alone rather than vanish.
            (waiting.id, vec![]),
        ]
    );
    assert_eq!(
        threads[0].usage(),
        Usage {
            input_tokens: 30,
            output_tokens: 3,
            ..Default::default()
        }
    );
    assert_eq!(threads[0].root, r1);

    // The root arrives: the waiting call nests under it.
    store
        .insert(std::slice::from_ref(&late_root))
        .await
        .expect("late root");
    let threads = store
        .session_threads("s", &f, &ThreadPage::default())
        .await
        .expect("threads");
    let shape: Vec<(Uuid, Vec<Uuid>)> =
        threads.iter().map(|t| (t.root.id, ids(&t.calls))).collect();
    assert_eq!(shape.last(), Some(&(late_root.id, vec![waiting.id])));
    assert_eq!(shape.len(), 4);

    // Pages forward and backward.
    let page = |after_id, before_id| ThreadPage {
        limit: 2,
        after_id,
        before_id,
    };
    let roots = |t: Vec<switchyard_operator::store::Thread>| {
        t.iter().map(|t| t.root.id).collect::<Vec<_>>()
    };
    let p1 = store
        .session_threads("s", &f, &page(None, None))
        .await
        .expect("p1");
    assert_eq!(roots(p1), vec![r1.id, r2.id]);
    let p2 = store
        .session_threads("s", &f, &page(Some(r2.id), None))
        .await
        .expect("p2");
    assert_eq!(roots(p2), vec![r3.id, late_root.id]);
    let p3 = store
        .session_threads("s", &f, &page(Some(late_root.id), None))
        .await
        .expect("p3");
    assert!(p3.is_empty());
    let back = store
        .session_threads("s", &f, &page(None, Some(late_root.id)))
        .await
        .expect("back");
    assert_eq!(roots(back), vec![r2.id, r3.id]);
    // A call is not a thread cursor.
    assert!(matches!(
        store
            .session_threads("s", &f, &page(Some(c2.id), None))
            .await,
        Err(StoreError::UnknownCursor(_))
    ));

    // The other session holds only the chain call, as a call of r1: not a thread of its own.
    let other = store
        .session_threads("other", &f, &ThreadPage::default())
        .await
        .expect("other");
    assert!(other.is_empty());
    assert!(
        store
            .session_threads("nope", &f, &ThreadPage::default())
            .await
            .expect("nope")
            .is_empty()
    );

    // Authorization hides roots and calls of other workspaces.
    let only_b = Filter {
        allowed_workspaces: Some(BTreeSet::from(["team/b".to_owned()])),
        ..Default::default()
    };
    assert!(
        store
            .session_threads("s", &only_b, &ThreadPage::default())
            .await
            .expect("b")
            .is_empty()
    );
}

async fn distinct_clients_and_models(db: &TestDb) {
    let store = &db.store;
    let records = random_records(51, 120, 100_000);
    store.insert(&records).await.expect("insert");
    for f in [
        Filter::default(),
        Filter {
            workspace: Some("team/b".into()),
            ..Default::default()
        },
        Filter {
            allowed_workspaces: Some(BTreeSet::new()),
            ..Default::default()
        },
    ] {
        let chosen: Vec<&Interception> = records.iter().filter(|r| matches(&f, r)).collect();
        let clients: BTreeSet<String> = chosen
            .iter()
            .map(|r| r.client.clone())
            .filter(|c| !c.is_empty())
            .collect();
        let models: BTreeSet<String> = chosen
            .iter()
            .flat_map(|r| [Some(r.model_requested.clone()), r.model_served.clone()])
            .flatten()
            .filter(|m| !m.is_empty())
            .collect();
        assert_eq!(
            store.distinct_clients(&f).await.expect("clients"),
            clients.into_iter().collect::<Vec<_>>(),
            "{f:?}"
        );
        assert_eq!(
            store.distinct_models(&f).await.expect("models"),
            models.into_iter().collect::<Vec<_>>(),
            "{f:?}"
        );
    }
}

async fn distinct_workspaces_and_session_counts(db: &TestDb) {
    let store = &db.store;
    let records = random_records(53, 150, 100_000);
    store.insert(&records).await.expect("insert");
    for f in [
        Filter::default(),
        Filter {
            initiator: Some("alice".into()),
            ..Default::default()
        },
        Filter {
            allowed_workspaces: Some(BTreeSet::from(["team/c".to_owned()])),
            ..Default::default()
        },
    ] {
        let chosen: Vec<&Interception> = records.iter().filter(|r| matches(&f, r)).collect();
        let workspaces: BTreeSet<String> =
            chosen.iter().filter_map(|r| r.workspace.clone()).collect();
        assert_eq!(
            store.distinct_workspaces(&f).await.expect("workspaces"),
            workspaces.into_iter().collect::<Vec<_>>(),
            "{f:?}"
        );
        let sessions: BTreeSet<(String, Option<String>)> = chosen
            .iter()
            .map(|r| {
                (
                    r.session_id.clone().unwrap_or_else(|| r.id.to_string()),
                    r.initiator.clone(),
                )
            })
            .collect();
        assert_eq!(
            store.count_sessions(&f).await.expect("count"),
            sessions.len() as u64,
            "{f:?}"
        );
    }
}

/// Records stored under schema 1 (no `has_alerts` column) are flagged when schema 2 arrives.
async fn schema_2_backfills_has_alerts(db: &TestDb) {
    let records = random_records(57, 80, 100_000);
    db.store.insert(&records).await.expect("insert");
    let with_alerts = Filter {
        with_alerts: true,
        ..Default::default()
    };
    let expected = records.iter().filter(|r| !r.alerts.is_empty()).count() as u64;
    assert!(expected > 0 && expected < 80);
    assert_eq!(db.store.count(&with_alerts).await.expect("count"), expected);
    // Back to schema 1: the column and the version row gone.
    raw(
        db,
        "DROP INDEX interceptions_workspace_alerts; \
         ALTER TABLE interceptions DROP COLUMN has_alerts; \
         DELETE FROM switchyard_schema WHERE version = 2",
    )
    .await;
    let again = db.reconnect().await;
    assert_eq!(
        again.schema_version().await.expect("version"),
        SCHEMA_VERSION
    );
    assert_eq!(again.count(&with_alerts).await.expect("count"), expected);
    again.close().await;
}

/// Runs statements on the test database outside the store.
async fn raw(db: &TestDb, script: &'static str) {
    if db.url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&db.url)
            .await
            .expect("raw sqlite");
        sqlx::raw_sql(script).execute(&pool).await.expect("script");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("raw postgres");
        sqlx::raw_sql(script).execute(&pool).await.expect("script");
        pool.close().await;
    }
}

async fn prune_deletes_old_records_and_keeps_rollups(db: &TestDb) {
    let store = &db.store;
    let records = random_records(61, 200, 1_000_000);
    store.insert(&records).await.expect("insert");
    let before = rollups(store).await;
    let horizon = at(500_000);
    let old = records.iter().filter(|r| r.started_at < horizon).count() as u64;
    assert!(old > 0 && old < 200);
    assert_eq!(store.prune(horizon).await.expect("prune"), old);
    let left = all(store, &Filter::default()).await;
    let expected: Vec<Interception> = records
        .iter()
        .filter(|r| r.started_at >= horizon)
        .cloned()
        .collect();
    assert_eq!(ids(&left), newest_first(&expected));
    assert_eq!(
        rollups(store).await,
        before,
        "rollups keep counting pruned records"
    );
    assert_eq!(store.prune(horizon).await.expect("again"), 0);
}

async fn concurrent_inserts_count_each_record_once(db: &TestDb) {
    let store = &db.store;
    let records = random_records(71, 400, 1_000_000);
    // Eight shippers, each sending a random ~third of the records (so most records arrive
    // several times, concurrently), in batches of up to 30.
    let mut tasks = Vec::new();
    let mut covered = BTreeSet::new();
    for t in 0..8_u64 {
        let mut rng = Rng(1_000 + t);
        let mine: Vec<Interception> = records
            .iter()
            .filter(|r| (t == 0 && r.id.as_u128() % 2 == 0) || rng.chance(35))
            .cloned()
            .collect();
        covered.extend(mine.iter().map(|r| r.id));
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut inserted = 0;
            let mut rng = Rng(2_000 + t);
            let mut rest = mine.as_slice();
            while !rest.is_empty() {
                let n = (1 + rng.below(30) as usize).min(rest.len());
                inserted += store.insert(&rest[..n]).await.expect("insert").inserted;
                rest = &rest[n..];
            }
            inserted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    let sent: Vec<Interception> = records
        .iter()
        .filter(|r| covered.contains(&r.id))
        .cloned()
        .collect();
    assert_eq!(
        total,
        sent.len(),
        "each record inserted exactly once overall"
    );
    assert_eq!(
        store.count(&Filter::default()).await.expect("count"),
        sent.len() as u64
    );
    assert_eq!(rollups(store).await, naive(&distinct(&sent)));
}

async fn connect_reapplies_schema_idempotently(db: &TestDb) {
    let backend = match db.cleanup {
        Cleanup::File(_) => "sqlite",
        Cleanup::Schema { .. } => "postgres",
    };
    assert_eq!(db.store.backend(), backend);
    let records = random_records(81, 40, 100_000);
    db.store.insert(&records).await.expect("insert");
    let before = rollups(&db.store).await;
    assert_eq!(
        db.store.schema_version().await.expect("version"),
        SCHEMA_VERSION
    );

    // Connect again, sequentially and several at once: the schema is there, nothing is lost.
    let again = db.reconnect().await;
    let (a, b, c) = tokio::join!(db.reconnect(), db.reconnect(), db.reconnect());
    for s in [&again, &a, &b, &c] {
        assert_eq!(s.schema_version().await.expect("version"), SCHEMA_VERSION);
        assert_eq!(rollups(s).await, before);
        assert_eq!(s.count(&Filter::default()).await.expect("count"), 40);
    }
    // Writes through one store are seen through another.
    let more = random_records(82, 5, 100_000);
    again.insert(&more).await.expect("insert via second store");
    assert_eq!(db.store.count(&Filter::default()).await.expect("count"), 45);
    for s in [again, a, b, c] {
        s.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite-only

#[tokio::test]
async fn sqlite_memory_store_is_private_and_complete() {
    let one = Store::connect("sqlite::memory:").await.expect("memory");
    let two = Store::connect("sqlite::memory:").await.expect("memory");
    let records = random_records(91, 30, 10_000);
    assert_eq!(one.insert(&records).await.expect("insert").inserted, 30);
    assert_eq!(one.count(&Filter::default()).await.expect("count"), 30);
    assert_eq!(
        two.count(&Filter::default()).await.expect("count"),
        0,
        "separate databases"
    );
    assert_eq!(rollups(&one).await, naive(&records));
    assert_eq!(one.schema_version().await.expect("version"), SCHEMA_VERSION);
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    let dir = std::env::temp_dir().join(format!("switchyard-store-dir-{}", Uuid::new_v4()));
    let path = dir.join("not/yet/there/records.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    store
        .insert(&random_records(92, 3, 1_000))
        .await
        .expect("insert");
    assert!(path.exists(), "file and directories created");
    assert_eq!(store.backend(), "sqlite");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw");
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    pool.close().await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn unsupported_urls_are_rejected_without_echoing_them() {
    match Store::connect("mysql://root:hunter2@db/records").await {
        Err(e @ StoreError::UnsupportedUrl(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("mysql") && !msg.contains("hunter2"), "{msg}");
        }
        other => panic!("expected UnsupportedUrl, got {other:?}"),
    }
}
