-- One active controller per database: a session-level advisory lock (7343, 1).

-- name: leader_try
-- take the leader's lock if no other session holds it
SELECT pg_try_advisory_lock(7343, 1);

-- name: leader_release
-- give the leader's lock up
SELECT pg_advisory_unlock(7343, 1);

-- name: name_work_session
-- the leader's work session (pages, refreshes, outbox) named after its leadership session, so
-- that `syncctl status` finds it
SELECT pg_catalog.set_config('application_name', 'syncctl run: work of ' || %(leader)s, false);

-- name: leader_info
-- the session holding the leader's lock: pid, application name, address, session start; and
-- when its work session waits for a lock (a DBA's), for how long and which session holds it
-- (what the reading role may see of other sessions in pg_stat_activity: NULLs otherwise)
SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start,
       -- greatest() would turn a NULL (no wait) into 0
       CASE WHEN w.pid IS NOT NULL
            THEN greatest(extract(epoch FROM pg_catalog.clock_timestamp() - w.query_start),
                          0)::float8 END AS waiting_seconds,
       (pg_catalog.pg_blocking_pids(w.pid))[1] AS blocked_by
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
LEFT JOIN LATERAL (
    SELECT s.pid, s.query_start FROM pg_stat_activity AS s
    WHERE s.application_name = 'syncctl run: work of ' || a.pid
      AND s.wait_event_type = 'Lock'
      AND pg_catalog.cardinality(pg_catalog.pg_blocking_pids(s.pid)) > 0
    LIMIT 1) AS w ON true
WHERE l.locktype = 'advisory' AND l.classid = 7343 AND l.objid = 1 AND l.granted;
