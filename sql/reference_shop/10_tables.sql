-- The reference webshop model: the demo's and the tests' customer tables, bound to the engine by
-- syncctl/mappings/reference.toml like any shop's own tables. Not part of the engine: `syncctl db
-- upgrade` never creates it; `syncctl db reference-shop` (and the embedded demo database) does.
-- The engine finds customer-linked tables from their foreign keys to shop.customer, so a shop may
-- add tables of its own. Every foreign key to shop.customer has an index: a merge re-points by it
-- and a delete checks it. Re-runnable, as the owner role.

CREATE SCHEMA IF NOT EXISTS shop;
COMMENT ON SCHEMA shop IS 'Reference webshop model: customers and everything linked to them.';
REVOKE ALL ON SCHEMA shop FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS shop.customer (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- tritonX's number; NULL for a local customer not linked (yet)
    customer_number       text UNIQUE,
    -- fields tritonX owns: a snapshot overwrites them
    email                 text,
    first_name            text,
    infix                 text,
    last_name             text,
    gender                text,
    birth_date            date,
    phone                 text,
    mobile                text,
    street                text,
    house_number          integer,
    house_number_addition text,
    postcode              text,
    city                  text,
    country_code          text,
    loyalty_card          text,
    home_store            text,
    customer_group        text,
    newsletter_opt_in     boolean NOT NULL DEFAULT false,
    blocked               boolean NOT NULL DEFAULT false,
    tritonx_updated_at    timestamptz,
    -- the engine's version guard: the per-customer version of the last applied snapshot
    tritonx_version       integer,
    -- webshop-only fields: tritonX never touches them
    created_at            timestamptz NOT NULL DEFAULT now(),
    last_login_at         timestamptz,
    preferred_language    text
);

CREATE TABLE IF NOT EXISTS shop.address (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id           bigint NOT NULL REFERENCES shop.customer (id),
    kind                  text NOT NULL DEFAULT 'delivery' CHECK (kind IN ('billing', 'delivery')),
    recipient_name        text,
    street                text,
    house_number          integer,
    house_number_addition text,
    postcode              text,
    city                  text,
    country_code          text,
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS shop.orders (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id           bigint NOT NULL REFERENCES shop.customer (id),
    order_number          text NOT NULL UNIQUE,
    placed_at             timestamptz NOT NULL DEFAULT now(),
    status                text NOT NULL DEFAULT 'placed',
    total_amount          numeric(12, 2) NOT NULL DEFAULT 0,
    currency              text NOT NULL DEFAULT 'EUR',
    delivery_name         text,
    delivery_street       text,
    delivery_postcode     text,
    delivery_city         text,
    contact_email         text,
    contact_phone         text
);

CREATE TABLE IF NOT EXISTS shop.order_line (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id              bigint NOT NULL REFERENCES shop.orders (id),
    sku                   text NOT NULL,
    quantity              integer NOT NULL CHECK (quantity > 0),
    unit_price            numeric(12, 2) NOT NULL
);

CREATE TABLE IF NOT EXISTS shop.favourite (
    customer_id           bigint NOT NULL REFERENCES shop.customer (id),
    sku                   text NOT NULL,
    added_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, sku)
);

CREATE TABLE IF NOT EXISTS shop.wishlist (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id           bigint NOT NULL REFERENCES shop.customer (id),
    sku                   text NOT NULL,
    note                  text,
    added_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, sku)
);

CREATE TABLE IF NOT EXISTS shop.cart (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id           bigint NOT NULL UNIQUE REFERENCES shop.customer (id),
    items                 jsonb NOT NULL DEFAULT '[]',
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS shop.newsletter_subscription (
    customer_id           bigint NOT NULL REFERENCES shop.customer (id),
    list_name             text NOT NULL,
    email                 text,
    subscribed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, list_name)
);

CREATE TABLE IF NOT EXISTS shop.login_identity (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id           bigint NOT NULL REFERENCES shop.customer (id),
    provider              text NOT NULL DEFAULT 'password',
    login_name            text NOT NULL,
    password_hash         text,
    last_login_at         timestamptz,
    UNIQUE (provider, login_name)
);

-- ---------------------------------------------------------------------------------------------
-- Indexes: one on every foreign key (favourite, cart and newsletter_subscription lead with
-- customer_id in their primary key or unique constraint already).
-- ---------------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS customer_email_normalised ON shop.customer (lower(btrim(email)));
CREATE INDEX IF NOT EXISTS address_customer_id ON shop.address (customer_id);
CREATE INDEX IF NOT EXISTS orders_customer_id ON shop.orders (customer_id);
CREATE INDEX IF NOT EXISTS order_line_order_id ON shop.order_line (order_id);
CREATE INDEX IF NOT EXISTS login_identity_customer_id ON shop.login_identity (customer_id);
-- shop.customer's login index, on the e-mail as login adoption compares it
-- (sync.normalise_email). On another mapped table the index is the DBA's
-- (docs/login-and-refresh.md), on the column sync._email_column() names:
-- CREATE INDEX ON crm.customer (sync.normalise_email(email));
CREATE INDEX IF NOT EXISTS customer_login_email ON shop.customer (sync.normalise_email(email));
