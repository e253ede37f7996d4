-- Queries of syncctl.metrics: audited actions counted incrementally by audit id, so a scrape
-- never scans the whole audit.

-- name: audit_last_id
SELECT coalesce(max(a.id), 0) FROM sync.audit AS a;

-- name: audit_actions_since
SELECT a.action, a.outcome, count(*), max(a.id)
FROM sync.audit AS a
WHERE a.id > %(after)s
GROUP BY a.action, a.outcome;
