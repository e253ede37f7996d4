-- The reference shop's declarations in the engine's registry (sql/40_registry.sql): merge
-- rules, anonymise rules and a PII strategy for every column. ON CONFLICT DO NOTHING: an
-- operator's declaration is never overwritten. Re-runnable.

INSERT INTO sync.merge_rule (table_schema, table_name, rule, newest_column, quantity_column)
VALUES ('shop', 'favourite', 'union', NULL, NULL),
       ('shop', 'wishlist', 'keep_newest', 'added_at', NULL),
       ('shop', 'cart', 'keep_newest', 'updated_at', NULL),
       ('shop', 'newsletter_subscription', 'keep_survivor', NULL, NULL)
ON CONFLICT DO NOTHING;

INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)
VALUES ('shop', 'address', 'scrub', false),
       ('shop', 'orders', 'scrub', true),
       ('shop', 'favourite', 'scrub', false),
       ('shop', 'wishlist', 'delete_rows', false),
       ('shop', 'cart', 'delete_rows', false),
       ('shop', 'newsletter_subscription', 'delete_rows', false),
       ('shop', 'login_identity', 'delete_rows', false)
ON CONFLICT DO NOTHING;

INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy, value)
VALUES
    ('shop', 'customer', 'id', 'not_personal', NULL),
    ('shop', 'customer', 'customer_number', 'not_personal', NULL),
    ('shop', 'customer', 'email', 'placeholder', 'anon-{id}@invalid'),
    ('shop', 'customer', 'first_name', 'null', NULL),
    ('shop', 'customer', 'infix', 'null', NULL),
    ('shop', 'customer', 'last_name', 'null', NULL),
    ('shop', 'customer', 'gender', 'null', NULL),
    ('shop', 'customer', 'birth_date', 'year', NULL),
    ('shop', 'customer', 'phone', 'null', NULL),
    ('shop', 'customer', 'mobile', 'null', NULL),
    ('shop', 'customer', 'street', 'null', NULL),
    ('shop', 'customer', 'house_number', 'null', NULL),
    ('shop', 'customer', 'house_number_addition', 'null', NULL),
    ('shop', 'customer', 'postcode', 'null', NULL),
    ('shop', 'customer', 'city', 'null', NULL),
    ('shop', 'customer', 'country_code', 'keep', NULL),
    ('shop', 'customer', 'loyalty_card', 'null', NULL),
    ('shop', 'customer', 'home_store', 'keep', NULL),
    ('shop', 'customer', 'customer_group', 'keep', NULL),
    ('shop', 'customer', 'newsletter_opt_in', 'fixed', 'false'),
    ('shop', 'customer', 'blocked', 'keep', NULL),
    ('shop', 'customer', 'tritonx_updated_at', 'not_personal', NULL),
    ('shop', 'customer', 'tritonx_version', 'not_personal', NULL),
    ('shop', 'customer', 'created_at', 'not_personal', NULL),
    ('shop', 'customer', 'last_login_at', 'null', NULL),
    ('shop', 'customer', 'preferred_language', 'null', NULL),

    ('shop', 'address', 'id', 'not_personal', NULL),
    ('shop', 'address', 'customer_id', 'not_personal', NULL),
    ('shop', 'address', 'kind', 'not_personal', NULL),
    ('shop', 'address', 'recipient_name', 'null', NULL),
    ('shop', 'address', 'street', 'null', NULL),
    ('shop', 'address', 'house_number', 'null', NULL),
    ('shop', 'address', 'house_number_addition', 'null', NULL),
    ('shop', 'address', 'postcode', 'null', NULL),
    ('shop', 'address', 'city', 'null', NULL),
    ('shop', 'address', 'country_code', 'keep', NULL),
    ('shop', 'address', 'created_at', 'not_personal', NULL),

    ('shop', 'orders', 'id', 'not_personal', NULL),
    ('shop', 'orders', 'customer_id', 'not_personal', NULL),
    ('shop', 'orders', 'order_number', 'not_personal', NULL),
    ('shop', 'orders', 'placed_at', 'not_personal', NULL),
    ('shop', 'orders', 'status', 'not_personal', NULL),
    ('shop', 'orders', 'total_amount', 'not_personal', NULL),
    ('shop', 'orders', 'currency', 'not_personal', NULL),
    ('shop', 'orders', 'delivery_name', 'null', NULL),
    ('shop', 'orders', 'delivery_street', 'null', NULL),
    ('shop', 'orders', 'delivery_postcode', 'null', NULL),
    ('shop', 'orders', 'delivery_city', 'null', NULL),
    ('shop', 'orders', 'contact_email', 'null', NULL),
    ('shop', 'orders', 'contact_phone', 'null', NULL),

    -- one foreign key further (via shop.orders): an anonymisation scrubs what is classified
    -- to be scrubbed here; the order lines hold nothing of the person
    ('shop', 'order_line', 'id', 'not_personal', NULL),
    ('shop', 'order_line', 'order_id', 'not_personal', NULL),
    ('shop', 'order_line', 'sku', 'not_personal', NULL),
    ('shop', 'order_line', 'quantity', 'not_personal', NULL),
    ('shop', 'order_line', 'unit_price', 'not_personal', NULL),

    ('shop', 'favourite', 'customer_id', 'not_personal', NULL),
    ('shop', 'favourite', 'sku', 'not_personal', NULL),
    ('shop', 'favourite', 'added_at', 'not_personal', NULL),

    ('shop', 'wishlist', 'id', 'not_personal', NULL),
    ('shop', 'wishlist', 'customer_id', 'not_personal', NULL),
    ('shop', 'wishlist', 'sku', 'not_personal', NULL),
    ('shop', 'wishlist', 'note', 'null', NULL),
    ('shop', 'wishlist', 'added_at', 'not_personal', NULL),

    ('shop', 'cart', 'id', 'not_personal', NULL),
    ('shop', 'cart', 'customer_id', 'not_personal', NULL),
    ('shop', 'cart', 'items', 'fixed', '[]'),
    ('shop', 'cart', 'updated_at', 'not_personal', NULL),

    ('shop', 'newsletter_subscription', 'customer_id', 'not_personal', NULL),
    ('shop', 'newsletter_subscription', 'list_name', 'not_personal', NULL),
    ('shop', 'newsletter_subscription', 'email', 'null', NULL),
    ('shop', 'newsletter_subscription', 'subscribed_at', 'not_personal', NULL),

    ('shop', 'login_identity', 'id', 'not_personal', NULL),
    ('shop', 'login_identity', 'customer_id', 'not_personal', NULL),
    ('shop', 'login_identity', 'provider', 'not_personal', NULL),
    ('shop', 'login_identity', 'login_name', 'placeholder', 'anon-{id}@invalid'),
    ('shop', 'login_identity', 'password_hash', 'null', NULL),
    ('shop', 'login_identity', 'last_login_at', 'null', NULL)
ON CONFLICT DO NOTHING;
