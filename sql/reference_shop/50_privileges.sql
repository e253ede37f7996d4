-- The engine's roles on the reference shop's tables (after sql/95_roles.sql's
-- sync.apply_privileges, which grants the engine's own objects and leaves the shop's tables to
-- the shop). The webshop role writes its own data; on shop.customer it may read every column,
-- create a local customer and change only webshop-only columns: never the tritonX number,
-- tritonX's fields or the version guard, and no DELETE (an erasure goes through
-- gdpr.receive_erasure). The controller reads customer ids and numbers. Re-runnable.
DO $$
DECLARE
    controller_role text := sync.role_name('controller');
    webshop_role    text := sync.role_name('webshop');
    reporting_role  text := sync.role_name('reporting');
BEGIN
    EXECUTE pg_catalog.format(
        'REVOKE ALL ON SCHEMA shop FROM PUBLIC, %1$I, %2$I, %3$I;'
        'REVOKE ALL ON ALL TABLES IN SCHEMA shop FROM PUBLIC, %1$I, %2$I, %3$I;'
        'REVOKE ALL ON ALL SEQUENCES IN SCHEMA shop FROM PUBLIC, %1$I, %2$I, %3$I',
        controller_role, webshop_role, reporting_role);
    EXECUTE pg_catalog.format(
        'GRANT USAGE ON SCHEMA shop TO %1$I;'
        'GRANT SELECT (id, customer_number) ON shop.customer TO %1$I',
        controller_role);
    EXECUTE pg_catalog.format(
        'GRANT USAGE ON SCHEMA shop TO %1$I;'
        'GRANT SELECT ON shop.customer TO %1$I;'
        'GRANT INSERT (email, first_name, infix, last_name, gender, birth_date, phone, mobile,'
        '              street, house_number, house_number_addition, postcode, city,'
        '              country_code, created_at, last_login_at, preferred_language)'
        '    ON shop.customer TO %1$I;'
        'GRANT UPDATE (last_login_at, preferred_language) ON shop.customer TO %1$I;'
        'GRANT SELECT, INSERT, UPDATE, DELETE ON shop.address, shop.orders, shop.order_line,'
        '    shop.favourite, shop.wishlist, shop.cart, shop.newsletter_subscription,'
        '    shop.login_identity TO %1$I',
        webshop_role);
END
$$;
