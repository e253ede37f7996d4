-- The metrics exporter's audited actions, counted incrementally by audit id, so a scrape never
-- scans the whole audit.

-- name: audit_last_id
-- where counting by id goes on after the first count
SELECT coalesce(max(a.id), 0) FROM sync.audit AS a;

-- name: audit_actions_from
-- the first count: the actions audited since the process started, up to audit_last_id
SELECT a.action, a.outcome, count(*), max(a.id)
FROM sync.audit AS a
WHERE a.at >= %(started)s AND a.id <= %(last_id)s
GROUP BY a.action, a.outcome;

-- name: audit_actions_since
-- the actions audited after the last one counted
SELECT a.action, a.outcome, count(*), max(a.id)
FROM sync.audit AS a
WHERE a.id > %(after)s
GROUP BY a.action, a.outcome;
