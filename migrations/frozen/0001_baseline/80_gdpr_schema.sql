-- GDPR data policies (schema gdpr): policies with their data categories and retention, the
-- consent history per customer and policy, and erasure requests. Tables are private; the
-- functions and views of sql/81..89 are the API (docs/gdpr.md).
--
-- Keying: gdpr.consent and gdpr.erasure_request name the customer by the mapped customer key
-- as text (customer_key: the key's own text form, '42' or a uuid, whatever the mapped key's
-- type), with no foreign key: the shop's customer table and key type are the mapping's. The
-- engine lists them as customer-linked tables of its own (sync.customer_links(), known_by
-- engine): a merge re-points them to the survivor (the person's consents and requests follow
-- the person), a delete of the customer by the engine removes them, and they are classified in
-- the PII registry below (no column holds personal data in the clear; the request's digests are
-- pseudonymous and are cleared when the request ends). Policies are not customer data and have
-- no such key.
-- Re-runnable.
--
-- SQLSTATEs: SY080 unknown policy, SY081 policy state change refused, SY082 invalid policy
-- definition, SY083 consent required, SY084 consent history is append-only, SY085
-- rectification refused, SY086 unknown erasure request, SY087 erasure state change refused.

CREATE SCHEMA IF NOT EXISTS gdpr;
COMMENT ON SCHEMA gdpr IS 'GDPR: data policies, consents, retention, subject access, erasure.';

-- ---------------------------------------------------------------------------------------------
-- Tables, each with its indexes (every customer column has one: merges and deletes use them)
-- ---------------------------------------------------------------------------------------------

-- A data policy: why and how long personal data in its categories may be held. Several are in
-- force side by side; a category several policies cover goes only when none of them holds it.
CREATE TABLE IF NOT EXISTS gdpr.policy (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                  text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]{0,63}$'),
    name                  text NOT NULL,
    description           text NOT NULL,
    legal_basis           text NOT NULL
                          CHECK (legal_basis IN ('consent', 'contract', 'legal_obligation',
                                                 'vital_interests', 'public_task',
                                                 'legitimate_interests')),
    -- NULL: held as long as the policy is active and the customer is under it
    retention             interval CHECK (retention > interval '0'),
    -- what the retention period counts from: the columns the mapping's [gdpr] table declares
    -- (created_column; last_activity_column, else created; the last order, else created)
    retention_from        text NOT NULL DEFAULT 'last_activity'
                          CHECK (retention_from IN ('created', 'last_activity', 'last_order')),
    -- who is under the policy: every customer, those holding a granted consent, or the
    -- customers of one customer_group (employees)
    membership            text NOT NULL DEFAULT 'all'
                          CHECK (membership IN ('all', 'consent', 'customer_group')),
    customer_group        text,
    -- the boolean of a tritonX snapshot that states this consent (recorded as source tritonx)
    consent_field         text CHECK (consent_field IN ('newsletter_opt_in')),
    -- how a merge combines the consents of both customers
    merge_rule            text NOT NULL DEFAULT 'most_restrictive'
                          CHECK (merge_rule IN ('most_restrictive', 'most_permissive',
                                                'survivor')),
    state                 text NOT NULL DEFAULT 'draft'
                          CHECK (state IN ('draft', 'active', 'retired')),
    text_version          integer NOT NULL DEFAULT 1 CHECK (text_version > 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    activated_at          timestamptz,
    retired_at            timestamptz,
    CHECK ((membership = 'customer_group') = (customer_group IS NOT NULL)),
    CHECK (consent_field IS NULL OR membership = 'consent')
);

-- The data a policy covers: a table of the registry (sync.customer_tables()), whole (columns
-- NULL) or some of its columns.
CREATE TABLE IF NOT EXISTS gdpr.policy_category (
    policy_id             bigint NOT NULL REFERENCES gdpr.policy (id),
    table_schema          text NOT NULL,
    table_name            text NOT NULL,
    columns               text[],
    PRIMARY KEY (policy_id, table_schema, table_name),
    CHECK (columns IS NULL OR pg_catalog.cardinality(columns) > 0)
);

