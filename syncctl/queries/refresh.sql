-- Login-time refresh requests: claimed as leases, done once the snapshot is applied.

-- name: claim_refresh_requests
-- lease up to a number of queued refresh requests
SELECT customer_number, requested_at, attempts FROM sync.claim_refresh_requests(%(limit)s);

-- name: refresh_done
-- a refresh applied: remove the request unless the number was asked for again meanwhile
SELECT sync.refresh_done(%(number)s, %(requested_at)s);

-- name: release_refresh
-- claimed refreshes nobody tried are free to be claimed again at once
SELECT sync.release_refresh(%(numbers)s);

-- name: requeue_refresh
-- a refresh that failed goes back in the queue with its attempts, error and backoff
SELECT sync.requeue_refresh(%(number)s, %(attempts)s, %(error)s);

-- name: listen_refresh
-- on the leader's session: be woken by sync.request_refresh's NOTIFY
LISTEN syncctl_refresh;
