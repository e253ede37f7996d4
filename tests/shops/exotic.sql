-- The fourth test schema, "exotic": PostgreSQL features the other three test schemas do not
-- use, all at once. The customer table lives in a schema whose name has a dot ("web.shop"), its
-- key is an integer GENERATED ALWAYS AS IDENTITY, its e-mail a DOMAIN over text with a CHECK,
-- its gender an ENUM, its full name a STORED generated column, two of its columns are named like
-- reserved words ("order", "user"), one has DEFAULT now() and one is NOT NULL with a default no
-- tritonX field feeds; ROW LEVEL SECURITY is enabled and forced on it with a policy for the
-- shop's own application role only. Orders go with the customer (ON DELETE CASCADE); favourites,
-- in a schema whose name has a quote in it, are kept with their customer set to NULL (ON DELETE
-- SET NULL). Nothing is granted to syncctl's roles: the mapping check names what it needs.
-- Bound by tests/shops/exotic.toml.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'exotic_shop_app') THEN
        CREATE ROLE exotic_shop_app NOLOGIN;
    END IF;
END
$$;

CREATE SCHEMA "web.shop";
CREATE SCHEMA "o'brien";

CREATE TYPE "web.shop".gender AS ENUM ('M', 'F', 'X');
CREATE DOMAIN "web.shop".email_address AS text
    CONSTRAINT email_address_shape CHECK (VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+\.[a-z]{2,}$');

CREATE TABLE "web.shop".customer (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_number       text UNIQUE,
    first_name      text,
    last_name       text NOT NULL DEFAULT '',
    full_name       text GENERATED ALWAYS AS
                        (pg_catalog.btrim(coalesce(first_name, '') || ' ' || last_name)) STORED,
    email           "web.shop".email_address,
    gender          "web.shop".gender,
    birth_date      date,
    phone           text,
    blocked         boolean NOT NULL DEFAULT false,
    "user"          text,                                -- the loyalty card, a reserved word
    "order"         integer NOT NULL DEFAULT 0,          -- the shop's order counter, not fed
    tier            text NOT NULL DEFAULT 'basic',       -- NOT NULL, a default, not fed
    created_at      timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE "web.shop".customer ENABLE ROW LEVEL SECURITY;
ALTER TABLE "web.shop".customer FORCE ROW LEVEL SECURITY;
CREATE POLICY shop_app_rows ON "web.shop".customer TO exotic_shop_app USING (true) WITH CHECK (true);

CREATE TABLE "web.shop".orders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     integer NOT NULL REFERENCES "web.shop".customer (id) ON DELETE CASCADE,
    placed_at       timestamptz NOT NULL DEFAULT now(),
    amount          numeric(10, 2) NOT NULL DEFAULT 0
);
CREATE INDEX ON "web.shop".orders (customer_id);

CREATE TABLE "o'brien".favourite (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     integer REFERENCES "web.shop".customer (id) ON DELETE SET NULL,
    sku             text NOT NULL,
    added_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON "o'brien".favourite (customer_id);
