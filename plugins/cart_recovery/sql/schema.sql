-- Tables owned by the Python side: the raw landing zone (written by ingest) and
-- the operational state (outbox, coupon allocations, suppressions, alerts).
-- dbt reads them as sources; it never writes them. Idempotent: run on every task start.

-- uuid_generate_v5 for the message ids below; a trusted extension: the database's owner may create it
create extension if not exists "uuid-ossp";

create schema if not exists raw;
create schema if not exists ops;

-- S2, E6: the one definition of a message's keys, used by dbt (int_decisions) and by everything else:
-- idempotency_key = campaign:step:cart_id:cart_version; message_id = its UUID v5 in a namespace fixed
-- forever (past message ids are recomputed from their keys: attribution, O2). Inlined by the planner.
create or replace function ops.idempotency_key(campaign text, step integer, cart_id text, cart_version text)
returns text language sql immutable parallel safe
as $$ select campaign || ':' || step || ':' || cart_id || ':' || cart_version $$;

-- S3: a dry run records under its own key, so a later real run of the date still sends
create or replace function ops.dry_run_key(idempotency_key text)
returns text language sql immutable parallel safe
as $$ select 'dry_run:' || idempotency_key $$;

create or replace function ops.message_id(idempotency_key text)
returns uuid language sql immutable parallel safe
as $$ select uuid_generate_v5('0b6f3c1e-2f4d-5a8b-9c7e-6a1d2e3f4b5c'::uuid, idempotency_key) $$;

-- one row per landing file ever loaded; the checksum makes a file load once (contract §2)
create table if not exists raw.loaded_files (
    checksum text primary key,
    file_name text not null,
    kind text not null,
    rows_loaded integer not null,
    rows_quarantined integer not null,
    loaded_at timestamptz not null default now()
);

-- O4: one row per rejected input row
create table if not exists raw.quarantine (
    quarantine_id bigserial primary key,
    file_name text not null,
    kind text,
    line_number integer not null,
    reason text not null,
    content text not null,
    quarantined_at timestamptz not null default now()
);

