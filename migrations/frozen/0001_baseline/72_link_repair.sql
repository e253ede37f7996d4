-- Adoption and link repair: moving an unlinked local customer into the linked one tritonX's own
-- e-mail names (at login, `syncctl links repair` and bootstrap, all deciding by
-- sync._adoption_match in sql/70_login.sql), repairing a link to a merged-away number, and the
-- views `syncctl links check` reports from. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Functions
-- ---------------------------------------------------------------------------------------------

-- Adopt an unlinked local customer: it becomes the linked customer and keeps the shop's key.
-- The customer row tritonX's number arrived on (a login's stub, or the feed's copy) is absorbed
-- into it as a merge absorbs an old customer: its rows (a consent given at that login, say) move
-- over, then the number, the version and the columns tritonX owns (the active mapping's
-- customer.columns) move onto the local row, and the absorbed row goes. Columns tritonX does not
-- own keep the local customer's values. Used by login, link repair and bootstrap; only for the
-- pair sync._adoption_match names (tritonX's own e-mail matches exactly this local customer).
-- Returns the rows moved per table.
-- Example: SELECT sync.adopt_local_customer(42, 4711, 'ops:links-repair');
CREATE OR REPLACE FUNCTION sync.adopt_local_customer(
    p_local_id bigint, p_linked_id bigint, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started timestamptz := pg_catalog.clock_timestamp();
    number  text;
    linked  jsonb;
    owned   text;
    moved   record;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM FROM shop.customer AS c WHERE c.id IN (p_local_id, p_linked_id)
    ORDER BY c.id FOR UPDATE;
    IF NOT EXISTS (SELECT FROM shop.customer AS c
                   WHERE c.id = p_local_id AND c.customer_number IS NULL) THEN
        RAISE EXCEPTION 'customer % is not an unlinked local customer', p_local_id
            USING ERRCODE = 'SY050';
    END IF;
    SELECT c.customer_number, pg_catalog.to_jsonb(c) INTO number, linked
    FROM shop.customer AS c WHERE c.id = p_linked_id;
    IF number IS NULL THEN
        RAISE EXCEPTION 'customer % is not linked to tritonX', p_linked_id
            USING ERRCODE = 'SY051';
    END IF;
    -- only the pair tritonX's own e-mail names: nobody moves a stranger's orders by ids alone
    IF NOT EXISTS (SELECT FROM sync._adoption_match(p_linked_id) AS m
                   WHERE m.local_ids = ARRAY[p_local_id] AND NOT m.shared) THEN
        RAISE EXCEPTION 'customer % is not the one local customer tritonX''s e-mail of customer '
                        '% matches', p_local_id, p_linked_id
            USING ERRCODE = 'SY052';
    END IF;
    -- the absorbed row is deleted before its number moves: the number stays unique throughout
    SELECT * INTO moved FROM sync._move_customer(p_linked_id::text, p_local_id::text);
    SELECT pg_catalog.string_agg(pg_catalog.format('%1$I = o.%1$I', o.column_name), ', ')
    INTO owned
    FROM sync.mapping_version AS v
    CROSS JOIN LATERAL (
        SELECT pg_catalog.jsonb_object_keys(v.document #> '{customer,columns}')
        UNION ALL SELECT v.document #>> '{customer,number,column}'
        UNION ALL SELECT v.document #>> '{customer,version,column}') AS o (column_name)
    WHERE v.active AND o.column_name IS NOT NULL;
    EXECUTE pg_catalog.format(
        'UPDATE shop.customer AS s SET %s '
        'FROM pg_catalog.jsonb_populate_record(NULL::shop.customer, $1) AS o WHERE s.id = $2',
        owned)
        USING linked, p_local_id;
    UPDATE sync.link_conflict AS l SET resolved_at = pg_catalog.now()
    WHERE p_local_id = ANY (l.candidate_ids) AND l.resolved_at IS NULL;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts,
                            reason, duration_ms)
    VALUES (p_actor, 'customer.adopted', 'applied', number, p_local_id, moved.counts,
            pg_catalog.format('local customer %s adopted; customer %s absorbed into it',
                              p_local_id, p_linked_id),
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000);
    RETURN moved.counts;
END
$$;

-- Repair a local customer still linked to a merged-away number (the shop linked it before
-- syncctl knew of the merge): its rows move into the survivor's local customer as a merge moves
-- them, or, when the survivor has no local customer yet, the link moves to the survivor's number
-- (its tritonX version is forgotten so the survivor's next snapshot applies, and a refresh is
-- requested). A survivor that was anonymised or deleted is left alone: outcome 'skipped', as a
-- merge into an erased customer is refused. Audited as 'customer.relinked' (customer_number the
-- old number, related_number the survivor). Returns {"outcome", "reason", "counts"}.
-- Example: SELECT sync.repair_redirected_link('TX00000001', 'ops:alice');
CREATE OR REPLACE FUNCTION sync.repair_redirected_link(p_customer_number text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started     timestamptz := pg_catalog.clock_timestamp();
    survivor    text := sync.resolve_customer_number(
                            sync._checked_length(p_customer_number, 32, 'customer number'));
    old_id      bigint;
    survivor_id bigint;
    erased_as   text;
    counts      jsonb := '{}';
    outcome     text := 'applied';
    why         text;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    -- the lock order every merge, anonymisation and concurrent shop write agrees on
    PERFORM FROM shop.customer AS c
    WHERE c.customer_number IN (p_customer_number, survivor)
    ORDER BY c.id
    FOR UPDATE;
    SELECT c.id INTO old_id FROM shop.customer AS c WHERE c.customer_number = p_customer_number;
    SELECT c.id INTO survivor_id FROM shop.customer AS c WHERE c.customer_number = survivor;
    SELECT t.kind INTO erased_as FROM sync.tombstone AS t WHERE t.customer_number = survivor;
    IF old_id IS NULL OR survivor = p_customer_number THEN
        outcome := 'skipped';
        why := 'not linked to a merged-away number';
    ELSIF erased_as IS NOT NULL THEN
        outcome := 'skipped';
        why := pg_catalog.format('survivor %s is %s', survivor, erased_as);
    ELSIF survivor_id IS NULL THEN
        UPDATE shop.customer AS c
        SET customer_number = survivor, tritonx_version = NULL, tritonx_updated_at = NULL
        WHERE c.id = old_id;
        survivor_id := old_id;
        counts := '{"shop.customer": 1}';
        why := 'link moved to the survivor';
        PERFORM sync.request_refresh(survivor);
    ELSE
        SELECT m.counts, m.reason INTO counts, why
        FROM sync._move_customer(old_id::text, survivor_id::text) AS m;
    END IF;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts,
                            reason, duration_ms, related_number)
    VALUES (p_actor, 'customer.relinked', outcome, p_customer_number,
            coalesce(survivor_id, old_id), counts, why,
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000, survivor);
    RETURN pg_catalog.jsonb_build_object('outcome', outcome, 'reason', why, 'counts', counts);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------

-- What `syncctl links check` reports: one row an anomaly kind, with a count.
CREATE OR REPLACE VIEW sync.link_anomaly AS
SELECT 'several local customers with one email' AS anomaly, count(*) AS customers
FROM (SELECT sync.normalise_email(c.email) FROM shop.customer AS c
      WHERE c.email IS NOT NULL
      GROUP BY 1 HAVING count(*) > 1) AS g
UNION ALL
SELECT 'linked to a merged-away number', count(*)
FROM shop.customer AS c JOIN sync.redirect AS r ON r.old_number = c.customer_number
UNION ALL
SELECT 'local customer without a tritonX number', count(*)
FROM shop.customer AS c WHERE c.customer_number IS NULL
UNION ALL
SELECT 'open link conflicts', count(*)
FROM sync.link_conflict AS l WHERE l.resolved_at IS NULL;

-- Linked customers whose tritonX e-mail (from a snapshot) matches unlinked local customers,
-- as sync._adoption_match decides it: linked_id, customer_number, local_ids, shared.
CREATE OR REPLACE VIEW sync.adoption_match AS
SELECT m.linked_id, m.customer_number, m.local_ids, m.shared
FROM shop.customer AS linked
CROSS JOIN LATERAL sync._adoption_match(linked.id) AS m
WHERE linked.customer_number IS NOT NULL
  AND linked.tritonx_version IS NOT NULL
  AND sync.normalise_email(linked.email) IN (
      SELECT sync.normalise_email(l.email) FROM shop.customer AS l
      WHERE l.customer_number IS NULL AND l.email IS NOT NULL);

-- What `syncctl links repair` (and bootstrap) adopt: the unlinked local customer that is the
-- only one with a linked customer's tritonX e-mail, when no other linked customer has it.
-- Two unlinked local customers with one e-mail adopt neither (a link conflict, as at login).
CREATE OR REPLACE VIEW sync.adoptable_customer AS
SELECT m.local_ids[1] AS local_id, m.linked_id, m.customer_number
FROM sync.adoption_match AS m
WHERE pg_catalog.cardinality(m.local_ids) = 1 AND NOT m.shared;

-- Record a link conflict for every linked customer whose tritonX e-mail matches several
-- unlinked local customers (or another linked customer as well), one open conflict a
-- customer (what `links repair` and bootstrap do before they adopt). Returns how many were
-- recorded now.
-- Example: SELECT sync.record_adoption_conflicts();
CREATE OR REPLACE FUNCTION sync.record_adoption_conflicts()
RETURNS integer
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FILTER (WHERE sync._record_ambiguous_adoption(m.customer_number, m.linked_id,
                                                                  m.local_ids))::integer
    FROM sync.adoption_match AS m
    WHERE pg_catalog.cardinality(m.local_ids) > 1 OR m.shared
$$;
