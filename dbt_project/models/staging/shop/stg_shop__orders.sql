-- One row per order: the latest-loaded event of each order wins (a completed order may later arrive as
-- cancelled or refunded).
with events as (
    select * from {{ ref('stg_shop__order_events') }}
),

latest as (
    select distinct on (order_id)
        order_id,
        event_id,
        customer_id,
        cart_id,
        placed_at,
        status,
        store_id,
        currency,
        total,
        items
    from events
    order by order_id asc, loaded_from_file desc, loaded_from_line desc
)

select * from latest