-- Consent history: append-only (sql/83_gdpr_consent.sql). The current state per customer and
-- policy is the latest row (gdpr.current_consent).
CREATE TABLE IF NOT EXISTS gdpr.consent (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_key          text NOT NULL
                          CHECK (pg_catalog.octet_length(customer_key) BETWEEN 1 AND 2704),
    policy_id             bigint NOT NULL REFERENCES gdpr.policy (id),
    granted               boolean NOT NULL,
    decided_at            timestamptz NOT NULL DEFAULT now(),
    source                text NOT NULL
                          CONSTRAINT consent_source_check
                          CHECK (source IN ('tritonx', 'webshop', 'back_office', 'store',
                                            'merge', 'retention', 'erasure', 'rectification')),
    text_version          integer NOT NULL,
    actor                 text NOT NULL CHECK (pg_catalog.length(actor) BETWEEN 1 AND 100),
    recorded_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consent_customer_policy
    ON gdpr.consent (customer_key, policy_id, decided_at, id);
CREATE INDEX IF NOT EXISTS consent_policy_id ON gdpr.consent (policy_id);
-- A subject's request to be erased. received -> verified -> scheduled -> done | failed, or
-- cancelled before it is done. `digests` holds sha256 digests of the person's normalised
-- values (captured at verification, for the residue search after erasure); they are cleared
-- when the request ends. The residue found is kept as counts per column, never values.
CREATE TABLE IF NOT EXISTS gdpr.erasure_request (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_key          text NOT NULL
                          CHECK (pg_catalog.octet_length(customer_key) BETWEEN 1 AND 2704),
    state                 text NOT NULL DEFAULT 'received'
                          CHECK (state IN ('received', 'verified', 'scheduled', 'done',
                                           'failed', 'cancelled')),
    received_at           timestamptz NOT NULL,
    verified_at           timestamptz,
    scheduled_for         timestamptz,
    finished_at           timestamptz,
    actor                 text NOT NULL CHECK (pg_catalog.length(actor) BETWEEN 1 AND 100),
    digests               text[],
    attempts              integer NOT NULL DEFAULT 0,
    last_error            text,
    residue_hits          bigint,
    residue               jsonb,
    columns_searched      integer,
    outbox_id             bigint,
    CHECK (state NOT IN ('scheduled', 'done', 'failed') OR scheduled_for IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS erasure_request_customer_key ON gdpr.erasure_request (customer_key);
CREATE INDEX IF NOT EXISTS erasure_request_due ON gdpr.erasure_request (scheduled_for)
    WHERE state = 'scheduled';

-- Where a retention run stands, for a customer key the engine never shows (a text or bytea key
-- may be an e-mail address): gdpr.purge_batch hands its caller (the controller) the row's id
-- as an opaque position instead of the key, and takes the row (deleting it) when the next
-- batch is asked for with it. A run broken off leaves its one position; positions older than a
-- day go with the next batch. No role but the owner reads the table.
CREATE TABLE IF NOT EXISTS gdpr.purge_position (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    last_key              text NOT NULL,
    issued_at             timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- Which engine job is changing the customer table in a session's transaction (the feed's
-- `tritonx`, `retention`, `erasure`, `rectification`) and for whom (`actor`: a rectification's
-- actor; NULL: the job's name): the local-consent triggers record a change of a stored consent
-- column with this source and actor, or skip the feed's own. Written only by the engine's functions
-- (gdpr._set_consent_source, as the owner); no other role can, so no caller can name its change
-- another's or make it go unrecorded. A row holds for its transaction only. Unlogged: a crash
-- ends every transaction it could speak for.
CREATE UNLOGGED TABLE IF NOT EXISTS gdpr.consent_context (
    backend_pid           integer PRIMARY KEY,
    transaction_id        xid8 NOT NULL,
    source                text NOT NULL
                          CONSTRAINT consent_context_source_check
                          CHECK (source IN ('tritonx', 'retention', 'erasure', 'rectification')),
    actor                 text CHECK (pg_catalog.length(actor) BETWEEN 1 AND 100)
);
ALTER TABLE gdpr.consent_context ADD COLUMN IF NOT EXISTS actor text
    CHECK (pg_catalog.length(actor) BETWEEN 1 AND 100);
-- `rectification` (gdpr.rectify of a column that holds a consent field) joined the sources of
-- gdpr.consent and gdpr.consent_context later: an older installation's checks are replaced
DO $$
DECLARE
    wanted record;
BEGIN
    FOR wanted IN
        SELECT * FROM (VALUES
            ('gdpr.consent'::pg_catalog.regclass, 'consent_source_check',
             $c$source IN ('tritonx', 'webshop', 'back_office', 'store', 'merge', 'retention',
                           'erasure', 'rectification')$c$),
            ('gdpr.consent_context'::pg_catalog.regclass, 'consent_context_source_check',
             $c$source IN ('tritonx', 'retention', 'erasure', 'rectification')$c$))
            AS w (relation, name, condition)
        WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_constraint AS c
                          WHERE c.conrelid = w.relation AND c.conname = w.name
                            AND pg_catalog.pg_get_constraintdef(c.oid) LIKE '%rectification%')
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I',
                                  wanted.relation, wanted.name);
        EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s)',
                                  wanted.relation, wanted.name, wanted.condition);
    END LOOP;
