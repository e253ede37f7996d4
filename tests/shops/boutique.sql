-- The second test schema, "boutique": a shop that differs from the reference shop (sql/reference_shop/10_tables.sql)
-- on purpose, the way real shop schemas do. A uuid key without a default, one full-name column,
-- the tritonX number already in a column of its own (tx_ref), short varchar columns, the shop's
-- codes for sex, blocked and newsletter, NOT NULL shop columns no tritonX field fills, the address
-- in a table the customer row points to (quoted mixed-case name), orders partitioned by month, a
-- customer reference without a foreign key, linked tables in two schemas, a trigger rewriting a
-- column on every UPDATE and a view depending on the customer table. Every foreign key has an
-- index. Re-runnable. The engine is bound to it by tests/shops/boutique.toml; nothing here is
-- granted to the engine's roles (the mapping check names the GRANTs it needs).

CREATE SCHEMA IF NOT EXISTS crm;
CREATE SCHEMA IF NOT EXISTS sales;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS crm."CustomerAddress" (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    street                varchar(120),
    zip                   varchar(10),
    city                  varchar(80),
    country               char(2),
    created_by            text NOT NULL
);

CREATE TABLE IF NOT EXISTS crm.customer (
    -- the shop's key: no default, the application makes it
    customer_uuid         uuid PRIMARY KEY,
    -- tritonX's number; NULL for a customer only the shop knows
    tx_ref                varchar(32) UNIQUE,
    full_name             varchar(60) NOT NULL,
    email                 varchar(254),
    sex                   char(1) CHECK (sex IN ('m', 'f', 'u')),
    birthday              date,
    phone                 varchar(20),
    is_blocked            smallint NOT NULL DEFAULT 0 CHECK (is_blocked IN (0, 1)),
    newsletter            char(1) NOT NULL DEFAULT 'N' CHECK (newsletter IN ('J', 'N')),
    -- the shop's own, required, with no default and no tritonX source
    segment               text NOT NULL,
    shop_id               integer NOT NULL,
    address_id            bigint REFERENCES crm."CustomerAddress" (id),
    -- shop-only
    notes                 text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz
);

CREATE TABLE IF NOT EXISTS crm.favourite (
    customer_uuid         uuid REFERENCES crm.customer,
    sku                   text,
    added_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_uuid, sku)
);

CREATE TABLE IF NOT EXISTS sales.orders (
    id                    bigint GENERATED ALWAYS AS IDENTITY,
    customer_uuid         uuid NOT NULL REFERENCES crm.customer (customer_uuid),
    order_number          text NOT NULL,
    placed_at             timestamptz NOT NULL DEFAULT now(),
    status                text NOT NULL DEFAULT 'placed',
    total_amount          numeric(12, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (id, placed_at)
) PARTITION BY RANGE (placed_at);

-- Monthly partitions for 2026 (bounds in UTC), and a default partition for every other time.
DO $$
DECLARE
    month integer;
BEGIN
    FOR month IN 1..12 LOOP
        EXECUTE pg_catalog.format(
            'CREATE TABLE IF NOT EXISTS sales.%I PARTITION OF sales.orders'
            ' FOR VALUES FROM (%L) TO (%L)',
            pg_catalog.format('orders_2026_%s', pg_catalog.lpad(month::text, 2, '0')),
            pg_catalog.make_timestamptz(2026, month, 1, 0, 0, 0, 'UTC'),
            pg_catalog.make_timestamptz(2026, 1, 1, 0, 0, 0, 'UTC')
                + pg_catalog.make_interval(months => month));
    END LOOP;
END
$$;
CREATE TABLE IF NOT EXISTS sales.orders_default PARTITION OF sales.orders DEFAULT;

-- A customer reference without a foreign key: the mapping declares it ([[reference]]).
CREATE TABLE IF NOT EXISTS sales."Review" (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_ref          uuid,
    sku                   text NOT NULL,
    rating                smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body                  text,
    written_at            timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- Indexes: one on every foreign key (crm.favourite leads with customer_uuid in its primary key)
-- and on the reference without one.
-- ---------------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS customer_address_id ON crm.customer (address_id);
CREATE INDEX IF NOT EXISTS orders_customer_uuid ON sales.orders (customer_uuid);
CREATE INDEX IF NOT EXISTS review_customer_ref ON sales."Review" (customer_ref);

-- ---------------------------------------------------------------------------------------------
-- Functions and triggers: the shop stamps every UPDATE of a customer.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION crm.customer_touch() RETURNS trigger
    LANGUAGE plpgsql
    VOLATILE
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.modified_at := pg_catalog.now();
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER customer_touch
    BEFORE UPDATE ON crm.customer
    FOR EACH ROW EXECUTE FUNCTION crm.customer_touch();

-- ---------------------------------------------------------------------------------------------
-- Views: one depends on the customer table (and its address), as a shop's back office would.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW crm.customer_overview AS
SELECT c.customer_uuid, c.tx_ref, c.full_name, c.email, c.segment, c.shop_id,
       a.zip, a.city, a.country, c.is_blocked = 1 AS blocked, c.created_at, c.modified_at
  FROM crm.customer c
  LEFT JOIN crm."CustomerAddress" a ON a.id = c.address_id;
