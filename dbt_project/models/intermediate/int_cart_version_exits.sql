{{ config(materialized='view') }}
-- F2: what ends the sequence of a cart version, one row per event that does, with when it happened: a
-- completed order (its latest status: a later cancellation takes it back, stg_shop__orders) placed after
-- the version by its customer or for its cart; the cart deleted after the version; a newer version of the
-- cart. A step k >= 2 exits on the first of them by T, in the order of the exclusion_reasons seed.
-- The one definition of the exit conditions: int_recipient_decisions reads it when a step is decided, and
-- the sender's claim re-checks it for each message in the transaction that claims it (outbox.py), both up
-- to their T. A view over staging, read by key (cart_id, cart_version) through the staging indexes.
with versions as (
    select
        cart_id,
        event_id as cart_version,
        customer_id,
        occurred_at as version_at
    from {{ ref('stg_shop__cart_events') }}
    where event_type = 'cart_updated'
),

orders as (
    select * from {{ ref('stg_shop__orders') }}
    where status = 'completed'
),

for_the_cart as (
    select
        versions.cart_id,
        versions.cart_version,
        'exited_order_placed' as exit_reason,
        orders.placed_at as exited_at
    from versions
    inner join orders on versions.cart_id = orders.cart_id and versions.version_at < orders.placed_at
),

by_the_customer as (
    select
        versions.cart_id,
        versions.cart_version,
        'exited_order_placed' as exit_reason,
        orders.placed_at as exited_at
    from versions
    inner join orders on versions.customer_id = orders.customer_id and versions.version_at < orders.placed_at
),

later_events as (
    select
        versions.cart_id,
        versions.cart_version,
        case
            when events.event_type = 'cart_deleted' then 'exited_cart_deleted' else 'exited_cart_changed'
        end as exit_reason,
        events.occurred_at as exited_at
    from versions
    inner join {{ ref('stg_shop__cart_events') }} as events
        on
            versions.cart_id = events.cart_id
            and (versions.version_at, versions.cart_version) < (events.occurred_at, events.event_id)
)

select * from for_the_cart
union all
select * from by_the_customer
union all
select * from later_events
