-- Switchyard record store, schema version 1: interceptions and their rollups.
--
-- The same text runs on SQLite and PostgreSQL (operator/src/store/schema.rs applies it once, in a
-- transaction, and records the version in switchyard_schema). Conventions:
-- - times are BIGINT microseconds since the Unix epoch (sortable, same on both backends);
-- - every integer is BIGINT and every float DOUBLE PRECISION, so both decode to i64 / f64;
-- - ids are UUID (a 16-byte BLOB on SQLite, which sorts bytewise like PostgreSQL's uuid);
-- - the full record is kept as JSON text in `record`; the other columns exist to filter and sort;
-- - rollup keys are NOT NULL, with '' standing for "none" (so ON CONFLICT can match them).

CREATE TABLE IF NOT EXISTS interceptions (
    id UUID PRIMARY KEY,
    request_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    workspace TEXT,
    initiator TEXT,
    client TEXT NOT NULL,
    session_id TEXT,
    -- session_id, or the interception id (hyphenated) when the client sent none
    session_key TEXT NOT NULL,
    provider TEXT,
    provider_name TEXT,
    model_requested TEXT NOT NULL,
    model_served TEXT,
    route_source TEXT,
    route_rule TEXT,
    route_target TEXT,
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    stream BOOLEAN NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttft_ms BIGINT,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_input_tokens BIGINT NOT NULL,
    cache_write_input_tokens BIGINT NOT NULL,
    input_cost DOUBLE PRECISION NOT NULL,
    output_cost DOUBLE PRECISION NOT NULL,
    chain TEXT,
    thread_root_id UUID,
    record TEXT NOT NULL
);

-- Newest-first listing and keyset pagination on (started_at, id), pruning by age.
CREATE INDEX IF NOT EXISTS interceptions_started ON interceptions (started_at, id);
-- One index per filter key, each ending in started_at so a filtered page is an index range.
CREATE INDEX IF NOT EXISTS interceptions_workspace ON interceptions (workspace, started_at);
CREATE INDEX IF NOT EXISTS interceptions_initiator ON interceptions (initiator, started_at);
CREATE INDEX IF NOT EXISTS interceptions_client ON interceptions (client, started_at);
CREATE INDEX IF NOT EXISTS interceptions_session ON interceptions (session_key, started_at);
CREATE INDEX IF NOT EXISTS interceptions_provider ON interceptions (provider, started_at);
CREATE INDEX IF NOT EXISTS interceptions_provider_name ON interceptions (provider_name, started_at);
CREATE INDEX IF NOT EXISTS interceptions_model_requested ON interceptions (model_requested, started_at);
CREATE INDEX IF NOT EXISTS interceptions_model_served ON interceptions (model_served, started_at);
-- Threads: the calls of a root.
CREATE INDEX IF NOT EXISTS interceptions_thread_root ON interceptions (thread_root_id, started_at);

-- Per (workspace, model, provider type). model is model_served, or model_requested when nothing
-- served the request.
CREATE TABLE IF NOT EXISTS usage_by_model (
    workspace TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_input_tokens BIGINT NOT NULL,
    cache_write_input_tokens BIGINT NOT NULL,
    input_cost DOUBLE PRECISION NOT NULL,
    output_cost DOUBLE PRECISION NOT NULL,
    last_request_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, model, provider)
);

-- Guardrail findings per workspace.
CREATE TABLE IF NOT EXISTS alerts_by_workspace (
    workspace TEXT NOT NULL PRIMARY KEY,
    secrets BIGINT NOT NULL,
    pii BIGINT NOT NULL,
    total BIGINT NOT NULL,
    last_alert_at BIGINT NOT NULL
);

-- Per provider or backend key (provider_name).
CREATE TABLE IF NOT EXISTS usage_by_provider (
    provider_name TEXT NOT NULL PRIMARY KEY,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_input_tokens BIGINT NOT NULL,
    cache_write_input_tokens BIGINT NOT NULL,
    input_cost DOUBLE PRECISION NOT NULL,
    output_cost DOUBLE PRECISION NOT NULL,
    last_request_at BIGINT NOT NULL
);

-- Per MuxRule key (route.source = 'muxrule').
CREATE TABLE IF NOT EXISTS mux_rule_counters (
    rule TEXT NOT NULL PRIMARY KEY,
    match_count BIGINT NOT NULL,
    last_matched_at BIGINT NOT NULL
);

-- Per RouterPolicy key (route.source = 'policy').
CREATE TABLE IF NOT EXISTS policy_counters (
    policy TEXT NOT NULL PRIMARY KEY,
    match_count BIGINT NOT NULL,
    success_count BIGINT NOT NULL,
    error_count BIGINT NOT NULL,
    last_matched_at BIGINT NOT NULL
);

-- Per TaskChain key: chain runs (records with chain set and no thread_root_id).
CREATE TABLE IF NOT EXISTS chain_runs (
    chain TEXT NOT NULL PRIMARY KEY,
    runs BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    last_run_at BIGINT NOT NULL
);
