-- The reference shop's mapping (syncctl/mappings/reference.toml, as a document), installed
-- through sync.install_mapping on an installation that has no mapping yet, so a fresh install
-- applies the feed through generated code from the start. On an installation that has one, the
-- active mapping is compiled again: an upgrade of the engine regenerates schema syncmap with
-- today's compiler, and keeps the version (no new version, no audit row). After the roles
-- (sql/95_roles.sql): installing runs as the owner role. A fresh install also guards
-- shop.newsletter_subscription for the newsletter policy (gdpr.require_consent). Re-runnable.
DO $$
DECLARE
    active jsonb;
BEGIN
    IF NOT EXISTS (SELECT FROM sync.mapping_version) THEN
        PERFORM sync.install_mapping('{
            "format": 1,
            "customer": {
              "schema": "shop", "table": "customer", "key": "id", "key_generate": "identity",
              "number": {"column": "customer_number"},
              "version": {"column": "tritonx_version"},
              "columns": {
                "email": "email", "first_name": "first_name", "infix": "infix",
                "last_name": "last_name", "gender": "gender", "birth_date": "birth_date",
                "phone": "phone", "mobile": "mobile", "street": "street",
                "house_number": "house_number",
                "house_number_addition": "house_number_addition", "postcode": "postcode",
                "city": "city", "country_code": "country_code", "loyalty_card": "loyalty_card",
                "home_store": "home_store", "customer_group": "customer_group",
                "newsletter_opt_in": {"field": "newsletter_opt_in", "null_as": false},
                "blocked": {"field": "blocked", "null_as": false},
                "tritonx_updated_at": "updated_at"
              }
            },
            "gdpr": {
              "created_column": "created_at", "last_activity_column": "last_login_at",
              "group_column": "customer_group",
              "last_order": {"schema": "shop", "table": "orders", "column": "placed_at"}
            }
          }'::jsonb, 'syncctl/mappings/reference.toml');
        -- the reference shop's collection guard, the way a DBA guards a table (docs/gdpr.md)
        PERFORM gdpr.require_consent('shop.newsletter_subscription', 'newsletter');
    ELSE
        SELECT v.document INTO active FROM sync.mapping_version AS v WHERE v.active;
        IF active IS NOT NULL THEN
            EXECUTE sync.compile_mapping(active);
        END IF;
    END IF;
END
$$;
