-- The engine's tables. Private: the shop and operators use the functions and views.
-- Personal data lives only in shop tables and in inbox payloads (dropped after a retention
-- period, scrubbed when the customer is anonymised); every other engine table holds ids,
-- versions, outcomes and reason codes. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------------------------
-- TRITONX FIELD CONTRACT (the snapshot field contract)
-- sync.customer_snapshot below is the one definition of tritonX's snapshot fields: their names,
-- types and maximum lengths. Adding, removing, renaming or resizing a field changes every place
-- listed here, together. tests/migration/test_field_contract.py cross-checks the ones marked
-- [tested] and names the place that is out of step.
--   Contract and engine
--   1. sync.customer_snapshot (this file): names, types, varchar lengths = maximum lengths.
--      Created only when missing: on an installed database a change is an ALTER TYPE in a
--      migration (the test database is built from the migrations, so the tests see it).
--   2. docs/tritonx-contract.md, "Snapshot fields": the table of JSON types and lengths. [tested]
--   3. sync._event_defects (sql/30_sync_apply.sql): the jsonpath test of the JSON types, one line
--      a field (written out for speed), and the length tests of the formatted string fields
--      (birth_date, updated_at). [tested]
--      sync._snapshot_type_defect, sync.snapshot_defect and sync.raw_defect read the type.
--   4. The upsert: the code sync.compile_mapping (sql/16_mapping_compile.sql) generates from
--      the mapping's transforms (syncmap.write_customers, syncmap.snapshot_defect), reading the
--      snapshot as this type; sync._apply_upserts (sql/30_sync_apply.sql) stays field-free.
--   Mapping
--   5. The reference shop's mapping, syncctl/mappings/reference.toml (installed by
--      syncctl.reference_shop): every field but customer_number used by a transform or listed
--      in [not_stored]. [tested, on the active document]
--   6. sync.mapping_defects: the list of fields that must be decided and each field's maximum
--      length (read from this type), docs/mapping.md's field list.
--   7. The reference shop's customer columns (sql/reference_shop/10_tables.sql) and their PII
--      strategies, sync.pii_column seeds in sql/reference_shop/20_registry.sql: every column a
--      field is mapped to is classified. [tested]
--   8. The webshop role's INSERT column list on the reference shop's customer table
--      (sql/reference_shop/50_privileges.sql).
--   9. email: login adoption matches tritonX's e-mail (sync._adoption_match and the
--      customer_login_email index, sql/70_login.sql; gdpr._same_email_customers).
--   GDPR
--  10. gdpr.rectify (sql/86_gdpr_subject.sql) refuses the fields of this type (reads it); the
--      subject access export (gdpr.subject_data) reads whole rows, no field list.
--  11. The residue search's identifying values, gdpr._subject_digests (sql/87_gdpr_proof.sql):
--      email, phone, mobile, names, postcode + house number (+ addition), loyalty_card.
--  12. Policies naming fields: the seeded 'club' policy (loyalty_card, home_store),
--      consent_field 'newsletter_opt_in' (sql/80_gdpr_schema.sql, sql/83_gdpr_consent.sql),
--      membership by customer_group (sql/85_gdpr_retention.sql).
--   Simulator, tests, benchmark
--  13. The simulator's generator, syncctl/simulator/population.py snapshot() [tested]; its
--      malformed records (server.py: birth_date) and edits (state.py: the snapshot's keys).
--  14. tests/feed.py snapshot(), the test records' default snapshot. [tested]
--  15. The test oracle, tests/truth.py SNAPSHOT_FIELDS (compared field by field). [tested]
--  16. tests/integration/test_hostile_input.py TEXT_FIELDS (every string field) [tested], and
--      the maximum lengths in test_snapshot_contract.py (read from item 2).
--  17. bench/dataset.py's fragment generator (the records when the simulator is absent) [tested],
--      and bench/statements.sql's hand-written baseline upserts.
DO $$
BEGIN
    IF to_regtype('sync.customer_snapshot') IS NULL THEN
        -- The typed form of a tritonX customer snapshot: jsonb_populate_record() maps a
        -- payload onto it, so its attribute names are the contract's field names. The varchar
        -- lengths are enforced by that mapping itself (a longer value fails it: no cost on the
        -- set-based path); the JSON types are checked by sync._event_defects.
        CREATE TYPE sync.customer_snapshot AS (
            customer_number       varchar(32),
            email                 varchar(254),
            first_name            varchar(100),
            infix                 varchar(30),
            last_name             varchar(100),
            gender                varchar(1),
            birth_date            date,
            phone                 varchar(32),
            mobile                varchar(32),
            street                varchar(100),
            house_number          integer,
            house_number_addition varchar(10),
            postcode              varchar(10),
            city                  varchar(100),
            country_code          varchar(2),
            loyalty_card          varchar(32),
            home_store            varchar(100),
            customer_group        varchar(50),
            newsletter_opt_in     boolean,
            blocked               boolean,
            updated_at            timestamptz
        );
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Tables, each with its indexes
-- ---------------------------------------------------------------------------------------------

-- Where each source's feed stands. Moves in the same transaction as the staged rows.
CREATE TABLE IF NOT EXISTS sync.cursor (
    source                text PRIMARY KEY,
    position              text,
    last_seq              bigint,
    last_occurred_at      timestamptz,
    pages                 bigint NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Every delivery, as received (at least once: duplicates included). Append-only apart from
-- dropping payloads after the retention period. Typed columns are extracted by the loader and
-- may be NULL when the record was malformed; the payload keeps the record itself.
CREATE TABLE IF NOT EXISTS sync.inbox (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source                text NOT NULL DEFAULT 'tritonx',
    seq                   bigint,
    event_id              text,
    event_type            text,
    customer_number       text,
    version               integer,
    occurred_at           timestamptz,
    payload               jsonb,
    received_at           timestamptz NOT NULL DEFAULT now()
);
-- No index on event_id: nothing looks a delivery up by it (an event is decided once by the
-- unique index on sync.audit.event_id, sync.dead_letter has its own), and each index is one
-- more insert for every event the feed stages.
DROP INDEX IF EXISTS sync.inbox_event_id;
CREATE INDEX IF NOT EXISTS inbox_customer_number ON sync.inbox (customer_number);
-- anonymising a survivor scrubs the snapshots of the merge events that name it as `into`
CREATE INDEX IF NOT EXISTS inbox_merge_into ON sync.inbox ((payload ->> 'into'))
    WHERE event_type = 'customer.merged';
-- a malformed record's number (its own missing, malformed or another) is found in its snapshot
-- when anonymising (sync._inbox_copies); a well-formed upsert's two numbers agree, so only
-- malformed records are indexed
DROP INDEX IF EXISTS sync.inbox_snapshot_number_unparsed;
CREATE INDEX IF NOT EXISTS inbox_snapshot_number_other
    ON sync.inbox ((payload -> 'customer' ->> 'customer_number'))
    WHERE (payload -> 'customer' ->> 'customer_number') IS NOT NULL
      AND customer_number IS DISTINCT FROM (payload -> 'customer' ->> 'customer_number');
-- The inbox rows that still hold a payload, oldest first: the ones sync.drop_payloads looks at.
-- It covers the retention window and the dead letters, not the whole history, so a call costs
-- the same on a young inbox and on one with years of decided rows.
CREATE INDEX IF NOT EXISTS inbox_payload_held ON sync.inbox (received_at)
    WHERE payload IS NOT NULL;
-- A record jsonb cannot hold (a JSON \u0000 in it): its JSON text exactly as received, payload
-- NULL. Always a dead letter; scrubbed and dropped like a payload.
ALTER TABLE sync.inbox ADD COLUMN IF NOT EXISTS raw text;
-- the same for records kept as text: rare, dead letters until decided
CREATE INDEX IF NOT EXISTS inbox_raw_held ON sync.inbox (received_at)
    WHERE raw IS NOT NULL;

-- Old tritonX number -> survivor. Permanent; kept flat (every old number points at the final
-- survivor) so a lookup is one step whatever the chain.
CREATE TABLE IF NOT EXISTS sync.redirect (
    old_number            text PRIMARY KEY,
    survivor_number       text NOT NULL,
    merged_at             timestamptz NOT NULL DEFAULT now(),
    event_id              text,
    CHECK (old_number <> survivor_number)
);
CREATE INDEX IF NOT EXISTS redirect_survivor_number ON sync.redirect (survivor_number);

-- A customer that was anonymised or deleted: no later event may bring its data back.
CREATE TABLE IF NOT EXISTS sync.tombstone (
    customer_number       text PRIMARY KEY,
    kind                  text NOT NULL CHECK (kind IN ('anonymised', 'deleted')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    event_id              text
);

-- A customer only the shop knows (no tritonX number, so no tombstone) that was anonymised: its
-- key, in the key's own text form (sync._anonymise_locally writes it). Its kept rows (orders)
-- are an erased customer's (sync._erased_customer): they no longer hold a row it shared with
-- others, such as a household's address. When the shop deletes the customer row or changes
-- its key, the mark goes or follows (sql/73_shop_key_changes.sql): a key given again names a
-- new customer. Keys only, nothing personal.
CREATE TABLE IF NOT EXISTS sync.erased_key (
    customer_key          text PRIMARY KEY,
    erased_at             timestamptz NOT NULL DEFAULT now()
);

-- Events that could not be applied, with a readable reason (never personal data).
CREATE TABLE IF NOT EXISTS sync.dead_letter (
    inbox_id              bigint PRIMARY KEY REFERENCES sync.inbox (id),
    event_id              text,
    reason                text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    attempts              integer NOT NULL DEFAULT 1,
    last_attempt_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dead_letter_event_id ON sync.dead_letter (event_id);

-- One row per effect, append-only. An event is decided at most once: the unique index on
-- event_id is what makes an at-least-once feed have an exactly-once effect.
CREATE TABLE IF NOT EXISTS sync.audit (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                    timestamptz NOT NULL DEFAULT now(),
    actor                 text NOT NULL,
    action                text NOT NULL,
    outcome               text NOT NULL,
    event_id              text,
    inbox_id              bigint,
    customer_number       text,
    customer_id           bigint,
    version               integer,
    counts                jsonb,
    reason                text,
    duration_ms           numeric(12, 3),
    -- the other customer number of the action: a merge's survivor (customer_number is the old)
    related_number        text,
    -- the local customer's key as text (any key type; customer_id holds it too for an integer
    -- key): a merge's survivor, the customer anonymised, deleted, adopted, relinked, or a GDPR
    -- action's; NULL on the feed's upserts (named by number) and for a number not held here
    customer_key          text
);
ALTER TABLE sync.audit ADD COLUMN IF NOT EXISTS customer_key text;
CREATE UNIQUE INDEX IF NOT EXISTS audit_event_decided ON sync.audit (event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_customer_number ON sync.audit (customer_number);
CREATE INDEX IF NOT EXISTS audit_inbox_id ON sync.audit (inbox_id);

-- Events for tritonX (today: a local anonymisation it must be told about). Written in the
-- same transaction as the local effect; delivered at least once by the controller, which
-- sends idempotency_key so tritonX applies each request once. No personal data: numbers,
-- reason codes and actors only.
CREATE TABLE IF NOT EXISTS sync.outbox (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_number       text NOT NULL,
    event_type            text NOT NULL CHECK (event_type IN ('customer.anonymize_requested')),
    idempotency_key       uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid() UNIQUE,
    payload               jsonb NOT NULL,
    state                 text NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts              integer NOT NULL DEFAULT 0,
    next_attempt_at       timestamptz NOT NULL DEFAULT now(),
    last_error            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    delivered_at          timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_due ON sync.outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_customer_number ON sync.outbox (customer_number);
