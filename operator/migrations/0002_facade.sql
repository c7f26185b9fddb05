-- Switchyard record store, schema version 2: what the admin facade filters on.
--
-- has_alerts: the record carries at least one guardrail finding (workspace alerts listing).
-- Rows stored before this version are backfilled from the record JSON: an interception
-- serializes `"alerts":[{"category":` only when it has findings (an empty list is omitted), and
-- any such text inside a string value would be escaped (`\"alerts\"`), so the pattern only
-- matches the top-level field or the same shape nested in request metadata, which the record
-- format never produces from the data plane's own fields.

ALTER TABLE interceptions ADD COLUMN has_alerts BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE interceptions SET has_alerts = TRUE WHERE record LIKE '%"alerts":[{"category":%';

-- Alerts of a workspace, newest first.
CREATE INDEX IF NOT EXISTS interceptions_workspace_alerts
    ON interceptions (workspace, has_alerts, started_at);
