-- The reference shop's example data policies (its collection guard on
-- shop.newsletter_subscription is installed with its mapping: syncctl.reference_shop). Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Example policies, as drafts: a policy takes effect (consents, collection guards, retention)
-- only once an operator activates it after legal review (gdpr.activate_policy).
-- ---------------------------------------------------------------------------------------------
INSERT INTO gdpr.policy (code, name, description, legal_basis, retention, retention_from,
                         membership, customer_group, consent_field)
VALUES
    ('webshop', 'Webshop customers',
     'Customer account, addresses, orders and favourites to sell and deliver; bookkeeping keeps '
     'orders (amounts, dates) after the customer data goes.',
     'contract', interval '2 years', 'last_order', 'all', NULL, NULL),
    ('newsletter', 'Newsletter',
     'E-mail newsletter for customers who subscribed.',
     'consent', interval '2 years', 'last_activity', 'consent', NULL, 'newsletter_opt_in'),
    ('club', 'Customer club members',
     'Loyalty card, home store and member offers for customer club members.',
     'consent', interval '1 year', 'last_activity', 'consent', NULL, NULL),
    ('employees', 'Employees',
     'Staff discount for employees; ends when the employment ends.',
     'legitimate_interests', interval '3 months', 'last_activity', 'customer_group',
     'employee', NULL)
ON CONFLICT (code) DO NOTHING;

INSERT INTO gdpr.policy_category (policy_id, table_schema, table_name, columns)
SELECT p.id, c.table_schema, c.table_name, c.columns
FROM (VALUES
        ('webshop', 'shop', 'customer', NULL::text[]),
        ('webshop', 'shop', 'address', NULL),
        ('webshop', 'shop', 'orders', NULL),
        ('webshop', 'shop', 'favourite', NULL),
        ('webshop', 'shop', 'wishlist', NULL),
        ('webshop', 'shop', 'cart', NULL),
        ('webshop', 'shop', 'login_identity', NULL),
        ('newsletter', 'shop', 'newsletter_subscription', NULL),
        ('club', 'shop', 'customer', ARRAY['loyalty_card', 'home_store']),
        ('employees', 'shop', 'customer', NULL)
     ) AS c (code, table_schema, table_name, columns)
JOIN gdpr.policy AS p ON p.code = c.code
ON CONFLICT DO NOTHING;

