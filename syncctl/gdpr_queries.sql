-- The SQL syncctl.gdpr runs, in named blocks ("-- name: <name>"). Thin calls into the gdpr
-- schema (sql/80_gdpr_schema.sql .. sql/87_gdpr_erasure.sql). Only subject_data and
-- resolve_customer read personal data: the subject access export, which is their purpose.

-- name: policy_list
SELECT code, name, state, legal_basis, retention::text, retention_from, membership,
       customer_group, consent_field, merge_rule, text_version, description, categories
FROM gdpr.policy_overview
ORDER BY code;

-- name: policy_show
SELECT code, name, state, legal_basis, retention::text, retention_from, membership,
       customer_group, consent_field, merge_rule, text_version, description, categories
FROM gdpr.policy_overview
WHERE code = %(code)s;

-- name: policy_create
SELECT gdpr.create_policy(%(code)s, %(name)s, %(description)s, %(legal_basis)s,
                          %(retention)s::interval, %(retention_from)s, %(categories)s,
                          %(membership)s, %(customer_group)s, %(consent_field)s,
                          %(merge_rule)s, %(actor)s);

-- name: policy_activate
SELECT gdpr.activate_policy(%(code)s, %(actor)s, %(now)s);

-- name: policy_retire
SELECT gdpr.retire_policy(%(code)s, %(actor)s, %(now)s);

-- name: policy_revise
SELECT gdpr.revise_policy(%(code)s, %(description)s, %(actor)s);

-- name: consent_record
SELECT gdpr.record_consent(%(customer_id)s, %(policy)s, %(granted)s, %(source)s, %(actor)s,
                           %(at)s);

-- name: retention_plan
-- a customer released as a whole is anonymised: its other tables and the engine's copies of it
-- (sync.anonymise_plan) are listed too, as 'anonymise: <action>', so the dry run names every
-- table the run changes
WITH plan AS (SELECT * FROM gdpr.retention_plan(%(now)s, 0, NULL))
SELECT customer_id, table_name, columns, action, policies, reasons
FROM plan
UNION ALL
SELECT p.customer_id, a.table_name, NULL, 'anonymise: ' || a.action, p.policies, p.reasons
FROM plan AS p
JOIN shop.customer AS c ON c.id = p.customer_id
CROSS JOIN LATERAL sync.anonymise_plan(c.customer_number) AS a
WHERE p.action = 'anonymise' AND a.table_name <> 'shop.customer'
ORDER BY 1, 2;

-- name: customer_count
SELECT count(*) FROM shop.customer;

-- name: retention_warnings
SELECT customer_id, customer_number, policy_code, expires_at
FROM gdpr.retention_warnings(%(now)s, %(within)s::interval);

-- name: purge_batch
SELECT gdpr.purge_batch(%(now)s, %(after_id)s, %(limit)s, %(actor)s);

-- name: daily_claim
INSERT INTO gdpr.job_run AS j (job, slot, started_at)
VALUES ('daily', %(slot)s, %(now)s)
ON CONFLICT (job, slot) DO UPDATE
    SET attempts = j.attempts + 1, started_at = excluded.started_at
    WHERE j.finished_at IS NULL
RETURNING j.id;

-- name: daily_finish
UPDATE gdpr.job_run
SET finished_at = %(now)s, customers = %(customers)s, counts = %(counts)s,
    erasures_done = %(done)s, erasures_failed = %(failed)s
WHERE id = %(id)s;

-- name: resolve_customer
SELECT c.id, c.customer_number FROM shop.customer AS c
WHERE c.id = coalesce(%(id)s, sync.resolve_customer(%(number)s));

-- name: subject_data
SELECT source, row_data FROM gdpr.subject_data(%(customer_id)s, %(now)s);

-- name: rectify
SELECT gdpr.rectify(%(customer_id)s, %(fields)s, %(actor)s);

-- name: erasure_receive
SELECT gdpr.receive_erasure(%(customer_id)s, %(actor)s, %(now)s);

-- name: erasure_verify
SELECT gdpr.verify_erasure(%(request_id)s, %(actor)s, %(now)s);

-- name: erasure_schedule
SELECT gdpr.schedule_erasure(%(request_id)s, %(actor)s, %(grace)s::interval, %(now)s);

-- name: erasure_cancel
SELECT gdpr.cancel_erasure(%(request_id)s, %(actor)s, %(now)s);

-- name: erasure_execute
SELECT gdpr.execute_erasure(%(request_id)s, %(actor)s, %(now)s);

-- name: erasure_execute_due
SELECT gdpr.execute_due_erasures(%(actor)s, %(now)s);

-- name: erasure_list
SELECT id, customer_id, customer_number, state, received_at, scheduled_for, finished_at,
       attempts, last_error, residue_hits, columns_searched
FROM gdpr.erasure_overview
WHERE %(state)s::text IS NULL OR state = %(state)s
ORDER BY id;
