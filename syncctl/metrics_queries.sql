-- Queries of syncctl.metrics: audited actions counted incrementally by audit id, so a scrape
-- never scans the whole audit.

-- name: audit_actions_from
-- the actions audited since the process started (the first count)
SELECT a.action, a.outcome, count(*), max(a.id)
FROM sync.audit AS a
WHERE a.at >= %(started)s
GROUP BY a.action, a.outcome;

-- name: audit_actions_since
-- the actions audited after the last one counted
SELECT a.action, a.outcome, count(*), max(a.id)
FROM sync.audit AS a
WHERE a.id > %(after)s
GROUP BY a.action, a.outcome;
