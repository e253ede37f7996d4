-- Events for tritonX (back-office anonymisations) and their delivery.

-- name: claim_outbox
-- lease up to a number of outbox events due for delivery
SELECT id, customer_number, event_type, idempotency_key, payload, attempts
FROM sync.claim_outbox(%(limit)s);

-- name: outbox_delivered
-- an outbox event tritonX accepted
SELECT sync.outbox_delivered(%(id)s);

-- name: outbox_failed
-- an outbox event tritonX did not accept: retried after a delay, or dead when permanent
SELECT sync.outbox_failed(%(id)s, %(error)s, %(permanent)s, make_interval(secs => %(retry_in)s));

-- name: outbox_list
-- outbox events, newest first, optionally of one state
SELECT id, customer_number, event_type, state, attempts, next_attempt_at, last_error, created_at,
       delivered_at
FROM sync.outbox
WHERE %(state)s::text IS NULL OR state = %(state)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: outbox_retry
-- make a dead or waiting outbox event due now (false: no such event)
SELECT sync.retry_outbox(%(id)s);