-- Every raw table carries where its row came from: _file_name, _line_number.
create table if not exists raw.customers (
    customer_id text not null,
    email text,
    phone text,
    first_name text,
    last_name text,
    locale text,
    customer_type text not null,
    institution_kind text,
    preferred_store_id text,
    updated_at timestamptz not null,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.consents (
    customer_id text not null,
    channel text not null,
    status text not null,
    basis text,
    recorded_at timestamptz not null,
    source text,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.products (
    sku text not null,
    title text,
    author text,
    publisher text,
    image_url text,
    product_url text,
    price numeric(12, 2),
    currency text,
    updated_at timestamptz not null,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.stores (
    store_id text not null,
    name text,
    email text,
    phone text,
    address text,
    city text,
    region text,
    url text,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.test_group (
    customer_id text not null,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.coupon_codes (
    pool text not null,
    code text not null,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.push_subscriptions (
    customer_id text not null,
    kind text not null,
    endpoint text not null,
    p256dh text,
    auth text,
    status text not null,
    recorded_at timestamptz not null,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.cart_events (
    event_id text not null,
    event_type text not null,
    occurred_at timestamptz not null,
    cart_id text not null,
    customer_id text,
    device text,
    store_id text,
    currency text,
    cart_url text,
    items jsonb not null,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.orders (
    event_id text not null,
    order_id text not null,
    customer_id text,
    cart_id text,
    placed_at timestamptz not null,
    status text not null,
    store_id text,
    currency text,
    total numeric(12, 2) not null,
    items jsonb not null,
    _file_name text not null,
    _line_number integer not null
);

create table if not exists raw.provider_events (
    sg_event_id text,
    event text not null,
    email text,
    occurred_at timestamptz not null,
    sg_message_id text,
    message_id text,
    campaign text,
    payload jsonb not null,
    _file_name text not null,
    _line_number integer not null
);

-- Indexes dbt's incremental models and the daily window lean on.
create index if not exists cart_events_occurred_at_idx on raw.cart_events (occurred_at);
create index if not exists orders_placed_at_idx on raw.orders (placed_at);

-- _loaded_at: when the row was loaded (its load transaction's start, by default). dbt's incremental
-- staging models read only the rows loaded since their last build (less an overlap), whatever the rows'
-- event time: late events come in later loads. BRIN, because rows are appended in load order: the index
-- costs the COPY almost nothing. Added only where missing (a constant default: no table rewrite), so a
-- task start never queues for a lock behind a running dbt read.
do $$
declare
    loaded text;
begin
    foreach loaded in array array['cart_events', 'orders', 'customers', 'consents', 'products'] loop
        if not exists (
            select 1 from information_schema.columns
            where table_schema = 'raw' and table_name = loaded and column_name = '_loaded_at'
        ) then
            execute format('alter table raw.%I add column _loaded_at timestamptz not null default now()', loaded);
        end if;
        if to_regclass(format('raw.%I', loaded || '_loaded_at_idx')) is null then
            execute format('create index %I on raw.%I using brin (_loaded_at)', loaded || '_loaded_at_idx', loaded);
        end if;
    end loop;
end
$$;

-- S2 / E6: the outbox. One row per message attempt key, committed before the API call.
create table if not exists ops.messages (
    message_id uuid primary key,
    idempotency_key text not null unique,
    campaign text not null,
    step integer not null,
    channel text not null,
    customer_id text not null,
    cart_id text not null,
    cart_version text not null,
    status text not null check (
        status in ('pending', 'sent', 'failed', 'unknown', 'skipped', 'dry_run')
    ),
    skip_reason text,
    provider_message_id text,
    decided_at timestamptz not null,
    sent_at timestamptz,
    coupon_code text,
    attempts integer not null default 0,
    last_error text,
    claimed_by text,
    claimed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index if not exists messages_customer_decided_idx on ops.messages (customer_id, decided_at);

-- C2: a pool code goes to at most one cart version, ever (primary key on code), and a
-- cart version keeps the code it got (unique key on the cart version and step).
create table if not exists ops.coupon_allocations (
    code text primary key,
    pool text not null,
    campaign text not null,
    step integer not null,
    customer_id text not null,
    cart_id text not null,
    cart_version text not null,
    decided_at timestamptz not null,
    allocated_at timestamptz not null default now(),
    unique (campaign, step, cart_id, cart_version)
);

-- E4: the project's own unsubscribe records (link, one-click POST, operators).
create table if not exists ops.unsubscribes (
    customer_id text not null,
    channel text not null,
    recorded_at timestamptz not null,
    source text not null,
    primary key (customer_id, channel, recorded_at)
);

-- C3 and other conditions an operator must see.
create table if not exists ops.alerts (
    alert_id bigserial primary key,
    kind text not null,
    detail jsonb not null,
    decided_at timestamptz,
    raised_at timestamptz not null default now()
);

-- A1: one row per accepted SendGrid Event Webhook request (plugins/cart_recovery/api/webhook.py).
-- An exact replay is refused: the signature's hash is unique, and so is the hash of what was signed
-- (timestamp + body), because an ECDSA signature can be altered into another valid one for the same
-- content. The receipt's events are in raw.provider_events and raw.quarantine with
-- _file_name / file_name = 'webhook:<receipt_id>'.
create table if not exists raw.webhook_receipts (
    receipt_id bigserial primary key,
    provider text not null default 'sendgrid',
    signature_sha256 text not null unique,
    signed_sha256 text not null unique,
    body_sha256 text not null,
    signed_at timestamptz not null,
    received_at timestamptz not null default now(),
    events_stored integer not null,
    events_quarantined integer not null
);

-- ---------------------------------------------------------------- follow-ups, SMS and push (issue 6, H8)
-- F4 quiet hours: an SMS decided in 21:00–08:00 recipient-local waits until send_after (the next 08:00);
-- the send loop only sends rows whose send_after is null or <= the run's T.
-- Added only where missing: an `alter table` would queue behind a running reader even as a no-op.
do $$
begin
    if not exists (
        select 1 from information_schema.columns
        where table_schema = 'ops' and table_name = 'messages' and column_name = 'send_after'
    ) then
        alter table ops.messages add column send_after timestamptz;
    end if;
end
$$;

-- The decision row of a deferred message (F4): the marts of the run that decided it are rebuilt before it
-- is sent, so what the render needs is kept here until it is sent. Personal data (phone, first name):
-- deleted once the message is no longer pending.
create table if not exists ops.deferred_sends (
    message_id uuid primary key,
    decision jsonb not null
);

-- E2: push subscriptions the push service reported dead (web push 404/410, FCM UNREGISTERED); dbt treats a
-- subscription as inactive from revoked_at (the T of the run that learnt it) on.
create table if not exists ops.push_revocations (
    endpoint text primary key,
    customer_id text,
    revoked_at timestamptz not null,
    reason text not null
);

-- F2: the exit re-check at claim time looks carts and customers up in raw (a batch's carts, not a scan).
-- Created only where missing (to_regclass), so a task start never queues behind a running reader.
do $$
begin
    if to_regclass('raw.cart_events_cart_id_idx') is null then
        create index cart_events_cart_id_idx on raw.cart_events (cart_id, occurred_at);
    end if;
    if to_regclass('raw.orders_cart_id_idx') is null then
        create index orders_cart_id_idx on raw.orders (cart_id);
    end if;
    if to_regclass('raw.orders_customer_id_idx') is null then
        create index orders_customer_id_idx on raw.orders (customer_id, placed_at);
    end if;
end
$$;

-- F5 / E6: the retargeting export's outbox (cart_recovery.retargeting). One row per audience change,
-- idempotency_key = 'retargeting:<customer_id>:<joined_at>:<add|remove>', recorded before the run's files
-- are written; a rerun of the same T rewrites the same files from these rows and inserts nothing twice.
create table if not exists ops.audience_changes (
    idempotency_key text primary key,
    customer_id text not null,
    change text not null check (change in ('add', 'remove')),
    email_sha256 text not null,
    joined_at timestamptz not null,
    decided_at timestamptz not null,
    status text not null check (status in ('pending', 'exported')),
    exported_at timestamptz,
    file_name text
);
create index if not exists audience_changes_decided_idx on ops.audience_changes (decided_at);
