-- Operating the engine by hand: thin calls into the sync schema's functions
-- (sql/48_redirect.sql .. sql/55_anonymise.sql, sql/60_event_apply.sql, sql/40_registry.sql); none
-- of them reads personal data.

-- name: merge_refusal
-- why a merge of old into survivor is impossible (no row: it is possible)
SELECT code, reason FROM sync.merge_refusal(%(old)s, %(survivor)s);

-- name: merge_plan
-- per table, the rows a merge would re-point, their unique conflicts and the rule for them
SELECT table_name, rows, conflicts, rule FROM sync.merge_plan(%(old)s, %(survivor)s);

-- name: merge
-- merge old into survivor; the outcome
SELECT sync.merge_customer(%(old)s, %(survivor)s, NULL, %(actor)s);

-- name: merge_several
-- merge several old customers into one survivor in one transaction; {"merged", "counts"}
SELECT sync.merge_customers(%(olds)s, %(survivor)s, %(actor)s);

-- name: anonymise_plan
-- per table, the rows an anonymisation would change and how
SELECT table_name, action, rows FROM sync.anonymise_plan(%(number)s);

-- name: anonymise_refusal
-- why an anonymisation is impossible (no row: it is possible)
SELECT code, reason FROM sync.anonymise_refusal(%(number)s);

-- name: anonymise
-- anonymise a customer and queue the request for tritonX; the outcome
SELECT sync.anonymise_customer(%(number)s, %(reason_code)s, %(actor)s);

-- name: dead_letter_list
-- dead letters, oldest first, with their inbox event's ids (never its payload)
SELECT d.inbox_id, i.event_id, i.event_type, i.customer_number, i.version, d.reason,
       d.attempts, d.created_at, d.last_attempt_at
FROM sync.dead_letter AS d
JOIN sync.inbox AS i ON i.id = d.inbox_id
ORDER BY d.inbox_id
LIMIT %(limit)s;

-- name: dead_letter_show
-- one dead letter with its inbox event's ids (never its payload)
SELECT d.inbox_id, i.event_id, i.event_type, i.customer_number, i.version, d.reason,
       d.attempts, d.created_at, d.last_attempt_at
FROM sync.dead_letter AS d
JOIN sync.inbox AS i ON i.id = d.inbox_id
WHERE d.inbox_id = %(inbox_id)s;

-- name: dead_letter_retry
-- apply a dead-lettered event again; what became of it
SELECT sync.retry_dead_letter(%(inbox_id)s);

-- name: dead_letter_discard
-- give up on a dead-lettered event (audited as discarded)
SELECT sync.discard_dead_letter(%(inbox_id)s, %(actor)s);

-- name: coverage_defects
-- every coverage defect (unclassified columns, privileges, look-alike columns, ...), its kind
-- and where it is (table.column as PostgreSQL quotes them, table.* for the whole table)
SELECT table_name, column_name, defect, kind,
       table_name || '.' || coalesce(pg_catalog.quote_ident(column_name), '*') AS place
FROM sync.coverage_defects();
