-- Reporting: read-only views over the audit and the engine's tables, for the reporting role.
-- No view exposes personal data, by construction: they select customer numbers, keys, counts,
-- reason codes and times only, never a column of a shop table that the PII registry classifies
-- as personal, nor an inbox payload. Nothing reads the shop's tables by name: a customer is
-- shown by its tritonX number and its key in the mapped customer table (as text, any key
-- type): the audit's customer_key, or looked up through the active mapping. Re-runnable.

CREATE SCHEMA IF NOT EXISTS report;
COMMENT ON SCHEMA report IS 'Read-only reporting views: no personal data.';

-- Where an audited action came from.
CREATE OR REPLACE FUNCTION report.action_source(p_actor text, p_action text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_actor IN ('tritonx', 'tritonx-refresh') THEN 'tritonx'
        WHEN p_actor LIKE 'retention%' THEN 'retention'
        WHEN p_actor LIKE 'erasure%' THEN 'erasure request'
        WHEN p_action = 'customer.adopted' THEN 'link repair'
        -- the shop's own deletes and key changes, followed by its triggers
        WHEN p_actor = 'shop'
             AND p_action IN ('customer.deleted_by_shop', 'customer.truncated_by_shop',
                              'customer.key_changed_by_shop')
            THEN 'shop'
        ELSE 'back office'
    END
$$;

-- Every erasure request's customer as the reports may show it: its key only when the mapped key
-- is an integer or a uuid (a text key may be anything, an e-mail address too: NULL then), and
-- its tritonX number (NULL when it has none). Runs as the owner: the reporting role reads
-- neither the mapped customer table nor the requests' keys itself; it takes no argument, so no
-- key can be looked up through it.
DROP VIEW IF EXISTS report.erasure_requests;  -- it read report.customer_number(text)
DROP FUNCTION IF EXISTS report.customer_number(text);
CREATE OR REPLACE FUNCTION report.erasure_subjects()
RETURNS TABLE (request_id bigint, customer_key text, customer_number text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.id, sync._shown_key(e.customer_key), gdpr._number_of(e.customer_key)
    FROM gdpr.erasure_request AS e
$$;
REVOKE ALL ON FUNCTION report.erasure_subjects() FROM PUBLIC;

-- Actions per day by type, outcome and source.
CREATE OR REPLACE VIEW report.actions_per_day AS
SELECT pg_catalog.date_trunc('day', a.at) AS day,
       a.action,
       a.outcome,
       report.action_source(a.actor, a.action) AS source,
       count(*) AS actions
FROM sync.audit AS a
GROUP BY 1, 2, 3, 4;

-- Every merge with the rows it moved, one row a table.
CREATE OR REPLACE VIEW report.merge_rows_moved AS
SELECT a.at, a.customer_number AS old_number, a.related_number AS survivor_number,
       report.action_source(a.actor, a.action) AS source,
       c.key AS table_name, c.value::bigint AS rows_moved, a.duration_ms,
       a.customer_key AS survivor_key
FROM sync.audit AS a
CROSS JOIN LATERAL pg_catalog.jsonb_each_text(coalesce(a.counts, '{}')) AS c
WHERE a.action = 'customer.merged' AND a.outcome = 'applied';

-- Anonymisations and deletions with their reason codes and row counts. A reason code is any
-- identifier sync.is_identifier admits; the audit states it as 'reason code <code>'.
CREATE OR REPLACE VIEW report.anonymisations AS
SELECT a.at, a.action, a.customer_number, a.customer_id,
       report.action_source(a.actor, a.action) AS source,
       pg_catalog.substring(a.reason, 'reason code ([A-Za-z0-9_.:@-]+)') AS reason_code,
       (SELECT coalesce(sum(c.value::bigint), 0)
        FROM pg_catalog.jsonb_each_text(coalesce(a.counts, '{}')) AS c) AS rows_changed,
       a.duration_ms, a.customer_key
FROM sync.audit AS a
WHERE a.action IN ('customer.anonymized', 'customer.deleted') AND a.outcome = 'applied';

-- Sync lag per hour: from tritonX's occurred_at to the effect in the audit, for every audited
-- event of the feed. Both times outlive sync.drop_payloads (it drops payloads, not rows); the
-- cursor would only give the latest position. Local actions have no inbox row: not counted.
CREATE OR REPLACE VIEW report.sync_lag AS
SELECT pg_catalog.date_trunc('hour', a.at) AS hour,
       count(*) AS events,
       pg_catalog.avg(EXTRACT(epoch FROM a.at - i.occurred_at))::numeric(12, 3) AS avg_seconds,
       pg_catalog.max(EXTRACT(epoch FROM a.at - i.occurred_at))::numeric(12, 3) AS max_seconds
FROM sync.audit AS a
JOIN sync.inbox AS i ON i.id = a.inbox_id
WHERE i.occurred_at IS NOT NULL
GROUP BY 1;

-- Dead letters by reason.
CREATE OR REPLACE VIEW report.dead_letters AS
SELECT d.reason, count(*) AS events, pg_catalog.min(d.created_at) AS oldest,
       pg_catalog.max(d.created_at) AS newest, pg_catalog.max(d.attempts) AS max_attempts
FROM sync.dead_letter AS d
GROUP BY d.reason;

-- Link conflicts by kind, open and resolved.
CREATE OR REPLACE VIEW report.link_conflicts AS
SELECT l.kind,
       count(*) FILTER (WHERE l.resolved_at IS NULL) AS open,
       count(*) FILTER (WHERE l.resolved_at IS NOT NULL) AS resolved,
       pg_catalog.max(l.at) AS last_seen
FROM sync.link_conflict AS l
GROUP BY l.kind;

-- The outbox by state.
CREATE OR REPLACE VIEW report.outbox AS
SELECT o.event_type, o.state, count(*) AS events, pg_catalog.max(o.attempts) AS max_attempts,
       pg_catalog.min(o.created_at) AS oldest
FROM sync.outbox AS o
GROUP BY o.event_type, o.state;

-- Erasure requests from received to done: one row a request, the time each step took. The
-- request's digests and residue details stay in gdpr; last_error holds codes and ids only.
CREATE OR REPLACE VIEW report.erasure_requests AS
SELECT e.id AS request_id, s.customer_key, e.state, e.received_at, e.verified_at,
       e.scheduled_for, e.finished_at, e.attempts, e.last_error, e.residue_hits,
       e.columns_searched,
       e.finished_at - e.received_at AS received_to_finished,
       e.scheduled_for - e.verified_at AS grace_period,
       s.customer_number
FROM gdpr.erasure_request AS e
JOIN report.erasure_subjects() AS s ON s.request_id = e.id;

-- The daily GDPR job: one row a slot, with what it purged and the erasure requests it ran.
CREATE OR REPLACE VIEW report.gdpr_daily_runs AS
SELECT j.slot, j.started_at, j.finished_at, j.attempts, j.customers AS customers_purged,
       j.counts AS rows_per_table, j.erasures_done, j.erasures_failed
FROM gdpr.job_run AS j
WHERE j.job = 'daily';
