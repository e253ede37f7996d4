-- One active controller per database: a session-level advisory lock (7343, 1).

-- name: leader_try
-- take the leader's lock if no other session holds it
SELECT pg_try_advisory_lock(7343, 1);

-- name: leader_release
-- give the leader's lock up
SELECT pg_advisory_unlock(7343, 1);

-- name: leader_info
-- the session holding the leader's lock: pid, application name, address, session start
SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid = 7343 AND l.objid = 1 AND l.granted;
