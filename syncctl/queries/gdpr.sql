-- GDPR data policies, consents, retention, subject access and erasure: thin calls into the gdpr
-- schema (sql/80_gdpr_schema.sql .. sql/89_gdpr_erasure.sql). Only subject_data and
-- resolve_customer read personal data: the subject access export, which is their purpose.

-- name: policy_list
-- every data policy with its categories, by code
SELECT code, name, state, legal_basis, retention::text, retention_from, membership,
       customer_group, consent_field, merge_rule, text_version, description, categories
FROM gdpr.policy_overview
ORDER BY code;

-- name: policy_show
-- one data policy with its categories
SELECT code, name, state, legal_basis, retention::text, retention_from, membership,
       customer_group, consent_field, merge_rule, text_version, description, categories
FROM gdpr.policy_overview
WHERE code = %(code)s;

-- name: policy_create
-- create a draft data policy
SELECT gdpr.create_policy(%(code)s, %(name)s, %(description)s, %(legal_basis)s,
                          %(retention)s::interval, %(retention_from)s, %(categories)s,
                          %(membership)s, %(customer_group)s, %(consent_field)s,
                          %(merge_rule)s, %(actor)s);

-- name: policy_activate
-- put a draft policy in force; what it took over (consents from tritonX)
SELECT gdpr.activate_policy(%(code)s, %(actor)s, %(now)s);

-- name: policy_retire
-- take an active policy out of force
SELECT gdpr.retire_policy(%(code)s, %(actor)s, %(now)s);

-- name: policy_revise
-- give a policy a new text; its new text version
SELECT gdpr.revise_policy(%(code)s, %(description)s, %(actor)s);

-- name: consent_record
-- record a consent given or withdrawn, for the customer with this mapped key (as text)
SELECT gdpr.record_consent(%(customer_key)s::text, %(policy)s, %(granted)s, %(source)s,
                           %(actor)s, %(at)s);

-- name: retention_plan
-- what a retention run would change, per customer (its key as text), table and action: the rows,
-- as the run counts them, and why; a customer released as a whole is anonymised: every table its
-- anonymisation changes (and the engine's copies of it) is listed, as 'anonymise: <action>'
SELECT customer_key, table_name, columns, action, rows, policies, reasons
FROM gdpr.retention_changes(%(now)s, NULL::text, NULL::text);

-- name: retention_scope
-- the number of local customers (the scope of a retention run)
SELECT gdpr.retention_scope();

-- name: retention_warnings
-- customers whose data a policy stops holding within an interval
SELECT customer_key, customer_number, policy_code, expires_at
FROM gdpr.retention_warnings(%(now)s, %(within)s::interval);

-- name: purge_batch
-- one retention batch of customers after a key (as text; NULL: the first); what it changed
SELECT gdpr.purge_batch(%(now)s, %(after)s::text, %(limit)s, %(actor)s);

-- name: daily_claim
-- claim the daily GDPR job's slot (no row: another run finished it)
INSERT INTO gdpr.job_run AS j (job, slot, started_at)
VALUES ('daily', %(slot)s, %(now)s)
ON CONFLICT (job, slot) DO UPDATE
    SET attempts = j.attempts + 1, started_at = excluded.started_at
    WHERE j.finished_at IS NULL
RETURNING j.id;

-- name: daily_finish
-- record the daily GDPR job's outcome
UPDATE gdpr.job_run
SET finished_at = %(now)s, customers = %(customers)s, counts = %(counts)s,
    erasures_done = %(done)s, erasures_failed = %(failed)s
WHERE id = %(id)s;

-- name: resolve_customer
-- a local customer of the mapped table by key (as text) or by (redirected) number: its key in
-- the key's own text form, its bigint id (integer keys only), its number, the customer table
WITH found AS (
    SELECT coalesce(sync._local_customer_key(%(key)s),
                    sync.resolve_customer_key(%(number)s)) AS customer_key
)
SELECT f.customer_key, (sync._key_ids(ARRAY[f.customer_key]))[1],
       syncmap.number_of(f.customer_key),
       (SELECT pg_catalog.concat_ws('.', n.nspname, c.relname)
        FROM sync.mapped_customer() AS m
        JOIN pg_catalog.pg_class AS c ON c.oid = m.relation
        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace)
FROM found AS f
WHERE f.customer_key IS NOT NULL;

-- name: subject_data
-- everything held about a customer (personal data: the subject access export); each row as
-- jsonb's text, so that a number is read with its every digit and scale
SELECT source, row_data::text FROM gdpr.subject_data(%(customer_key)s::text, %(now)s);

-- name: rectify
-- correct a customer's fields (audited)
SELECT gdpr.rectify(%(customer_key)s::text, %(fields)s, %(actor)s);

-- name: erasure_receive
-- record an erasure request for a customer
SELECT gdpr.receive_erasure(%(customer_key)s::text, %(actor)s, %(now)s);

-- name: erasure_verify
-- an erasure request's identity check passed
SELECT gdpr.verify_erasure(%(request_id)s, %(actor)s, %(now)s);

-- name: erasure_schedule
-- schedule a verified erasure request after a grace period; when it is due
SELECT gdpr.schedule_erasure(%(request_id)s, %(actor)s, %(grace)s::interval, %(now)s);

-- name: erasure_cancel
-- cancel an erasure request that is not done
SELECT gdpr.cancel_erasure(%(request_id)s, %(actor)s, %(now)s);

-- name: erasure_plan
-- what executing an erasure request would change, per table (a dry run)
SELECT table_name, action, rows FROM gdpr.erasure_plan(%(request_id)s);

-- name: erasure_execute
-- erase now; the proof of erasure
SELECT gdpr.execute_erasure(%(request_id)s, %(actor)s, %(now)s);

-- name: erasure_execute_due
-- execute the erasure requests that are due
SELECT gdpr.execute_due_erasures(%(actor)s, %(now)s);

-- name: erasure_list
-- erasure requests, optionally of one state (no personal data)
SELECT id, customer_key, customer_number, state, received_at, scheduled_for, finished_at,
       attempts, last_error, residue_hits, columns_searched
FROM gdpr.erasure_overview
WHERE %(state)s::text IS NULL OR state = %(state)s
ORDER BY id;
