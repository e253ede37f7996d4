-- The sixth test schema, "binary": a shop shaped like Shopware (schema sw). Every key is a
-- 16-byte binary uuid (bytea) with no default: the mapping says how a new one is made. The
-- customer's e-mail is unique case-insensitively (a unique index on lower(email)), and the shop
-- numbers its customers itself (customer_number, UNIQUE, from a sequence; not the key).
-- customer_address is the address book (customer_id back to the customer, deferred); the
-- customer points to its default billing and shipping addresses (NOT deferrable, no action):
-- a circular pair. "order" (a reserved word) keeps its customer reference for bookkeeping, and
-- order_customer holds a copy of the customer's e-mail, names and customer_number per order
-- (one foreign key further). newsletter_recipient refers to the customer by customer_number, a
-- foreign key to a unique column that is not the key. customer_tag has the composite primary
-- key (customer_id, tag). A view and a function depend on the customer table. Every foreign
-- key has an index. Re-runnable. Bound to the engine by tests/shops/binary.toml; nothing here
-- is granted to the engine's roles (the mapping check names the GRANTs it needs).

CREATE SCHEMA IF NOT EXISTS sw;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
CREATE SEQUENCE IF NOT EXISTS sw.customer_number_seq START 10001;

CREATE TABLE IF NOT EXISTS sw.customer (
    id                           bytea PRIMARY KEY CHECK (pg_catalog.length(id) = 16),
    customer_number              varchar(64) NOT NULL UNIQUE
                                     DEFAULT ('SW' || nextval('sw.customer_number_seq')),
    sales_channel_id             bytea NOT NULL,
    email                        varchar(254),
    first_name                   varchar(255),
    last_name                    varchar(255),
    title                        varchar(64),
    birthday                     date,
    salutation                   varchar(16),
    default_billing_address_id   bytea,
    default_shipping_address_id  bytea,
    active                       boolean NOT NULL DEFAULT true,
    newsletter                   boolean NOT NULL DEFAULT false,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS customer_email_lower ON sw.customer (lower(email));

CREATE TABLE IF NOT EXISTS sw.customer_address (
    id              bytea PRIMARY KEY CHECK (pg_catalog.length(id) = 16),
    customer_id     bytea,
    first_name      varchar(255),
    last_name       varchar(255),
    street          varchar(255),
    zipcode         varchar(50),
    city            varchar(70),
    country_code    varchar(2),
    phone_number    varchar(40),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- the circular pair: the address book's rows point to their customer (deferred: the shop
-- inserts the customer and its first address in one transaction), the customer to its
-- default addresses, NOT deferrable and with no action (Shopware's RESTRICT)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                    WHERE conname = 'customer_address_customer') THEN
        ALTER TABLE sw.customer_address
            ADD CONSTRAINT customer_address_customer FOREIGN KEY (customer_id)
            REFERENCES sw.customer (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                    WHERE conname = 'customer_default_billing') THEN
        ALTER TABLE sw.customer
            ADD CONSTRAINT customer_default_billing FOREIGN KEY (default_billing_address_id)
            REFERENCES sw.customer_address (id) NOT DEFERRABLE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                    WHERE conname = 'customer_default_shipping') THEN
        ALTER TABLE sw.customer
            ADD CONSTRAINT customer_default_shipping FOREIGN KEY (default_shipping_address_id)
            REFERENCES sw.customer_address (id) NOT DEFERRABLE;
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS sw."order" (
    id              bytea PRIMARY KEY CHECK (pg_catalog.length(id) = 16),
    order_number    varchar(64) NOT NULL UNIQUE,
    customer_id     bytea REFERENCES sw.customer (id) ON DELETE SET NULL,
    amount_total    numeric(20, 2) NOT NULL DEFAULT 0,
    order_date      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sw.order_customer (
    id               bytea PRIMARY KEY CHECK (pg_catalog.length(id) = 16),
    order_id         bytea NOT NULL UNIQUE REFERENCES sw."order" (id) ON DELETE CASCADE,
    email            varchar(254),
    first_name       varchar(255),
    last_name        varchar(255),
    customer_number  varchar(64)
);

-- a foreign key to the customer's own number, a unique column that is not the key
CREATE TABLE IF NOT EXISTS sw.newsletter_recipient (
    id               bytea PRIMARY KEY CHECK (pg_catalog.length(id) = 16),
    customer_number  varchar(64) REFERENCES sw.customer (customer_number) ON UPDATE CASCADE,
    email            varchar(254) NOT NULL,
    status           varchar(16) NOT NULL DEFAULT 'direct',
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sw.customer_tag (
    customer_id      bytea NOT NULL REFERENCES sw.customer (id) ON DELETE CASCADE,
    tag              varchar(64) NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, tag)
);

-- ---------------------------------------------------------------------------------------------
-- Indexes: one on every foreign key (customer_tag's primary key leads with its customer)
-- ---------------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS customer_address_customer_id ON sw.customer_address (customer_id);
CREATE INDEX IF NOT EXISTS customer_default_billing ON sw.customer (default_billing_address_id);
CREATE INDEX IF NOT EXISTS customer_default_shipping ON sw.customer (default_shipping_address_id);
CREATE INDEX IF NOT EXISTS order_customer_id ON sw."order" (customer_id);
CREATE INDEX IF NOT EXISTS newsletter_recipient_customer_number
    ON sw.newsletter_recipient (customer_number);

-- ---------------------------------------------------------------------------------------------
-- A view and a function that depend on the customer table
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW sw.customer_listing AS
    SELECT c.id, c.customer_number, c.email,
           pg_catalog.concat_ws(' ', c.first_name, c.last_name) AS name, a.city
    FROM sw.customer AS c
    LEFT JOIN sw.customer_address AS a ON a.id = c.default_billing_address_id;

CREATE OR REPLACE FUNCTION sw.customer_order_count(p_customer sw.customer) RETURNS bigint
    LANGUAGE sql
    STABLE
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.count(*) FROM sw."order" AS o WHERE o.customer_id = p_customer.id
$$;
