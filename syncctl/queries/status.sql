-- What `syncctl status`, `syncctl demo` and the metrics exporter show (syncctl.status reads
-- them): counts and times only, no personal data.

-- name: status_cursors
-- each feed cursor with its lag: the age of the last applied event
SELECT source, position, last_seq, last_occurred_at, updated_at,
       extract(epoch FROM now() - last_occurred_at)::float8 AS lag_seconds
FROM sync.cursor ORDER BY source;

-- name: status_lock_timeout
-- the reader waits at most this long for a lock (a DBA's on the customer table), for this
-- transaction; the setting it had is returned
SELECT pg_catalog.current_setting('lock_timeout'),
       pg_catalog.set_config('lock_timeout', %(timeout)s, true);

-- name: status_linked
-- local customers linked to tritonX (reads the mapped customer table)
SELECT linked FROM sync.link_counts();

-- name: status_counts
-- dead letters and staged events not applied yet
SELECT
    (SELECT count(*) FROM sync.dead_letter) AS dead_letters,
    (SELECT count(*) FROM sync.inbox_status WHERE state = 'pending') AS pending;

-- name: status_dead_letters
-- dead letters alone (the metrics' reading; pending events are tracked apart, PendingTracker)
SELECT count(*) FROM sync.dead_letter;

-- name: pending_all
-- the staged events not decided, in the whole inbox, and the last staged id
SELECT ARRAY(SELECT st.inbox_id FROM sync.inbox_status AS st
             WHERE st.state = 'pending' ORDER BY st.inbox_id),
       (SELECT max(i.id) FROM sync.inbox AS i);

-- name: pending_since
-- the same for the rows staged after id %(after)s, and of %(known)s (ids found pending
-- before) those still pending: index probes for those rows only (sync._range_status), so a
-- reading costs what was staged since the last, not the whole inbox
WITH last AS (SELECT max(i.id) AS id FROM sync.inbox AS i)
SELECT ARRAY(SELECT st.inbox_id
             FROM last CROSS JOIN LATERAL sync._range_status(%(after)s + 1, last.id) AS st
             WHERE st.state = 'pending'
             UNION
             SELECT st.inbox_id
             FROM unnest(%(known)s::bigint[]) AS k (id)
             CROSS JOIN LATERAL sync._range_status(k.id, k.id) AS st
             WHERE st.state = 'pending'
             ORDER BY 1),
       (SELECT last.id FROM last);

-- name: status_payloads
-- the inbox rows that still hold tritonX's snapshot (sync.inbox_payload_held covers them)
SELECT payloads, oldest_received_at FROM sync.payload_holding;

-- name: status_queues
-- outbox pending and dead, refresh requests waiting, and the last time a cursor moved
SELECT
    (SELECT count(*) FROM sync.outbox WHERE state = 'pending') AS outbox_pending,
    (SELECT count(*) FROM sync.outbox WHERE state = 'dead') AS outbox_dead,
    (SELECT count(*) FROM sync.refresh_request) AS refresh_queue,
    (SELECT max(updated_at) FROM sync.cursor) AS last_pull;

-- name: audit_effects
-- audited events by action and outcome (the reason of upserts only), for the demo's summary
SELECT action, outcome, CASE WHEN action = 'customer.upserted' THEN reason END AS reason,
       count(*) AS events
FROM sync.audit
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