END
$$;

-- The scheduled GDPR job (retention run, then the erasure requests due), once per daily slot:
-- a run broken off (finished_at NULL) is taken up again by the next controller cycle; a slot
-- that finished is not run twice, by this controller or another.
CREATE TABLE IF NOT EXISTS gdpr.job_run (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job                   text NOT NULL CHECK (job IN ('daily')),
    slot                  timestamptz NOT NULL,
    started_at            timestamptz NOT NULL,
    finished_at           timestamptz,
    attempts              integer NOT NULL DEFAULT 1,
    customers             bigint,
    counts                jsonb,
    erasures_done         integer,
    erasures_failed       integer,
    UNIQUE (job, slot)
);

-- ---------------------------------------------------------------------------------------------
-- The PII registry for the gdpr tables (sql/40_registry.sql): consents stay after an
-- anonymisation as evidence of lawful processing (they hold ids, times and codes only);
-- digests are kept on purpose until the request ends (the residue search needs them after the
-- anonymisation). No merge rule: neither table has a unique key with customer_key in it.
-- ---------------------------------------------------------------------------------------------
INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)
VALUES ('gdpr', 'consent', 'scrub', false),
       ('gdpr', 'erasure_request', 'scrub', false)
ON CONFLICT DO NOTHING;

INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy, value)
VALUES
    ('gdpr', 'consent', 'id', 'not_personal', NULL),
    ('gdpr', 'consent', 'customer_key', 'not_personal', NULL),
    ('gdpr', 'consent', 'policy_id', 'not_personal', NULL),
    ('gdpr', 'consent', 'granted', 'not_personal', NULL),
    ('gdpr', 'consent', 'decided_at', 'not_personal', NULL),
    ('gdpr', 'consent', 'source', 'not_personal', NULL),
    ('gdpr', 'consent', 'text_version', 'not_personal', NULL),
    ('gdpr', 'consent', 'actor', 'not_personal', NULL),
    ('gdpr', 'consent', 'recorded_at', 'not_personal', NULL),

    ('gdpr', 'erasure_request', 'id', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'customer_key', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'state', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'received_at', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'verified_at', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'scheduled_for', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'finished_at', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'actor', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'digests', 'keep', NULL),
    ('gdpr', 'erasure_request', 'attempts', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'last_error', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'residue_hits', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'residue', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'columns_searched', 'not_personal', NULL),
    ('gdpr', 'erasure_request', 'outbox_id', 'not_personal', NULL)
ON CONFLICT DO NOTHING;

